// `rpo train`: the run loop. TS owns the schedule (learning rate per step, accumulation
// boundaries, when to evaluate, log and checkpoint); the engine owns every tensor.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';

import {
  engineLossConfig,
  engineOptimizer,
  lossEvalBatchSize,
  lossUsesReference,
  precisionDtype,
  precisionNotices,
  resolvePrecision,
  saveConfig,
  type RunConfig,
} from '../config/index.js';
import { epochOrder, examplesPerEpoch, makeBatches, type Batch, type Groups, type TokenizedExample } from '../data/batch/index.js';
import { peakRssBytes } from '../memory.js';
import { loadModel } from '../model/io.js';
import { Model, Trainer, evaluateLoss, setNumThreads, type LossConfig, type StepResult } from '../native.js';
import { Parallel, type StepTotals } from '../parallel/context.js';
import { GradSync, ZeroShard } from '../parallel/native.js';
import { computeReferenceTableSharded } from '../parallel/reference.js';
import { findCheckpoint, noCheckpointReason, readTrainerState, saveCheckpoint, OPTIMIZER_STATE, type TrainerState } from './checkpoint.js';
import { buildRunData, loadDatasetRows, type RunData } from './data.js';
import { adapterBaseModel, loadLoraPolicy, type AdapterShape } from './lora.js';
import { isAdapterDir } from '../model/lora.js';
import { MetricAverager, MetricsLog, truncateMetrics, type MetricRecord } from './metrics.js';
import {
  examplesFingerprint,
  readReferenceCache,
  referenceCacheKey,
  referenceForBatch,
  weightsFingerprint,
  writeReferenceCache,
  type ReferenceTable,
} from './reference_cache.js';
import { lossGroups, lossIsUnpaired } from './losses.js';
import { microBatchSizes, scheduledLearningRate } from './schedule.js';
import { resolveDevice } from './device.js';
import { evaluateSplit, usable } from './evaluate.js';
import { NonFiniteError } from './nonfinite.js';
import { RunWatch } from './watch.js';
import { sampleSharded } from '../parallel/sampling.js';
import { rowPrompt, type SamplePrompt } from '../eval/sampling.js';
import { clearRunOutputs, earlierRun, earlierRunError, lockRunDir, removeStaleTemps } from './run_dir.js';
import { csftExamples, csftRunModel } from './csft.js';
import { isUnpairedItem, unpairedEpochOrder, unpairedEvalBatches, unpairedItems, unpairedMicroBatches } from './unpaired.js';


