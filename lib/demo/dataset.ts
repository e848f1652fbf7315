// The demo's bundled dataset: a synthetic preference task made for rpo, in the orcaratspec
// schema (prompt, chosen, rejected, rationale), that a ~1M-parameter model trained from random
// init for a few minutes on a CPU can visibly learn.
//
// Four tiny deterministic tasks (sort a few digits, reverse a word, write a word in capitals, add
// two numbers). The chosen response is always the correct answer in one fixed polite format
// ("Sure! Sorted: 1 3 7 9."). The rejected one is always wrong, in one of a few systematic ways
// per task (ignores the instruction, wrong order, a dropped or swapped element, off by one, the
// wrong operation), and in about a third of the pairs it is also curt ("ok: 9 7 3 1"). The
// rationale is one templated sentence naming the specifics ("The response above sorts the numbers
// in increasing order (1 3 7 9); the one below leaves them unsorted (9 before 7)."). Since the
// mistakes are systematic, what a model learns on the train prompts holds on held-out prompts:
// test prompts (their task and input) never occur in train.
//
// The committed copy lives in assets/demo/{train,test}.jsonl (see assets/demo/README.md);
// writeDemoDataset() regenerates it.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { PreferenceRow } from '../data/types.js';
import { packageRoot } from '../util/package.js';
import { mulberry32 } from '../util/random.js';

/** One demo pair, in the orcaratspec schema (the loader adds ids). */
export type DemoRow = Omit<PreferenceRow, 'id' | 'rationale'> & { rationale: string };

export type DemoTask = 'sort' | 'reverse' | 'uppercase' | 'add';
export const DEMO_TASKS: readonly DemoTask[] = ['sort', 'reverse', 'uppercase', 'add'];

/** A demo pair with what made it: its task, the kind of mistake in the rejected response, and whether that one is also curt. */
export interface DemoExample {
  row: DemoRow;
  task: DemoTask;
  /** The kind of mistake, e.g. 'sort/unsorted', 'add/off-by'. */
  mistake: string;
  /** The rejected response also drops the polite format. */
  curt: boolean;
}

export interface DemoDatasetOptions {
  /** Any integer; the same seed and sizes give the same rows (default DEMO_SEED). */
  seed?: number;
  /** Number of train pairs (default DEMO_TRAIN_SIZE). */
  train?: number;
  /** Number of test pairs (default DEMO_TEST_SIZE). */
  test?: number;
}

/** The seed of the committed copy (after the paper's arXiv id, 2407.14477). */
export const DEMO_SEED = 2407;
export const DEMO_TRAIN_SIZE = 2000;
export const DEMO_TEST_SIZE = 200;
/** Share of the rejected responses that are also curt (no "Sure!", no period). */
export const DEMO_CURT_FRACTION = 0.3;

// ---------------------------------------------------------------------------------------------
// Randomness: mulberry32, seeded by the integer seed. Deterministic on every platform.

type Rng = () => number;


function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

function shuffle<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

// ---------------------------------------------------------------------------------------------
// Words: common short English words, and pronounceable made-up ones (so there are always unseen
// words for the held-out split).

const WORDS = (
  'cat dog sun map cup hat pen box bag bed bus car egg fan fox jam key leg log mug net owl pig ' +
  'pot rat rug toy van web zip ant bat bee cow elk gum hen ink jar kit lid mud nut oak pea ' +
  'tea yak apple bread chair cloud dream earth fruit glass grape green heart horse house ' +
  'juice knife lemon light money mouse music night ocean paper phone piano plant queen river ' +
  'salad sheep shirt smile snake spoon stone storm sugar table tiger tooth train water whale ' +
  'wheel world zebra basket button candle carrot castle cookie dragon flower forest garden ' +
  'guitar island jacket kitten ladder monkey orange pencil pepper pillow planet rabbit rocket ' +
  'silver spider summer tomato turtle window winter yellow bridge camera circle doctor ' +
  'engine family finger friend hammer ticket violin wallet wizard'
).split(' ');

const CONSONANTS = 'bcdfghjklmnprstvz';
const VOWELS = 'aeiou';

function madeUpWord(rng: Rng): string {
  const syllables = int(rng, 1, 3);
  let w = '';
  for (let i = 0; i < syllables; i++) {
    w += pick(rng, [...CONSONANTS]) + pick(rng, [...VOWELS]);
    if (rng() < 0.35) w += pick(rng, [...CONSONANTS]);
  }
  return w;
}

function reverseString(s: string): string {
  return [...s].reverse().join('');
}

