// The reference log-prob precompute, sharded over the ranks: the examples are cut into the
// batches one process would run (batchSize pairs, in order), rank r runs batches r, r + world, ...
// (the same batches, so the same padding and the same numbers), and the table is put together
// with one all-reduce of a dense [examples × 6] array (zeros where a rank has nothing: x + 0 = x).
import type { TokenizedExample } from '../data/batch/index.js';
import type { Model } from '../native.js';
import { computeReferenceTable, type ReferenceTable } from '../train/reference_cache.js';
import type { Parallel } from './context.js';

export async function computeReferenceTableSharded(
  par: Parallel,
  reference: Model,
  examples: readonly TokenizedExample[],
  opts: { batchSize: number; padTokenId: number; chunkTokens?: number; adapters?: boolean },
): Promise<ReferenceTable> {
  if (!par.distributed) return computeReferenceTable(reference, examples, opts);
  const mine: TokenizedExample[] = [];
  for (let start = 0, b = 0; start < examples.length; start += opts.batchSize, b++)
    if (b % par.worldSize === par.rank) mine.push(...examples.slice(start, start + opts.batchSize));
  const local = await computeReferenceTable(reference, mine, opts);
  const dense = new Array<number>(examples.length * 6).fill(0);
  examples.forEach((ex, i) => {
    const e = local.get(ex.id);
    if (!e) return;
    dense.splice(i * 6, 6, e.chosen.sum, e.chosen.mean, e.chosen.count, e.rejected.sum, e.rejected.mean, e.rejected.count);
  });
  const all = await par.sum(dense);
  const table: ReferenceTable = new Map();
  examples.forEach((ex, i) => {
    const v = all.slice(i * 6, i * 6 + 6);
    table.set(ex.id, { chosen: { sum: v[0]!, mean: v[1]!, count: v[2]! }, rejected: { sum: v[3]!, mean: v[4]!, count: v[5]! } });
  });
  return table;
}
