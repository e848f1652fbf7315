// bf16 training on the GPU: pure bf16 parameters (as the seed's policy_dtype: bfloat16), AdamW,
// a fixed batch. The loss must stay finite and go down over ten steps; with activation
// checkpointing too (the 7B path), and with the rationale term (RDPO).
import { describe, expect, it } from 'vitest';

import { Model, Trainer, type LossConfig } from '../../lib/native.js';
import { randomBatch, tinyConfig } from '../native/helpers.js';
import { CUDA, DEVICE, announce } from './gpu.js';

announce('bf16_step');

const config = tinyConfig({ hidden_size: 64, intermediate_size: 128, head_dim: 16, initializer_range: 0.05 });

async function train(loss: LossConfig, groups: number, activationCheckpointing: boolean, lr: number): Promise<number[]> {
  const nPairs = 4;
  const batch = randomBatch(77 + groups, { rows: nPairs * groups, seqLen: 24, vocab: config.vocab_size, minLen: 12, promptLen: 4 });
  const policy = await Model.create(config, { seed: 5, device: DEVICE, dtype: 'bfloat16' });
  const needsRef = loss.name === 'dpo' || loss.name === 'rdpo';
  // The reference starts equal to the policy (same seed), as in a real DPO run from an SFT model.
  const reference = needsRef ? await Model.create(config, { seed: 5, device: DEVICE, dtype: 'bfloat16' }) : null;
  expect(policy.dtype).toBe('bfloat16');
  const trainer = new Trainer(policy, reference, { loss, activationCheckpointing, chunkTokens: 32 });
  const losses: number[] = [];
  try {
    for (let step = 0; step < 10; step++) {
      const r = await trainer.microStep(batch, { nPairs });
      expect(r.finite, `step ${step}`).toBe(true);
      losses.push(r.loss);
      const { gradNorm } = await trainer.optimizerStep({ lr, maxGradNorm: 10 });
      expect(Number.isFinite(gradNorm)).toBe(true);
    }
  } finally {
    trainer.dispose();
    policy.dispose();
    reference?.dispose();
  }
  return losses;
}

describe.skipIf(!CUDA)('bf16 train steps on CUDA', () => {
  const cases: { loss: LossConfig; groups: number; ckpt: boolean; lr: number }[] = [
    { loss: { name: 'sft' }, groups: 1, ckpt: false, lr: 3e-3 },
    { loss: { name: 'dpo', beta: 0.5 }, groups: 2, ckpt: false, lr: 3e-3 },
    { loss: { name: 'rdpo', beta: 0.5, gamma: 0.1 }, groups: 3, ckpt: true, lr: 3e-3 },
  ];
  for (const c of cases) {
    it(`${c.loss.name}${c.ckpt ? ' with activation checkpointing' : ''}: finite, and decreasing over 10 steps`, async () => {
      const losses = await train(c.loss, c.groups, c.ckpt, c.lr);
      console.log(`[bf16] ${c.loss.name}: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
      for (const l of losses) expect(Number.isFinite(l)).toBe(true);
      const first = losses[0]!;
      const last = losses.at(-1)!;
      expect(last).toBeLessThan(first - 0.05 * Math.max(Math.abs(first), 0.1));
      // Mostly downhill, not a lucky last step: the last three all under the first.
      for (const l of losses.slice(-3)) expect(l).toBeLessThan(first);
    });
  }
});
