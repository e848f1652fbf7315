// The public API: `import { ... } from 'rpo'`.
export {
  Model,
  Trainer,
  evaluateLoss,
  setNumThreads,
  maxNumThreads,
  getNumThreads,
  libtorchVersion,
  cudaAvailable,
  cudaDeviceCount,
} from './native.js';
export type {
  Dtype,
  ModelConfig,
  InitOptions,
  RowBatch,
  RowLogps,
  LogpOptions,
  LossName,
  LossConfig,
  PairLogps,
  LossResult,
  TrainerOptions,
  MicroStepOptions,
  StepResult,
  OptimizerStepOptions,
} from './native.js';
export { loadModel, saveModel, type LoadModelOptions, type SaveModelOptions } from './model/io.js';
export { parseHfConfig, loadHfConfig, modelConfigToHf } from './model/config.js';
// LoRA adapters in PEFT's files (docs/lora.md).
export { loadAdapter, saveAdapter, readAdapterConfig, isAdapterDir, type AdapterConfig } from './model/lora.js';
export { loadPolicyModel } from './model/policy.js';
export { mergeAdapter, type MergeOptions } from './model/merge.js';
export type { LoraOptions } from './native.js';

// Runs: configs, training, evaluation, sampling.
export { loadConfig, saveConfig, type RunConfig, type LoadedConfig } from './config/index.js';
export { train, type TrainOptions, type TrainResult } from './train/loop.js';
export { runEval, type EvalResult } from './eval/index.js';
export { Policy, SEED_FORMAT, type PolicyOptions, type SampleOptions } from './policy.js';
export { initModelDir } from './model/init.js';
export { runDemo } from './demo/run.js';

import type { RunConfig as Config } from './config/index.js';
import { runEval as runEvalImpl, type EvalEvents } from './eval/index.js';

/** The loss's metrics over the test split (`rpo eval ++mode=eval`). */
export function evaluate(config: Config, events: EvalEvents = {}) {
  return runEvalImpl({ ...config, mode: 'eval' }, events);
}

/** Policy samples for test prompts (`rpo eval ++mode=sample`). */
export function sample(config: Config, events: EvalEvents = {}) {
  return runEvalImpl({ ...config, mode: 'sample' }, events);
}
export { generateRationales, type RationalesOptions, type RationalesResult } from './rationales/index.js';
