// Held-out metrics: the loss's metrics averaged over the test examples, without gradients.
// `rpo train` evaluates with it at every eval_every, `rpo eval ++mode=eval` once.
import { makeBatches, type Groups, type TokenizedExample } from '../data/batch/index.js';
import type { LossName, Trainer } from '../native.js';
import type { Parallel } from '../parallel/context.js';
import { MetricAverager } from './metrics.js';
import { NonFiniteError } from './nonfinite.js';
import { referenceForBatch, type ReferenceTable } from './reference_cache.js';
import { isUnpairedItem, unpairedEvalBatches } from './unpaired.js';

/** The examples a loss can train on (none of the sequences it reads dropped). */
export function usable(examples: readonly TokenizedExample[], groups: Groups): TokenizedExample[] {
  const kinds = (['chosen', 'rejected', 'rationale'] as const).slice(0, groups);
  return examples.filter((ex) => kinds.every((k) => ex[k] !== undefined && !ex[k]!.dropped));
}

/** Means of the loss's metrics over the test examples (eval_ prefix), without gradients. */
export async function evaluateSplit(
  trainer: Trainer,
  examples: readonly TokenizedExample[],
  opts: {
    batchSize: number;
    groups: Groups;
    padTokenId: number;
    table: ReferenceTable | null;
    unpaired?: { loss: LossName; maxLength: number };
    par?: Parallel;
    metricNames?: readonly string[];
  },
): Promise<Record<string, number>> {
  const avg = new MetricAverager();
  const u = opts.unpaired;
  const batches = u
    ? unpairedEvalBatches(u.loss, examples.filter(isUnpairedItem), opts.batchSize, { padTokenId: opts.padTokenId, maxLength: u.maxLength })
    : makeBatches(usable(examples, opts.groups), { batchSize: opts.batchSize, groups: opts.groups, seed: 0, shuffle: false, padTokenId: opts.padTokenId });
  // Data parallel: rank r evaluates batches r, r + world, ...; the sums are added over the ranks.
  const par = opts.par?.distributed ? opts.par : null;
  let bad: string[] | null = null;
  for (const [i, b] of batches.entries()) {
    if (par && i % par.worldSize !== par.rank) continue;
    const r = await trainer.evalStep(b, { nPairs: b.nPairs, reference: opts.table ? referenceForBatch(opts.table, b.exampleIds) : undefined });
    if (!r.finite) {
      if (!par) throw new NonFiniteError(-1, b.exampleIds, 'non-finite evaluation loss');
      bad ??= b.exampleIds;
    }
    avg.add({ ...r.metrics, loss: r.loss }, b.nPairs);
  }
  // ZeRO-3: every rank runs ceil(batches / world) forwards (each gathers the layers from all
  // ranks); a rank with one batch fewer repeats the first and drops its result.
  if (par?.lockstep && batches.length > 0) {
    const mine = Math.ceil((batches.length - par.rank) / par.worldSize);
    for (let k = Math.max(0, mine); k < Math.ceil(batches.length / par.worldSize); k++) {
      const b = batches[0]!;
      await trainer.evalStep(b, { nPairs: b.nPairs, reference: opts.table ? referenceForBatch(opts.table, b.exampleIds) : undefined });
    }
  }
  if (!par) return avg.count > 0 ? avg.mean('eval_') : {};
  const names = [...(opts.metricNames ?? []), 'loss'];
  const local = avg.count > 0 ? avg.mean() : {};
  const sums = await par.sum([avg.count, bad ? 1 : 0, ...names.map((k) => (local[k] ?? 0) * avg.count)]);
  if (sums[1]! > 0) throw new NonFiniteError(-1, bad ?? [], bad ? 'non-finite evaluation loss' : 'non-finite evaluation loss on another rank');
  const out: Record<string, number> = {};
  if (sums[0]! > 0) names.forEach((k, i) => (out[`eval_${k}`] = sums[2 + i]! / sums[0]!));
  return out;
}

