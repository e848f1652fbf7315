// A micro-step reads its loss after backward (one device-to-host copy, no wait for the forward
// before backward is queued). So a NaN loss is found after its gradients exist: they are dropped
// when there were none before the micro-step, and otherwise poison the accumulated ones, and the
// optimizer step then skips its update on the non-finite norm. Either way no weight changes.
import { describe, expect, it } from 'vitest';

import { Model, Trainer, type PairLogps } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig({ num_hidden_layers: 2 });
const nPairs = 2;
const batch = randomBatch(71, { rows: 2 * nPairs, seqLen: 10, vocab: config.vocab_size });
const ref = (v: number): PairLogps => {
  const g = () => ({ sum: new Float64Array(nPairs).fill(v), mean: new Float64Array(nPairs).fill(v), count: new Float64Array(nPairs).fill(1) });
  return { chosen: g(), rejected: g() };
};

describe('a non-finite micro-step', () => {
  it('with no gradients before it: finite false, gradients dropped', async () => {
    const model = await Model.create(config, { seed: 72 });
    const names = model.params().map((p) => p.name);
    const trainer = new Trainer(model, null, { loss: { name: 'dpo', beta: 0.1 } });
    const r = await trainer.microStep(batch, { nPairs, reference: ref(NaN) });
    expect(r.finite).toBe(false);
    expect(Number.isNaN(r.loss)).toBe(true);
    const grads = await trainer.gradSnapshot(names);
    expect(grads.every((g) => g === 0)).toBe(true); // none defined
    // The next finite micro-step is what the optimizer sees.
    const ok = await trainer.microStep(batch, { nPairs, reference: ref(0) });
    expect(ok.finite).toBe(true);
    const { gradNorm } = await trainer.optimizerStep({ lr: 1e-3 });
    expect(Number.isFinite(gradNorm)).toBe(true);
    trainer.dispose();
    model.dispose();
  });

  it('after a finite one: the optimizer step sees a non-finite norm and leaves the weights alone', async () => {
    const model = await Model.create(config, { seed: 73 });
    const before = await model.logits(batch);
    const trainer = new Trainer(model, null, { loss: { name: 'dpo', beta: 0.1 } });
    expect((await trainer.microStep(batch, { nPairs, reference: ref(0), scale: 0.5 })).finite).toBe(true);
    expect((await trainer.microStep(batch, { nPairs, reference: ref(NaN), scale: 0.5 })).finite).toBe(false);
    const { gradNorm } = await trainer.optimizerStep({ lr: 1e-3 });
    expect(Number.isFinite(gradNorm)).toBe(false);
    expect(Array.from(await model.logits(batch))).toEqual(Array.from(before));
    trainer.dispose();
    model.dispose();
  });
});
