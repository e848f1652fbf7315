// Precomputed reference log-probs (`precompute_reference: true`): the reference model runs once
// over every example's chosen and rejected rows, the results go to disk keyed by what they
// depend on, and later runs (a sweep over gamma, a resumed run) reuse them without loading the
// reference model at all.
//
// The key hashes (a) the reference weights' fingerprint and dtype and (b) every token id and
// label mask of the examples: the token ids already encode the tokenizer, the data, the
// template and the length limits, so any change there changes the key.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import path from 'node:path';

import type { Model, PairLogps, RowLogps } from '../native.js';
import { writeFileAtomic } from '../util/files.js';
import { makeBatches, type TokenizedExample } from '../data/batch/index.js';

/** Per example: reference log-probs of its chosen and rejected responses. */
export interface ReferenceEntry {
  chosen: { sum: number; mean: number; count: number };
  rejected: { sum: number; mean: number; count: number };
}

export type ReferenceTable = Map<string, ReferenceEntry>;

const SAMPLE_BYTES = 1 << 20;

/**
 * A cheap fingerprint of a model directory's weights: every safetensors file's name, size,
 * header, and 1 MiB from its start, middle and end. Hashing 15 GB of weights on every run
 * would cost more than the cache saves; a sample this wide changes with any real edit.
 */
export function weightsFingerprint(modelDir: string): string {
  const hash = createHash('sha256');
  const files = readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new Error(`${modelDir}: no .safetensors files to fingerprint`);
  for (const f of files) {
    const fd = openSync(path.join(modelDir, f), 'r');
    try {
      const size = fstatSync(fd).size;
      hash.update(`${f}:${size}:`);
      for (const at of [0, Math.max(0, Math.floor(size / 2) - SAMPLE_BYTES / 2), Math.max(0, size - SAMPLE_BYTES)]) {
        const buf = Buffer.alloc(Math.min(SAMPLE_BYTES, size));
        readSync(fd, buf, 0, buf.length, at);
        hash.update(buf);
      }
    } finally {
      closeSync(fd);
    }
  }
  return hash.digest('hex');
}

/** Hash of the examples' chosen and rejected token ids and prompt lengths, in order. */
export function examplesFingerprint(examples: readonly TokenizedExample[]): string {
  const hash = createHash('sha256');
  for (const ex of examples) {
    for (const seq of [ex.chosen, ex.rejected]) {
      hash.update(`${ex.id}|${seq.promptLength}|${seq.dropped ? 1 : 0}|`);
      hash.update(Buffer.from(Int32Array.from(seq.ids).buffer));
    }
  }
  return hash.digest('hex');
}

export function referenceCacheKey(parts: { weights: string; dtype: string; examples: string }): string {
  return createHash('sha256').update(`rpo-reference-1|${parts.weights}|${parts.dtype}|${parts.examples}`).digest('hex').slice(0, 32);
}

interface CacheFile {
  format: 'rpo-reference-logps-1';
  key: string;
  ids: string[];
  /** Per example: chosen sum, mean, count, rejected sum, mean, count. */
  values: number[];
}

export function readReferenceCache(file: string, key: string): ReferenceTable | null {
  if (!existsSync(file)) return null;
  const unusable = (why: string) => new Error(`${file}: ${why}; delete it to recompute`);
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
  } catch (err) {
    throw unusable(`not a readable reference cache (${err instanceof Error ? err.message : String(err)})`);
  }
  const wellFormed = typeof parsed === 'object' && parsed !== null && Array.isArray(parsed.ids) && Array.isArray(parsed.values);
  if (!wellFormed || parsed.format !== 'rpo-reference-logps-1' || parsed.key !== key || parsed.values.length !== parsed.ids.length * 6) {
    throw unusable(`not a reference cache for key ${key}`);
  }
  const table: ReferenceTable = new Map();
  parsed.ids.forEach((id, i) => {
    const v = parsed.values.slice(i * 6, i * 6 + 6);
    table.set(id, { chosen: { sum: v[0]!, mean: v[1]!, count: v[2]! }, rejected: { sum: v[3]!, mean: v[4]!, count: v[5]! } });
  });
  return table;
}

export function writeReferenceCache(file: string, key: string, table: ReferenceTable): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const ids = [...table.keys()];
  const values = ids.flatMap((id) => {
    const e = table.get(id)!;
    return [e.chosen.sum, e.chosen.mean, e.chosen.count, e.rejected.sum, e.rejected.mean, e.rejected.count];
  });
  const body: CacheFile = { format: 'rpo-reference-logps-1', key, ids, values };
  writeFileAtomic(file, [Buffer.from(JSON.stringify(body))]);
}

/** Runs the reference model over the examples' chosen and rejected rows, `batchSize` pairs at a time. */
export async function computeReferenceTable(
  reference: Model,
  examples: readonly TokenizedExample[],
  opts: {
    batchSize: number;
    padTokenId: number;
    chunkTokens?: number;
    onProgress?: (done: number, total: number) => void;
    /** false: a LoRA policy's base (its adapters off) is the reference. */
    adapters?: boolean;
  },
): Promise<ReferenceTable> {
  const table: ReferenceTable = new Map();
  const batches = makeBatches(examples, { batchSize: opts.batchSize, groups: 2, seed: 0, shuffle: false, padTokenId: opts.padTokenId });
  let done = 0;
  const total = batches.reduce((s, b) => s + b.nPairs, 0);
  for (const b of batches) {
    const r = await reference.logprobs(b, { chunkTokens: opts.chunkTokens ?? 1024, adapters: opts.adapters ?? true });
    const n = b.nPairs;
    b.exampleIds.forEach((id, i) => {
      table.set(id, {
        chosen: { sum: r.sum[i]!, mean: r.mean[i]!, count: r.count[i]! },
        rejected: { sum: r.sum[n + i]!, mean: r.mean[n + i]!, count: r.count[n + i]! },
      });
    });
    done += n;
    opts.onProgress?.(done, total);
  }
  return table;
}

/** The engine's `reference` argument for a batch, from the table. */
export function referenceForBatch(table: ReferenceTable, exampleIds: readonly string[]): PairLogps {
  const pick = (side: 'chosen' | 'rejected'): RowLogps => {
    const sum = new Float64Array(exampleIds.length);
    const mean = new Float64Array(exampleIds.length);
    const count = new Float64Array(exampleIds.length);
    exampleIds.forEach((id, i) => {
      const e = table.get(id);
      if (!e) throw new Error(`reference log-probs: no entry for example ${id} (the cache does not match the data)`);
      sum[i] = e[side].sum;
      mean[i] = e[side].mean;
      count[i] = e[side].count;
    });
    return { sum, mean, count };
  };
  return { chosen: pick('chosen'), rejected: pick('rejected') };
}
