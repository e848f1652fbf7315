// The trainer's step for the unpaired losses on real (tiny) models: its loss and metrics equal
// evaluate_loss on the per-row log-probs each model gives for the same rows (targets first, then
// kto's KL rows), with the batch's desirable flags; the reference never takes gradients.
import { describe, expect, it } from 'vitest';

import { Model, Trainer, evaluateLoss, type LossConfig, type RowBatch, type RowLogps } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig();

function slice(r: RowLogps, start: number, n: number): RowLogps {
  return { sum: r.sum.slice(start, start + n), mean: r.mean.slice(start, start + n), count: r.count.slice(start, start + n) };
}

describe('unpaired losses through the trainer', () => {
  const cases: Array<{ cfg: LossConfig; groups: number }> = [
    { cfg: { name: 'kto', beta: 0.5, desirable_weight: 1.3, undesirable_weight: 0.7 }, groups: 2 },
    { cfg: { name: 'kto-simple', beta: 0.5 }, groups: 1 },
    { cfg: { name: 'kto-zero', beta: 0.5 }, groups: 1 },
  ];
  for (const { cfg, groups } of cases) {
    it(`${cfg.name}: the step's loss and metrics are evaluate_loss on each model's row log-probs`, async () => {
      const n = 4;
      const desirable = Uint8Array.from([1, 0, 0, 1]);
      const rows = randomBatch(70, { rows: n * groups, seqLen: 12, vocab: config.vocab_size, minLen: 6 });
      const batch: RowBatch = { ...rows, desirable };
      const policy = await Model.create(config, { seed: 1 });
      const reference = await Model.create(config, { seed: 2 });
      const trainer = new Trainer(policy, reference, { loss: cfg });
      try {
        const pol = await policy.logprobs(rows);
        const ref = await reference.logprobs(rows);
        const step = await trainer.microStep(batch, { nPairs: n });
        const want = evaluateLoss(
          cfg,
          { chosen: slice(pol, 0, n), ...(groups === 2 ? { rejected: slice(pol, n, n) } : {}), desirable },
          { chosen: slice(ref, 0, n), ...(groups === 2 ? { rejected: slice(ref, n, n) } : {}) },
        );
        // float32 engine log-probs vs the float64 loss on them
        expect(Math.abs(step.loss - want.loss)).toBeLessThan(1e-5);
        expect(Object.keys(step.metrics).sort()).toEqual(Object.keys(want.metrics).sort());
        for (const [k, v] of Object.entries(want.metrics)) expect(Math.abs(step.metrics[k]! - v), k).toBeLessThan(1e-4 * Math.max(1, Math.abs(v)));
        // The examples' kinds are required.
        await expect(trainer.evalStep(rows, { nPairs: n })).rejects.toThrow(/desirable/);
      } finally {
        trainer.dispose();
        policy.dispose();
        reference.dispose();
      }
    });
  }
});
