// The fused, chunked log-prob head against two references: the engine's naive full-logits
// path, and a float64 log-softmax computed here in TS from the model's own logits.
import { describe, expect, it } from 'vitest';

import { Model, Trainer } from '../../lib/native.js';
import { maxRelError, normRelError, randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig();

/** Per-row summed label log-probs in float64 from full logits [rows, T, V]. */
function logpsFromLogits(logits: Float32Array, batch: ReturnType<typeof randomBatch>, vocab: number): number[] {
  const sums: number[] = [];
  for (let r = 0; r < batch.rows; r++) {
    let sum = 0;
    for (let t = 1; t < batch.seqLen; t++) {
      if (!batch.lossMask[r * batch.seqLen + t]) continue;
      const base = (r * batch.seqLen + (t - 1)) * vocab;
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) max = Math.max(max, logits[base + v]!);
      let z = 0;
      for (let v = 0; v < vocab; v++) z += Math.exp(logits[base + v]! - max);
      sum += logits[base + batch.inputIds[r * batch.seqLen + t]!]! - max - Math.log(z);
    }
    sums.push(sum);
  }
  return sums;
}

describe('fused log-probs', () => {
  it('match a float64 log-softmax of the full logits', async () => {
    const model = await Model.create(config, { seed: 3 });
    const batch = randomBatch(11, { rows: 5, seqLen: 13, vocab: config.vocab_size, minLen: 6, promptLen: 3 });
    const reference = logpsFromLogits(await model.logits(batch), batch, config.vocab_size);
    const fused = await model.logprobs(batch, { chunkTokens: 7 });
    expect(maxRelError(fused.sum, reference)).toBeLessThan(1e-5);
    // counts: label positions after the prompt, within each row's length
    for (let r = 0; r < batch.rows; r++) {
      let n = 0;
      for (let t = 1; t < batch.seqLen; t++) n += batch.lossMask[r * batch.seqLen + t]!;
      expect(fused.count[r]).toBe(n);
      expect(fused.mean[r]).toBeCloseTo(fused.sum[r]! / n, 5); // the engine divides in fp32
    }
    model.dispose();
  });

  it('agree with the naive path for chunk sizes that do not divide the tokens', async () => {
    const model = await Model.create(tinyConfig({ tie_word_embeddings: true }), { seed: 5 });
    const batch = randomBatch(12, { rows: 4, seqLen: 17, vocab: config.vocab_size, minLen: 5 });
    const naive = await model.logprobs(batch, { naive: true });
    for (const chunkTokens of [1, 3, 7, 10_000]) {
      const fused = await model.logprobs(batch, { chunkTokens });
      expect(maxRelError(fused.sum, naive.sum)).toBeLessThan(1e-5);
      expect(maxRelError(fused.mean, naive.mean)).toBeLessThan(1e-5);
      expect(Array.from(fused.count)).toEqual(Array.from(naive.count));
    }
    model.dispose();
  });

  it('give the naive path\'s gradients for every parameter', async () => {
    const batch = randomBatch(13, { rows: 3, seqLen: 15, vocab: config.vocab_size, minLen: 7 });
    for (const tied of [false, true]) {
      const cfg = tinyConfig({ tie_word_embeddings: tied });
      const grads: Float64Array[] = [];
      let names: string[] = [];
      for (const options of [{ naiveLogprobs: true }, { chunkTokens: 5 }, { chunkTokens: 8 }]) {
        const model = await Model.create(cfg, { seed: 7 });
        names = model.params().map((p) => p.name);
        const trainer = new Trainer(model, null, { loss: { name: 'sft' }, ...options });
        const step = await trainer.microStep(batch, { nPairs: 3 });
        expect(step.finite).toBe(true);
        grads.push(await trainer.gradSnapshot(names));
        trainer.dispose();
        model.dispose();
      }
      // per parameter, norm-wise: each tensor's gradient must agree, not just the big ones
      const model = await Model.create(cfg, { seed: 7 });
      let offset = 0;
      for (const p of model.params()) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        const ref = grads[0]!.subarray(offset, offset + n);
        expect(normRelError(grads[1]!.subarray(offset, offset + n), ref), p.name).toBeLessThan(1e-5);
        expect(normRelError(grads[2]!.subarray(offset, offset + n), ref), p.name).toBeLessThan(1e-5);
        offset += n;
      }
      expect(offset).toBe(grads[0]!.length);
      model.dispose();
    }
  });
});
