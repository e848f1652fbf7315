// Throughput a user can see (issue 24, item 4) end to end on a tiny model: a short `rpo train`
// logs tokens_per_second and padding_fraction at every step, in metrics.jsonl and in the
// TensorBoard events (read back by TensorBoard's own reader), and no mfu on the CPU; `rpo data`
// prints the padding fraction the padded batches would see. The expected counts are worked out
// here from the rows' token lengths: a batch's response rows (chosen, rejected) are computed
// padded to their longest, its rationale rows to theirs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { buildRunData } from '../../lib/train/data.js';
import { runPython } from '../reference/python.js';
import { rpo } from './cli.js';

let work: string;
let modelDir: string;
let data: string;
/** Per training pair, its rows' token lengths as `rpo train` tokenizes them. */
let lengths: { chosen: number; rejected: number; rationale: number }[];

// Rows of very different lengths, so the padded batches carry real padding.
const TRAIN = [
  { prompt: 'Hi?', chosen: 'Hello.', rejected: 'Go away, I am busy with something much more important than you.', rationale: 'Polite.' },
  { prompt: 'What is the capital of France, and why is it that city rather than another?', chosen: 'Paris.', rejected: 'Lyon.', rationale: 'Paris has been the seat of government for centuries; Lyon is not the capital.' },
  { prompt: '2+2?', chosen: '4, since two and two make four.', rejected: '5.', rationale: 'Arithmetic.' },
  { prompt: 'Name a colour.', chosen: 'Blue.', rejected: 'Seven.', rationale: 'Seven is a number, not a colour, so the other answer is the right one here.' },
];
const TEST = [{ prompt: 'Name a fruit.', chosen: 'Apple.', rejected: 'Chair.', rationale: 'A chair is not a fruit.' }];

