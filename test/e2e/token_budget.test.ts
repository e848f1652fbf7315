// Token-budget micro-batches (model.tokens_per_micro_batch, issue 24 item 2) on a tiny model: a
// global batch cut into 1, 3 or 7 micro-batches by tokens trains to the weights of the un-cut run
// (one micro-batch of pairs, no budget: the independent check); 2 ranks under `rpo launch` train
// to one process's weights; a run stopped mid-epoch resumes to the uninterrupted run's weights.
//
// The rows are made so the cuts are known by hand: every pair has the same prompt and a chosen
// and a rejected response of '~' characters (one token each in rpo init's tokenizer: no merge
// joins them) whose lengths add up to the same number, so every pair has the same real tokens T
// (checked below from the run's own tokenization) while its rows differ in length (the padded
// micro-batches carry padding). A budget of 3T cuts each global batch of 7 pairs into 3 + 3 + 1,
// whatever the shuffle; 7T into one micro-batch; 1 token into 7 (a pair over the budget is alone).
// Unequal micro-batches are where a 1/k scaling of each micro-step's loss would go wrong: each
// must be weighted by its pairs / the global batch's.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { paddingLine } from '../../lib/commands/data.js';
import { loadConfig } from '../../lib/config/index.js';
import { distInfo } from '../../lib/parallel/native.js';
import { buildRunData } from '../../lib/train/data.js';
import { train } from '../../lib/train/loop.js';
import { fileWeights } from '../native/weights.js';
import { rpo, rpoAsync } from './cli.js';

let work: string;
let modelDir: string;
let data: string;
/** Real tokens of every pair (chosen + rejected rows), the same for all. */
let T: number;
/** With rdpo's rationale row (its prompt quotes both responses, so it is one length for all pairs too). */
let T3: number;

/** 14 pairs: chosen of k '~', rejected of 16 − k, k = 1..14 (two global batches of 7 per epoch). */
const TRAIN = Array.from({ length: 14 }, (_, i) => ({ prompt: 'Say tildes.', chosen: '~'.repeat(i + 1), rejected: '~'.repeat(15 - i), rationale: 'Tildes.' }));
const TEST = [{ prompt: 'Say tildes.', chosen: '~~~', rejected: '~~~~~~~~~~~~~', rationale: 'Tildes.' }];

/** One thread: each run's arithmetic is the same from run to run. */
const ENV = { RPO_NUM_THREADS: '1', RPO_DIST_TIMEOUT_S: '60' };

