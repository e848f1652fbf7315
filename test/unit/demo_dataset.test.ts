// The demo's bundled dataset: deterministic, in the orcaratspec schema, held-out prompts never
// seen in train, the committed copy equal to the generator's output, and every chosen answer right
// and every rejected one wrong, checked by recomputing each transformation here from the prompt.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { loadPreferenceSplit } from '../../lib/data/sources/index.js';
import {
  DEMO_SEED,
  DEMO_TEST_SIZE,
  DEMO_TRAIN_SIZE,
  demoDatasetDir,
  demoJsonl,
  describeDemoDataset,
  makeDemoDataset,
  makeDemoExamples,
  type DemoRow,
} from '../../lib/demo/dataset.js';

const ASSETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets', 'demo');
const FIELDS = ['prompt', 'chosen', 'rejected', 'rationale'];

const committed = makeDemoDataset();
const small = makeDemoDataset({ seed: 5, train: 120, test: 40 });

/** What a prompt asks, parsed here independently of the generator. */
type Ask = { task: 'sort'; nums: number[] } | { task: 'reverse' | 'uppercase'; word: string } | { task: 'add'; a: number; b: number };

function parsePrompt(prompt: string): Ask {
  let m = /^Sort(?: these numbers)?: (\d(?: \d)+)$/.exec(prompt);
  if (m) return { task: 'sort', nums: m[1]!.split(' ').map(Number) };
  m = /^(?:Reverse the word|Spell backwards): ([a-z]+)$/.exec(prompt);
  if (m) return { task: 'reverse', word: m[1]! };
  m = /^(?:Uppercase|Write in capitals): ([a-z]+)$/.exec(prompt);
  if (m) return { task: 'uppercase', word: m[1]! };
  m = /^(?:Add (\d+) and (\d+)|What is (\d+) \+ (\d+)\?)$/.exec(prompt);
  if (m) return { task: 'add', a: Number(m[1] ?? m[3]), b: Number(m[2] ?? m[4]) };
  throw new Error(`unexpected prompt ${JSON.stringify(prompt)}`);
}

/** The correct answer, computed the plain way. */
function truth(ask: Ask): string {
  switch (ask.task) {
    case 'sort': {
      const xs = [...ask.nums];
      // insertion sort, not Array.prototype.sort: an independent computation
      for (let i = 1; i < xs.length; i++) for (let j = i; j > 0 && xs[j - 1]! > xs[j]!; j--) [xs[j - 1], xs[j]] = [xs[j]!, xs[j - 1]!];
      return xs.join(' ');
    }
    case 'reverse': {
      let r = '';
      for (let i = ask.word.length - 1; i >= 0; i--) r += ask.word[i];
      return r;
    }
    case 'uppercase':
      return [...ask.word].map((c) => String.fromCharCode(c.charCodeAt(0) - 32)).join('');
    case 'add':
      return String(ask.a + ask.b);
  }
}

/** The chosen response's exact format around an answer. */
function politeFor(ask: Ask, answer: string): string {
  switch (ask.task) {
    case 'sort':
      return `Sure! Sorted: ${answer}.`;
    case 'reverse':
      return `Sure! Reversed: ${answer}.`;
    case 'uppercase':
      return `Sure! In capitals: ${answer}.`;
    case 'add':
      return `Sure! ${ask.a} + ${ask.b} = ${answer}.`;
  }
}

/** The answer a rejected response gives, and whether it is curt; throws on another shape. */
function rejectedAnswer(ask: Ask, rejected: string): { answer: string; curt: boolean } {
  const curt = /^(?:ok|meh|fine): (\S.*)$/.exec(rejected);
  if (curt) return { answer: curt[1]!, curt: true };
  const polite = /^Sure! (?:Sorted|Reversed|In capitals|\d+ \+ \d+ =):? (\S.*)\.$/.exec(rejected);
  if (!polite) throw new Error(`unexpected rejected response ${JSON.stringify(rejected)}`);
  expect(politeFor(ask, polite[1]!)).toBe(rejected);
  return { answer: polite[1]!, curt: false };
}

