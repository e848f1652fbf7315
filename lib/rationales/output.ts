// What `rpo rationales` writes into --out:
//
//   train.parquet, test.parquet   (or .jsonl with --format jsonl) one file per split, the
//                                 orcaratspec schema: prompt, chosen, rejected, rationale (strings)
//   rationales.json               the sidecar: generator, model, template, sampling, filters,
//                                 per-split counts, failed ids, the rpo version
//   .progress-<split>.jsonl       the journal of a split still being generated (journal.ts)
//
// The split files are named so that rpo's directory loader (HF datasets' file-name rules,
// lib/data/sources/splits.ts) reads them as the train and test splits; the sidecar's name holds
// no split keyword, so the loader ignores it, and dot-files are skipped. Every file is written to
// a temp file and renamed into place.
//
// What is "ours" is decided by content, never by name alone (a user's own train.parquet has the
// same name as ours): the sidecar is ours when it is an rpo sidecar; a split file when the sidecar
// records it with its sha256 (written before the file, so a crash in between leaves nothing
// unaccounted); a journal when it starts with an rpo journal header. --overwrite removes those and
// nothing else; any other data file, or a file at one of our names that rpo did not write, makes
// the directory unusable as --out (surveyOutDir), and is never touched.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

import { parquetWriteBuffer } from 'hyparquet-writer';

import { writeFileAtomic } from '../util/files.js';

export type OutputFormat = 'parquet' | 'jsonl';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['parquet', 'jsonl'];

export const SIDECAR = 'rationales.json';
export const OUTPUT_COLUMNS = ['prompt', 'chosen', 'rejected', 'rationale'] as const;

export interface RationaleRow {
  prompt: string;
  chosen: string;
  rejected: string;
  rationale: string;
}

export function splitFile(outDir: string, split: string, format: OutputFormat): string {
  return path.join(outDir, `${split}.${format}`);
}

export function journalFile(outDir: string, split: string): string {
  return path.join(outDir, `.progress-${split}.jsonl`);
}

/** The split file's bytes: parquet (snappy, string columns) or JSON lines. */
export function encodeRows(rows: readonly RationaleRow[], format: OutputFormat): Uint8Array {
  if (format === 'jsonl') {
    return Buffer.from(rows.map((r) => JSON.stringify({ prompt: r.prompt, chosen: r.chosen, rejected: r.rejected, rationale: r.rationale }) + '\n').join(''));
  }
  const buf = parquetWriteBuffer({
    columnData: OUTPUT_COLUMNS.map((name) => ({ name, data: rows.map((r) => r[name]), type: 'STRING' as const, nullable: false })),
    createdBy: 'rpo rationales',
  });
  return new Uint8Array(buf);
}

/** Writes a split's file atomically. */
export function writeSplit(file: string, rows: readonly RationaleRow[], format: OutputFormat): void {
  writeFileAtomic(file, [encodeRows(rows, format)]);
}

export interface SplitSummary {
  file: string;
  /** Rows of the dataset split asked for (after --limit). */
  rows: number;
  kept: number;
  filtered: Record<string, number>;
  failed: number;
  /** Tokens the generator produced for this split (the engine's count, or the server's usage). */
  generated_tokens: number;
  failures: { id: string; error: string }[];
  filtered_ids: Record<string, string[]>;
  /** The hash of the arguments and data that decided this split's generations. */
  generation_hash: string;
  finished_at: string;
  /** sha256 of the split file's bytes: how --overwrite knows the file is the one rpo wrote (absent in sidecars before 0.1). */
  sha256?: string;
}

export interface Sidecar {
  rpo_version: string;
  /** Hash of `args`: a later run into the same directory must match it. */
  args_hash: string;
  args: Record<string, unknown>;
  dataset: string;
  generator: Record<string, unknown>;
  model: string;
  style: string;
  template: string;
  sampling: Record<string, unknown>;
  filters: Record<string, unknown>;
  format: OutputFormat;
  splits: Record<string, SplitSummary>;
}

/** Whether a parsed rationales.json is an rpo sidecar (what writeSidecar writes). */
export function isSidecar(doc: unknown): doc is Sidecar {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return false;
  const d = doc as Record<string, unknown>;
  return typeof d.rpo_version === 'string' && typeof d.args_hash === 'string' && d.splits !== null && typeof d.splits === 'object' && !Array.isArray(d.splits);
}

export function readSidecar(outDir: string): Sidecar | null {
  const file = path.join(outDir, SIDECAR);
  if (!existsSync(file)) return null;
  try {
    const doc: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (!isSidecar(doc)) throw new Error('not an rpo sidecar (no rpo_version, args_hash, splits)');
    return doc;
  } catch (err) {
    // Not ours: --overwrite will not remove it either (surveyOutDir refuses the directory first).
    throw new Error(`${file} is not an rpo rationales sidecar (${(err as Error).message}); move it away or choose another --out`);
  }
}