function overrides(exp: string, extra: string[] = []): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${data}]`,
    `exp_name=${exp}`,
    `cache_dir=${work}`,
    'loss=dpo',
    'model.batch_size=7',
    'model.gradient_accumulation_steps=1',
    'model.eval_batch_size=1',
    'n_epochs=2',
    'do_first_eval=false',
    'eval_every=1000000',
    'warmup_steps=0',
    'lr=1e-3',
    'threads=1',
    ...extra,
  ];
}

const config = (exp: string, extra: string[] = []) => loadConfig({ overrides: overrides(exp, extra) }).config;

function records(run: string): Record<string, number>[] {
  return readFileSync(path.join(work, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((r) => r.loss !== undefined);
}

/** A run's LATEST weights, every tensor in file order (saveModel writes one order for one model). */
const weights = (run: string): Float64Array => fileWeights(path.join(work, run, 'LATEST', 'model.safetensors')).values;

/**
 * ‖wa − wb‖ / ‖wa − w0‖ over every weight: how far apart two runs' weights are, relative to how
 * far the first run moved from its start (w0: the initial weights).
 */
function relativeDiff(a: string, b: string): number {
  const [wa, wb, w0] = [weights(a), weights(b), fileWeights(path.join(modelDir, 'model.safetensors')).values];
  expect(wb.length).toBe(wa.length);
  let apart = 0;
  let moved2 = 0;
  for (let i = 0; i < wa.length; i++) {
    apart += (wa[i]! - wb[i]!) ** 2;
    moved2 += (wa[i]! - w0[i]!) ** 2;
  }
  return Math.sqrt(apart / moved2);
}

/** The largest difference of any weight between two runs (w0: the initial weights when b is null). */
function maxWeightDiff(a: string, b: string | null): number {
  const wa = weights(a);
  const wb = b === null ? fileWeights(path.join(modelDir, 'model.safetensors')).values : weights(b);
  expect(wb.length).toBe(wa.length);
  let max = 0;
  for (let i = 0; i < wa.length; i++) max = Math.max(max, Math.abs(wa[i]! - wb[i]!));
  return max;
}

/** How far the weights moved in training (the un-cut run from its start): what a wrong cut is measured against. */
let moved: number;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-token-budget-'));
  modelDir = path.join(work, 'tiny-model');
  const init = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '6']);
  expect(init.code, init.stderr).toBe(0);
  data = path.join(work, 'rows');
  mkdirSync(data);
  writeFileSync(path.join(data, 'train.jsonl'), TRAIN.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(path.join(data, 'test.jsonl'), TEST.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // Every pair's real tokens, as `rpo train` tokenizes it: all the same (T), rows of 14 lengths.
  const run = await buildRunData(config('lengths'), { splits: ['train'], withRationale: false, weights: false });
  const totals = run.train.map((ex) => ex.chosen.ids.length + ex.rejected.ids.length);
  T = totals[0]!;
  expect(new Set(totals)).toEqual(new Set([T]));
  expect(new Set(run.train.map((ex) => ex.chosen.ids.length)).size).toBe(14);
  const withRationale = await buildRunData(config('lengths', ['loss=rdpo']), { splits: ['train'], withRationale: true, weights: false });
  const totals3 = withRationale.train.map((ex) => ex.chosen.ids.length + ex.rejected.ids.length + ex.rationale!.ids.length);
  T3 = totals3[0]!;
  expect(new Set(totals3)).toEqual(new Set([T3]));
  // The un-cut run: each global batch one micro-batch of 7 pairs.
  const uncut = await train(config('uncut'));
  expect(uncut.step).toBe(4);
  moved = maxWeightDiff('uncut', null);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('model.tokens_per_micro_batch: the update whatever the cut', () => {
  it.each([
    [1, () => 7 * T],
    [3, () => 3 * T],
    [7, () => 1],
  ])('%i micro-batches per global batch train to the un-cut run\'s weights and losses', async (cuts, budget) => {
    const exp = `cut${cuts}`;
    const r = await train(config(exp, [`model.tokens_per_micro_batch=${budget()}`]));
    expect(r.step).toBe(4);
    const logged = records(exp);
    expect(logged.map((x) => x.micro_batches)).toEqual([cuts, cuts, cuts, cuts]);
    // Gradients summed in another order, rows padded to other lengths: fp32 rounding apart. AdamW
    // divides each gradient by its own running size, so an element whose gradient is rounding
    // noise (~1e-9 against eps 1e-8) takes a noise-sized step of up to lr: a few elements of the
    // 170k differ by up to 5e-5 while the rest agree to 1e-7. So the runs are compared by the
    // norm of their difference relative to how far training moved the weights (measured ≤ 1e-4;
    // a micro-step scaled by 1/k instead of its pairs / 7 puts the 3-cut run 1.6 away, and 2
    // ranks 1.5 away from one process).
    expect(moved).toBeGreaterThan(1e-3);
    expect(relativeDiff('uncut', exp)).toBeLessThan(1e-3);
    const uncut = records('uncut');
    logged.forEach((x, i) => {
      for (const k of ['loss', 'rewards/accuracies', 'rewards/margins', 'grad_norm']) expect(Math.abs(x[k]! - uncut[i]![k]!), `step ${i + 1} ${k}`).toBeLessThan(1e-5 * Math.max(1, Math.abs(uncut[i]![k]!)));
    });
  }, 600_000);

  it('rdpo (rationale rows, a forward of their own): 3 micro-batches train to the un-cut run\'s weights', async () => {
    await train(config('rdpo-uncut', ['loss=rdpo']));
    const r = await train(config('rdpo-cut3', ['loss=rdpo', `model.tokens_per_micro_batch=${3 * T3}`]));
    expect(r.step).toBe(4);
    expect(records('rdpo-cut3').map((x) => x.micro_batches)).toEqual([3, 3, 3, 3]);
    expect(relativeDiff('rdpo-uncut', 'rdpo-cut3')).toBeLessThan(1e-3);
    const a = records('rdpo-uncut');
    records('rdpo-cut3').forEach((x, i) => expect(Math.abs(x.loss! - a[i]!.loss!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(a[i]!.loss!))));
  }, 600_000);

  it('rpo data lays an epoch out in the budget\'s micro-batches', async () => {
    const c = config('data', [`model.tokens_per_micro_batch=${3 * T}`]);
    const run = await buildRunData(c, { splits: ['train'], withRationale: false, weights: false });
    // Two global batches of 7, each 3 + 3 + 1.
    expect(paddingLine(c, run.train, 0)).toMatch(/an epoch of 2 batches, 6 micro-batches; model\.batch_size 7, tokens_per_micro_batch \d+\)$/);
  });

  it('a run stopped mid-epoch resumes to the uninterrupted run\'s weights and metrics', async () => {
    const budget = `model.tokens_per_micro_batch=${3 * T}`;
    const full = await train(config('resume-full', [budget]));
    expect(full.step).toBe(4);
    // Stopped after the first of epoch 0's two global batches.
    const first = await train(config('resume-split', [budget]), { stopAfterSteps: 1 });
    expect(first.interrupted).toBe(true);
    expect(first.step).toBe(1);
    const resumed = await train(config('resume-split', [budget, `resume=${path.join(work, 'resume-split')}`]));
    expect(resumed.step).toBe(4);
    // One process on the CPU, the same operations on the same inputs: bit for bit.
    expect(maxWeightDiff('resume-full', 'resume-split')).toBe(0);
    const strip = (rs: Record<string, number>[]) => rs.map((x) => Object.fromEntries(Object.entries(x).filter(([k]) => !/per_second|seconds|memory/.test(k))));
    expect(strip(records('resume-split'))).toEqual(strip(records('resume-full')));
    expect(records('resume-split').map((x) => x.micro_batches)).toEqual([3, 3, 3, 3]);
  }, 600_000);
});

describe.skipIf(!distInfo().available)('model.tokens_per_micro_batch under rpo launch', () => {
  it('2 ranks with balanced token counts train to one process\'s weights', async () => {
    const budget = `model.tokens_per_micro_batch=${3 * T}`;
    const one = rpo(['train', ...overrides('dp-one', [budget])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(['launch', '--nproc-per-node', '2', '--', 'train', ...overrides('dp-two', [budget])], { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/data parallel: 2 ranks .* micro-batches of ≤ \d+ tokens \(balanced token counts per rank\)/);
    // 7 pairs of T tokens over 2 ranks: 4 (cut 3 + 1) and 3 (one micro-batch): 3 micro-steps in
    // all, as one process's 3 + 3 + 1; summed by the all-reduce in another order, fp32 rounding apart.
    expect(records('dp-two').map((x) => x.micro_batches)).toEqual([3, 3, 3, 3]);
    expect(relativeDiff('dp-one', 'dp-two')).toBeLessThan(1e-3);
    expect(relativeDiff('uncut', 'dp-two')).toBeLessThan(1e-3);
    const a = records('dp-one');
    records('dp-two').forEach((x, i) => expect(Math.abs(x.loss! - a[i]!.loss!)).toBeLessThan(1e-6));
  }, 600_000);
});
