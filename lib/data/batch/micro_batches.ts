// How a global batch divides into micro-batches: read by the training loop and by each
// data-parallel rank (lib/parallel/context.ts), which is why it sits with the data, below both.

/**
 * Splits a global batch of `pairs` into `accumulation` micro-batches of near-equal size and
 * returns their sizes; the loss of each is scaled by its size / pairs so the accumulated
 * gradient equals the full batch's mean.
 */
export function microBatchSizes(pairs: number, accumulation: number): number[] {
  const n = Math.max(1, Math.min(accumulation, pairs));
  const base = Math.floor(pairs / n);
  const extra = pairs % n;
  return Array.from({ length: n }, (_, i) => base + (i < extra ? 1 : 0));
}