function overrides(exp: string, extra: string[] = []): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${data}]`,
    `exp_name=${exp}`,
    `cache_dir=${work}`,
    'model.max_length=256',
    'model.max_prompt_length=128',
    'model.eval_batch_size=4',
    'lr=1e-3',
    ...extra,
  ];
}

/** Padding of one batch of `pairs`, by hand: response rows × their longest + rationale rows × theirs. */
function handCount(pairs: typeof lengths, rationale: boolean): { real: number; computed: number } {
  const resp = pairs.flatMap((p) => [p.chosen, p.rejected]);
  const rats = rationale ? pairs.map((p) => p.rationale) : [];
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    real: sum(resp) + sum(rats),
    computed: resp.length * Math.max(...resp) + (rats.length > 0 ? rats.length * Math.max(...rats) : 0),
  };
}

function metrics(run: string): Record<string, number>[] {
  return readFileSync(path.join(work, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-throughput-'));
  modelDir = path.join(work, 'tiny-model');
  const init = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '4']);
  expect(init.code, init.stderr).toBe(0);
  data = path.join(work, 'rows');
  mkdirSync(data);
  writeFileSync(path.join(data, 'train.jsonl'), TRAIN.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(path.join(data, 'test.jsonl'), TEST.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const config = loadConfig({ overrides: [...overrides('lengths'), 'loss=rdpo'] }).config;
  const run = await buildRunData(config, { splits: ['train'], withRationale: true, weights: false });
  lengths = run.train.map((ex) => ({ chosen: ex.chosen.ids.length, rejected: ex.rejected.ids.length, rationale: ex.rationale!.ids.length }));
  expect(lengths).toHaveLength(4);
  expect(run.train.some((ex) => ex.truncated)).toBe(false);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a training run logs its throughput', () => {
  it('packed (padding_free, the default): padding_fraction 0 and the same real tokens at every step', () => {
    const r = rpo(['train', 'loss=rdpo', ...overrides('packed', ['model.batch_size=4', 'model.gradient_accumulation_steps=1', 'n_epochs=2', 'do_first_eval=false'])]);
    expect(r.code, r.stderr).toBe(0);
    const steps = metrics('packed').filter((m) => typeof m.loss === 'number');
    expect(steps).toHaveLength(2);
    const hand = handCount(lengths, true);
    for (const s of steps) {
      expect(s.padding_fraction, `step ${s.step}`).toBe(0);
      expect(s.tokens_per_second! * s.step_seconds!, `step ${s.step}`).toBeCloseTo(hand.real, 6);
    }
  });

  it('tokens_per_second and padding_fraction at every step, in metrics.jsonl and TensorBoard; no mfu on the CPU', () => {
    // One global batch of all 4 pairs per step (its order does not change its padding), 2 epochs;
    // padded (padding_free=false), so the steps compute padding.
    const r = rpo(['train', 'loss=rdpo', ...overrides('run', ['model.batch_size=4', 'model.gradient_accumulation_steps=1', 'n_epochs=2', 'do_first_eval=false', 'padding_free=false'])]);
    expect(r.code, r.stderr).toBe(0);
    const steps = metrics('run').filter((m) => typeof m.loss === 'number');
    expect(steps).toHaveLength(2);
    const hand = handCount(lengths, true);
    expect(hand.computed).toBeGreaterThan(hand.real); // the rows do pad
    for (const s of steps) {
      expect(s.padding_fraction, `step ${s.step}`).toBeCloseTo(1 - hand.real / hand.computed, 12);
      // every real position of the step, over the step's seconds
      expect(s.tokens_per_second! * s.step_seconds!, `step ${s.step}`).toBeCloseTo(hand.real, 6);
      expect(s).not.toHaveProperty('mfu');
    }
    const tb = JSON.parse(runPython('tb_events.py', [path.join(work, 'run', 'tb')])) as { scalars: Record<string, [number, number][]> };
    for (const k of ['tokens_per_second', 'padding_fraction']) {
      expect(tb.scalars[k]?.map((p) => p[0]), k).toEqual(steps.map((s) => s.step));
      tb.scalars[k]!.forEach(([, v], i) => expect(v, k).toBe(Math.fround(steps[i]![k]!)));
    }
    expect(tb.scalars).not.toHaveProperty('mfu');
  });
});

describe('rpo data prints the padding the padded batches would see', () => {
  /** The share, real and computed positions `rpo data` printed. */
  function printed(stdout: string): { percent: string; real: number; computed: number } {
    const m = /padding: ([\d.]+)% of the positions padded batches compute are padding \((\d+) real of (\d+);/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    return { percent: m![1]!, real: Number(m![2]), computed: Number(m![3]) };
  }

  it('rdpo, batches of 4 pairs: one batch of all the pairs', () => {
    const r = rpo(['data', 'loss=rdpo', '-n', '0', ...overrides('data-4', ['model.batch_size=4', 'model.gradient_accumulation_steps=1'])]);
    expect(r.code, r.stderr).toBe(0);
    const hand = handCount(lengths, true);
    expect(printed(r.stdout)).toEqual({ percent: (100 * (1 - hand.real / hand.computed)).toFixed(1), real: hand.real, computed: hand.computed });
    expect(r.stdout).toContain('an epoch of 1 batches, 1 micro-batches; model.batch_size 4, gradient_accumulation_steps 1)');
  });

  it('rdpo, batches of 4 in micro-batches of 1 pair: each pair pads only its chosen and rejected to the longer', () => {
    const r = rpo(['data', 'loss=rdpo', '-n', '0', ...overrides('data-1', ['model.batch_size=4', 'model.gradient_accumulation_steps=4'])]);
    expect(r.code, r.stderr).toBe(0);
    const real = lengths.reduce((n, p) => n + p.chosen + p.rejected + p.rationale, 0);
    const computed = lengths.reduce((n, p) => n + 2 * Math.max(p.chosen, p.rejected) + p.rationale, 0);
    expect(printed(r.stdout)).toMatchObject({ real, computed });
    expect(r.stdout).toContain('an epoch of 1 batches, 4 micro-batches;');
  });

  it('dpo: no rationale rows', () => {
    const r = rpo(['data', 'loss=dpo', '-n', '0', ...overrides('data-dpo', ['model.batch_size=4', 'model.gradient_accumulation_steps=1'])]);
    expect(r.code, r.stderr).toBe(0);
    const hand = handCount(lengths, false);
    expect(printed(r.stdout)).toMatchObject({ real: hand.real, computed: hand.computed });
  });
});
