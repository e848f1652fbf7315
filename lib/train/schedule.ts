// The learning-rate schedule and batch arithmetic (docs/design.md "Schedule"); a global
// batch's micro-batch sizes are lib/data/batch/micro_batches.ts.
import type { LrSchedulerType } from '../config/index.js';

/** Linear warmup then constant: lr · min(1, (step + 1) / (warmup_steps + 1)), step from 0. */
export function learningRate(baseLr: number, step: number, warmupSteps: number): number {
  return baseLr * Math.min(1, (step + 1) / (warmupSteps + 1));
}

export interface ScheduleConfig {
  lr: number;
  warmup_steps: number;
  lr_scheduler_type: LrSchedulerType | null;
  warmup_ratio: number | null;
}

/** Warmup steps of a run: ceil(warmup_ratio · total) when warmup_ratio is set (transformers' rule). */
export function warmupSteps(config: ScheduleConfig, totalSteps: number): number {
  return config.warmup_ratio !== null ? Math.ceil(totalSteps * config.warmup_ratio) : config.warmup_steps;
}

/**
 * The learning rate of optimizer step `step` (from 0) of `totalSteps`. lr_scheduler_type null is
 * the seed's LambdaLR; the others are transformers' get_scheduler lambdas (optimization.py), which
 * start warmup at 0: step k < warmup uses k / warmup.
 */
export function scheduledLearningRate(config: ScheduleConfig, step: number, totalSteps: number): number {
  const warmup = warmupSteps(config, totalSteps);
  const type = config.lr_scheduler_type;
  if (type === null) return learningRate(config.lr, step, warmup);
  if (step < warmup) return (config.lr * step) / Math.max(1, warmup);
  const decaySteps = Math.max(1, totalSteps - warmup);
  if (type === 'constant_with_warmup') return config.lr;
  if (type === 'linear') return config.lr * Math.max(0, (totalSteps - step) / decaySteps);
  // cosine, num_cycles 0.5: half a cosine from lr down to 0 over the steps after warmup.
  const progress = (step - warmup) / decaySteps;
  return config.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
}

/** Optimizer steps in a run of `examples` training examples at `batchSize` pairs per step. */
export function totalSteps(examples: number, batchSize: number): number {
  return Math.ceil(examples / batchSize);
}
