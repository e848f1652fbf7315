// bf16 and fp16 parameters: the same seed gives the same model rounded to the dtype, so its
// logits track the fp32 model's within the dtype's precision, and a train step stays finite.
import { describe, expect, it } from 'vitest';

import { Model, Trainer } from '../../lib/native.js';
import { normRelError, randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig({ initializer_range: 0.1 });

describe('half-precision parameters', () => {
  for (const dtype of ['bfloat16', 'float16'] as const) {
    it(`${dtype}: logits near fp32, parameters stored as ${dtype}, a finite train step`, async () => {
      const full = await Model.create(config, { seed: 8 });
      const half = await Model.create(config, { seed: 8, dtype });
      expect(half.dtype).toBe(dtype);
      expect(new Set(half.params().map((p) => p.dtype))).toEqual(new Set([dtype === 'bfloat16' ? 'BF16' : 'F16']));
      const batch = randomBatch(8, { rows: 3, seqLen: 12, vocab: config.vocab_size });
      // bf16 keeps 8 mantissa bits (~4e-3 per rounding), fp16 11 bits
      const tolerance = dtype === 'bfloat16' ? 5e-2 : 1e-2;
      expect(normRelError(await half.logits(batch), await full.logits(batch))).toBeLessThan(tolerance);
      const trainer = new Trainer(half, null, { loss: { name: 'sft' } });
      const step = await trainer.microStep(batch, { nPairs: 3 });
      expect(step.finite).toBe(true);
      const { gradNorm } = await trainer.optimizerStep({ lr: 1e-4, maxGradNorm: 1 });
      expect(Number.isFinite(gradNorm) && gradNorm > 0).toBe(true);
      trainer.dispose();
      half.dispose();
      full.dispose();
    });
  }
});
