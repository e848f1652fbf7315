// The samples `rpo compare` reads: rpo's `mode=sample` output (a JSON array of {prompt, chosen,
// policy}) or the seed's ({"config": {...}, "samples": [...]}).
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface SamplesFile {
  rows: Record<string, unknown>[];
  /** The seed's samples config, when the file has one (its prefixes, exp_name, local_run_dir). */
  config: Record<string, unknown> | null;
  /** The seed's exp_name, else the file's name without .json. */
  expName: string;
}

export function readSamples(file: string): SamplesFile {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a JSON samples file (${(err as Error).message})`);
  }
  let rows: unknown;
  let config: Record<string, unknown> | null = null;
  if (Array.isArray(doc)) rows = doc;
  else if (doc !== null && typeof doc === 'object' && Array.isArray((doc as { samples?: unknown }).samples)) {
    rows = (doc as { samples: unknown[] }).samples;
    const c = (doc as { config?: unknown }).config;
    if (c !== null && typeof c === 'object' && !Array.isArray(c)) config = c as Record<string, unknown>;
  } else throw new Error(`${file}: expected a JSON array of samples (rpo eval ++mode=sample) or {"config": ..., "samples": [...]} (the seed's)`);
  const list = rows as unknown[];
  list.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new Error(`${file}: sample ${i} is not an object`);
  });
  const expName = typeof config?.exp_name === 'string' ? config.exp_name : path.basename(file).replace(/\.json$/i, '');
  return { rows: list as Record<string, unknown>[], config, expName };
}

/** Row i's text under `key`; an error names the file, the row and the key. */
export function textOf(file: string, row: Record<string, unknown>, i: number, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') {
    const keys = Object.keys(row).join(', ');
    throw new Error(`${file}: sample ${i} has no string "${key}" (its keys: ${keys || 'none'})`);
  }
  return v;
}
