// The learning-rate schedule and batch arithmetic (docs/design.md "Schedule").

/** Linear warmup then constant: lr · min(1, (step + 1) / (warmup_steps + 1)), step from 0. */
export function learningRate(baseLr: number, step: number, warmupSteps: number): number {
  return baseLr * Math.min(1, (step + 1) / (warmupSteps + 1));
}

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

/** Optimizer steps in a run of `examples` training examples at `batchSize` pairs per step. */
export function totalSteps(examples: number, batchSize: number): number {
  return Math.ceil(examples / batchSize);
}
