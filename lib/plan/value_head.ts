// loss=ppo's value head in the memory plan: the seed's ValueHead (native/model/value_head.h),
// Linear(H, H), Linear(H, H), Linear(H, 1) with biases, kept in fp32 under every precision with
// fp32 gradients and its own torch::optim optimizer (native/train/ppo_step.cpp): AdamW's two fp32
// moments, or RMSprop's one square average. ppo trains on one device (no sharding).
import type { TrainerOptions } from '../native.js';

export interface ValueHeadBudget {
  /** Parameters: 2·H² + 3·H + 1. */
  parameters: number;
  /** fp32 weights, 4 B/param. */
  weights: number;
  /** fp32 gradients, 4 B/param. */
  gradients: number;
  /** AdamW 8 B/param, RMSprop 4 B/param (fp32 moments). */
  optimizerState: number;
}

/** The value head's persistent bytes for a model of hidden size `hidden`. */
export function valueHeadBudget(hidden: number, optimizer: NonNullable<TrainerOptions['optimizer']>): ValueHeadBudget {
  const parameters = 2 * hidden * hidden + 3 * hidden + 1;
  return {
    parameters,
    weights: 4 * parameters,
    gradients: 4 * parameters,
    optimizerState: (optimizer === 'RMSprop' ? 4 : 8) * parameters,
  };
}

/** Its total: weights + gradients + optimizer state. */
export function valueHeadBytes(b: ValueHeadBudget): number {
  return b.weights + b.gradients + b.optimizerState;
}