export interface TrainEvents {
  /** Every metrics.jsonl record, as it is written. */
  onLog?(record: MetricRecord): void;
  /** After every optimizer step. */
  onStep?(s: { step: number; totalSteps: number; examples: number; loss: number; accuracy?: number; tokensPerSecond: number }): void;
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

/** Cuts a global batch's examples into micro-batches laid out for the engine. */
export function microBatches(examples: readonly TokenizedExample[], accumulation: number, groups: Groups, padTokenId: number): Batch[] {
  const out: Batch[] = [];
  let start = 0;
  for (const n of microBatchSizes(examples.length, accumulation)) {
    out.push(makeBatches(examples.slice(start, start + n), { batchSize: n, groups, seed: 0, shuffle: false, padTokenId })[0]!);
    start += n;
  }
  return out;
}

interface Engine {
  policy: Model;
  reference: Model | null;
  trainer: Trainer;
  table: ReferenceTable | null;
  /** Data parallel: sums the gradients over the ranks. */
  sync: GradSync | null;
  /** ZeRO-1/2: this rank's share of the optimizer state (and with 2, of the gradients). */
  zero: ZeroShard | null;
  /** With LoRA: the adapters' shape, for each checkpoint's adapter_config.json. */
  adapters: AdapterShape | null;
}

/** The metric names a loss's steps report, sorted: the order every rank sends its sums in. */
function lossMetricNames(loss: LossConfig, groups: Groups): string[] {
  const one = { sum: Float64Array.of(-1), mean: Float64Array.of(-1), count: Float64Array.of(1) };
  const pair = { chosen: one, ...(groups >= 2 ? { rejected: one } : {}), ...(groups >= 3 ? { rationale: one } : {}) };
  return Object.keys(evaluateLoss(loss, pair, { chosen: one, ...(groups >= 2 ? { rejected: one } : {}) }).metrics).sort();
}

/** loraBase: a LoRA policy whose base (adapters off) gives the reference log-probs. */
async function referenceTable(config: RunConfig, data: RunData, device: string, events: TrainEvents, par: Parallel, loraBase: Model | null = null): Promise<ReferenceTable> {
  const examples = [...data.train, ...data.test];
  const key = referenceCacheKey({
    weights: weightsFingerprint(data.model.modelDir),
    dtype: loraBase ? loraBase.dtype : config.model.reference_dtype,
    examples: examplesFingerprint(examples),
  });
  const file = path.join(config.cache_dir, 'reference_logps', `${key}.json`);
  const found = readReferenceCache(file, key);
  // Data parallel: the cache is used only when every rank has it (machines need not share a disk).
  const cached = par.distributed ? ((await par.min([found ? 1 : 0]))[0] === 1 ? found : null) : found;
  if (cached) {
    events.onMessage?.(`reference log-probs: reusing ${file}`);
    return cached;
  }
  events.onMessage?.(`reference log-probs: computing for ${examples.length} examples (once; cached as ${file})`);
  const reference = loraBase ?? (await loadModel(data.model.modelDir, { dtype: config.model.reference_dtype, device }));
  try {
    const usableExamples = examples.filter((ex) => !ex.chosen.dropped && !ex.rejected.dropped);
    const table = await computeReferenceTableSharded(par, reference, usableExamples, {
      batchSize: lossEvalBatchSize(config.model),
      padTokenId: data.model.tokenizer.padTokenId ?? 0,
      chunkTokens: config.chunk_tokens,
      adapters: loraBase === null,
    });
    if (par.isMain) writeReferenceCache(file, key, table);
    return table;
  } finally {
    if (!loraBase) reference.dispose();
  }
}

async function buildEngine(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: TrainEvents, par: Parallel): Promise<Engine> {
  const needsReference = lossUsesReference(config.loss.name);
  if (resumeFrom && isAdapterDir(resumeFrom) !== config.lora.enabled) {
    throw new Error(
      config.lora.enabled
        ? `resume=${config.resume}: ${resumeFrom} is a full-weights checkpoint, and this run trains LoRA adapters (lora.enabled=true); resume it with lora.enabled=false`
        : `resume=${config.resume}: ${resumeFrom} is a LoRA adapter checkpoint; resume it with lora.enabled=true (its saved config.yaml has it)`,
    );
  }
  // ppo whitens its advantages over the batch and keeps a value head beside the policy: neither
  // the statistics nor the head's gradients are reduced across ranks yet.
  if (par.distributed && config.loss.name === 'ppo') throw new Error('loss=ppo with rpo launch: data-parallel ppo training is not supported yet; train it on one device');
  if (config.lora.enabled) {
    // The gradient sync and ZeRO shard cover every parameter; adapters-only sharding is not built yet.
    if (par.distributed) throw new Error('lora.enabled=true with rpo launch: data-parallel LoRA training is not supported yet; train LoRA on one device');
    return buildLoraEngine(config, data, device, resumeFrom, events, par);
  }
  // Unpaired losses' reference runs live: their KL rows are made per batch.
  const table = needsReference && config.precompute_reference && !lossIsUnpaired(config.loss.name) ? await referenceTable(config, data, device, events, par) : null;
  // `precision` decides the policy's dtype and the optimizer's (auto: by device); the reference
  // keeps model.reference_dtype.
  const precision = resolvePrecision(config.precision, device);
  for (const line of precisionNotices(config, device)) events.onMessage?.(line);
  const policy = await loadModel(resumeFrom ?? data.model.modelDir, { dtype: precisionDtype(precision), device });
  // The reference is the starting model (model.load_from or name_or_path), also when resuming.
  const reference = needsReference && !table ? await loadModel(data.model.modelDir, { dtype: config.model.reference_dtype, device }) : null;
  const trainer = new Trainer(policy, reference, {
    loss: engineLossConfig(config.loss),
    ...engineOptimizer(config),
    precision,
    seed: config.seed,
    activationCheckpointing: config.model.activation_checkpointing,
    chunkTokens: config.chunk_tokens,
  });
  if (resumeFrom) for (const w of await trainer.loadState(path.join(resumeFrom, OPTIMIZER_STATE))) events.onMessage?.(`warning: ${w}`);
  const sync = par.group ? new GradSync(policy, par.group) : null;
  // After loadState: a checkpoint's state is cut down to this rank's share.
  const stage = par.env?.zero ?? 0;
  const zero = par.group && stage > 0 ? new ZeroShard(trainer, par.group, stage === 2 ? 2 : 1) : null;
  // ZeRO-2: gradients reduced to their owners, not all-reduced.
  if (zero && sync && stage === 2) sync.reduceToOwners(zero);
  if (zero) await announceZeroPlan(zero, par, events);
  return { policy, reference, trainer, table, sync, zero, adapters: null };
}

/** The per-rank optimizer-state plan, printed by rank 0 at start. */
async function announceZeroPlan(zero: ZeroShard, par: Parallel, events: TrainEvents): Promise<void> {
  const p = zero.plan;
  const owned = await par.sum(Array.from({ length: par.worldSize }, (_, r) => (r === par.rank ? p.ownedNumel : 0)));
  const size = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(2)} MiB`);
  const gib = (elements: number) => size(elements * p.stateBytesPerElement);
  const gradBytes = (elements: number) => size(elements * p.gradBytesPerElement);
  const grads = p.stage === 2 ? `; gradients ${gradBytes(p.totalNumel)} unsharded, kept after the reduce per rank: ${owned.map((n, r) => `rank ${r} ${gradBytes(n)}`).join(', ')}` : '';
  events.onMessage?.(`ZeRO-${p.stage}: optimizer state ${gib(p.totalNumel)} unsharded; per rank: ${owned.map((n, r) => `rank ${r} ${gib(n)} (${((100 * n) / p.totalNumel).toFixed(1)} %)`).join(', ')}${grads}`);
}

/**
 * LoRA: the base in the precision's dtype (bf16 under the bf16 precisions) with fp32 adapters,
 * which alone train (fp32 AdamW). No reference model: the base with the adapters off is one.
 */
async function buildLoraEngine(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: TrainEvents, par: Parallel): Promise<Engine> {
  const precision = resolvePrecision(config.precision, device);
  const dtype = precisionDtype(precision);
  events.onMessage?.(`precision: LoRA adapters and their AdamW state in fp32, the frozen base in ${dtype}`);
  const { policy, shape } = await loadLoraPolicy(config, data.model.modelDir, resumeFrom, { dtype, device });
  events.onMessage?.(`lora: r=${shape.r} alpha=${shape.alpha} on ${policy.adapterParams().length / 2} linears (${policy.adapterParams().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)} trainable parameters)${resumeFrom ? '' : config.lora.from ? `, from ${config.lora.from}` : ''}`);
  try {
    const needsReference = lossUsesReference(config.loss.name);
    const table = needsReference && config.precompute_reference && !lossIsUnpaired(config.loss.name) ? await referenceTable(config, data, device, events, par, policy) : null;
    const trainer = new Trainer(policy, null, {
      loss: engineLossConfig(config.loss),
      ...engineOptimizer(config),
      precision: 'fp32',
      seed: config.seed,
      activationCheckpointing: config.model.activation_checkpointing,
      chunkTokens: config.chunk_tokens,
    });
    if (resumeFrom) await trainer.loadState(path.join(resumeFrom, OPTIMIZER_STATE));
    return { policy, reference: null, trainer, table, sync: null, zero: null, adapters: shape };
  } catch (err) {
    policy.dispose();
    throw err;
  }
}

function disposeEngine(e: Engine): void {
  e.zero?.dispose();
  e.sync?.dispose();
  e.trainer.dispose();
  e.policy.dispose();
  e.reference?.dispose();
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

export async function train(config: RunConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const started = Date.now();
  if (config.threads) setNumThreads(config.threads);
  // A rank of a data-parallel job when the torchrun environment says so (docs/distributed.md).
  const par = await Parallel.fromEnv(resolveDevice(config.device));
  const device = par.device(resolveDevice(config.device));
  // Only rank 0 prints and owns the run directory.
  if (!par.isMain) options = { signal: options.signal, stopAfterSteps: options.stopAfterSteps };
  else if (par.distributed) options.onMessage?.(`data parallel: ${par.worldSize} ranks (${par.group ? 'c10d' : ''} ${device.startsWith('cuda') ? 'NCCL' : 'Gloo'}), batch_size ${config.model.batch_size} split over ranks x gradient_accumulation_steps ${config.model.gradient_accumulation_steps}`);
  const runDir = config.local_run_dir;
  try {
    if (!par.isMain) return await trainLocked(config, options, device, started, par);
    const lock = lockRunDir(runDir);
    try {
      if (lock.tookOverFrom) options.onMessage?.(`took over the lock of a run that is gone (pid ${lock.tookOverFrom.pid} on ${lock.tookOverFrom.host})`);
      return await trainLocked(config, options, device, started, par);
    } finally {
      lock.release();
    }
  } finally {
    par.dispose();
  }
}

async function trainLocked(config: RunConfig, options: TrainOptions, device: string, started: number, par: Parallel): Promise<TrainResult> {
  const runDir = config.local_run_dir;
  const resumeFrom =
    (await par.fromMain('resume-from', () => {
      const found = claimRunDir(config, options);
      // The saved config reloads as this run (--config-path): never as an instruction to delete it.
      saveConfig({ ...config, overwrite: false }, path.join(runDir, 'config.yaml'));
      return found ?? '';
    })) || null;
  const groups = lossGroups(config.loss);

  // csft trains from the base model with its control tokens added (lib/train/csft.ts).
  const csft = config.loss.name === 'csft' ? await csftRunModel(config, runDir) : null;
  const data = await buildRunData(config, { withRationale: groups === 3, onStage: options.onMessage, ...(csft ? { model: csft } : {}) });
  // Unpaired losses train on each pair's chosen and rejected response as two examples.
  const unpaired = lossIsUnpaired(config.loss.name);
  const maxLength = config.model.max_length;
  const trainExamples = unpaired ? unpairedItems(data.train) : csft ? csftExamples(data.train, csft.ids, maxLength) : usable(data.train, groups);
  const testExamples = unpaired ? unpairedItems(data.test) : csft ? csftExamples(data.test, csft.ids, maxLength) : usable(data.test, groups);
  const dropped = (unpaired || csft ? 2 : 1) * data.train.length - trainExamples.length;
  if (trainExamples.length === 0) throw new Error(`no training examples left after tokenization (${dropped} dropped: the prompt, cut to model.max_prompt_length ${config.model.max_prompt_length}, leaves no room for a response within model.max_length ${config.model.max_length}; lower max_prompt_length or raise max_length)`);
  options.onMessage?.(`data: ${trainExamples.length} train examples (${dropped} dropped), ${testExamples.length} test examples`);

  let state: TrainerState = {
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
  if (resumeFrom) {
    state = readTrainerState(resumeFrom);
    if (state.dataFingerprint !== data.fingerprint) throw new Error(`resume=${config.resume}: the checkpoint was trained on other data (or another tokenizer, template or length limits) than this run's`);
    if (state.seed !== config.seed) throw new Error(`resume=${config.resume}: the checkpoint used seed ${state.seed}, this run seed ${config.seed}`);
    options.onMessage?.(`resuming from ${resumeFrom} at step ${state.step} (${state.examples} examples)`);
    // The steps after the checkpoint are trained (and logged) again: log each step once.
    const cut = truncateMetrics(path.join(runDir, 'metrics.jsonl'), state.step);
    if (cut > 0) options.onMessage?.(`metrics.jsonl: dropped ${cut} records after step ${state.step} (they are trained again)`);
  }
  const startStep = state.step;

  const batchSize = config.model.batch_size;
  // drop_last (the seed's batching): an epoch is its whole batches only.
  const epochBatchesOf = (epoch: number): TokenizedExample[][] =>
    unpaired
      ? unpairedEpochOrder(config.loss.name, trainExamples.filter(isUnpairedItem), { batchSize, seed: config.seed, epoch })
      : epochOrder(trainExamples, { batchSize, seed: config.seed, epoch, dropLast: config.drop_last });
  const perEpoch = unpaired ? epochBatchesOf(0).reduce((k, b) => k + b.length, 0) : examplesPerEpoch(trainExamples.length, batchSize, config.drop_last);
  if (perEpoch === 0) throw new Error(`loss=${config.loss.name}: the ${trainExamples.length} training examples make no full batch of model.batch_size=${batchSize}`);
  const totalExamples = config.n_examples ?? (config.n_epochs ?? 1) * perEpoch;
  const totalSteps = Math.ceil(totalExamples / batchSize);
  const padTokenId = data.model.tokenizer.padTokenId ?? 0;
  const tok = data.model.tokenizer;
  const configExtras = { bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId, pad_token_id: tok.padTokenId };
  const log = par.isMain ? new MetricsLog(path.join(runDir, 'metrics.jsonl')) : null;
  // TensorBoard, samples and report.html (watch.ts), rank 0 only: created once the engine is.
  let watch: RunWatch | null = null;
  const emit = (record: MetricRecord) => {
    log?.append(record);
    watch?.record(record);
    options.onLog?.(record);
  };

  const engine = await buildEngine(config, data, device, resumeFrom, options, par);
  // The metric names every rank sends in one fixed order (data parallel only).
  const metricNames = par.distributed ? lossMetricNames(engineLossConfig(config.loss), groups) : [];
  let lastEval: Record<string, number> | null = null;
  let sampleRows: { prompt: SamplePrompt; chosen: string }[] = [];
  let evalCalls = 0;
  const evaluate = async () => {
    if (testExamples.length === 0) return;
    const t0 = Date.now();
    lastEval = await evaluateSplit(engine.trainer, testExamples, {
      batchSize: lossEvalBatchSize(config.model),
      groups,
      padTokenId,
      table: engine.table,
      ...(unpaired ? { unpaired: { loss: config.loss.name, maxLength: config.model.max_length } } : {}),
      par,
      metricNames,
    });
    emit({ step: state.step, examples: state.examples, ...lastEval, eval_seconds: (Date.now() - t0) / 1000 });
    // Data parallel: every rank generates its share of the samples; rank 0 gets them all.
    const sampled = par.distributed && sampleRows.length > 0
      ? await sampleSharded(par, { config, policy: engine.policy, tokenizer: data.model.tokenizer, modelDir: data.model.modelDir }, sampleRows.map((r) => r.prompt), `eval-${evalCalls++}`)
      : null;
    await watch?.evaluated(state.step, state.examples, sampled ?? undefined);
  };
  let checkpoint: string | null = resumeFrom;
  const save = async (keepStepCopy: boolean) => {
    // No checkpoint before this run's first optimizer step: it would hold nothing new, and a
    // fresh run stopped at once must not leave an untrained "LATEST" behind.
    if (config.debug || state.step === startStep) return;
    // ZeRO-1: rank 0 collects the other shards, writes the one-process state file, drops them.
    if (engine.zero) await engine.zero.gatherState();
    if (!par.isMain) return;
    state.wallSeconds += (Date.now() - segmentStart) / 1000;
    segmentStart = Date.now();
    const adapter = engine.adapters ? { shape: engine.adapters, baseModel: adapterBaseModel(config) } : undefined;
    checkpoint = await saveCheckpoint({ runDir, model: engine.policy, trainer: engine.trainer, state, tokenizerDir: data.model.tokenizerDir, modelDir: data.model.modelDir, configExtras, keepStepCopy, adapter });
    if (engine.zero) await engine.zero.releaseState();
    options.onMessage?.(`checkpoint: ${checkpoint} (step ${state.step})`);
  };

  let segmentStart = Date.now();
  let interrupted = false;
  let completed = false;
  let stepsThisCall = 0;
  let stopAgreed = false;
  try {
    // Every rank: a data-parallel run's samples are generated by all ranks (lib/parallel/sampling.ts).
    // The first n_eval_model_samples test prompts, formatted as training formats them (turns, each dataset's cleaning).
    sampleRows = config.sample_during_eval
      ? (await loadDatasetRows(config, 'test'))
          .flatMap((d) => d.rows.map((r) => ({ prompt: rowPrompt(r, d.traits.remove_extra_spaces), chosen: r.chosen })))
          .slice(0, config.n_eval_model_samples)
      : [];
    if (par.isMain) watch = new RunWatch({ config, runDir, policy: engine.policy, tokenizer: data.model.tokenizer, modelDir: data.model.modelDir, sampleRows, resumed: resumeFrom !== null && isWithin(resumeFrom, runDir), startStep });
    if (config.do_first_eval && state.step === 0) await evaluate();
    let epochBatches: { epoch: number; order: TokenizedExample[][] } | null = null;
    while (state.examples < totalExamples) {
      if ((par.distributed ? stopAgreed : options.signal?.aborted) || (options.stopAfterSteps !== undefined && stepsThisCall >= options.stopAfterSteps)) {
        interrupted = true;
        break;
      }
      if (!epochBatches || epochBatches.epoch !== state.epoch) {
        // The epoch's order is a function of (seed, epoch) alone, the same shuffle makeBatches
        // does: a resumed run sees the same batches. Only the order is needed here; each global
        // batch is laid out as micro-batches when it is trained.
        epochBatches = { epoch: state.epoch, order: epochBatchesOf(state.epoch) };
      }
      if (state.batchInEpoch >= epochBatches.order.length) {
        state.epoch += 1;
        state.batchInEpoch = 0;
        continue;
      }
      let examples = epochBatches.order[state.batchInEpoch]!;
      examples = examples.slice(0, totalExamples - state.examples);
      const t0 = Date.now();
      const local: StepTotals = { lossSum: 0, tokens: 0, pairs: 0, metricSums: {}, nonFinite: 0, stop: 0, peakMemoryBytes: 0, seconds: 0 };
      let badLoss: { loss: number; ids: string[] } | null = null;
      // This rank's micro-batches (all of them in a single process).
      const accumulation = config.model.gradient_accumulation_steps;
      // Unpaired: KL rows pair examples across the whole global batch, so every rank lays out
      // the global batch as one process would and keeps its own micro-batches.
      const micros = unpaired
        ? unpairedMicroBatches(config.loss.name, examples.filter(isUnpairedItem), microBatchSizes(examples.length, accumulation * par.worldSize), {
            padTokenId,
            maxLength: config.model.max_length,
          }).slice(par.rank * accumulation, (par.rank + 1) * accumulation)
        : par.microBatches(examples, accumulation, groups, padTokenId);
      // ppo whitens its advantages over the whole batch (the seed's): the engine takes every
      // micro-batch's gradient-free pass first.
      if (config.loss.name === 'ppo') await engine.trainer.ppoPrepare(micros);
      for (const [i, micro] of micros.entries()) {
        // The last micro-step's backward launches the gradient all-reduce bucket by bucket.
        if (i === micros.length - 1) engine.sync?.arm();
        const r: StepResult = await engine.trainer.microStep(micro, {
          nPairs: micro.nPairs,
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
        local.lossSum += r.loss * micro.nPairs;
        local.tokens += r.tokens;
      }
      let commWaitSeconds: number | null = null;
      if (engine.sync) {
        if (micros.length === 0) engine.sync.arm();
        commWaitSeconds = (await engine.sync.finish()).waitSeconds;
      }
      local.stop = options.signal?.aborted ? 1 : 0;
      local.peakMemoryBytes = peakRssBytes() ?? 0;
      local.seconds = (Date.now() - t0) / 1000;
      const totals = await par.reduceStep(local, metricNames);
      if (totals.stop > 0) stopAgreed = true;
      if (totals.nonFinite > 0) {
        throw new NonFiniteError(state.step, badLoss?.ids ?? examples.map((e) => e.id), badLoss ? `non-finite loss (${badLoss.loss})` : `non-finite loss on another rank (${totals.nonFinite} micro-batches)`);
      }
      const means = Object.fromEntries(Object.entries(totals.metricSums).map(([k, v]) => [k, v / totals.pairs]));
      const tokens = totals.tokens;
      const lossSum = totals.lossSum;
      const lr = scheduledLearningRate(config, state.step, totalSteps);
      const { gradNorm } = await engine.trainer.optimizerStep({ lr, maxGradNorm: config.model.max_grad_norm ?? 0 });
      // ZeRO-1: each parameter updated by its owner reaches every rank.
      if (engine.zero) await engine.zero.broadcastParams();
      if (!Number.isFinite(gradNorm)) throw new NonFiniteError(state.step, examples.map((e) => e.id), `non-finite gradient norm (${gradNorm})`);
      const seconds = par.distributed ? Math.max(totals.seconds, (Date.now() - t0) / 1000) : (Date.now() - t0) / 1000;
      state.step += 1;
      state.examples += examples.length;
      state.batchInEpoch += 1;
      stepsThisCall += 1;
      emit({
        step: state.step,
        examples: state.examples,
        epoch: state.epoch,
        ...means,
        loss: lossSum / examples.length,
        grad_norm: gradNorm,
        learning_rate: lr,
        tokens_per_second: tokens / Math.max(seconds, 1e-9),
        step_seconds: seconds,
        peak_memory_bytes: par.distributed ? totals.peakMemoryBytes : peakRssBytes(),
        ...(commWaitSeconds !== null ? { comm_wait_seconds: commWaitSeconds } : {}),
      });
      options.onStep?.({ step: state.step, totalSteps, examples: state.examples, loss: lossSum / examples.length, accuracy: means['rewards/accuracies'], tokensPerSecond: tokens / Math.max(seconds, 1e-9) });
      if (state.examples - state.lastEvalExamples >= config.eval_every) {
        state.lastEvalExamples = state.examples;
        await evaluate();
        if (config.intermediate_checkpoints) await save(true);
      }
    }
    if (!interrupted && testExamples.length > 0 && state.lastEvalExamples !== state.examples) {
      state.lastEvalExamples = state.examples;
      await evaluate();
    }
    await save(false);
    completed = true;
  } finally {
    try {
      watch?.close(completed && !interrupted);
    } finally {
      disposeEngine(engine);
    }
  }
  return {
    runDir,
    checkpoint,
    step: state.step,
    totalSteps,
    examples: state.examples,
    interrupted,
    wallSeconds: (Date.now() - started) / 1000,
    lastEval,
  };
}
