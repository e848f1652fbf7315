// Loads the addon (build/Release/rpo.node) and gives it types. The raw classes reject a second
// call while one is in flight; the wrappers here queue calls per object instead, so scripts can
// fire calls without awaiting each one and still get them run in order.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { lossHasValueHead } from './loss/table.js';
import { VALUE_HEAD_FILE, checkValueHeadFile } from './model/value_head.js';
import { packageRoot } from './util/package.js';

import type { Dtype, GenerateOptions, InitOptions, LogpOptions, LoraOptions, LossConfig, ModelConfig, TrainerOptions } from './gen/options.js';

// The option structs are declared once (boundary/options.mjs) and generated (lib/gen/options.ts).
export type * from './gen/options.js';

/** One tensor's bytes in a file: absolute offsets [begin, end). */
// A safetensors file's tensors and parameters: declared beside the file format's reader.
export type { ParamInfo, TensorSpec } from './model/safetensors.js';
import { DEFAULT_MAX_SHARD_BYTES, type ParamInfo, type TensorSpec, type WritableTensor } from './model/safetensors.js';

/**
 * Rows of token ids padded to seqLen, row-major. lossMask[r*seqLen + t] = 1 marks token t of
 * row r as a label (predicted from position t - 1); attentionMask marks real tokens.
 */
export interface RowBatch {
  rows: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Uint8Array;
  lossMask: Uint8Array;
  /** Unpaired losses (kto, kto-simple, kto-zero): per example (the first rows), 1 desirable, 0 undesirable. */
  desirable?: Uint8Array;
}

export interface RowLogps {
  sum: Float64Array;
  mean: Float64Array;
  count: Float64Array;
}

/** ppo's token-level inputs for evaluatePpo: [rows, T] row-major, masks 1 on response tokens. */
export interface PpoTokens {
  rows: number;
  T: number;
  logps: Float64Array;
  refLogps: Float64Array;
  values: Float64Array;
  oldValues: Float64Array;
  masks: Float64Array;
  /** Per row: +1 desirable, -1 undesirable. */
  scores: Float64Array;
}

export interface PpoResult {
  loss: number;
  metrics: Record<string, number>;
  gradLogps: Float64Array;
  gradValues: Float64Array;
  advantages: Float64Array;
  discountedFutureRewards: Float64Array;
}

export interface PairLogps {
  chosen: RowLogps;
  rejected?: RowLogps;
  rationale?: RowLogps;
  /** Unpaired losses: per example (chosen holds the examples; kto's rejected, the KL rows), 1 desirable. */
  desirable?: Uint8Array;
}

/** One row of the engine's table of losses (native/loss/table.cpp). */
export interface EngineLossDecl {
  name: string;
  formula: string;
  layout: string;
  needsReference: boolean;
  policyMean: boolean;
  referenceMean: boolean;
  rationale: string;
  valueHead: boolean;
  /** The parameters it reads. */
  params: string[];
}

export interface LossResult {
  loss: number;
  metrics: Record<string, number>;
  /** d loss / d input: keys "chosen.sum", "chosen.mean", "rejected.sum", ... */
  grads: Record<string, Float64Array>;
}

export interface MicroStepOptions {
  nPairs: number;
  /** Multiplies the loss before backward: pairs in this micro-batch / pairs in the global batch. */
  scale?: number;
  /** Precomputed reference log-probs for the chosen and rejected rows. */
  reference?: PairLogps;
}

export interface StepResult {
  loss: number;
  /**
   * false: the loss was NaN or infinite. It is read after backward (one device-to-host copy per
   * micro-step): the micro-step's gradients are dropped when there were none before it (the usual
   * case), else the accumulated ones are poisoned and the next optimizerStep skips its update.
   */
  finite: boolean;
  metrics: Record<string, number>;
  tokens: number;
  nPairs: number;
}

export interface OptimizerStepOptions {
  lr: number;
  /** <= 0: no clipping. */
  maxGradNorm?: number;
}

