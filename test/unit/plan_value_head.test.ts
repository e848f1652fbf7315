// `rpo plan` for loss=ppo counts the value head (lib/plan/value_head.ts): the seed's ValueHead,
// Linear(H, H) + Linear(H, H) + Linear(H, 1) with biases, fp32 weights and gradients and fp32
// optimizer moments under every precision. Values computed by hand for Mistral-7B (H = 4096).
import { describe, expect, it } from 'vitest';

import { planFromArgs } from '../../lib/commands/plan.js';
import { CUDA_HEADROOM, GiB, PRECISIONS, estimatePlan, shapeOf, type PlanInputs } from '../../lib/plan/estimate.js';
import { KNOWN_MODELS } from '../../lib/plan/models.js';

const mistral = shapeOf(KNOWN_MODELS['mistralai/Mistral-7B-Instruct-v0.2']!);
// 4096·4096 + 4096 (summary.0) + 4096·4096 + 4096 (summary.3) + 4096 + 1 (summary.6).
const HEAD = 4096 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 + 1;

const base: PlanInputs = {
  shape: mistral,
  precision: 'bf16-mixed',
  optimizer: 'AdamW',
  batchSize: 8,
  gradientAccumulationSteps: 1,
  worldSize: 1,
  zeroStage: 1,
  groups: 1,
  seqLen: 1024,
  checkpointing: true,
  chunkTokens: 1024,
  headPath: 'cuda-kernel',
  referenceBytes: 2,
  headroom: CUDA_HEADROOM,
  deviceBytes: 141 * GiB,
};

describe('the value head in the plan (loss=ppo)', () => {
  it('has 2·H² + 3·H + 1 parameters: 33,566,721 for H = 4096', () => {
    expect(HEAD).toBe(33_566_721);
    expect(estimatePlan({ ...base, valueHead: true }).valueHead!.parameters).toBe(HEAD);
    expect(estimatePlan(base).valueHead).toBeNull();
  });

  for (const precision of PRECISIONS) {
    it(`${precision}: fp32 weights (4 B), gradients (4 B) and AdamW moments (8 B) or RMSprop's one (4 B), added to the persistent bytes`, () => {
      for (const [optimizer, moments] of [['AdamW', 8], ['RMSprop', 4]] as const) {
        const without = estimatePlan({ ...base, precision, optimizer });
        const withHead = estimatePlan({ ...base, precision, optimizer, valueHead: true });
        expect(withHead.valueHead).toEqual({ parameters: HEAD, weights: 4 * HEAD, gradients: 4 * HEAD, optimizerState: moments * HEAD });
        expect(withHead.persistent - without.persistent).toBe((8 + moments) * HEAD);
        // The policy's own buffers are unchanged.
        expect([withHead.weights, withHead.gradients, withHead.master, withHead.optimizerState]).toEqual([without.weights, without.gradients, without.master, without.optimizerState]);
        expect(withHead.total - without.total).toBe((8 + moments) * HEAD);
      }
    });
  }

  it('rpo plan loss=ppo reports it (text and --json); other losses have none', () => {
    const ppo = planFromArgs(['loss=ppo', 'model=mistral7bv2', '--precision', 'bf16-sr', '--json']) as { text: string; json: Record<string, any> };
    expect(ppo.json.bytes.valueHead).toEqual({ parameters: HEAD, weights: 4 * HEAD, gradients: 4 * HEAD, optimizerState: 8 * HEAD });
    expect(ppo.text).toMatch(/value head \(ppo: 33\.57 M parameters, fp32 in every precision\)/);
    // The rows in GiB: 8·HEAD bytes each (weights + gradients; AdamW's moments).
    expect(ppo.text).toMatch(new RegExp(`weights \\(4 B/param\\) \\+ gradients \\(4 B/param\\) +${((8 * HEAD) / GiB).toFixed(2)}`));
    expect(ppo.text).toMatch(new RegExp(`optimizer state \\(AdamW, 8 B/param\\) +${((8 * HEAD) / GiB).toFixed(2)}`));
    const dpo = planFromArgs(['loss=dpo', 'model=mistral7bv2', '--json']) as { json: Record<string, any> };
    expect(dpo.json.bytes.valueHead).toBeNull();
    const dpoSr = planFromArgs(['loss=dpo', 'model=mistral7bv2', '--precision', 'bf16-sr', '--json']) as { json: Record<string, any> };
    // ppo's live reference and dpo's are the same model; the head is the difference.
    expect(ppo.json.bytes.persistent - dpoSr.json.bytes.persistent).toBe(16 * HEAD);
  });
});
