// Held-out metrics: the loss's metrics averaged over the test examples, without gradients.
// `rpo train` evaluates with it at every eval_every, `rpo eval ++mode=eval` once.
import { makeBatches, type Groups, type TokenizedExample } from '../data/batch/index.js';
import type { Trainer } from '../native.js';
import { MetricAverager } from './metrics.js';
import { NonFiniteError } from './nonfinite.js';
import { referenceForBatch, type ReferenceTable } from './reference_cache.js';

/** The examples a loss can train on (none of the sequences it reads dropped). */
export function usable(examples: readonly TokenizedExample[], groups: Groups): TokenizedExample[] {
  const kinds = (['chosen', 'rejected', 'rationale'] as const).slice(0, groups);
  return examples.filter((ex) => kinds.every((k) => ex[k] !== undefined && !ex[k]!.dropped));
}

/** Means of the loss's metrics over the test examples (eval_ prefix), without gradients. */
export async function evaluateSplit(
  trainer: Trainer,
  examples: readonly TokenizedExample[],
  opts: { batchSize: number; groups: Groups; padTokenId: number; table: ReferenceTable | null },
): Promise<Record<string, number>> {
  const avg = new MetricAverager();
  for (const b of makeBatches(usable(examples, opts.groups), { batchSize: opts.batchSize, groups: opts.groups, seed: 0, shuffle: false, padTokenId: opts.padTokenId })) {
    const r = await trainer.evalStep(b, { nPairs: b.nPairs, reference: opts.table ? referenceForBatch(opts.table, b.exampleIds) : undefined });
    if (!r.finite) throw new NonFiniteError(-1, b.exampleIds, 'non-finite evaluation loss');
    avg.add({ ...r.metrics, loss: r.loss }, b.nPairs);
  }
  return avg.count > 0 ? avg.mean('eval_') : {};
}
