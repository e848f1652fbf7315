// AdamW as one fused-kernel call (at::_fused_adamw_) against torch::optim::AdamW's loop over the
// parameters (the path the trainer used before, kept behind fusedAdamW: false): the same weights
// after several steps with weight decay and clipping, the same returned norms, the same skip on a
// non-finite norm; and RMSprop, still torch::optim's, under bf16-mixed.
import { beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, setNumThreads, type RowBatch, type TrainerOptions } from '../../lib/native.js';
import { maxRelError, randomBatch, tinyConfig } from './helpers.js';
import { modelWeights } from './weights.js';

const config = tinyConfig();
// One thread: the tiny model's ops are too small to share (and a busy machine's OpenMP barriers
// cost more than the ops).
beforeAll(() => setNumThreads(1));
const batches: RowBatch[] = [0, 1, 2].map((k) => randomBatch(300 + k, { rows: 4, seqLen: 12, vocab: config.vocab_size }));

async function run(options: Partial<TrainerOptions>, steps: number, dtype: 'float32' | 'bfloat16' = 'float32') {
  const model = await Model.create(config, { seed: 12, dtype });
  const trainer = new Trainer(model, null, { loss: { name: 'sft' }, weightDecay: 0.1, ...options });
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    await trainer.microStep(batches[s % batches.length]!, { nPairs: 4 });
    // A clip limit under the norm on every other step, so both branches of the clip run.
    const { gradNorm } = await trainer.optimizerStep({ lr: 1e-3 * (s + 1), maxGradNorm: s % 2 === 0 ? 0.5 : 0 });
    norms.push(gradNorm);
  }
  const w = await modelWeights(model);
  trainer.dispose();
  model.dispose();
  return { w, norms };
}

/** ||(a - init) - (b - init)|| / ||b - init||: how far apart two runs are, relative to b's update. */
function updateRelError(a: Float64Array, b: Float64Array, init: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += (b[i]! - init[i]!) ** 2;
  }
  return Math.sqrt(num / den);
}

describe('fused AdamW', () => {
  it('equals torch::optim::AdamW on fp32: weights after 1 and 8 steps with weight decay 0.1 and clipping', async () => {
    const init = (await modelWeights(await Model.create(config, { seed: 12 }))).values;
    // One step: the same gradients go into both, so only the update's arithmetic differs: the
    // kernel's m = lerp(m, g, 1 - beta1) and one fused expression per element against
    // torch::optim's separately rounded ops (m * beta1 + g * (1 - beta1), ...). That is an ulp or
    // two of fp32 (1.2e-7) on a weight: measured 1.5e-7; 1e-6 allows a few ulps.
    const fused1 = await run({ fusedAdamW: true }, 1);
    const loop1 = await run({ fusedAdamW: false }, 1);
    const err1 = maxRelError(fused1.w.values, loop1.w.values, 1e-3);
    expect(err1).toBeLessThan(1e-6);
    expect(fused1.norms).toEqual(loop1.norms);
    // Eight steps (lr up to 8e-3): from step 2 on, the gradients come from weights that already
    // differ in their last bits, and Adam's m / (sqrt(v) + eps) amplifies relative differences of
    // near-zero gradients, so single weights that crossed zero drift apart by up to ~1e-4 of
    // their (small) value. Measured against the update itself the runs stay ~5e-7 apart
    // (norm-wise, over all weights); 1e-5 is 20x that, and 200x below what a small real
    // difference in the update gives (weight decay 0.09 instead of 0.1: measured 2.2e-3).
    const fused = await run({ fusedAdamW: true }, 8);
    const loop = await run({ fusedAdamW: false }, 8);
    const err8 = updateRelError(fused.w.values, loop.w.values, init);
    console.log(
      `[adamw] fused vs torch::optim::AdamW (fp32): 1 step max rel error ${err1.toExponential(2)}; ` +
        `8 steps ||w_fused - w_loop|| / ||w_loop - w_0|| = ${err8.toExponential(2)}`,
    );
    expect(err8).toBeLessThan(1e-5);
    expect(maxRelError(fused.norms, loop.norms)).toBeLessThan(1e-5);
    // the steps did something: the weights moved by far more than the difference
    expect(maxRelError(fused.w.values, init, 1e-3)).toBeGreaterThan(1e-2);
  });

  it('bf16-pure runs the kernel on bf16 tensors: near the torch::optim loop in bf16', async () => {
    const init = (await modelWeights(await Model.create(config, { seed: 12, dtype: 'bfloat16' }))).values;
    const fused = await run({ fusedAdamW: true, precision: 'bf16-pure' }, 4, 'bfloat16');
    const loop = await run({ fusedAdamW: false, precision: 'bf16-pure' }, 4, 'bfloat16');
    // The kernel computes in fp32 and rounds once; the loop rounds every op to bf16's 8 bits.
    const err = updateRelError(fused.w.values, loop.w.values, init);
    console.log(`[adamw] fused vs torch::optim::AdamW (bf16-pure), 4 steps: ||w_fused - w_loop|| / ||w_loop - w_0|| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(0.2); // measured 4.8e-2
  });

  it('a step with no gradients changes nothing and returns norm 0; a non-finite norm skips the update', async () => {
    const model = await Model.create(config, { seed: 13 });
    const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
    const before = await modelWeights(model);
    expect((await trainer.optimizerStep({ lr: 1 })).gradNorm).toBe(0);
    expect((await modelWeights(model)).bytes.equals(before.bytes)).toBe(true);
    await trainer.microStep(batches[0]!, { nPairs: 4, scale: Infinity });
    const { gradNorm } = await trainer.optimizerStep({ lr: 1e-3, maxGradNorm: 1 });
    expect(Number.isFinite(gradNorm)).toBe(false);
    expect((await modelWeights(model)).bytes.equals(before.bytes)).toBe(true);
    trainer.dispose();
    model.dispose();
  });

  it('RMSprop still trains (torch::optim), also under bf16-mixed, and its state round-trips', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(tmpdir(), 'rpo-rmsprop-'));
    for (const [dtype, precision] of [['float32', 'fp32'], ['bfloat16', 'bf16-mixed']] as const) {
      const model = await Model.create(config, { seed: 14, dtype });
      const trainer = new Trainer(model, null, { loss: { name: 'sft' }, optimizer: 'RMSprop', precision });
      const first = (await trainer.microStep(batches[0]!, { nPairs: 4 })).loss;
      await trainer.optimizerStep({ lr: 1e-3 });
      for (let s = 0; s < 9; s++) {
        await trainer.microStep(batches[0]!, { nPairs: 4 });
        await trainer.optimizerStep({ lr: 1e-3 });
      }
      const last = (await trainer.microStep(batches[0]!, { nPairs: 4 })).loss;
      expect(last, precision).toBeLessThan(first - 0.1);
      await trainer.saveState(path.join(dir, `${precision}.pt`));
      const again = new Trainer(model, null, { loss: { name: 'sft' }, optimizer: 'RMSprop', precision });
      await expect(again.loadState(path.join(dir, `${precision}.pt`))).resolves.toEqual([]);
      // an AdamW trainer refuses RMSprop's state, naming both
      const adam = new Trainer(model, null, { loss: { name: 'sft' }, precision });
      await expect(adam.loadState(path.join(dir, `${precision}.pt`))).rejects.toThrow(
        /the optimizer state is RMSprop \(torch::optim\)'s, this trainer uses AdamW \(fused\)/,
      );
      for (const t of [trainer, again, adam]) t.dispose();
      model.dispose();
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