export function writeSidecar(outDir: string, sidecar: Sidecar): void {
  writeFileAtomic(path.join(outDir, SIDECAR), [Buffer.from(JSON.stringify(sidecar, null, 2) + '\n')]);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Names rpo writes in an output directory: split files, the sidecar, journals, temp files of atomic writes (by name only: see surveyOutDir for whose they are). */
export function isOurFile(name: string): boolean {
  return (
    name === SIDECAR ||
    /^(train|test)\.(parquet|jsonl)$/.test(name) ||
    /^\.progress-(train|test)\.jsonl$/.test(name) ||
    /^\.((train|test)\.(parquet|jsonl)|rationales\.json)\.tmp-/.test(name)
  );
}

const JOURNAL_HEADER_START = '{"journal":"rpo-rationales"';

/**
 * Whether a journal file is rpo's: its first line starts with the header rpo writes, or (killed
 * while writing it) the file is a start of that header.
 */
export function isOurJournal(file: string): boolean {
  let head: string;
  try {
    head = readFileSync(file).subarray(0, 4096).toString('utf8');
  } catch {
    return false;
  }
  const first = head.split('\n', 1)[0]!;
  return first.startsWith(JOURNAL_HEADER_START) || (!head.includes('\n') && JOURNAL_HEADER_START.startsWith(first));
}

export interface OutDirSurvey {
  /** Files rpo wrote (top level): what --overwrite removes. */
  ours: string[];
  /**
   * Files rpo did not write that stop it from using the directory: data files the directory
   * loader would mix with the rationales, and files at the names rpo writes (train.parquet, its
   * sidecar, its journals) that are not rpo's. Relative paths, '/'.
   */
  foreign: string[];
  /** Everything else (notes, scripts, ...): left alone. Relative paths, '/'. */
  others: string[];
  /** The rpo sidecar, when there is one. */
  sidecar: Sidecar | null;
}

/** Sorts the files of an output directory into ours, foreign ones that block it, and others. */
export function surveyOutDir(outDir: string): OutDirSurvey {
  const survey: OutDirSurvey = { ours: [], foreign: [], others: [], sidecar: null };
  if (!existsSync(outDir)) return survey;
  const sidecarFile = path.join(outDir, SIDECAR);
  if (existsSync(sidecarFile)) {
    try {
      const doc: unknown = JSON.parse(readFileSync(sidecarFile, 'utf8'));
      if (isSidecar(doc)) survey.sidecar = doc;
    } catch {
      // not ours: foreign below
    }
  }
  const recorded = new Map<string, SplitSummary>();
  for (const s of Object.values(survey.sidecar?.splits ?? {})) if (s && typeof s.file === 'string') recorded.set(s.file, s);
  const isOurs = (name: string, full: string): boolean => {
    if (name === SIDECAR) return survey.sidecar !== null;
    if (/^(train|test)\.(parquet|jsonl)$/.test(name)) {
      const rec = recorded.get(name);
      if (!rec) return false;
      // A sidecar from before sha256 was recorded names the file: that is all there is to go on.
      return rec.sha256 === undefined || sha256Hex(readFileSync(full)) === rec.sha256;
    }
    if (/^\.progress-(train|test)\.jsonl$/.test(name)) return isOurJournal(full);
    return isOurFile(name); // temp files of our atomic writes (.train.parquet.tmp-<pid>-<random>)
  };
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const rel = `${prefix}${name}`;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        // The loader skips dot-directories; so does this.
        if (!name.startsWith('.')) walk(full, `${rel}/`);
        else survey.others.push(`${rel}/`);
        continue;
      }
      if (prefix === '' && st.isFile() && isOurFile(name)) {
        (isOurs(name, full) ? survey.ours : survey.foreign).push(rel);
      } else if (!name.startsWith('.') && /\.(jsonl|json|parquet)$/i.test(name)) {
        survey.foreign.push(rel);
      } else {
        survey.others.push(rel);
      }
    }
  };
  walk(outDir, '');
  return survey;
}

/** Data files and files at our names in `outDir` that rpo did not write (see surveyOutDir). */
export function foreignDataFiles(outDir: string): string[] {
  return surveyOutDir(outDir).foreign;
}

/** --overwrite: removes the files rpo wrote (and nothing else) from `outDir`. */
export function removeOurFiles(outDir: string): string[] {
  const { ours } = surveyOutDir(outDir);
  for (const name of ours) rmSync(path.join(outDir, name), { force: true });
  return ours;
}