/** How far a generate call has got: prompts finished, and their tokens. */
export interface GenerateProgress {
  prompts: number;
  tokens: number;
}

export interface GenerateResult {
  tokens: Int32Array[];
  finishReasons: ('stop' | 'length')[];
  /** Decode steps the call ran (0 without the cache). */
  steps: number;
  /** Rows computed, summed over the decode steps: running rows and the idle slots computed beside them. */
  rowSteps: number;
  /** Decode steps replayed from a CUDA graph (0 on the CPU, and with RPO_CUDA_GRAPHS=0). */
  graphReplays: number;
}

interface RawModel {
  readonly config: ModelConfig;
  readonly dtype: Dtype;
  readonly device: string;
  readonly numParameters: number;
  params(): ParamInfo[];
  load(tensors: TensorSpec[]): Promise<void>;
  save(file: string, header: string, names: string[]): Promise<void>;
  saveSafetensors(dir: string, maxShardBytes: number): Promise<void>;
  logits(batch: RowBatch): Promise<Float32Array>;
  logprobs(batch: RowBatch, options?: LogpOptions): Promise<RowLogps>;
  generate(prompts: Int32Array[], options: GenerateOptions): Promise<GenerateResult>;
  generateProgress(): GenerateProgress | undefined;
  dispose(): void;
  addLora(options: LoraOptions): Promise<void>;
  adapterParams(): ParamInfo[];
  loadAdapters(tensors: TensorSpec[]): Promise<void>;
  mergeLora(): Promise<void>;
}

interface RawTrainer {
  microStep(batch: RowBatch, options: MicroStepOptions): Promise<StepResult>;
  evalStep(batch: RowBatch, options: MicroStepOptions): Promise<StepResult>;
  optimizerStep(options: OptimizerStepOptions): Promise<{ gradNorm: number }>;
  gradSnapshot(names: string[]): Promise<Float64Array>;
  saveState(file: string, maxShardBytes: number): Promise<void>;
  loadState(file: string): Promise<string[]>;
  loadValueHead(dir: string): Promise<void>;
  ppoPrepare(batches: RowBatch[]): Promise<void>;
  dispose(): void;
}

/** One CUDA device as the CUDA runtime reports it (name etc. empty when the kernels were not built). */
export interface CudaDevice {
  index: number;
  /** "" when unknown (an addon built without nvcc). */
  name: string;
  /** Compute capability, "9.0"; "0.0" when unknown. */
  capability: string;
  /** Bytes; 0 when unknown. */
  totalMemory: number;
  multiprocessors: number;
}

export interface CudaInfo {
  /** This LibTorch has CUDA and the addon links it. */
  built: boolean;
  /** native/kernels/*.cu were compiled in (the fused log-prob head's CUDA kernels). */
  kernels: boolean;
  /** Generation's decode step can replay CUDA graphs (CUDA's runtime headers were complete at build time). */
  graphs: boolean;
  /** A device is usable now. */
  available: boolean;
  /** CUDA runtime version, "13.0"; "" when unknown. */
  runtimeVersion: string;
  /** The newest CUDA the driver supports, "13.0"; "" when unknown. */
  driverVersion: string;
  /** fp32 matmuls on CUDA may use TF32. */
  tf32: boolean;
  devices: CudaDevice[];
}

/** The CUDA caching allocator's counters for one device, in bytes. */
export interface CudaMemoryStats {
  allocated: number;
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  /** The device's free and total memory (cudaMemGetInfo). */
  free: number;
  total: number;
}

