// `rpo train`: the run loop (the engine it drives: engine.ts). TS owns the schedule (learning rate per step, accumulation
// boundaries, when to evaluate, log and checkpoint); the engine owns every tensor.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';

import { engineLossConfig, lossEvalBatchSize, saveConfig, type RunConfig } from '../config/index.js';
import { examplesPerEpoch, type Batch, type Groups, type TokenizedExample } from '../data/batch/index.js';
import { peakRssBytes } from '../memory.js';
import { lossGroups, lossHasValueHead, lossIsUnpaired, lossUsesControlTokens, lossUsesReference } from '../loss/table.js';
import { loadHfConfig } from '../model/config.js';
import { setCpuGemmBackend, setNumThreads, type StepResult } from '../native.js';
import { agree, configFingerprint, objectFingerprint } from '../parallel/agree.js';
import { Parallel, type StepTotals } from '../parallel/context.js';
import { distEnv } from '../parallel/env.js';
import { sampleSharded } from '../parallel/sampling.js';
import { refuseUnsupportedZero3 } from '../parallel/support.js';
import { rowPrompt, type SamplePrompt } from '../eval/sampling.js';
import { findCheckpoint, noCheckpointReason, readTrainerState, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { epochBatches, lossExamples, rankMicroBatches } from './batches.js';
import { csftRunModel } from './csft.js';
import { buildRunData, dataFingerprint, loadDatasetRows, type RunData } from './data.js';
import { resolveDevice } from './device.js';
import { buildEngine, disposeEngine, lossMetricNames, type Engine } from './engine.js';
import { evaluateSplit } from './evaluate.js';
import { adapterBaseModel } from './lora.js';
import { MetricsLog, truncateMetrics, type MetricRecord } from './metrics.js';
import { NonFiniteError } from './nonfinite.js';
import { referenceForBatch } from './reference_cache.js';
import { clearRunOutputs, earlierRun, earlierRunError, lockRunDir, removeStaleTemps, type RunLock } from './run_dir.js';
import { scheduledLearningRate } from './schedule.js';
import { addPositions, batchPositions, bf16Peak, flopModel, modelFlopsUtilization, NO_POSITIONS, paddingFraction, stepFlops, type FlopModel, type Positions } from './throughput.js';
import { RunWatch } from './watch.js';

export interface TrainEvents {
  /** Every metrics.jsonl record, as it is written. */
  onLog?(record: MetricRecord): void;
  /** After every optimizer step. */
  onStep?(s: { step: number; totalSteps: number; examples: number; loss: number; accuracy?: number; tokensPerSecond: number; paddingFraction: number; mfu?: number }): void;
  /** Stage messages: data loading, reference log-probs, checkpoints. */
  onMessage?(message: string): void;
}

export interface TrainOptions extends TrainEvents {
  /** Aborting stops after the current optimizer step, saves a checkpoint and returns. */
  signal?: AbortSignal;
  /** Stop (as if interrupted) after this many optimizer steps in this call (tests). */
  stopAfterSteps?: number;
}

export interface TrainResult {
  runDir: string;
  /** The last checkpoint written (null in debug mode). */
  checkpoint: string | null;
  step: number;
  totalSteps: number;
  examples: number;
  interrupted: boolean;
  wallSeconds: number;
  /** Means over the test split at the last evaluation. */
  lastEval: Record<string, number> | null;
}

/** Whether `inner` is `outer` or lies inside it. */
function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(path.resolve(outer), path.resolve(inner));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Makes the run directory this run's: resolves what to resume from, refuses to start over an
 * earlier run's checkpoint unless overwrite=true, removes what dead runs left half-written.
 * Runs with the directory's lock held.
 */
function claimRunDir(config: RunConfig, events: TrainEvents): string | null {
  const runDir = config.local_run_dir;
  for (const name of removeStaleTemps(runDir)) events.onMessage?.(`removed ${path.join(runDir, name)} (a checkpoint write by a process that is gone)`);
  const resumeFrom = config.resume ? findCheckpoint(config.resume) : null;
  if (config.resume && !resumeFrom) throw new Error(`resume=${config.resume}: ${noCheckpointReason(config.resume)}`);
  const metrics = path.join(runDir, 'metrics.jsonl');
  if (resumeFrom && isWithin(resumeFrom, runDir)) {
    if (config.overwrite) events.onMessage?.('overwrite=true ignored: resuming this run directory\'s own checkpoint');
    return resumeFrom;
  }
  const earlier = earlierRun(runDir);
  if (earlier) {
    if (!config.overwrite) throw earlierRunError(runDir, earlier);
    events.onMessage?.(`overwrite=true: deleted ${clearRunOutputs(runDir).join(', ')} from ${runDir}`);
  } else if (existsSync(metrics)) {
    // A run that stopped before its first checkpoint: nothing to resume, its log starts over.
    rmSync(metrics, { force: true });
  }
  return resumeFrom;
}

/**
 * Applies the run's CPU GEMM backend before any product and returns the config recording the one
 * in use (saved as the run's config.yaml): a resume from it computes as this run did, whatever
 * RPO_CPU_GEMM says then. A recorded oneDNN that this CPU cannot run (a resume moved to a
 * machine without AVX-512) falls back to ATen's, with a warning.
 */
function withCpuGemm(config: RunConfig, events: TrainEvents): RunConfig {
  const used = setCpuGemmBackend(config.cpu_gemm);
  if (config.cpu_gemm !== 'auto' && used !== config.cpu_gemm) {
    events.onMessage?.(`warning: cpu_gemm=${config.cpu_gemm}: oneDNN does not compute fp32 products on this CPU; using ${used} (results differ from ${config.cpu_gemm}'s in the last bits)`);
  }
  return { ...config, cpu_gemm: used };
}

export async function train(config: RunConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const started = Date.now();
  if (config.threads) setNumThreads(config.threads);
  // What a ZeRO-3 job cannot train is refused before connecting or reading any data.
  const dist = distEnv();
  if (dist) refuseUnsupportedZero3(config, dist.zero);
  // A rank of a data-parallel job when the torchrun environment says so (docs/distributed.md).
  const par = await Parallel.fromEnv(resolveDevice(config.device));
  const device = par.device(resolveDevice(config.device));
  // Only rank 0 prints and owns the run directory.
  if (!par.isMain) options = { signal: options.signal, stopAfterSteps: options.stopAfterSteps };
  else if (par.distributed) options.onMessage?.(`data parallel: ${par.worldSize} ranks (${par.group ? 'c10d' : ''} ${device.startsWith('cuda') ? 'NCCL' : 'Gloo'}), batch_size ${config.model.batch_size} split over ranks x ${config.model.tokens_per_micro_batch === null ? `gradient_accumulation_steps ${config.model.gradient_accumulation_steps}` : `micro-batches of ≤ ${config.model.tokens_per_micro_batch} tokens (balanced token counts per rank)`}`);
  const runDir = config.local_run_dir;
  try {
    // The job's first collective: every rank runs the same config (lib/parallel/agree.ts).
    if (par.distributed) await agree(par, 'config', 'the config', configFingerprint(config, par.env?.zero ?? 0));
    config = withCpuGemm(config, options);
    // Rank 0 owns the run directory; a refusal there (in use: a usage error) reaches every rank.
    const held: { lock?: RunLock } = {};
    await par.fromMain('run-dir-lock', () => {
      held.lock = lockRunDir(runDir);
      return '';
    });
    try {
      const from = held.lock?.tookOverFrom;
      if (from) options.onMessage?.(`took over the lock of a run that is gone (pid ${from.pid} on ${from.host})`);
      return await trainInRunDir(config, options, device, started, par);
    } finally {
      held.lock?.release();
    }
  } finally {
    par.dispose();
  }
}

/** The examples a run trains and evaluates on, tokenized and selected for its loss. */
interface TrainingData {
  run: RunData;
  groups: Groups;
  /** The loss trains on each response as an example of its own (lib/train/unpaired.ts). */
  unpaired: boolean;
  train: TokenizedExample[];
  test: TokenizedExample[];
}

/** How a run walks its data: each epoch's global batches, and the examples and steps in all. */
interface EpochPlan {
  batchesOf(epoch: number): TokenizedExample[][];
  totalExamples: number;
  totalSteps: number;
}

/**
 * One run, its run directory held (rank 0 holds its lock): claim the directory, prepare the
 * data, start or resume, build the engine, train to the end, hand back what it did.
 */
async function trainInRunDir(config: RunConfig, options: TrainOptions, device: string, started: number, par: Parallel): Promise<TrainResult> {
  const resumeFrom = await claimRunDirAndSaveConfig(config, options, par);
  const data = await prepareTrainingData(config, options, par, resumeFrom);
  const state = startOrResume(config, data.run, resumeFrom, options);
  const plan = planEpochs(config, data);
  const log = par.isMain ? new MetricsLog(path.join(config.local_run_dir, 'metrics.jsonl')) : null;
  const engine = await buildEngine(config, data.run, device, resumeFrom, options, par);
  const run = new TrainingRun(config, options, par, data, plan, engine, state, resumeFrom, log);
  try {
    await run.trainToEnd();
  } finally {
    try {
      run.closeWatch();
    } finally {
      disposeEngine(engine);
    }
  }
  return run.result(started);
}

/** Rank 0 claims the run directory (claimRunDir) and saves the config there; every rank learns what it resumes from. */
async function claimRunDirAndSaveConfig(config: RunConfig, events: TrainEvents, par: Parallel): Promise<string | null> {
  const runDir = config.local_run_dir;
  return (
    (await par.fromMain('resume-from', () => {
      const found = claimRunDir(config, events);
      // The saved config reloads as this run (--config-path): never as an instruction to delete it.
      saveConfig({ ...config, overwrite: false }, path.join(runDir, 'config.yaml'));
      return found ?? '';
    })) || null
  );
}

/** Loads and tokenizes the run's data, and selects the examples its loss trains and evaluates on. */
async function prepareTrainingData(config: RunConfig, events: TrainEvents, par: Parallel, resumeFrom: string | null): Promise<TrainingData> {
  const runDir = config.local_run_dir;
  const groups = lossGroups(config.loss);

  // csft trains from the base model with its control tokens added (lib/train/csft.ts).
  const csft = lossUsesControlTokens(config.loss.name) ? await csftRunModel(config, runDir) : null;
  const data = await buildRunData(config, { withRationale: groups === 3, onStage: events.onMessage, ...(csft ? { model: csft } : {}) });
  // Before the engine's first collective: every rank has the same examples and model shape.
  if (par.distributed) {
    await agree(par, 'data', 'the data or the model', [
      ['data: train split (tokenized examples)', dataFingerprint(data.train, [])],
      ['data: test split (tokenized examples)', dataFingerprint([], data.test)],
      ...objectFingerprint('model shape', loadHfConfig(resumeFrom ?? data.model.modelDir)),
    ]);
  }
  // Unpaired losses train on each pair's chosen and rejected response as two examples.
  const unpaired = lossIsUnpaired(config.loss.name);
  const trainExamples = lossExamples(config, data.train, { groups, unpaired }, csft?.ids ?? null);
  const testExamples = lossExamples(config, data.test, { groups, unpaired }, csft?.ids ?? null);
  const dropped = (unpaired || csft ? 2 : 1) * data.train.length - trainExamples.length;
  if (trainExamples.length === 0) throw new Error(`no training examples left after tokenization (${dropped} dropped: the prompt, cut to model.max_prompt_length ${config.model.max_prompt_length}, leaves no room for a response within model.max_length ${config.model.max_length}; lower max_prompt_length or raise max_length)`);
  events.onMessage?.(`data: ${trainExamples.length} train examples (${dropped} dropped), ${testExamples.length} test examples`);
  return { run: data, groups, unpaired, train: trainExamples, test: testExamples };
}

/** A fresh run's state, or the checkpoint's when resuming (same data and seed; metrics after it cut). */
function startOrResume(config: RunConfig, data: RunData, resumeFrom: string | null, events: TrainEvents): TrainerState {
  if (!resumeFrom) {
    return {
      format: 'rpo-trainer-state-1',
      step: 0,
      examples: 0,
      epoch: 0,
      batchInEpoch: 0,
      lastEvalExamples: 0,
      dataFingerprint: data.fingerprint,
      seed: config.seed,
      wallSeconds: 0,
    };
  }
  const state = readTrainerState(resumeFrom);
  if (state.dataFingerprint !== data.fingerprint) throw new Error(`resume=${config.resume}: the checkpoint was trained on other data (or another tokenizer, template or length limits) than this run's`);
  if (state.seed !== config.seed) throw new Error(`resume=${config.resume}: the checkpoint used seed ${state.seed}, this run seed ${config.seed}`);
  events.onMessage?.(`resuming from ${resumeFrom} at step ${state.step} (${state.examples} examples)`);
  // The steps after the checkpoint are trained (and logged) again: log each step once.
  const cut = truncateMetrics(path.join(config.local_run_dir, 'metrics.jsonl'), state.step);
  if (cut > 0) events.onMessage?.(`metrics.jsonl: dropped ${cut} records after step ${state.step} (they are trained again)`);
  return state;
}

/** Each epoch's order and the run's length: n_examples, else n_epochs of whole batches. */
function planEpochs(config: RunConfig, data: TrainingData): EpochPlan {
  const batchSize = config.model.batch_size;
  const { unpaired, train } = data;
  const batchesOf = (epoch: number): TokenizedExample[][] => epochBatches(config, train, unpaired, epoch);
  const perEpoch = unpaired ? batchesOf(0).reduce((k, b) => k + b.length, 0) : examplesPerEpoch(train.length, batchSize, config.drop_last);
  if (perEpoch === 0) throw new Error(`loss=${config.loss.name}: the ${train.length} training examples make no full batch of model.batch_size=${batchSize}`);
  const totalExamples = config.n_examples ?? (config.n_epochs ?? 1) * perEpoch;
  return { batchesOf, totalExamples, totalSteps: Math.ceil(totalExamples / batchSize) };
}

/** One global batch's sums on this rank, before the reduction over the ranks. */
interface LocalStep {
  local: StepTotals;
  /** The first non-finite micro-step here (data parallel: reported once the ranks agree). */
  badLoss: { loss: number; ids: string[] } | null;
  /** Data parallel: the wait for the gradient all-reduce after the last backward. */
  commWaitSeconds: number | null;
}

/**
 * A run in progress: the step loop, its evaluations and checkpoints, the metrics it writes.
 * `state` is what a checkpoint saves; the rest lives as long as this call.
 */
class TrainingRun {
  lastEval: Record<string, number> | null = null;
  private checkpoint: string | null;
  private interrupted = false;
  private completed = false;
  private stepsThisCall = 0;
  private stopAgreed = false;
  private segmentStart = Date.now();
  // TensorBoard, samples and report.html (watch.ts), rank 0 only.
  private watch: RunWatch | null = null;
  private sampleRows: { prompt: SamplePrompt; chosen: string }[] = [];
  private evalCalls = 0;
  private readonly startStep: number;
  private readonly runDir: string;
  private readonly padTokenId: number;
  /** The metric names every rank sends in one fixed order (data parallel only). */
  private readonly metricNames: string[];
  /** A reference model runs in each micro-step (not precomputed log-probs): its forward counts in mfu. */
  private readonly liveReference: boolean;
  /** On CUDA with a bf16 peak given: what mfu is computed from (lib/train/throughput.ts); else null, no mfu. */
  private readonly mfu: { flops: FlopModel; peakTflops: number } | null;

  constructor(
    private readonly config: RunConfig,
    private readonly options: TrainOptions,
    private readonly par: Parallel,
    private readonly data: TrainingData,
    private readonly plan: EpochPlan,
    private readonly engine: Engine,
    private readonly state: TrainerState,
    private readonly resumeFrom: string | null,
    private readonly log: MetricsLog | null,
  ) {
    this.checkpoint = resumeFrom;
    this.startStep = state.step;
    this.runDir = config.local_run_dir;
    this.padTokenId = data.run.model.tokenizer.padTokenId ?? 0;
    this.metricNames = par.distributed ? lossMetricNames(engineLossConfig(config.loss), data.groups) : [];
    this.liveReference = lossUsesReference(config.loss.name) && engine.table === null;
    this.mfu = this.mfuModel();
  }

  /** MFU's inputs on CUDA when a bf16 peak is given (bf16_peak_tflops or RPO_BF16_PEAK_TFLOPS); null otherwise. */
  private mfuModel(): { flops: FlopModel; peakTflops: number } | null {
    const { config, engine } = this;
    if (!engine.policy.device.startsWith('cuda')) return null;
    const peak = bf16Peak(config.bf16_peak_tflops);
    if (!peak) {
      if (this.par.isMain) this.options.onMessage?.('mfu: not logged (no bf16 peak: set bf16_peak_tflops or RPO_BF16_PEAK_TFLOPS to the GPU\'s bf16 TFLOP/s; python3 bench/gpu/peak_matmul.py measures it)');
      return null;
    }
    return { flops: flopModel(engine.policy, engine.adapters !== null, config.loss), peakTflops: peak.tflops };
  }

  /** The first evaluation, the steps, the last evaluation and the final checkpoint. */
  async trainToEnd(): Promise<void> {
    const { config, state, data } = this;
    // Every rank: a data-parallel run's samples are generated by all ranks (lib/parallel/sampling.ts).
    // The first n_eval_model_samples test prompts, formatted as training formats them (turns, each dataset's cleaning).
    this.sampleRows = config.sample_during_eval
      ? (await loadDatasetRows(config, 'test'))
          .flatMap((d) => d.rows.map((r) => ({ prompt: rowPrompt(r, d.traits.remove_extra_spaces), chosen: r.chosen })))
          .slice(0, config.n_eval_model_samples)
      : [];
    if (this.par.isMain) {
      const run = data.run;
      this.watch = new RunWatch({ config, runDir: this.runDir, policy: this.engine.policy, tokenizer: run.model.tokenizer, modelDir: run.model.modelDir, sampleRows: this.sampleRows, resumed: this.resumeFrom !== null && isWithin(this.resumeFrom, this.runDir), startStep: this.startStep });
    }
    if (config.do_first_eval && state.step === 0) await this.evaluate();
    await this.trainSteps();
    if (!this.interrupted && data.test.length > 0 && state.lastEvalExamples !== state.examples) {
      state.lastEvalExamples = state.examples;
      await this.evaluate();
    }
    await this.save(false);
    this.completed = true;
  }

  /** Optimizer steps until the run's examples are trained or it is stopped; evaluates (and saves) every eval_every examples. */
  private async trainSteps(): Promise<void> {
    const { config, state, plan } = this;
    let epochBatches: { epoch: number; order: TokenizedExample[][] } | null = null;
    while (state.examples < plan.totalExamples) {
      if (this.stopRequested()) {
        this.interrupted = true;
        break;
      }
      if (!epochBatches || epochBatches.epoch !== state.epoch) {
        // The epoch's order is a function of (seed, epoch) alone, the same shuffle makeBatches
        // does: a resumed run sees the same batches. Only the order is needed here; each global
        // batch is laid out as micro-batches when it is trained.
        epochBatches = { epoch: state.epoch, order: plan.batchesOf(state.epoch) };
      }
      if (state.batchInEpoch >= epochBatches.order.length) {
        state.epoch += 1;
        state.batchInEpoch = 0;
        continue;
      }
      const examples = epochBatches.order[state.batchInEpoch]!.slice(0, plan.totalExamples - state.examples);
      await this.trainGlobalBatch(examples);
      if (state.examples - state.lastEvalExamples >= config.eval_every) {
        state.lastEvalExamples = state.examples;
        await this.evaluate();
        if (config.intermediate_checkpoints) await this.save(true);
      }
    }
  }

  /** Interrupted (data parallel: once every rank has heard of it), or at the test limit stopAfterSteps. */
  private stopRequested(): boolean {
    const { options } = this;
    return (this.par.distributed ? this.stopAgreed : options.signal?.aborted === true) || (options.stopAfterSteps !== undefined && this.stepsThisCall >= options.stopAfterSteps);
  }

  /** One optimizer step on a global batch: its micro-steps, the reduction over the ranks, the update, the log. */
  private async trainGlobalBatch(examples: TokenizedExample[]): Promise<void> {
    const { config, state, engine, par } = this;
    const t0 = Date.now();
    const { local, badLoss, commWaitSeconds } = await this.accumulateGradients(examples);
    const totals = await this.reduceOverRanks(local, badLoss, examples, t0);
    const means = Object.fromEntries(Object.entries(totals.metricSums).map(([k, v]) => [k, v / totals.pairs]));
    const tokens = totals.tokens;
    const lossSum = totals.lossSum;
    const padding = paddingFraction({ real: tokens, computed: totals.computed });
    const lr = scheduledLearningRate(config, state.step, this.plan.totalSteps);
    const { gradNorm } = await engine.trainer.optimizerStep({ lr, maxGradNorm: config.model.max_grad_norm ?? 0 });
    // ZeRO-1: each parameter updated by its owner reaches every rank.
    if (engine.zero) await engine.zero.broadcastParams();
    if (!Number.isFinite(gradNorm)) throw new NonFiniteError(state.step, examples.map((e) => e.id), `non-finite gradient norm (${gradNorm})`);
    const seconds = par.distributed ? Math.max(totals.seconds, (Date.now() - t0) / 1000) : (Date.now() - t0) / 1000;
    state.step += 1;
    state.examples += examples.length;
    state.batchInEpoch += 1;
    this.stepsThisCall += 1;
    const mfu = this.mfu ? modelFlopsUtilization(stepFlops(this.mfu.flops, { real: tokens, reference: totals.referenceTokens }), seconds, this.mfu.peakTflops, par.worldSize) : undefined;
    this.emit({
      step: state.step,
      examples: state.examples,
      epoch: state.epoch,
      ...means,
      loss: lossSum / examples.length,
      grad_norm: gradNorm,
      learning_rate: lr,
      tokens_per_second: tokens / Math.max(seconds, 1e-9),
      padding_fraction: padding,
      // With a token budget the micro-steps per step vary with the batch's lengths.
      ...(config.model.tokens_per_micro_batch !== null ? { micro_batches: totals.microBatches } : {}),
      ...(mfu !== undefined ? { mfu } : {}),
      step_seconds: seconds,
      peak_memory_bytes: par.distributed ? totals.peakMemoryBytes : peakRssBytes(),
      ...(commWaitSeconds !== null ? { comm_wait_seconds: commWaitSeconds } : {}),
    });
    this.options.onStep?.({ step: state.step, totalSteps: this.plan.totalSteps, examples: state.examples, loss: lossSum / examples.length, accuracy: means['rewards/accuracies'], tokensPerSecond: tokens / Math.max(seconds, 1e-9), paddingFraction: padding, ...(mfu !== undefined ? { mfu } : {}) });
  }

  /** This rank's micro-steps of a global batch: forward and backward each, gradients summed. */
  private async accumulateGradients(examples: TokenizedExample[]): Promise<LocalStep> {
    const { engine, state, par } = this;
    const local: StepTotals = { lossSum: 0, tokens: 0, computed: 0, referenceTokens: 0, pairs: 0, microBatches: 0, metricSums: {}, nonFinite: 0, stop: 0, peakMemoryBytes: 0, seconds: 0 };
    let positions: Positions = NO_POSITIONS;
    let badLoss: LocalStep['badLoss'] = null;
    const micros = this.microBatchesOf(examples);
    // ppo whitens its advantages over the whole batch (the seed's): the engine takes every
    // micro-batch's gradient-free pass first.
    if (lossHasValueHead(this.config.loss.name)) await engine.trainer.ppoPrepare(micros);
    for (const [i, micro] of micros.entries()) {
      // The last micro-step's backward launches the gradient all-reduce bucket by bucket.
      if (i === micros.length - 1) engine.sync?.arm();
      const r: StepResult = await engine.trainer.microStep(micro, {
        nPairs: micro.nPairs,
        // By its pairs, not 1 / micro-batches: token-budget micro-batches are unequal, and the
        // step's gradient must stay the global batch's mean whatever the cut.
        scale: micro.nPairs / examples.length,
        reference: engine.table ? referenceForBatch(engine.table, micro.exampleIds) : undefined,
      });
      if (!r.finite) {
        // Ranks stop together: the NaN is reported after the step's reduction below.
        if (!par.distributed) throw new NonFiniteError(state.step, micro.exampleIds, `non-finite loss (${r.loss})`);
        local.nonFinite += 1;
        badLoss ??= { loss: r.loss, ids: micro.exampleIds };
      }
      for (const [k, v] of Object.entries(r.metrics)) local.metricSums[k] = (local.metricSums[k] ?? 0) + v * micro.nPairs;
      local.pairs += micro.nPairs;
      local.microBatches += 1;
      local.lossSum += r.loss * micro.nPairs;
      // Counted from the batch (lib/train/throughput.ts); its real positions are the engine's r.tokens.
      positions = addPositions(positions, batchPositions(micro, this.liveReference, this.config.padding_free));
    }
    await this.lockstepFillers(micros, examples);
    local.tokens = positions.real;
    local.computed = positions.computed;
    local.referenceTokens = positions.reference;
    let commWaitSeconds: number | null = null;
    if (engine.sync) {
      if (micros.length === 0) engine.sync.arm();
      commWaitSeconds = (await engine.sync.finish()).waitSeconds;
    }
    return { local, badLoss, commWaitSeconds };
  }

  /**
   * ZeRO-3 (par.lockstep): a rank with fewer micro-batches than the others (a global batch that
   * does not divide evenly) runs filler micro-steps on a batch it has, scaled by 0 and not
   * counted, so that every rank runs the same forwards and backwards, whose parameter
   * all-gathers and gradient reduce-scatters then pair up.
   */
  private async lockstepFillers(micros: Batch[], examples: TokenizedExample[]): Promise<void> {
    const { engine, par } = this;
    if (!par.lockstep) return;
    const most = (await par.max([micros.length]))[0]!;
    const filler = micros[micros.length - 1] ?? rankMicroBatches(this.config, examples, { groups: this.data.groups, unpaired: this.data.unpaired, padTokenId: this.padTokenId }, Parallel.single())[0];
    for (let i = micros.length; i < most; i++) {
      if (!filler) throw new Error('ZeRO-3: a global batch without examples');
      await engine.trainer.microStep(filler, { nPairs: filler.nPairs, scale: 0, reference: engine.table ? referenceForBatch(engine.table, filler.exampleIds) : undefined });
    }
  }

  /** This rank's micro-batches of a global batch (all of them in a single process). */
  private microBatchesOf(examples: TokenizedExample[]): Batch[] {
    return rankMicroBatches(this.config, examples, { groups: this.data.groups, unpaired: this.data.unpaired, padTokenId: this.padTokenId }, this.par);
  }

  /**
   * The data-parallel reduction: sums (maxima for memory and seconds) of a step over the ranks,
   * and their agreement to stop (a signal on any rank) or to fail (a non-finite loss on any).
   */
  private async reduceOverRanks(local: StepTotals, badLoss: LocalStep['badLoss'], examples: TokenizedExample[], t0: number): Promise<StepTotals> {
    local.stop = this.options.signal?.aborted ? 1 : 0;
    local.peakMemoryBytes = peakRssBytes() ?? 0;
    local.seconds = (Date.now() - t0) / 1000;
    const totals = await this.par.reduceStep(local, this.metricNames);
    if (totals.stop > 0) this.stopAgreed = true;
    if (totals.nonFinite > 0) {
      throw new NonFiniteError(this.state.step, badLoss?.ids ?? examples.map((e) => e.id), badLoss ? `non-finite loss (${badLoss.loss})` : `non-finite loss on another rank (${totals.nonFinite} micro-batches)`);
    }
    return totals;
  }

  /** The test split's metrics (logged), and with sample_during_eval, its samples. */
  private async evaluate(): Promise<void> {
    const { config, state, engine, par, data } = this;
    if (data.test.length === 0) return;
    const t0 = Date.now();
    this.lastEval = await evaluateSplit(engine.trainer, data.test, {
      batchSize: lossEvalBatchSize(config.model),
      groups: data.groups,
      padTokenId: this.padTokenId,
      table: engine.table,
      ...(data.unpaired ? { unpaired: { loss: config.loss.name, maxLength: config.model.max_length } } : {}),
      par,
      metricNames: this.metricNames,
    });
    this.emit({ step: state.step, examples: state.examples, ...this.lastEval, eval_seconds: (Date.now() - t0) / 1000 });
    // Data parallel: every rank generates its share of the samples; rank 0 gets them all.
    const sampled = par.distributed && this.sampleRows.length > 0
      ? await sampleSharded(par, { config, policy: engine.policy, tokenizer: data.run.model.tokenizer, modelDir: data.run.model.modelDir }, this.sampleRows.map((r) => r.prompt), `eval-${this.evalCalls++}`)
      : null;
    await this.watch?.evaluated(state.step, state.examples, sampled ?? undefined);
  }

  /** A checkpoint of the run (rank 0 writes it); keepStepCopy: also as step-N beside LATEST. */
  private async save(keepStepCopy: boolean): Promise<void> {
    const { config, state, engine, par } = this;
    // No checkpoint before this run's first optimizer step: it would hold nothing new, and a
    // fresh run stopped at once must not leave an untrained "LATEST" behind.
    if (config.debug || state.step === this.startStep) return;
    // ZeRO-1: rank 0 collects the other shards, writes the one-process state file, drops them.
    if (engine.zero) await engine.zero.gatherState();
    if (!par.isMain) return;
    state.wallSeconds += (Date.now() - this.segmentStart) / 1000;
    this.segmentStart = Date.now();
    const adapter = engine.adapters ? { shape: engine.adapters, baseModel: adapterBaseModel(config) } : undefined;
    const tok = this.data.run.model.tokenizer;
    const configExtras = { bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId, pad_token_id: tok.padTokenId };
    this.checkpoint = await saveCheckpoint({ runDir: this.runDir, model: engine.policy, trainer: engine.trainer, state, tokenizerDir: this.data.run.model.tokenizerDir, modelDir: this.data.run.model.modelDir, configExtras, keepStepCopy, adapter, maxShardBytes: config.max_shard_size });
    if (engine.zero) await engine.zero.releaseState();
    this.options.onMessage?.(`checkpoint: ${this.checkpoint} (step ${state.step})`);
  }

  /** A metrics.jsonl record: to the log, the watch and the caller. */
  private emit(record: MetricRecord): void {
    this.log?.append(record);
    this.watch?.record(record);
    this.options.onLog?.(record);
  }

  /** Closes TensorBoard and report.html: complete only when the run trained to its end. */
  closeWatch(): void {
    this.watch?.close(this.completed && !this.interrupted);
  }

  result(started: number): TrainResult {
    const { state } = this;
    return {
      runDir: this.runDir,
      checkpoint: this.checkpoint,
      step: state.step,
      totalSteps: this.plan.totalSteps,
      examples: state.examples,
      interrupted: this.interrupted,
      wallSeconds: (Date.now() - started) / 1000,
      lastEval: this.lastEval,
    };
  }
}
