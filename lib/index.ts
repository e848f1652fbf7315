// The public API: `import { ... } from 'rpo'`.
export {
  Model,
  Trainer,
  evaluateLoss,
  setNumThreads,
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