interface Addon {
  Model: { create(config: ModelConfig, options: InitOptions): Promise<RawModel> };
  Trainer: (new (policy: RawModel, reference: RawModel | null, options: TrainerOptions) => RawTrainer) & {
    stochasticRoundBf16(values: Float32Array, seed: number): Float32Array;
  };
  evaluateLoss(config: LossConfig, policy: PairLogps, reference: PairLogps | null): LossResult;
  evaluatePpo(config: LossConfig, tokens: PpoTokens): PpoResult;
  warpLogits(logits: Float32Array, context: Int32Array[], options: GenerateOptions): Float32Array;
  readSafetensorsRanges(tensors: TensorSpec[], ranges: TensorRange[]): Promise<Float32Array>;
  writeSafetensors(dir: string, tensors: WritableTensor[], options: { maxShardBytes: number; stem?: string }): Promise<void>;
  lossTable(): EngineLossDecl[];
  setNumThreads(n: number): void;
  maxNumThreads(): number;
  defaultNumThreads(): number;
  getNumThreads(): number;
  libtorchVersion(): string;
  cpuGemmBackend(): string;
  setCpuGemmBackend(name: string): string;
  cpuFewRowKernel(): boolean;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaInfo(): CudaInfo;
  cudaMemoryStats(device?: number): CudaMemoryStats;
  resetCudaPeakMemory(device?: number): void;
  setAllowTF32(allow: boolean): void;
  allowTF32(): boolean;
}

const projectRoot = packageRoot();

// RPO_BUILD_DIR: a build directory other than build/ (one per engineer when several build the
// engine in one checkout at once: two ninja runs in one directory would trample each other).
export const addonPath = path.join(path.resolve(projectRoot, process.env.RPO_BUILD_DIR || 'build'), 'Release', 'rpo.node');

let cached: Addon | undefined;

/** The addon, loaded on first use; a missing build is an error that says how to build it. */
export function addon(): Addon {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    throw new Error(`rpo: the native addon is not built (${addonPath} is missing). Run \`npm run setup\` or \`npm run build:native\`.`);
  }
  const require = createRequire(import.meta.url);
  const loaded = require(addonPath) as Addon;
  // Threads: RPO_NUM_THREADS, else the physical cores (OMP_NUM_THREADS when set), LibTorch's
  // default: a GEMM-bound step gains nothing from a core's second hardware thread.
  const env = process.env.RPO_NUM_THREADS?.trim();
  const threads = env ? checkThreadCount(Number(env), `RPO_NUM_THREADS=${env}`, loaded.maxNumThreads()) : loaded.defaultNumThreads();
  loaded.setNumThreads(Math.min(threads, loaded.maxNumThreads()));
  cached = loaded;
  return cached;
}

/**
 * A thread count from 1 to `max` (the engine's cap, 4 x the hardware threads: libgomp kills the
 * process when asked for many more threads than it can start), else a RangeError naming `what`.
 */
function checkThreadCount(n: number, what: string, max: number): number {
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RangeError(`${what}: the thread count must be an integer from 1 to ${max} (4 x this machine's hardware threads), got ${n}`);
  }
  return n;
}

/**
 * Token ids generate would feed to the model must be inside its vocabulary: on CUDA an
 * out-of-range id is a device-side assert that poisons the process. The engine checks too;
 * here the message uses the option names a caller wrote.
 */
function checkGenerateIds(prompts: readonly Int32Array[], options: GenerateOptions, vocab: number): void {
  const outside = (what: string, id: number): RangeError =>
    new RangeError(`generate: ${what} ${id} is outside the vocabulary [0, ${vocab}) of this model`);
  // Non-integers (NaN, 2.5) are left to the engine, whose message says "must be an integer".
  const isOutside = (id: unknown): id is number => Number.isInteger(id) && ((id as number) < 0 || (id as number) >= vocab);
  if (isOutside(options.padTokenId)) throw outside('padTokenId (pad_token_id)', options.padTokenId);
  (Array.isArray(options.stopTokenIds) ? options.stopTokenIds : []).forEach((id, i) => {
    if (isOutside(id)) throw outside(`stopTokenIds[${i}] (eos / stop token)`, id);
  });
  prompts.forEach((prompt, r) => {
    if (!(prompt instanceof Int32Array)) return; // the engine names the wrong type
    const t = prompt.findIndex((id) => id < 0 || id >= vocab);
    if (t >= 0) throw outside(`prompt ${r}, token ${t}: id`, prompt[t] ?? NaN);
  });
}

