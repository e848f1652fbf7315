// GPU suite: runs where CUDA is found (`npm run test:gpu`), skipped loudly elsewhere.
//
// CUDA against the CPU in fp32, TF32 off (the default on GPUs is on): the same seeds give the
// same weights on both devices, so logits, per-row log-probs, every loss with its metrics and
// every parameter's gradient must agree up to fp32 rounding (≪ 1e-4; a real bug gives ≫ 1e-2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, allowTF32, setAllowTF32, type LossConfig } from '../../lib/native.js';
import { lossGroups, lossIsUnpaired, lossUsesReference } from '../../lib/loss/table.js';
import { maxRelError, normRelError, randomBatch, tinyConfig } from '../native/helpers.js';
import { CUDA, DEVICE, announce } from './gpu.js';

announce('cuda_parity');

/** Row groups per pair and whether a reference model takes part: the loss table's (lib/loss/table.ts). */
function lossShape(loss: LossConfig): { groups: number; reference: boolean } {
  return { groups: lossGroups({ name: loss.name, rationale: loss.rationale ?? 'none', rationale_form: loss.rationale_form ?? 'code' }), reference: lossUsesReference(loss.name) };
}

const LOSSES: LossConfig[] = [
  { name: 'sft' },
  { name: 'dpo', beta: 0.3 },
  { name: 'cdpo', beta: 0.3, epsilon: 0.2 },
  { name: 'ipo', beta: 0.3 },
  { name: 'slic', beta: 0.5, lambda: 0.2 },
  { name: 'simpo', beta: 2, margin: 0.5 },
  { name: 'orpo', beta: 0.2 },
  { name: 'rdpo', beta: 0.3, gamma: 0.2 },
  { name: 'rorpo-simple', beta: 0.2, gamma: 0.2 },
  { name: 'rorpo', beta: 0.2, gamma: 0.5 },
  { name: 'simpo', beta: 2, margin: 0.5, gamma: 0.3, rationale: 'logsigmoid' },
  { name: 'csft' },
  { name: 'kto', beta: 0.3, desirable_weight: 1.2, undesirable_weight: 0.8 },
  { name: 'kto-simple', beta: 0.3 },
  { name: 'kto-zero', beta: 0.3 },
];

// initializer_range 0.1: at 0.02 attention is nearly uniform and the comparison sees little.
const config = tinyConfig({ initializer_range: 0.1 });

describe.skipIf(!CUDA)('CUDA vs CPU, fp32 (TF32 off)', () => {
  let tf32 = false;
  beforeAll(() => {
    tf32 = allowTF32();
    setAllowTF32(false);
  });
  afterAll(() => setAllowTF32(tf32));

  it('logits and per-row log-probs agree (fused head, several chunk sizes, and the naive head)', async () => {
    const cpu = await Model.create(config, { seed: 9 });
    const gpu = await Model.create(config, { seed: 9, device: DEVICE });
    try {
      expect(gpu.device).toMatch(DEVICE === 'cuda' ? /^cuda/ : /^cpu$/);
      const batch = randomBatch(9, { rows: 3, seqLen: 16, vocab: config.vocab_size });
      const lc = await cpu.logits(batch);
      const lg = await gpu.logits(batch);
      expect(normRelError(lg, lc)).toBeLessThan(1e-5);
      expect(maxRelError(lg, lc, 1e-3)).toBeLessThan(1e-3);
      for (const options of [{}, { chunkTokens: 7 }, { chunkTokens: 1 }, { naive: true }]) {
        const c = await cpu.logprobs(batch, options);
        const g = await gpu.logprobs(batch, options);
        expect(maxRelError(g.sum, c.sum), JSON.stringify(options)).toBeLessThan(1e-5);
        expect(maxRelError(g.mean, c.mean), JSON.stringify(options)).toBeLessThan(1e-5);
        expect(Array.from(g.count)).toEqual(Array.from(c.count));
      }
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  });

  for (const loss of LOSSES) {
    it(`${loss.name}: loss, metrics and every parameter's gradient agree`, async () => {
      const { groups, reference } = lossShape(loss);
      const nPairs = 3;
      const rows = randomBatch(50 + groups, { rows: nPairs * groups, seqLen: 14, vocab: config.vocab_size, minLen: 8 });
      // Unpaired losses: each example's kind (both kinds, for kto-simple).
      const batch = lossIsUnpaired(loss.name) ? { ...rows, desirable: Uint8Array.from([1, 0, 1]) } : rows;
      const run = async (device: string) => {
        const policy = await Model.create(config, { seed: 41, device });
        const ref = reference ? await Model.create(config, { seed: 42, device }) : null;
        const names = policy.params().map((p) => p.name);
        const trainer = new Trainer(policy, ref, { loss, chunkTokens: 8 });
        try {
          const step = await trainer.microStep(batch, { nPairs });
          return { step, grads: await trainer.gradSnapshot(names) };
        } finally {
          trainer.dispose();
          policy.dispose();
          ref?.dispose();
        }
      };
      const c = await run('cpu');
      const g = await run(DEVICE);
      expect(c.step.finite && g.step.finite).toBe(true);
      expect(Math.abs(g.step.loss - c.step.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(c.step.loss)));
      expect(Object.keys(g.step.metrics).sort()).toEqual(Object.keys(c.step.metrics).sort());
      for (const [key, value] of Object.entries(c.step.metrics)) {
        if (key.includes('accuracies')) continue; // a 0/1 count: flips on a margin of ~0
        expect(Math.abs(g.step.metrics[key]! - value), key).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(value)));
      }
      expect(g.step.tokens).toBe(c.step.tokens);
      expect(c.grads.some((x) => x !== 0)).toBe(true);
      const err = normRelError(g.grads, c.grads);
      console.log(`[cuda-vs-cpu] ${loss.name}: loss ${c.step.loss.toFixed(6)}, gradient norm-wise rel error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    });
  }

  // ppo's value head draws dropout masks in training (CPU and CUDA streams differ), so the two
  // devices are compared on the evaluation step (no dropout): loss and every metric.
  it('ppo: the evaluation step (value head, GAE, clipped ratio) agrees', async () => {
    const loss: LossConfig = { name: 'ppo', ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 };
    const batch = { ...randomBatch(61, { rows: 3, seqLen: 14, vocab: config.vocab_size, minLen: 8, promptLen: 3 }), desirable: Uint8Array.from([1, 0, 1]) };
    const run = async (device: string) => {
      const policy = await Model.create(config, { seed: 41, device });
      const ref = await Model.create(config, { seed: 42, device });
      const trainer = new Trainer(policy, ref, { loss, chunkTokens: 8, seed: 3 });
      try {
        return await trainer.evalStep(batch, { nPairs: 3 });
      } finally {
        trainer.dispose();
        policy.dispose();
        ref.dispose();
      }
    };
    const c = await run('cpu');
    const g = await run(DEVICE);
    expect(Math.abs(g.loss - c.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(c.loss)));
    expect(Object.keys(g.metrics).sort()).toEqual(Object.keys(c.metrics).sort());
    for (const [key, value] of Object.entries(c.metrics)) expect(Math.abs(g.metrics[key]! - value), key).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(value)));
  });
});
