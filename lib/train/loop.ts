// `rpo train`: the run loop. TS owns the schedule (learning rate per step, accumulation
// boundaries, when to evaluate, log and checkpoint); the engine owns every tensor.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';

import {
  engineLossConfig,
  engineOptimizer,
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
import { Model, Trainer, cudaAvailable, setNumThreads, type StepResult } from '../native.js';
import { findCheckpoint, noCheckpointReason, readTrainerState, saveCheckpoint, OPTIMIZER_STATE, type TrainerState } from './checkpoint.js';
import { buildRunData, type RunData } from './data.js';
import { adapterBaseModel, loadLoraPolicy, type AdapterShape } from './lora.js';
import { isAdapterDir } from '../model/lora.js';
import { MetricAverager, MetricsLog, truncateMetrics, type MetricRecord } from './metrics.js';
import {
  computeReferenceTable,
  examplesFingerprint,
  readReferenceCache,
  referenceCacheKey,
  referenceForBatch,
  weightsFingerprint,
  writeReferenceCache,
  type ReferenceTable,
} from './reference_cache.js';
import { learningRate, microBatchSizes } from './schedule.js';
import { clearRunOutputs, earlierRun, earlierRunError, lockRunDir, removeStaleTemps } from './run_dir.js';

export const GROUPS: Record<string, Groups> = { sft: 1, 'rorpo-simple': 3, rdpo: 3 };

/** Row groups per pair the loss reads: 1 (sft), 2 (pairs), 3 (pairs + rationale). */
export function lossGroups(loss: string): Groups {
  return GROUPS[loss] ?? 2;
}

/** A NaN or infinite loss or gradient: the run stops without touching the last checkpoint. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
  constructor(
    readonly step: number,
    readonly exampleIds: readonly string[],
    what: string,
  ) {
    super(`${what} at step ${step + 1}; the batch held examples ${exampleIds.join(', ')}. The last good checkpoint is kept.`);
  }
}

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

export function resolveDevice(device: string): string {
  if (device === 'auto') return cudaAvailable() ? 'cuda' : 'cpu';
  return device;
}

/** The examples a loss can train on (none of the sequences it reads dropped). */
export function usable(examples: readonly TokenizedExample[], groups: Groups): TokenizedExample[] {
  const kinds = (['chosen', 'rejected', 'rationale'] as const).slice(0, groups);
  return examples.filter((ex) => kinds.every((k) => ex[k] !== undefined && !ex[k]!.dropped));
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
  /** With LoRA: the adapters' shape, for each checkpoint's adapter_config.json. */
  adapters: AdapterShape | null;
}

/** loraBase: a LoRA policy whose base (adapters off) gives the reference log-probs. */
async function referenceTable(config: RunConfig, data: RunData, device: string, events: TrainEvents, loraBase: Model | null = null): Promise<ReferenceTable> {
  const examples = [...data.train, ...data.test];
  const key = referenceCacheKey({
    weights: weightsFingerprint(data.model.modelDir),
    dtype: loraBase ? loraBase.dtype : config.model.reference_dtype,
    examples: examplesFingerprint(examples),
  });
  const file = path.join(config.cache_dir, 'reference_logps', `${key}.json`);
  const cached = readReferenceCache(file, key);
  if (cached) {
    events.onMessage?.(`reference log-probs: reusing ${file}`);
    return cached;
  }
  events.onMessage?.(`reference log-probs: computing for ${examples.length} examples (once; cached as ${file})`);
  const reference = loraBase ?? (await loadModel(data.model.modelDir, { dtype: config.model.reference_dtype, device }));
  try {
    const usableExamples = examples.filter((ex) => !ex.chosen.dropped && !ex.rejected.dropped);
    const table = await computeReferenceTable(reference, usableExamples, {
      batchSize: config.model.eval_batch_size,
      padTokenId: data.model.tokenizer.padTokenId ?? 0,
      chunkTokens: config.chunk_tokens,
      adapters: loraBase === null,
    });
    writeReferenceCache(file, key, table);
    return table;
  } finally {
    if (!loraBase) reference.dispose();
  }
}

async function buildEngine(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: TrainEvents): Promise<Engine> {
  const needsReference = lossUsesReference(config.loss.name);
  if (resumeFrom && isAdapterDir(resumeFrom) !== config.lora.enabled) {
    throw new Error(
      config.lora.enabled
        ? `resume=${config.resume}: ${resumeFrom} is a full-weights checkpoint, and this run trains LoRA adapters (lora.enabled=true); resume it with lora.enabled=false`
        : `resume=${config.resume}: ${resumeFrom} is a LoRA adapter checkpoint; resume it with lora.enabled=true (its saved config.yaml has it)`,
    );
  }
  if (config.lora.enabled) return buildLoraEngine(config, data, device, resumeFrom, events);
  const table = needsReference && config.precompute_reference ? await referenceTable(config, data, device, events) : null;
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
  if (resumeFrom) await trainer.loadState(path.join(resumeFrom, OPTIMIZER_STATE));
  return { policy, reference, trainer, table, adapters: null };
}

/**
 * LoRA: the base in the precision's dtype (bf16 under the bf16 precisions) with fp32 adapters,
 * which alone train (fp32 AdamW). No reference model: the base with the adapters off is one.
 */
async function buildLoraEngine(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: TrainEvents): Promise<Engine> {
  const precision = resolvePrecision(config.precision, device);
  const dtype = precisionDtype(precision);
  events.onMessage?.(`precision: LoRA adapters and their AdamW state in fp32, the frozen base in ${dtype}`);
  const { policy, shape } = await loadLoraPolicy(config, data.model.modelDir, resumeFrom, { dtype, device });
  events.onMessage?.(`lora: r=${shape.r} alpha=${shape.alpha} on ${policy.adapterParams().length / 2} linears (${policy.adapterParams().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)} trainable parameters)${resumeFrom ? '' : config.lora.from ? `, from ${config.lora.from}` : ''}`);
  try {
    const needsReference = lossUsesReference(config.loss.name);
    const table = needsReference && config.precompute_reference ? await referenceTable(config, data, device, events, policy) : null;
    const trainer = new Trainer(policy, null, {
      loss: engineLossConfig(config.loss),
      ...engineOptimizer(config),
      precision: 'fp32',
      seed: config.seed,
      activationCheckpointing: config.model.activation_checkpointing,
      chunkTokens: config.chunk_tokens,
    });
    if (resumeFrom) await trainer.loadState(path.join(resumeFrom, OPTIMIZER_STATE));
    return { policy, reference: null, trainer, table, adapters: shape };
  } catch (err) {
    policy.dispose();
    throw err;
  }
}

function disposeEngine(e: Engine): void {
  e.trainer.dispose();
  e.policy.dispose();
  e.reference?.dispose();
}

/** Means of the loss's metrics over the test examples (eval_ prefix), without gradients. */
export async function evaluateSplit(
  trainer: Trainer,
  examples: readonly TokenizedExample[],
  opts: { batchSize: number; groups: Groups; padTokenId: number; table: ReferenceTable | null },
): Promise<Record<string, number>> {
  const avg = new MetricAverager();
  for (const b of makeBatches(usable(examples, opts.groups), { batchSize: opts.batchSize, groups: opts.groups, seed: 0, shuffle: false, padTokenId: opts.padTokenId })) {
    const r = await trainer.evalStep(b, { nPairs: b.nPairs, reference: opts.table ? referenceForBatch(opts.table, b.exampleIds) : undefined });
    if (!r.finite) throw new NonFiniteError(-1, b.exampleIds, 'non-finite evaluation loss');
    avg.add({ ...r.metrics, loss: r.loss }, b.nPairs);
  }
  return avg.count > 0 ? avg.mean('eval_') : {};
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
  const device = resolveDevice(config.device);
  const runDir = config.local_run_dir;
  const lock = lockRunDir(runDir);
  try {
    if (lock.tookOverFrom) options.onMessage?.(`took over the lock of a run that is gone (pid ${lock.tookOverFrom.pid} on ${lock.tookOverFrom.host})`);
    return await trainLocked(config, options, device, started);
  } finally {
    lock.release();
  }
}

async function trainLocked(config: RunConfig, options: TrainOptions, device: string, started: number): Promise<TrainResult> {
  const runDir = config.local_run_dir;
  const resumeFrom = claimRunDir(config, options);
  // The saved config reloads as this run (--config-path): never as an instruction to delete it.
  saveConfig({ ...config, overwrite: false }, path.join(runDir, 'config.yaml'));
  const groups = lossGroups(config.loss.name);

  const data = await buildRunData(config, { withRationale: groups === 3, onStage: options.onMessage });
  const trainExamples = usable(data.train, groups);
  const testExamples = usable(data.test, groups);
  const dropped = data.train.length - trainExamples.length;
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
  const totalExamples = config.n_examples ?? (config.n_epochs ?? 1) * examplesPerEpoch(trainExamples.length, batchSize, config.drop_last);
  const totalSteps = Math.ceil(totalExamples / batchSize);
  const padTokenId = data.model.tokenizer.padTokenId ?? 0;
  const tok = data.model.tokenizer;
  const configExtras = { bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId, pad_token_id: tok.padTokenId };
  const log = new MetricsLog(path.join(runDir, 'metrics.jsonl'));
  const emit = (record: MetricRecord) => {
    log.append(record);
    options.onLog?.(record);
  };

  const engine = await buildEngine(config, data, device, resumeFrom, options);
  let lastEval: Record<string, number> | null = null;
  const evaluate = async () => {
    if (testExamples.length === 0) return;
    const t0 = Date.now();
    lastEval = await evaluateSplit(engine.trainer, testExamples, { batchSize: config.model.eval_batch_size, groups, padTokenId, table: engine.table });
    emit({ step: state.step, examples: state.examples, ...lastEval, eval_seconds: (Date.now() - t0) / 1000 });
  };
  let checkpoint: string | null = resumeFrom;
  const save = async (keepStepCopy: boolean) => {
    // No checkpoint before this run's first optimizer step: it would hold nothing new, and a
    // fresh run stopped at once must not leave an untrained "LATEST" behind.
    if (config.debug || state.step === startStep) return;
    state.wallSeconds += (Date.now() - segmentStart) / 1000;
    segmentStart = Date.now();
    const adapter = engine.adapters ? { shape: engine.adapters, baseModel: adapterBaseModel(config) } : undefined;
    checkpoint = await saveCheckpoint({ runDir, model: engine.policy, trainer: engine.trainer, state, tokenizerDir: data.model.tokenizerDir, modelDir: data.model.modelDir, configExtras, keepStepCopy, adapter });
    options.onMessage?.(`checkpoint: ${checkpoint} (step ${state.step})`);
  };

  let segmentStart = Date.now();
  let interrupted = false;
  let stepsThisCall = 0;
  try {
    if (config.do_first_eval && state.step === 0) await evaluate();
    let epochBatches: { epoch: number; order: TokenizedExample[][] } | null = null;
    while (state.examples < totalExamples) {
      if (options.signal?.aborted || (options.stopAfterSteps !== undefined && stepsThisCall >= options.stopAfterSteps)) {
        interrupted = true;
        break;
      }
      if (!epochBatches || epochBatches.epoch !== state.epoch) {
        // The epoch's order is a function of (seed, epoch) alone, the same shuffle makeBatches
        // does: a resumed run sees the same batches. Only the order is needed here; each global
        // batch is laid out as micro-batches when it is trained.
        epochBatches = { epoch: state.epoch, order: epochOrder(trainExamples, { batchSize, seed: config.seed, epoch: state.epoch, dropLast: config.drop_last }) };
      }
      if (state.batchInEpoch >= epochBatches.order.length) {
        state.epoch += 1;
        state.batchInEpoch = 0;
        continue;
      }
      let examples = epochBatches.order[state.batchInEpoch]!;
      examples = examples.slice(0, totalExamples - state.examples);
      const t0 = Date.now();
      const avg = new MetricAverager();
      let tokens = 0;
      let lossSum = 0;
      for (const micro of microBatches(examples, config.model.gradient_accumulation_steps, groups, padTokenId)) {
        const r: StepResult = await engine.trainer.microStep(micro, {
          nPairs: micro.nPairs,
          scale: micro.nPairs / examples.length,
          reference: engine.table ? referenceForBatch(engine.table, micro.exampleIds) : undefined,
        });
        if (!r.finite) throw new NonFiniteError(state.step, micro.exampleIds, `non-finite loss (${r.loss})`);
        avg.add(r.metrics, micro.nPairs);
        lossSum += r.loss * micro.nPairs;
        tokens += r.tokens;
      }
      const lr = learningRate(config.lr, state.step, config.warmup_steps);
      const { gradNorm } = await engine.trainer.optimizerStep({ lr, maxGradNorm: config.model.max_grad_norm ?? 0 });
      if (!Number.isFinite(gradNorm)) throw new NonFiniteError(state.step, examples.map((e) => e.id), `non-finite gradient norm (${gradNorm})`);
      const seconds = (Date.now() - t0) / 1000;
      state.step += 1;
      state.examples += examples.length;
      state.batchInEpoch += 1;
      stepsThisCall += 1;
      const means = avg.mean();
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
        peak_memory_bytes: peakRssBytes(),
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
  } finally {
    disposeEngine(engine);
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