/** Runs async calls on one native object one after another. */
class CallQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(call: () => Promise<T>): Promise<T> {
    const next = this.tail.then(call, call);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** A Llama-family causal LM held by the engine. */
export class Model {
  private readonly queue = new CallQueue();
  private constructor(readonly raw: RawModel) {}

  /**
   * A model with random weights (normal(0, initializer_range), norms 1, biases 0) from `seed`;
   * with `init: false`, unwritten weights that `load` must fill.
   */
  static async create(config: ModelConfig, options: InitOptions = {}): Promise<Model> {
    return new Model(await addon().Model.create(config, options));
  }

  get config(): ModelConfig { return this.raw.config; }
  get dtype(): Dtype { return this.raw.dtype; }
  get device(): string { return this.raw.device; }
  get numParameters(): number { return this.raw.numParameters; }
  params(): ParamInfo[] { return this.raw.params(); }

  load(tensors: TensorSpec[]): Promise<void> { return this.queue.run(() => this.raw.load(tensors)); }
  save(file: string, header: string, names: string[]): Promise<void> {
    return this.queue.run(() => this.raw.save(file, header, names));
  }
  /**
   * The weights as transformers' save_pretrained writes them into `dir`: model.safetensors, or
   * shards of at most `maxShardBytes` + model.safetensors.index.json; streamed tensor by tensor,
   * each file atomic, the index last.
   */
  saveSafetensors(dir: string, maxShardBytes: number): Promise<void> {
    return this.queue.run(() => this.raw.saveSafetensors(dir, maxShardBytes));
  }
  logits(batch: RowBatch): Promise<Float32Array> { return this.queue.run(() => this.raw.logits(batch)); }
  logprobs(batch: RowBatch, options: LogpOptions = {}): Promise<RowLogps> {
    return this.queue.run(() => this.raw.logprobs(batch, options));
  }
  /**
   * Generation from token-id prompts with a KV cache: `slots` rows decode at once and a finished
   * row's slot takes the next prompt. onProgress is called about every `progressMs` while it runs.
   */
  generate(prompts: Int32Array[], options: GenerateOptions, onProgress?: (p: GenerateProgress) => void, progressMs = 1000): Promise<GenerateResult> {
    return this.queue.run(async () => {
      checkGenerateIds(prompts, options, this.config.vocab_size);
      const call = this.raw.generate(prompts, options);
      if (!onProgress) return call;
      const timer = setInterval(() => {
        const p = this.raw.generateProgress();
        if (p) onProgress(p);
      }, progressMs);
      try {
        return await call;
      } finally {
        clearInterval(timer);
      }
    });
  }
  /** Adds LoRA adapters to the targeted linears and freezes the base (only adapters train). */
  addLora(options: LoraOptions): Promise<void> { return this.queue.run(() => this.raw.addLora(options)); }
  /** The adapters' tensors under PEFT's keys (base_model.model.<module>.lora_A.weight); [] without LoRA. */
  adapterParams(): ParamInfo[] { return this.raw.adapterParams(); }
  loadAdapters(tensors: TensorSpec[]): Promise<void> { return this.queue.run(() => this.raw.loadAdapters(tensors)); }
  /** W += scaling * B A in every adapted linear; the adapters are gone after. */
  mergeLora(): Promise<void> { return this.queue.run(() => this.raw.mergeLora()); }
  /** Frees the weights now rather than at garbage collection. Later calls throw. */
  dispose(): void { this.raw.dispose(); }
}

/** Owns the optimizer; runs micro-steps and optimizer steps on a policy (and reference). */
export class Trainer {
  private readonly queue = new CallQueue();
  private readonly raw: RawTrainer;
  /** A loss with a value head (ppo): the policy's hidden size, which the value head's shapes follow; else null. */
  private readonly valueHeadHidden: number | null;