function inputKey(ask: Ask): string {
  if (ask.task === 'sort') return `sort:${ask.nums.join(' ')}`;
  if (ask.task === 'add') return `add:${ask.a}+${ask.b}`;
  return `${ask.task}:${ask.word}`;
}

function checkRows(rows: readonly DemoRow[]): void {
  for (const row of rows) {
    const ask = parsePrompt(row.prompt);
    const right = truth(ask);
    expect(row.chosen, row.prompt).toBe(politeFor(ask, right));
    const { answer, curt } = rejectedAnswer(ask, row.rejected);
    expect(answer, `${row.prompt} → rejected ${row.rejected}`).not.toBe(right);
    expect(row.rejected).not.toBe(row.chosen);
    // The rationale is about this pair: it names the correct answer, and says so when the rejected one is curt.
    expect(row.rationale.startsWith('The response above ')).toBe(true);
    expect(row.rationale).toContain(`(${right})`);
    expect(row.rationale.endsWith(curt ? ', and is curt.' : '.')).toBe(true);
    if (!curt) expect(row.rationale.endsWith(', and is curt.')).toBe(false);
  }
}

describe('makeDemoDataset', () => {
  it('is deterministic in its options, and the seed matters', () => {
    expect(makeDemoDataset()).toEqual(committed);
    expect(makeDemoDataset({ seed: DEMO_SEED, train: DEMO_TRAIN_SIZE, test: DEMO_TEST_SIZE })).toEqual(committed);
    expect(makeDemoDataset({ seed: 5, train: 120, test: 40 })).toEqual(small);
    expect(makeDemoDataset({ seed: 6, train: 120, test: 40 })).not.toEqual(small);
  });

  it('gives the asked sizes, every task in equal shares, and every kind of mistake', () => {
    expect(committed.train).toHaveLength(2000);
    expect(committed.test).toHaveLength(200);
    expect(small.train).toHaveLength(120);
    expect(small.test).toHaveLength(40);
    expect(makeDemoDataset({ train: 0, test: 3 })).toEqual({ train: [], test: expect.any(Array) });
    const { train, test } = makeDemoExamples();
    for (const split of [train, test]) {
      const tasks = new Map<string, number>();
      for (const e of split) {
        tasks.set(e.task, (tasks.get(e.task) ?? 0) + 1);
        expect(parsePrompt(e.row.prompt).task).toBe(e.task);
      }
      expect([...tasks.values()]).toEqual(Array(4).fill(split.length / 4));
    }
    const kinds = new Set(train.map((e) => e.mistake));
    expect([...kinds].sort()).toEqual(
      [
        'add/joined', 'add/multiplied', 'add/off-by', 'add/subtracted',
        'reverse/capitals', 'reverse/rotated', 'reverse/swapped', 'reverse/unchanged',
        'sort/decreasing', 'sort/dropped', 'sort/swapped', 'sort/unsorted',
        'uppercase/first-letter', 'uppercase/last-letter', 'uppercase/reversed', 'uppercase/unchanged',
      ].sort(),
    );
    const curt = train.filter((e) => e.curt).length / train.length;
    expect(curt).toBeGreaterThan(0.2);
    expect(curt).toBeLessThan(0.4);
    for (const e of train) expect(rejectedAnswer(parsePrompt(e.row.prompt), e.row.rejected).curt).toBe(e.curt);
  });

  it('has the orcaratspec schema: prompt, chosen, rejected, rationale, all non-empty strings', () => {
    for (const row of [...committed.train, ...committed.test, ...small.train, ...small.test]) {
      expect(Object.keys(row)).toEqual(FIELDS);
      for (const f of FIELDS) {
        const v = (row as unknown as Record<string, unknown>)[f];
        expect(typeof v).toBe('string');
        expect((v as string).trim().length).toBeGreaterThan(0);
      }
    }
  });

  it('keeps every text short (all four fields of a pair under 200 characters)', () => {
    for (const r of [...committed.train, ...committed.test]) {
      expect(r.prompt.length + r.chosen.length + r.rejected.length + r.rationale.length).toBeLessThan(200);
      expect(r.prompt.length + r.chosen.length).toBeLessThanOrEqual(60);
    }
  });

  it('holds out the test inputs: no test prompt (nor its task and input in another phrasing) is in train, and no prompt repeats', () => {
    for (const { train, test } of [committed, small]) {
      const trainPrompts = new Set(train.map((r) => r.prompt));
      const trainKeys = new Set(train.map((r) => inputKey(parsePrompt(r.prompt))));
      expect(trainPrompts.size).toBe(train.length);
      expect(new Set(test.map((r) => r.prompt)).size).toBe(test.length);
      for (const r of test) {
        expect(trainPrompts.has(r.prompt)).toBe(false);
        expect(trainKeys.has(inputKey(parsePrompt(r.prompt)))).toBe(false);
      }
    }
  });

  it('chosen is always the correct answer in the polite format; rejected never is (recomputed here)', () => {
    checkRows(committed.train);
    checkRows(committed.test);
    checkRows(small.train);
    checkRows(small.test);
    // The checks can fail: a pair with the answers swapped is caught.
    const r = committed.train[0]!;
    expect(() => checkRows([{ ...r, chosen: r.rejected, rejected: r.chosen }])).toThrow();
  });

  it('a larger train split with the same seed and test split draws the smaller one and more', () => {
    const a = makeDemoDataset({ seed: 9, train: 50, test: 20 });
    const b = makeDemoDataset({ seed: 9, train: 80, test: 20 });
    expect(b.test).toEqual(a.test);
    const inB = new Set(b.train.map((r) => JSON.stringify(r)));
    for (const r of a.train) expect(inB.has(JSON.stringify(r))).toBe(true);
  });

  it('rejects bad options and says when it runs out of distinct prompts', () => {
    expect(() => makeDemoDataset({ train: -1 })).toThrow(/train must be a non-negative integer/);
    expect(() => makeDemoDataset({ test: 1.5 })).toThrow(/test must be a non-negative integer/);
    expect(() => makeDemoDataset({ seed: 0.5 })).toThrow(/seed must be an integer/);
    // 39 × 39 additions exist; 8000 pairs ask for 2000 of them.
    expect(() => makeDemoDataset({ train: 8000, test: 0 })).toThrow(/ran out of distinct add prompts/);
  });
});

