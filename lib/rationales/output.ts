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
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

import { parquetWriteBuffer } from 'hyparquet-writer';

import { writeFileAtomic } from '../model/safetensors.js';

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

export function readSidecar(outDir: string): Sidecar | null {
  const file = path.join(outDir, SIDECAR);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Sidecar;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); remove it or use --overwrite`);
  }
}

export function writeSidecar(outDir: string, sidecar: Sidecar): void {
  writeFileAtomic(path.join(outDir, SIDECAR), [Buffer.from(JSON.stringify(sidecar, null, 2) + '\n')]);
}

/** Files of ours in an output directory: split files, the sidecar, journals, temp files of atomic writes. */
export function isOurFile(name: string): boolean {
  return (
    name === SIDECAR ||
    /^(train|test)\.(parquet|jsonl)$/.test(name) ||
    /^\.progress-(train|test)\.jsonl$/.test(name) ||
    /^\.((train|test)\.(parquet|jsonl)|rationales\.json)\.tmp-/.test(name)
  );
}

/** Data files in `outDir` that are not ours (writing next to them would mix datasets). */
export function foreignDataFiles(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  const out: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const rel = `${prefix}${e.name}`;
      if (e.isDirectory()) walk(path.join(dir, e.name), `${rel}/`);
      else if (/\.(jsonl|json|parquet)$/i.test(e.name) && !(prefix === '' && isOurFile(e.name))) out.push(rel);
    }
  };
  walk(outDir, '');
  return out.sort();
}

/** --overwrite: removes our files (and nothing else) from `outDir`. */
export function removeOurFiles(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(outDir)) {
    if (isOurFile(name)) {
      rmSync(path.join(outDir, name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}
