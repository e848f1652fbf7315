// Training precisions (docs/precision.md): at the seed's lr 5e-7 an update to a bf16 weight is far
// below half a bf16 step, so bf16-pure rounds it away; bf16-mixed (fp32 master weights) and
// bf16-sr (stochastic rounding) keep it. Also: stochastic rounding is unbiased, resume is exact
// in both, and the `precision` config key.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig, ConfigError, precisionDtype, precisionNotices, resolvePrecision } from '../../lib/config/index.js';
import { learningRate } from '../../lib/train/schedule.js';
import { loadModel, saveModel } from '../../lib/model/io.js';
import { Model, Trainer, setNumThreads, type RowBatch, type TrainPrecision } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';
import { modelWeights, roundBf16 } from './weights.js';

const config = tinyConfig();
const LR = 5e-7; // the seed's
const WARMUP = 150; // the seed's warmup_steps
const STEPS = 400;
const batches: RowBatch[] = [0, 1, 2, 3].map((k) => randomBatch(500 + k, { rows: 4, seqLen: 16, vocab: config.vocab_size, minLen: 12 }));

let dir: string;
let initDir: string;
beforeAll(async () => {
  // One thread: the tiny model's ops are too small to share, and a step's result then does not
  // depend on the machine's cores (nor a busy machine's OpenMP barriers: 3 ms a step, not 100).
  setNumThreads(1);
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-precision-'));
  // One initial model for every run: bf16 values, so the fp32 run starts where the bf16 runs do.
  initDir = path.join(dir, 'init');
  const m = await Model.create(config, { seed: 3, dtype: 'bfloat16' });
  await saveModel(m, initDir);
  m.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function trainRun(precision: TrainPrecision, steps: number, opts: { lr?: number; from?: number; stateIn?: string; stateOut?: { at: number; dir: string } } = {}) {
  const lr = opts.lr ?? LR;
  const model = await loadModel(opts.stateIn ?? initDir, { dtype: precisionDtype(precision) });
  const trainer = new Trainer(model, null, { loss: { name: 'sft' }, precision, seed: 11 });
  if (opts.stateIn) await trainer.loadState(path.join(opts.stateIn, 'optimizer.pt'));
  for (let s = opts.from ?? 0; s < steps; s++) {
    if (opts.stateOut && s === opts.stateOut.at) {
      await saveModel(model, opts.stateOut.dir);
      await trainer.saveState(path.join(opts.stateOut.dir, 'optimizer.pt'));
    }
    await trainer.microStep(batches[s % batches.length]!, { nPairs: 4 });
    await trainer.optimizerStep({ lr: learningRate(lr, s, WARMUP), maxGradNorm: 10 });
  }
  const w = await modelWeights(model);
  const loss = await fp32Loss(model);
  trainer.dispose();
  model.dispose();
  return { ...w, loss };
}

/** The mean sft loss over the fixed batches of a model's weights, computed in fp32. */
async function fp32Loss(model: Model): Promise<number> {
  const out = path.join(dir, `eval-${Math.random().toString(36).slice(2)}`);
  await saveModel(model, out);
  const m = await loadModel(out, { dtype: 'float32' });
  const t = new Trainer(m, null, { loss: { name: 'sft' } });
  let sum = 0;
  for (const b of batches) sum += (await t.evalStep(b, { nPairs: 4 })).loss;
  t.dispose();
  m.dispose();
  rmSync(out, { recursive: true, force: true });
  return sum / batches.length;
}

describe('precision tracking at lr 5e-7 (tiny model, bf16 compute)', () => {
  it('bf16-mixed and bf16-sr follow the fp32 run; bf16-pure barely moves', async () => {
    const t0 = Date.now();
    const initModel = await loadModel(initDir, { dtype: 'bfloat16' });
    const init = (await modelWeights(initModel)).values;
    const initLoss = await fp32Loss(initModel);
    initModel.dispose();
    const fp32Run = await trainRun('fp32', STEPS);
    const fp32 = fp32Run.values;
    const fp32Drop = initLoss - fp32Run.loss;
    const fp32Bf16 = fp32.map(roundBf16);
    const n = init.length;
    const ref = fp32.map((w, i) => w - init[i]!); // the fp32 run's update
    const refNorm2 = ref.reduce((s, d) => s + d * d, 0);
    const changed = (w: ArrayLike<number>) => {
      let c = 0;
      for (let i = 0; i < n; i++) if (w[i] !== init[i]) c++;
      return c / n;
    };
    type Row = { changed: number; distance: number; distanceRounded: number; captured: number; lossDrop: number };
    const rows: Record<string, Row> = {};
    const measure = (name: string, w: Float64Array, loss: number) => {
      let dist2 = 0;
      let distR2 = 0;
      let dot = 0;
      for (let i = 0; i < n; i++) {
        dist2 += (w[i]! - fp32[i]!) ** 2;
        distR2 += (w[i]! - fp32Bf16[i]!) ** 2;
        dot += (w[i]! - init[i]!) * ref[i]!;
      }
      rows[name] = {
        changed: changed(w),
        distance: Math.sqrt(dist2 / refNorm2),
        distanceRounded: Math.sqrt(distR2 / refNorm2),
        captured: dot / refNorm2,
        lossDrop: (initLoss - loss) / fp32Drop,
      };
    };
    measure('fp32', fp32, fp32Run.loss);
    // The fp32 run's weights rounded to bf16: what a bf16 model that tracked it exactly would hold.
    measure('fp32 rounded to bf16', fp32Bf16, NaN);
    for (const p of ['bf16-pure', 'bf16-mixed', 'bf16-sr'] as const) {
      const r = await trainRun(p, STEPS);
      measure(p, r.values, r.loss);
    }
    // changed: the fraction of weights that differ from their initial value. distance:
    // ||w - w_fp32|| / ||w_fp32 - w_0||, the distance to the fp32 run relative to its update;
    // distance to rounded: the same to the fp32 run's weights rounded to bf16 (0 = as close as bf16
    // storage can be). captured: <w - w_0, w_fp32 - w_0> / ||w_fp32 - w_0||^2, the part of the
    // fp32 update the run made (1: all of it, in expectation for bf16-sr). loss drop: the fall of
    // the fixed batches' loss (evaluated in fp32) relative to the fp32 run's.
    console.log(
      `[precision] ${n} weights, ${STEPS} steps at lr ${LR} (warmup ${WARMUP}), fixed batches; ` +
        `||w_fp32 - w_0|| = ${Math.sqrt(refNorm2).toExponential(3)}; fp32 loss ${initLoss.toFixed(6)} -> ${fp32Run.loss.toFixed(6)}; ` +
        `${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    console.log('[precision] mode                   changed  distance  dist.to rounded  captured  loss drop');
    for (const [name, r] of Object.entries(rows)) {
      console.log(
        `[precision] ${name.padEnd(22)} ${r.changed.toFixed(4)}   ${r.distance.toFixed(4)}    ${r.distanceRounded.toFixed(4)}           ` +
          `${r.captured.toFixed(4)}    ${Number.isNaN(r.lossDrop) ? '  -' : r.lossDrop.toFixed(4)}`,
      );
    }
    const rounded = rows['fp32 rounded to bf16']!;
    const pure = rows['bf16-pure']!;
    const mixed = rows['bf16-mixed']!;
    const sr = rows['bf16-sr']!;
    // The fp32 run moved nearly every weight, and about 2/3 of them by enough to show in bf16.
    expect(rows.fp32!.changed).toBeGreaterThan(0.9);
    expect(rounded.changed).toBeGreaterThan(0.3);
    // bf16-pure: each step's update (~5e-7) is ~100x under half a bf16 step of a weight of 0.02
    // (~4e-5) and rounds away; only weights within ~1e-4 of zero move. It learns nothing.
    expect(pure.changed).toBeLessThan(0.1 * rounded.changed);
    expect(pure.captured).toBeLessThan(0.05);
    expect(pure.lossDrop).toBeLessThan(0.1);
    // bf16-mixed: its bf16 weights are the fp32 run's rounded, up to the few weights where the
    // two masters straddle a rounding boundary.
    expect(Math.abs(mixed.changed - rounded.changed)).toBeLessThan(0.05);
    expect(mixed.distanceRounded).toBeLessThan(0.2);
    expect(mixed.captured).toBeGreaterThan(0.9);
    expect(mixed.captured).toBeLessThan(1.1);
    expect(mixed.lossDrop).toBeGreaterThan(0.9);
    expect(mixed.lossDrop).toBeLessThan(1.1);
    // bf16-sr: unbiased, so the whole update is made in expectation (captured ~1, the same loss
    // drop), but each weight carries the rounding's random walk, of size ~sqrt(ulp x update):
    // here about the update itself (distance ~1, shrinking as sqrt(ulp / update) over longer runs).
    expect(sr.changed).toBeGreaterThan(0.5 * rounded.changed);
    expect(sr.captured).toBeGreaterThan(0.9);
    expect(sr.captured).toBeLessThan(1.1);
    expect(sr.lossDrop).toBeGreaterThan(0.85);
    expect(sr.lossDrop).toBeLessThan(1.15);
    expect(sr.distance).toBeLessThan(1.5);
  });
});

describe('stochastic rounding', () => {
  it('is unbiased: rounding a value many times averages to it (round-to-nearest would not)', () => {
    const n = 200_000;
    // 1 + 2^-10 lies 1/8 of the way from 1 to 1 + 2^-7; the others are arbitrary, one negative and
    // one tiny (a subnormal-free small magnitude).
    for (const x of [1 + 2 ** -10, -0.012345678, 3.3e-5, 0.75 + 2 ** -9 * 0.3]) {
      const xf = Math.fround(x);
      const r = Trainer.stochasticRoundBf16(new Float32Array(n).fill(xf), 42);
      const lo = roundTowardZeroBf16(xf);
      const hi = nextAwayBf16(lo);
      let sum = 0;
      let up = 0;
      for (const v of r) {
        expect(v === lo || v === hi).toBe(true);
        if (v === hi) up++;
        sum += v;
      }
      const mean = sum / n;
      const p = (xf - lo) / (hi - lo);
      const sigma = Math.abs(hi - lo) * Math.sqrt((p * (1 - p)) / n);
      console.log(`[precision] SR of ${xf}: mean ${mean} (error ${((mean - xf) / sigma).toFixed(2)} sigma), rounded away ${(up / n).toFixed(4)} vs ${p.toFixed(4)}; round-to-nearest errs by ${(Math.abs(roundBf16(xf) - xf) / sigma).toFixed(0)} sigma`);
      expect(Math.abs(mean - xf)).toBeLessThan(5 * sigma);
      expect(Math.abs(roundBf16(xf) - xf)).toBeGreaterThan(20 * sigma);
    }
    // the same seed gives the same bits; another seed others
    const v = new Float32Array(1000).fill(Math.fround(1 + 2 ** -10));
    expect(Array.from(Trainer.stochasticRoundBf16(v, 7))).toEqual(Array.from(Trainer.stochasticRoundBf16(v, 7)));
    expect(Array.from(Trainer.stochasticRoundBf16(v, 8))).not.toEqual(Array.from(Trainer.stochasticRoundBf16(v, 7)));
    // bf16 values and infinities stay as they are
    const exact = new Float32Array([0, -0, 1, -2.5, 0.0078125, Infinity, -Infinity]);
    expect(Array.from(Trainer.stochasticRoundBf16(exact, 1))).toEqual(Array.from(exact));
  });
});

/** x with the low 16 bits of its float32 pattern cleared: the bf16 neighbour toward zero. */
function roundTowardZeroBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = u[0]! & 0xffff0000;
  return f[0]!;
}
/** The next bf16 value away from zero. */
function nextAwayBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = u[0]! + 0x10000;
  return f[0]!;
}

describe('exact resume', () => {
  for (const precision of ['bf16-mixed', 'bf16-sr', 'bf16-pure', 'fp32'] as const) {
    it(`${precision}: save mid-run, a new model and Trainer load it and continue: the weights of the uninterrupted run, bit for bit`, async () => {
      const steps = 24;
      const lr = 2e-5; // ~1/4 of a bf16 step per update: the master and the rounding bits matter
      const whole = await trainRun(precision, steps, { lr });
      const mid = path.join(dir, `mid-${precision}`);
      await trainRun(precision, steps, { lr, stateOut: { at: 10, dir: mid } });
      const resumed = await trainRun(precision, steps, { lr, from: 10, stateIn: mid });
      expect(resumed.bytes.equals(whole.bytes)).toBe(true);
      // the state carried something: without it (the weights alone) the continuation differs
      const model = await loadModel(mid, { dtype: precisionDtype(precision) });
      const trainer = new Trainer(model, null, { loss: { name: 'sft' }, precision, seed: 11 });
      for (let s = 10; s < steps; s++) {
        await trainer.microStep(batches[s % batches.length]!, { nPairs: 4 });
        await trainer.optimizerStep({ lr: learningRate(lr, s, WARMUP), maxGradNorm: 10 });
      }
      expect((await modelWeights(model)).bytes.equals(whole.bytes)).toBe(false);
      trainer.dispose();
      model.dispose();
    });
  }

  it('a state saved under another precision is refused, naming both', async () => {
    const mid = path.join(dir, 'mid-bf16-mixed');
    const model = await loadModel(mid, { dtype: 'bfloat16' });
    for (const precision of ['bf16-sr', 'bf16-pure'] as const) {
      const trainer = new Trainer(model, null, { loss: { name: 'sft' }, precision });
      await expect(trainer.loadState(path.join(mid, 'optimizer.pt'))).rejects.toThrow(
        `${path.join(mid, 'optimizer.pt')}: the optimizer state was saved under precision bf16-mixed, this trainer trains in ${precision}: ` +
          'resume with the precision the run was saved under (precision=bf16-mixed)',
      );
      trainer.dispose();
    }
    model.dispose();
  });
});

describe('the trainer checks the precision against the policy', () => {
  it('names the dtype a precision needs, the known precisions, and what bf16-sr supports', async () => {
    const f32 = await Model.create(config, { seed: 1 });
    const bf16 = await Model.create(config, { seed: 1, dtype: 'bfloat16' });
    expect(() => new Trainer(f32, null, { loss: { name: 'sft' }, precision: 'bf16-mixed' })).toThrow(
      'trainer: precision bf16-mixed trains a bfloat16 policy; this policy is float32 (load it with dtype bfloat16)',
    );
    expect(() => new Trainer(bf16, null, { loss: { name: 'sft' }, precision: 'fp32' })).toThrow(/precision fp32 trains a float32 policy; this policy is bfloat16/);
    expect(() => new Trainer(bf16, null, { loss: { name: 'sft' }, precision: 'bf16' as never })).toThrow(
      'trainer: unknown precision "bf16" (fp32, bf16-pure, bf16-mixed or bf16-sr)',
    );
    expect(() => new Trainer(bf16, null, { loss: { name: 'sft' }, precision: 'bf16-sr', optimizer: 'RMSprop' })).toThrow(/bf16-sr supports AdamW only/);
    f32.dispose();
    bf16.dispose();
  });
});

describe('the precision config key', () => {
  const base = ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'];
  it('precision=bf16-mixed parses; the default is auto', () => {
    expect(loadConfig({ overrides: [...base, 'precision=bf16-mixed'], env: {} }).config.precision).toBe('bf16-mixed');
    expect(loadConfig({ overrides: base, env: {} }).config.precision).toBe('auto');
    for (const p of ['fp32', 'bf16-pure', 'bf16-sr'] as const) expect(loadConfig({ overrides: [...base, `precision=${p}`], env: {} }).config.precision).toBe(p);
  });

  it('a bad value is a config error naming the choices', () => {
    let err: unknown;
    try {
      loadConfig({ overrides: [...base, 'precision=bf16'], env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/precision: expected one of auto, fp32, bf16-pure, bf16-mixed, bf16-sr, got "bf16"/);
  });

  it('auto resolves per device: bf16-mixed on CUDA, fp32 on the CPU; the others are kept', () => {
    expect(resolvePrecision('auto', 'cpu')).toBe('fp32');
    expect(resolvePrecision('auto', 'cuda')).toBe('bf16-mixed');
    expect(resolvePrecision('auto', 'cuda:1')).toBe('bf16-mixed');
    expect(resolvePrecision('bf16-sr', 'cpu')).toBe('bf16-sr');
    expect(resolvePrecision('fp32', 'cuda')).toBe('fp32');
    expect(precisionDtype('fp32')).toBe('float32');
    expect(precisionDtype('bf16-mixed')).toBe('bfloat16');
  });

  it('a run says which precision it trains in, and when model.policy_dtype is not what decides', () => {
    const tiny = loadConfig({ overrides: base, env: {} }).config; // policy_dtype float32
    expect(precisionNotices(tiny, 'cpu')).toEqual(['precision: fp32 (auto on cpu: fp32 weights and AdamW moments, 16 bytes/param)']);
    const onCuda = precisionNotices(tiny, 'cuda');
    expect(onCuda[0]).toMatch(/^precision: bf16-mixed \(auto on cuda: /);
    expect(onCuda[1]).toBe(
      'model.policy_dtype=float32 is not used for training: precision=auto (bf16-mixed on cuda) trains the policy in bfloat16; precision=fp32 keeps fp32 weights',
    );
    const seed = loadConfig({ overrides: ['loss=dpo', 'model=mistral7bv2', 'datasets=[x]', 'exp_name=e'], env: {} }).config; // bfloat16
    expect(precisionNotices(seed, 'cuda')).toHaveLength(1);
    expect(precisionNotices({ ...seed, precision: 'bf16-sr' }, 'cpu')).toHaveLength(1);
    expect(precisionNotices(seed, 'cpu')[1]).toMatch(/model\.policy_dtype=bfloat16 is not used for training: precision=auto \(fp32 on cpu\) trains the policy in float32/);
  });
});