  constructor(policy: Model, reference: Model | null, options: TrainerOptions) {
    this.raw = new (addon().Trainer)(policy.raw, reference?.raw ?? null, options);
    this.valueHeadHidden = lossHasValueHead(options.loss.name) ? policy.config.hidden_size : null;
  }

  /** loss=ppo: `dir`'s value_head.safetensors parsed and checked here, so the engine copies only bytes it was told are right. */
  private checkValueHead(dir: string, shapes: boolean): void {
    if (this.valueHeadHidden !== null) checkValueHeadFile(path.join(dir, VALUE_HEAD_FILE), shapes ? this.valueHeadHidden : null);
  }

  microStep(batch: RowBatch, options: MicroStepOptions): Promise<StepResult> {
    return this.queue.run(() => this.raw.microStep(batch, options));
  }
  /** The loss and metrics of a batch without gradients (evaluation). `scale` is ignored. */
  evalStep(batch: RowBatch, options: MicroStepOptions): Promise<StepResult> {
    return this.queue.run(() => this.raw.evalStep(batch, options));
  }
  optimizerStep(options: OptimizerStepOptions): Promise<{ gradNorm: number }> {
    return this.queue.run(() => this.raw.optimizerStep(options));
  }
  /** The named parameters' gradients, concatenated, as float64 (tests). */
  gradSnapshot(names: string[]): Promise<Float64Array> { return this.queue.run(() => this.raw.gradSnapshot(names)); }
  /** The optimizer's state (moments, step counts, master weights, the SR generator), written atomically. */
  /**
   * The optimizer state into `file` (optimizer.pt) and, for AdamW, its moments and masters beside
   * it, streamed into optimizer.safetensors or shards of at most maxShardBytes + index.
   */
  saveState(file: string, maxShardBytes: number = DEFAULT_MAX_SHARD_BYTES): Promise<void> {
    return this.queue.run(() => this.raw.saveState(file, maxShardBytes));
  }
  /**
   * Reads back what saveState wrote; resolves to warnings (loss=ppo: a checkpoint without the
   * value head's optimizer state resumes with fresh moments).
   */
  loadState(file: string): Promise<string[]> {
    return this.queue.run(() => {
      this.checkValueHead(path.dirname(file), false);
      return this.raw.loadState(file);
    });
  }
  /** loss=ppo: the value head from `<dir>/value_head.safetensors` (evaluating a ppo checkpoint). */
  loadValueHead(dir: string): Promise<void> {
    return this.queue.run(() => {
      this.checkValueHead(dir, true);
      return this.raw.loadValueHead(dir);
    });
  }
  /**
   * loss=ppo: the gradient-free pass (reference log-probs, values, GAE) of an optimizer step's
   * micro-batches, their advantages whitened over all of them, as the seed whitened over its
   * batch; then microStep each, in this order.
   */
  ppoPrepare(batches: RowBatch[]): Promise<void> { return this.queue.run(() => this.raw.ppoPrepare(batches)); }
  dispose(): void { this.raw.dispose(); }

