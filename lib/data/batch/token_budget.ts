// Token-budget micro-batches (model.tokens_per_micro_batch): how a global batch is cut by real
// tokens instead of into equal pair counts, and how data-parallel ranks share it with balanced
// token counts. Pure functions of the pairs' token counts, so every rank (and `rpo data`)
// computes the same cut. Beside micro_batches.ts, below the train loop and lib/parallel.
//
// The cut never changes the update: each micro-step's loss is scaled by its pairs / the global
// batch's pairs (lib/train/loop.ts), so unequal micro-batches still sum to the global batch's
// mean, and the gradient is the same whatever the cut, within fp32 rounding.

/**
 * Sizes (in pairs, in order) of the micro-batches a run of pairs with these token counts is cut
 * into: each takes the next pairs while their tokens stay within `budget`; a pair longer than
 * the budget gets a micro-batch of its own. Order is kept: the cut is a function of the batch.
 */
export function budgetCut(tokens: readonly number[], budget: number): number[] {
  if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`tokens_per_micro_batch must be a positive integer, got ${budget}`);
  const sizes: number[] = [];
  let pairs = 0;
  let used = 0;
  for (const t of tokens) {
    if (pairs > 0 && used + t > budget) {
      sizes.push(pairs);
      pairs = 0;
      used = 0;
    }
    pairs += 1;
    used += t;
  }
  if (pairs > 0) sizes.push(pairs);
  return sizes;
}

/**
 * Sizes (in pairs, in order) of `parts` contiguous shards of a global batch with these token
 * counts, each as near as whole pairs allow to an equal share of the tokens: shard r ends at
 * the pair boundary nearest to (r + 1) / parts of the tokens. A shard may be empty (fewer
 * pairs than parts, or one pair holding most of the tokens).
 */
export function balancedShards(tokens: readonly number[], parts: number): number[] {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`parts must be a positive integer, got ${parts}`);
  const prefix = [0];
  for (const t of tokens) prefix.push(prefix[prefix.length - 1]! + t);
  const total = prefix[prefix.length - 1]!;
  const sizes: number[] = [];
  let start = 0;
  for (let r = 0; r < parts; r++) {
    let end = tokens.length;
    if (r < parts - 1) {
      const target = (total * (r + 1)) / parts;
      // The first boundary at or past the target, or the one before it when that is nearer.
      end = start;
      while (end < tokens.length && prefix[end]! < target) end += 1;
      if (end > start && target - prefix[end - 1]! < prefix[end]! - target) end -= 1;
    }
    sizes.push(end - start);
    start = end;
  }
  return sizes;
}
