// Which files hold which split, by file name, as HF `datasets` decides it
// (datasets/data_files.py), and a deterministic held-out test split for sources that ship
// only a train split.
import { createHash } from 'node:crypto';

import type { Split } from '../types.js';

/** `data/<split>-00000-of-00003*.*`: what push_to_hub writes; the split name is free (e.g. train_prefs). */
const SHARDED_RE = /^data\/([^/]+?)-\d{5}-of-\d{5}[^/]*\.[^/]+$/;

/** HF datasets' split keywords (in its order of precedence within a step). */
export const SPLIT_KEYWORDS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['train', ['train', 'training']],
  ['validation', ['validation', 'valid', 'dev', 'val']],
  ['test', ['test', 'testing', 'eval', 'evaluation']],
];

// The "non-word" characters around a keyword: - . _ space and digits.
const SEP = '[-._ 0-9]';

/** A directory name that marks a split: `train`, `train-x`, `x_train`, `x.train.y` (not `trainer`). */
function dirMatches(keyword: string, dir: string): boolean {
  return new RegExp(`^(?:.*${SEP})?${keyword}(?:${SEP}.*)?$`).test(dir);
}

/** A file name that marks a split: `train.jsonl`, `train-00000.parquet`, `my_train.json` (not `trainer.json`). */
function fileMatches(keyword: string, base: string): boolean {
  return new RegExp(`^(?:.*${SEP})?${keyword}${SEP}.*$`).test(base);
}

function byKeyword(files: readonly string[], test: (keyword: string, file: string) => boolean): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [split, keywords] of SPLIT_KEYWORDS) {
    const hits = files.filter((f) => keywords.some((k) => test(k, f)));
    if (hits.length > 0) out.set(split, hits);
  }
  return out;
}

/**
 * Groups data files (repo- or directory-relative paths with '/') into splits, in HF datasets'
 * order: sharded `data/<split>-NNNNN-of-NNNNN*` names; then a split keyword in a directory name;
 * then in the file name; else everything is `train`. Files keep their sorted order.
 */
export function splitsByFileName(files: readonly string[]): Map<string, string[]> {
  const sorted = [...files].sort();
  const sharded = new Map<string, string[]>();
  for (const f of sorted) {
    const m = SHARDED_RE.exec(f);
    if (m) sharded.set(m[1]!, [...(sharded.get(m[1]!) ?? []), f]);
  }
  if (sharded.size > 0) return sharded;
  const inDir = byKeyword(sorted, (k, f) => f.split('/').slice(0, -1).some((d) => dirMatches(k, d)));
  if (inDir.size > 0) return inDir;
  const inName = byKeyword(sorted, (k, f) => fileMatches(k, f.split('/').pop()!));
  if (inName.size > 0) return inName;
  return sorted.length > 0 ? new Map([['train', sorted]]) : new Map();
}

/** The default share of a train-only source held out as its test split. */
export const DEFAULT_TEST_FRACTION = 0.05;

export interface HeldOutOptions {
  /** Share of the prompts held out for test, in (0, 1). Default DEFAULT_TEST_FRACTION (5%). */
  testFraction?: number;
  /** Mixed into the hash; keep it fixed across runs that should share a test split. Default 0. */
  seed?: number;
}

/** A uniform number in [0, 1) from a prompt and a seed: sha256 of both, first 48 bits. */
export function heldOutScore(prompt: string, seed = 0): number {
  const h = createHash('sha256').update(`rpo-heldout\u0000${seed}\u0000${prompt}`).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The train or test part of a train-only source. A row is in test when the score of its
 * *prompt* is below the test fraction, so: every pair of a prompt lands on the same side (no
 * prompt is in both), membership depends on the row alone (the same rows every run, and
 * appending rows never moves an existing one), and the test share is the fraction on average.
 * Tiny sources where the fraction selects no prompt (or all of them) get the single lowest-
 * (highest-) scoring prompt moved so both sides are non-empty when there are two prompts or more.
 */
export function heldOutSplit<T extends { prompt: string }>(rows: readonly T[], split: Split, opts: HeldOutOptions = {}): T[] {
  const fraction = opts.testFraction ?? DEFAULT_TEST_FRACTION;
  if (!(fraction > 0 && fraction < 1)) throw new Error(`testFraction must be in (0, 1), got ${fraction}`);
  const scores = new Map<string, number>();
  for (const r of rows) if (!scores.has(r.prompt)) scores.set(r.prompt, heldOutScore(r.prompt, opts.seed ?? 0));
  const test = new Set<string>();
  for (const [p, s] of scores) if (s < fraction) test.add(p);
  if (scores.size >= 2) {
    const ranked = [...scores.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    if (test.size === 0) test.add(ranked[0]![0]);
    if (test.size === scores.size) test.delete(ranked[ranked.length - 1]![0]);
  }
  return rows.filter((r) => test.has(r.prompt) === (split === 'test'));
}