/** A word for reverse / uppercase: 3 to 7 letters, not a palindrome, letters not all the same. */
function drawWord(rng: Rng): string {
  for (;;) {
    const w = rng() < 0.4 ? pick(rng, WORDS) : madeUpWord(rng);
    if (w.length >= 3 && w.length <= 7 && reverseString(w) !== w) return w;
  }
}

// ---------------------------------------------------------------------------------------------
// The tasks. Each draws an input, and from it makes the prompt, the correct answer, and a wrong
// answer with the clause of the rationale that says what is wrong with it.

interface Mistake {
  kind: string;
  /** The wrong answer (in the same slot as the correct one). */
  answer: string;
  /** What the rejected response does, as a verb phrase ("leaves them unsorted (9 before 7)"). */
  says: string;
}

interface Drawn {
  /** Identifies the input: test and train never share one. */
  key: string;
  prompt: string;
  /** The polite response around an answer. */
  polite: (answer: string) => string;
  answer: string;
  /** What the chosen response does, as a verb phrase. */
  does: string;
  mistakes: Mistake[];
}

function drawSort(rng: Rng): Drawn {
  const n = int(rng, 3, 5);
  const digits = shuffle(rng, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).slice(0, n);
  const sorted = [...digits].sort((a, b) => a - b);
  const show = (xs: readonly number[]) => xs.join(' ');
  const mistakes: Mistake[] = [];
  const inv = digits.findIndex((d, i) => i + 1 < digits.length && d > digits[i + 1]!);
  if (inv >= 0) mistakes.push({ kind: 'sort/unsorted', answer: show(digits), says: `leaves them unsorted (${digits[inv]} before ${digits[inv + 1]})` });
  mistakes.push({ kind: 'sort/decreasing', answer: show([...sorted].reverse()), says: 'sorts them in decreasing order' });
  const i = int(rng, 0, n - 2);
  const swapped = [...sorted];
  [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
  mistakes.push({ kind: 'sort/swapped', answer: show(swapped), says: `puts ${sorted[i + 1]} before ${sorted[i]}` });
  const j = int(rng, 0, n - 1);
  mistakes.push({ kind: 'sort/dropped', answer: show(sorted.filter((_, k) => k !== j)), says: `drops the ${sorted[j]}` });
  return {
    key: `sort:${show(digits)}`,
    prompt: rng() < 0.5 ? `Sort: ${show(digits)}` : `Sort these numbers: ${show(digits)}`,
    polite: (a) => `Sure! Sorted: ${a}.`,
    answer: show(sorted),
    does: `sorts the numbers in increasing order (${show(sorted)})`,
    mistakes,
  };
}

function drawReverse(rng: Rng): Drawn {
  const w = drawWord(rng);
  const r = reverseString(w);
  const mistakes: Mistake[] = [{ kind: 'reverse/unchanged', answer: w, says: `repeats "${w}" unchanged` }];
  mistakes.push({ kind: 'reverse/capitals', answer: w.toUpperCase(), says: 'writes it in capitals instead of reversing it' });
  const rotated = w.slice(1) + w[0];
  if (rotated !== r) mistakes.push({ kind: 'reverse/rotated', answer: rotated, says: `only moves the first letter to the end (${rotated})` });
  const swaps = [...r].map((_, i) => i).filter((i) => i + 1 < r.length && r[i] !== r[i + 1]);
  if (swaps.length > 0) {
    const i = pick(rng, swaps);
    const s = r.slice(0, i) + r[i + 1] + r[i] + r.slice(i + 2);
    mistakes.push({ kind: 'reverse/swapped', answer: s, says: `writes "${s}", with two letters swapped` });
  }
  return {
    key: `reverse:${w}`,
    prompt: rng() < 0.5 ? `Reverse the word: ${w}` : `Spell backwards: ${w}`,
    polite: (a) => `Sure! Reversed: ${a}.`,
    answer: r,
    does: `spells "${w}" backwards (${r})`,
    mistakes,
  };
}

function drawUppercase(rng: Rng): Drawn {
  const w = drawWord(rng);
  const up = w.toUpperCase();
  const mistakes: Mistake[] = [
    { kind: 'uppercase/unchanged', answer: w, says: 'leaves it in lowercase' },
    { kind: 'uppercase/first-letter', answer: up[0] + w.slice(1), says: 'capitalizes only the first letter' },
    { kind: 'uppercase/last-letter', answer: up.slice(0, -1) + w.slice(-1), says: `leaves the last letter "${w.slice(-1)}" lowercase` },
    { kind: 'uppercase/reversed', answer: reverseString(up), says: `also reverses the letters (${reverseString(up)})` },
  ];
  return {
    key: `uppercase:${w}`,
    prompt: rng() < 0.5 ? `Uppercase: ${w}` : `Write in capitals: ${w}`,
    polite: (a) => `Sure! In capitals: ${a}.`,
    answer: up,
    does: `writes "${w}" in capitals (${up})`,
    mistakes,
  };
}

function drawAdd(rng: Rng): Drawn {
  const a = int(rng, 1, 39);
  const b = int(rng, 1, 39);
  const s = a + b;
  const off = pick(rng, [-2, -1, 1, 2]);
  const mistakes: Mistake[] = [{ kind: 'add/off-by', answer: String(s + off), says: `says ${s + off}, which is off by ${Math.abs(off)}` }];
  const joined = `${a}${b}`;
  if (joined !== String(s)) mistakes.push({ kind: 'add/joined', answer: joined, says: `joins the digits (${joined}) instead of adding` });
  if (Math.abs(a - b) !== s) mistakes.push({ kind: 'add/subtracted', answer: String(Math.abs(a - b)), says: `subtracts instead of adding (${Math.abs(a - b)})` });
  if (a * b !== s) mistakes.push({ kind: 'add/multiplied', answer: String(a * b), says: `multiplies instead of adding (${a * b})` });
  return {
    key: `add:${a}+${b}`,
    prompt: rng() < 0.5 ? `Add ${a} and ${b}` : `What is ${a} + ${b}?`,
    polite: (x) => `Sure! ${a} + ${b} = ${x}.`,
    answer: String(s),
    does: `adds ${a} and ${b} correctly (${s})`,
    mistakes,
  };
}

const DRAW: Record<DemoTask, (rng: Rng) => Drawn> = { sort: drawSort, reverse: drawReverse, uppercase: drawUppercase, add: drawAdd };

const CURT_PREFIXES = ['ok', 'meh', 'fine'];

function makeExample(rng: Rng, task: DemoTask, d: Drawn): DemoExample {
  const m = pick(rng, d.mistakes);
  const curt = rng() < DEMO_CURT_FRACTION;
  const rejected = curt ? `${pick(rng, CURT_PREFIXES)}: ${m.answer}` : d.polite(m.answer);
  const rationale = `The response above ${d.does}; the one below ${m.says}${curt ? ', and is curt' : ''}.`;
  return { row: { prompt: d.prompt, chosen: d.polite(d.answer), rejected, rationale }, task, mistake: m.kind, curt };
}

function checkCount(name: string, v: unknown, dflt: number): number {
  const n = v === undefined ? dflt : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new Error(`makeDemoDataset: ${name} must be a non-negative integer, got ${String(v)}`);
  return n;
}

/**
 * The demo pairs with what made each (task, kind of mistake, curt or not). Test pairs are drawn
 * first, then train pairs whose inputs are not among the test inputs (nor among earlier train
 * pairs: every prompt occurs once). Tasks take turns, then each split is shuffled. Same options,
 * same pairs; with the same seed and test size, a larger train split extends a smaller one's draw.
 */
export function makeDemoExamples(opts: DemoDatasetOptions = {}): { train: DemoExample[]; test: DemoExample[] } {
  const seed = opts.seed ?? DEMO_SEED;
  if (!Number.isInteger(seed)) throw new Error(`makeDemoDataset: seed must be an integer, got ${String(opts.seed)}`);
  const nTrain = checkCount('train', opts.train, DEMO_TRAIN_SIZE);
  const nTest = checkCount('test', opts.test, DEMO_TEST_SIZE);
  const rng = mulberry32(seed);
  const used = new Set<string>();
  const draw = (n: number): DemoExample[] => {
    const out: DemoExample[] = [];
    for (let i = 0; i < n; i++) {
      const task = DEMO_TASKS[i % DEMO_TASKS.length]!;
      let d = DRAW[task](rng);
      for (let tries = 1; used.has(d.key); tries++) {
        if (tries > 10_000) throw new Error(`makeDemoDataset: ran out of distinct ${task} prompts after ${used.size} pairs; ask for fewer`);
        d = DRAW[task](rng);
      }
      used.add(d.key);
      out.push(makeExample(rng, task, d));
    }
    return out;
  };
  const test = draw(nTest);
  const train = draw(nTrain);
  // Shuffle each split with its own stream so the train order does not depend on the test size.
  return { train: shuffle(mulberry32(seed ^ 0x7261696e), train), test: shuffle(mulberry32(seed ^ 0x74657374), test) };
}

/** The demo dataset: `{ train, test }` rows in the orcaratspec schema. Deterministic in its options. */
export function makeDemoDataset(opts: DemoDatasetOptions = {}): { train: DemoRow[]; test: DemoRow[] } {
  const { train, test } = makeDemoExamples(opts);
  return { train: train.map((e) => e.row), test: test.map((e) => e.row) };
}

/** Rows as JSON lines, the fields in schema order (prompt, chosen, rejected, rationale), one row a line. */
export function demoJsonl(rows: readonly DemoRow[]): string {
  return rows.map((r) => JSON.stringify({ prompt: r.prompt, chosen: r.chosen, rejected: r.rejected, rationale: r.rationale }) + '\n').join('');
}

/** Writes `train.jsonl` and `test.jsonl` under `dir` (each to a temp file, then renamed). Returns their paths. */
export function writeDemoDataset(dir: string, opts: DemoDatasetOptions = {}): { train: string; test: string } {
  const data = makeDemoDataset(opts);
  mkdirSync(dir, { recursive: true });
  const out = { train: path.join(dir, 'train.jsonl'), test: path.join(dir, 'test.jsonl') };
  for (const split of ['train', 'test'] as const) {
    const tmp = `${out[split]}.tmp-${process.pid}`;
    writeFileSync(tmp, demoJsonl(data[split]));
    renameSync(tmp, out[split]);
  }
  return out;
}

/**
 * The directory of the bundled copy (`assets/demo` of the package), found from this module
 * whether it runs from lib/ (tsx) or from dist/lib/ (compiled): a data directory the dataset
 * loader reads as is (train.jsonl → train, test.jsonl → test).
 */
export function demoDatasetDir(): string {
  const dir = path.join(packageRoot(), 'assets', 'demo');
  if (!existsSync(path.join(dir, 'train.jsonl'))) throw new Error(`the bundled demo dataset is missing: no ${path.join(dir, 'train.jsonl')}`);
  return dir;
}

/** The longest prompt, response (chosen or rejected) and rationale of a set of rows, in characters. */
export function demoLengths(rows: readonly DemoRow[]): { prompt: number; response: number; rationale: number; total: number } {
  const max = (f: (r: DemoRow) => number) => rows.reduce((m, r) => Math.max(m, f(r)), 0);
  return {
    prompt: max((r) => r.prompt.length),
    response: max((r) => Math.max(r.chosen.length, r.rejected.length)),
    rationale: max((r) => r.rationale.length),
    total: max((r) => r.prompt.length + r.chosen.length + r.rejected.length + r.rationale.length),
  };
}

/** One paragraph on what the demo dataset is, for READMEs and the report. */
export function describeDemoDataset(opts: DemoDatasetOptions = {}): string {
  const seed = opts.seed ?? DEMO_SEED;
  const { train, test } = makeDemoDataset(opts);
  const len = demoLengths([...train, ...test]);
  return (
    `The demo dataset is a synthetic preference task made for rpo, in the orcaratspec schema ` +
    `(prompt, chosen, rejected, rationale): ${train.length} train and ${test.length} test pairs, generated ` +
    `deterministically by makeDemoDataset({ seed: ${seed} }) in lib/demo/dataset.ts. Each prompt asks for ` +
    `one of four small deterministic transformations, in equal shares: sort 3 to 5 digits ("Sort: 7 3 9"), ` +
    `reverse a word ("Reverse the word: cat"), write a word in capitals ("Uppercase: dog") or add two ` +
    `numbers from 1 to 39 ("Add 3 and 4"); words are common English words or pronounceable made-up ones. ` +
    `The chosen response is always the correct answer in one polite format ("Sure! Sorted: 3 7 9."); the ` +
    `rejected one is always wrong in a systematic way (the input left as it is, the wrong order, a swapped ` +
    `or dropped element, off by one or two, the wrong operation), and in about ${Math.round(DEMO_CURT_FRACTION * 100)}% ` +
    `of the pairs it is also curt ("ok: 9 7 3"). The rationale is one templated sentence that names the ` +
    `specifics ("The response above sorts the numbers in increasing order (3 7 9); the one below leaves ` +
    `them unsorted (7 before 3)."). The mistakes are systematic so that what a small model trained from ` +
    `scratch learns on the train prompts holds on held-out ones: no test input (task and operands or word) ` +
    `occurs in the train split. Every text is short: prompts up to ${len.prompt} characters, responses up to ` +
    `${len.response}, rationales up to ${len.rationale} (${len.total} for all four together).`
  );
}
