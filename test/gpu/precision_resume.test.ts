// bf16-mixed (fp32 master weights) and bf16-sr (stochastic rounding) on the GPU: an RDPO run with
// activation checkpointing (the 7B path, with its split backward) saved mid-run and resumed in a
// new model and Trainer ends where the uninterrupted run does. test/native/precision.test.ts proves
// this bit for bit on the CPU; on CUDA some kernels (attention's backward) may add in a varying
// order, so two uninterrupted runs set the floor: the resumed run must be as close to one of them
// as the other is (exactly, when they agree exactly), and a resume from the weights alone (no
// master, no moments, no rounding stream) must land far off.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { precisionDtype } from '../../lib/config/index.js';
import { loadModel, saveModel } from '../../lib/model/io.js';
import { Model, Trainer, type LossConfig, type TrainPrecision } from '../../lib/native.js';
import { randomBatch, tinyConfig } from '../native/helpers.js';
import { modelWeights } from '../native/weights.js';
import { CUDA, DEVICE, announce } from './gpu.js';

announce('precision_resume');

const config = tinyConfig({ hidden_size: 64, intermediate_size: 128, head_dim: 16, initializer_range: 0.05 });
const LOSS: LossConfig = { name: 'rdpo', beta: 0.5, gamma: 0.1 };
const N_PAIRS = 2;
const batches = [0, 1, 2].map((k) => randomBatch(900 + k, { rows: N_PAIRS * 3, seqLen: 24, vocab: config.vocab_size, minLen: 12, promptLen: 4 }));
const STEPS = 12;
const SAVE_AT = 6;
const LR = 2e-5; // about a quarter of a bf16 step per update: the master and the rounding bits matter

let dir: string;
let initDir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-gpu-precision-'));
  initDir = path.join(dir, 'init');
  const m = await Model.create(config, { seed: 21, dtype: 'bfloat16' });
  await saveModel(m, initDir);
  m.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(precision: TrainPrecision, opts: { from?: number; weightsFrom?: string; stateIn?: string; saveTo?: string } = {}): Promise<Float64Array> {
  const dtype = precisionDtype(precision);
  const model = await loadModel(opts.weightsFrom ?? initDir, { dtype, device: DEVICE });
  const reference = await loadModel(initDir, { dtype, device: DEVICE });
  const trainer = new Trainer(model, reference, { loss: LOSS, precision, seed: 13, activationCheckpointing: true, chunkTokens: 32 });
  try {
    if (opts.stateIn) await trainer.loadState(path.join(opts.stateIn, 'optimizer.pt'));
    for (let s = opts.from ?? 0; s < STEPS; s++) {
      if (opts.saveTo && s === SAVE_AT) {
        await saveModel(model, opts.saveTo);
        await trainer.saveState(path.join(opts.saveTo, 'optimizer.pt'));
      }
      const r = await trainer.microStep(batches[s % batches.length]!, { nPairs: N_PAIRS });
      expect(r.finite, `${precision} step ${s}`).toBe(true);
      await trainer.optimizerStep({ lr: LR, maxGradNorm: 10 });
    }
    return (await modelWeights(model)).values;
  } finally {
    trainer.dispose();
    model.dispose();
    reference.dispose();
  }
}

function distance(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

describe.skipIf(!CUDA)('bf16-mixed and bf16-sr resume on the device (RDPO, activation checkpointing)', () => {
  for (const precision of ['bf16-mixed', 'bf16-sr'] as const) {
    it(`${precision}: save mid-run, resume in a new model and Trainer: the uninterrupted run's weights`, async () => {
      const init = await loadModel(initDir, { dtype: 'bfloat16' });
      const w0 = (await modelWeights(init)).values;
      init.dispose();
      const mid = path.join(dir, `mid-${precision}`);
      const whole = await run(precision, { saveTo: mid });
      const again = await run(precision);
      const resumed = await run(precision, { from: SAVE_AT, weightsFrom: mid, stateIn: mid });
      const weightsOnly = await run(precision, { from: SAVE_AT, weightsFrom: mid });
      const update = distance(whole, w0);
      const floor = distance(again, whole) / update;
      const e = distance(resumed, whole) / update;
      const eWeightsOnly = distance(weightsOnly, whole) / update;
      console.log(`[precision-resume] ${precision} on ${DEVICE}: update ${update.toExponential(2)}; resumed ${e.toExponential(2)}, run-to-run ${floor.toExponential(2)}, weights only ${eWeightsOnly.toExponential(2)} (of the update)`);
      expect(update).toBeGreaterThan(0);
      if (floor === 0) expect(e).toBe(0);
      else expect(e).toBeLessThanOrEqual(4 * floor);
      expect(eWeightsOnly).toBeGreaterThan(10 * Math.max(e, floor));
    }, 300_000);
  }
});