describe('the committed copy (assets/demo)', () => {
  it('equals the generator output byte for byte, one JSON object a line in schema order', () => {
    for (const split of ['train', 'test'] as const) {
      const text = readFileSync(path.join(ASSETS, `${split}.jsonl`), 'utf8');
      expect(text).toBe(demoJsonl(committed[split]));
      const rows = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(rows).toEqual(committed[split]);
      for (const r of rows) expect(Object.keys(r)).toEqual(FIELDS);
    }
  });

  it('is under 1 MB', () => {
    const bytes = ['train.jsonl', 'test.jsonl', 'README.md'].reduce((n, f) => n + readFileSync(path.join(ASSETS, f)).length, 0);
    expect(bytes).toBeLessThan(1_000_000);
  });

  it('is found by demoDatasetDir() and read by the dataset loader as train and test splits', async () => {
    expect(demoDatasetDir()).toBe(ASSETS);
    for (const split of ['train', 'test'] as const) {
      const rows = await loadPreferenceSplit(demoDatasetDir(), split);
      expect(rows.map(({ id: _id, ...rest }) => rest)).toEqual(committed[split]);
    }
  });

  it("README describes it with describeDemoDataset()'s paragraph", () => {
    const readme = readFileSync(path.join(ASSETS, 'README.md'), 'utf8');
    expect(readme).toContain(describeDemoDataset());
    expect(describeDemoDataset()).toContain('2000 train and 200 test pairs');
    expect(describeDemoDataset()).toContain(`seed: ${DEMO_SEED}`);
  });
});