  /** bf16-sr's stochastic rounding of each value to bfloat16, returned as float32 (tests). */
  static stochasticRoundBf16(values: Float32Array, seed = 0): Float32Array {
    return addon().Trainer.stochasticRoundBf16(values, seed);
  }
}

/** The built engine's table of losses (tests check it against lib/gen/loss_table.ts, made from the same declaration). */
export function engineLossTable(): EngineLossDecl[] {
  return addon().lossTable();
}

/** A loss and its gradients on given log-probs, in float64 (tests and scripts). */
export function evaluateLoss(config: LossConfig, policy: PairLogps, reference: PairLogps | null = null): LossResult {
  return addon().evaluateLoss(config, policy, reference);
}

/** ppo's targets, loss, metrics and gradients on given token-level tensors, in float64 (tests). */
export function evaluatePpo(config: LossConfig, tokens: PpoTokens): PpoResult {
  return addon().evaluatePpo(config, tokens);
}

/**
 * The sampler's logits processors (repetition penalty, temperature, top-k, top-p) on fp32 logits
 * [context.length, vocab]; context[r]: row r's prompt and tokens so far. Removed tokens are -Infinity.
 */
export function warpLogits(logits: Float32Array, context: Int32Array[], options: GenerateOptions): Float32Array {
  return addon().warpLogits(logits, context, options);
}

/** One tensor's element range [start, end) of its row-major flattening. */
export interface TensorRange {
  name: string;
  start: number;
  end: number;
}

/**
 * The engine's ranged reader: each range of a checkpoint's tensors (validated specs, from
 * resolveCheckpoint) read with only its bytes, converted to float32, concatenated in order.
 */
export function readSafetensorsRanges(tensors: TensorSpec[], ranges: TensorRange[]): Promise<Float32Array> {
  return addon().readSafetensorsRanges(tensors, ranges);
}

/**
 * The engine's streamed writer over tensors held as bytes (state-dict order): the layout
 * transformers writes under `stem` (default model), shards of at most maxShardBytes. A tensor
 * whose bytes do not fit its shape fails the write when its turn comes, leaving `dir` as it was.
 */
export function writeSafetensors(dir: string, tensors: WritableTensor[], options: { maxShardBytes: number; stem?: string }): Promise<void> {
  return addon().writeSafetensors(dir, tensors, options);
}

/** Intra-op threads for the engine: an integer from 1 to maxNumThreads(), else a RangeError. */
export function setNumThreads(n: number): void {
  const a = addon();
  a.setNumThreads(checkThreadCount(n, `setNumThreads(${n})`, a.maxNumThreads()));
}
/** The most threads setNumThreads accepts: 4 x the hardware threads. */
export function maxNumThreads(): number { return addon().maxNumThreads(); }
/** The engine's thread count when RPO_NUM_THREADS is not set: the physical cores (OMP_NUM_THREADS when set). */
export function defaultNumThreads(): number { return addon().defaultNumThreads(); }
export function getNumThreads(): number { return addon().getNumThreads(); }
export function libtorchVersion(): string { return addon().libtorchVersion(); }
/** What fp32 CPU matrix products use in this process: oneDNN or ATen's (MKL); see RPO_CPU_GEMM. */
export function cpuGemmBackend(): 'onednn' | 'aten' {
  return addon().cpuGemmBackend() === 'onednn' ? 'onednn' : 'aten';
}
/** Fixes the backend of this process's fp32 CPU products (auto: RPO_CPU_GEMM, else oneDNN where usable) and returns the one in use (aten where oneDNN was asked for and is not usable). */
export function setCpuGemmBackend(name: 'auto' | 'onednn' | 'aten'): 'onednn' | 'aten' {
  return addon().setCpuGemmBackend(name) === 'onednn' ? 'onednn' : 'aten';
}
/** Whether fp32 CPU products of at most 16 rows (decode steps) run the AVX-512 few-row kernels (RPO_CPU_SKINNY=0: off). */
export function cpuFewRowKernel(): boolean { return addon().cpuFewRowKernel(); }
export function cudaAvailable(): boolean { return addon().cudaAvailable(); }
export function cudaDeviceCount(): number { return addon().cudaDeviceCount(); }
/** CUDA as the addon sees it: built, kernels, versions, devices. */
export function cudaInfo(): CudaInfo { return addon().cudaInfo(); }
/** The CUDA caching allocator's counters (needs a CUDA device; LibTorch >= 2.10). */
export function cudaMemoryStats(device = 0): CudaMemoryStats { return addon().cudaMemoryStats(device); }
export function resetCudaPeakMemory(device = 0): void { addon().resetCudaPeakMemory(device); }
/** TF32 for fp32 matmuls on CUDA: on by default where a GPU is present (RPO_ALLOW_TF32=0: off). */
export function setAllowTF32(allow: boolean): void { addon().setAllowTF32(allow); }
export function allowTF32(): boolean { return addon().allowTF32(); }
