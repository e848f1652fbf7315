// The ZeRO stages, declared once: what each shards over the ranks of `rpo launch` (RPO_ZERO /
// --zero), and what a rank holds beyond its shards while a micro-step runs. The memory planner
// (lib/plan/estimate.ts) budgets by these rules; docs/distributed.md describes the engine's
// mechanism. Imports nothing: the launcher, the rank's environment and the planner all stand on it.

export const ZERO_STAGES = [0, 1, 2, 3] as const;
export type ZeroStage = (typeof ZERO_STAGES)[number];
/** The highest stage: the bound of `--zero` and RPO_ZERO. */
export const MAX_ZERO_STAGE = Math.max(...ZERO_STAGES) as ZeroStage;

/** What one stage shards over the ranks (each rank keeps 1/N of it). */
export interface ZeroRule {
  /** The optimizer's state (AdamW's moments, RMSprop's square average). */
  optimizerState: boolean;
  /** bf16-mixed's fp32 master weights (they live with the optimizer state). */
  masterWeights: boolean;
  /** The gradients: each reduced to its owner, then freed by the other ranks. */
  gradients: boolean;
  /** The weights themselves (the policy's, and a live reference model's). */
  weights: boolean;
  /** One line for `rpo plan` and the docs. */
  summary: string;
}

export const ZERO_RULES: Readonly<Record<ZeroStage, ZeroRule>> = {
  0: { optimizerState: false, masterWeights: false, gradients: false, weights: false, summary: 'nothing sharded: every rank holds the whole model, its gradients and optimizer state' },
  1: { optimizerState: true, masterWeights: true, gradients: false, weights: false, summary: 'optimizer state and master weights sharded' },
  2: { optimizerState: true, masterWeights: true, gradients: true, weights: false, summary: 'optimizer state, master weights and gradients sharded' },
  3: { optimizerState: true, masterWeights: true, gradients: true, weights: true, summary: 'optimizer state, master weights, gradients and weights sharded; each layer gathered whole to run' },
};

/**
 * Gradient buckets (native/parallel/grad_sync.cpp): float32 buffers of about this many bytes,
 * each reduced while backward goes on with earlier layers.
 */
export const GRAD_BUCKET_BYTES = 25 * 2 ** 20;

/**
 * Buckets whose gradients a ZeRO-2 rank still holds at once beyond its own shard: the one being
 * reduced to its owner and the one filling behind it (each is freed when its reduce completes).
 */
export const ZERO2_BUCKETS_IN_FLIGHT = 2;

/**
 * Decoder layers whose full parameters a ZeRO-3 rank holds at once: the layer computing and the
 * next one, whose all-gather is prefetched to overlap it. Their full gradients likewise: the
 * layer whose gradient is being reduce-scattered and the one whose backward produces the next.
 */
export const ZERO3_LAYERS_GATHERED = 2;

/** Parses a stage from a flag or variable; throws a RangeError naming what was given. */
export function parseZeroStage(text: string, name: string): ZeroStage {
  const n = Number(text.trim());
  if (!/^\s*\d+\s*$/.test(text) || !(ZERO_STAGES as readonly number[]).includes(n)) {
    throw new RangeError(`${name}: expected one of ${ZERO_STAGES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return n as ZeroStage;
}
