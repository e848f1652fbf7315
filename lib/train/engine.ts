// The engine a run trains with: the policy (full weights or LoRA adapters on a frozen base),
// the reference model or its precomputed log-probs, the Trainer, and with data parallelism the
// gradient sync and the ZeRO shard. One builder serves full fine-tuning and LoRA; they differ
// only in how the models load.
import path from 'node:path';

import { engineLossConfig, engineOptimizer, lossEvalBatchSize, lossUsesReference, precisionDtype, precisionNotices, resolvePrecision, type RunConfig } from '../config/index.js';
import type { Groups } from '../data/batch/index.js';
import { loadModel } from '../model/io.js';
import { isAdapterDir } from '../model/lora.js';
import { Model, Trainer, evaluateLoss, evaluatePpo, type LossConfig, type TrainPrecision } from '../native.js';
import type { Parallel } from '../parallel/context.js';
import { GradSync, ZeroShard } from '../parallel/native.js';
import { computeReferenceTableSharded } from '../parallel/reference.js';
import { OPTIMIZER_STATE } from './checkpoint.js';
import type { RunData } from './data.js';
import { loadLoraPolicy, type AdapterShape } from './lora.js';
import { lossHasValueHead, lossIsUnpaired } from '../loss/table.js';
import {
  examplesFingerprint,
  readReferenceCache,
  referenceCacheKey,
  weightsFingerprint,
  writeReferenceCache,
  type ReferenceTable,
} from './reference_cache.js';

/** Where the engine's stage messages go (TrainEvents.onMessage). */
export interface EngineEvents {
  onMessage?(message: string): void;
}

export interface Engine {
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
export function lossMetricNames(loss: LossConfig, groups: Groups): string[] {
  if (lossHasValueHead(loss.name)) {
    // ppo's step (native/train/ppo_step.cpp): the loss's metrics on one token, and the per-kind
    // log-ratios it adds; a micro-batch without one kind leaves that key out (a sum of 0 here).
    const x = Float64Array.of(0);
    const names = Object.keys(evaluatePpo(loss, { rows: 1, T: 1, logps: x, refLogps: x, values: x, oldValues: x, masks: Float64Array.of(1), scores: Float64Array.of(1) }).metrics);
    return [...names, 'logratio/desirable', 'logratio/undesirable', 'logratio/margin'].sort();
  }
  // Unpaired losses (kto) read each example's kind and report some metrics per kind: two
  // examples, one of each, name them all.
  const unpaired = lossIsUnpaired(loss.name);
  const n = unpaired ? 2 : 1;
  const one = { sum: new Float64Array(n).fill(-1), mean: new Float64Array(n).fill(-1), count: new Float64Array(n).fill(1) };
  const pair = { chosen: one, ...(groups >= 2 ? { rejected: one } : {}), ...(groups >= 3 ? { rationale: one } : {}), ...(unpaired ? { desirable: Uint8Array.of(1, 0) } : {}) };
  return Object.keys(evaluateLoss(loss, pair, { chosen: one, ...(groups >= 2 ? { rejected: one } : {}) }).metrics).sort();
}

/** loraBase: a LoRA policy whose base (adapters off) gives the reference log-probs. */
async function referenceTable(config: RunConfig, data: RunData, device: string, events: EngineEvents, par: Parallel, loraBase: Model | null = null): Promise<ReferenceTable> {
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

/** The models a run trains: the policy, the reference (or the table standing in for it), the precision the Trainer keeps. */
interface LoadedModels {
  policy: Model;
  reference: Model | null;
  table: ReferenceTable | null;
  precision: TrainPrecision;
  adapters: AdapterShape | null;
}

/**
 * Loads the models and builds the Trainer (resuming: with the checkpoint's optimizer state),
 * for full fine-tuning and LoRA alike; data parallel, the gradient sync and the ZeRO shard.
 */
export async function buildEngine(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: EngineEvents, par: Parallel): Promise<Engine> {
  if (resumeFrom && isAdapterDir(resumeFrom) !== config.lora.enabled) {
    throw new Error(
      config.lora.enabled
        ? `resume=${config.resume}: ${resumeFrom} is a full-weights checkpoint, and this run trains LoRA adapters (lora.enabled=true); resume it with lora.enabled=false`
        : `resume=${config.resume}: ${resumeFrom} is a LoRA adapter checkpoint; resume it with lora.enabled=true (its saved config.yaml has it)`,
    );
  }
  const models = config.lora.enabled
    ? await loadLoraModels(config, data, device, resumeFrom, events, par)
    : await loadFullModels(config, data, device, resumeFrom, events, par);
  const { policy, reference, table, adapters } = models;
  let trainer: Trainer | null = null;
  try {
    trainer = new Trainer(policy, reference, {
      loss: engineLossConfig(config.loss),
      ...engineOptimizer(config),
      precision: models.precision,
      seed: config.seed,
      activationCheckpointing: config.model.activation_checkpointing,
      chunkTokens: config.chunk_tokens,
      paddingFree: config.padding_free,
    });
    if (resumeFrom) for (const w of await trainer.loadState(path.join(resumeFrom, OPTIMIZER_STATE))) events.onMessage?.(`warning: ${w}`);
  } catch (err) {
    trainer?.dispose();
    policy.dispose();
    reference?.dispose();
    throw err;
  }
  const stage = par.env?.zero ?? 0;
  // ZeRO-3 reduce-scatters the gradients itself, layer by layer.
  const sync = par.group && stage !== 3 ? new GradSync(policy, par.group) : null;
  // ppo: the value head's gradients and the advantages' whitening span the ranks too.
  if (sync && lossHasValueHead(config.loss.name)) sync.attachValueHead(trainer);
  // After loadState: a checkpoint's state is cut down to this rank's share.
  const zero = par.group && stage !== 0 ? new ZeroShard(trainer, par.group, stage) : null;
  // ZeRO-2: gradients reduced to their owners, not all-reduced.
  if (zero && sync && stage === 2) sync.reduceToOwners(zero);
  if (zero) await announceZeroPlan(zero, par, events, precisionDtype(models.precision) === 'float32' ? 4 : 2);
  return { policy, reference, trainer, table, sync, zero, adapters };
}

/**
 * Full fine-tuning: the policy in the precision's dtype, the reference (the starting model, also
 * when resuming) in model.reference_dtype, or its log-probs computed once (precompute_reference).
 */
async function loadFullModels(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: EngineEvents, par: Parallel): Promise<LoadedModels> {
  const needsReference = lossUsesReference(config.loss.name);
  // Unpaired losses' reference runs live: their KL rows are made per batch.
  const table = needsReference && config.precompute_reference && !lossIsUnpaired(config.loss.name) ? await referenceTable(config, data, device, events, par) : null;
  // `precision` decides the policy's dtype and the optimizer's (auto: by device); the reference
  // keeps model.reference_dtype.
  const precision = resolvePrecision(config.precision, device);
  for (const line of precisionNotices(config, device)) events.onMessage?.(line);
  const policy = await loadModel(resumeFrom ?? data.model.modelDir, { dtype: precisionDtype(precision), device });
  // The reference is the starting model (model.load_from or name_or_path), also when resuming.
  const reference = needsReference && !table ? await loadModel(data.model.modelDir, { dtype: config.model.reference_dtype, device }) : null;
  return { policy, reference, table, precision, adapters: null };
}

/** The per-rank optimizer-state plan, printed by rank 0 at start. */
async function announceZeroPlan(zero: ZeroShard, par: Parallel, events: EngineEvents, paramBytesPerElement: number): Promise<void> {
  const p = zero.plan;
  const owned = await par.sum(Array.from({ length: par.worldSize }, (_, r) => (r === par.rank ? p.ownedNumel : 0)));
  const formatBytes = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(2)} MiB`);
  const stateSize = (elements: number) => formatBytes(elements * p.stateBytesPerElement);
  const gradientSize = (elements: number) => formatBytes(elements * p.gradBytesPerElement);
  const grads = p.stage === 2 ? `; gradients ${gradientSize(p.totalNumel)} unsharded, kept after the reduce per rank: ${owned.map((n, r) => `rank ${r} ${gradientSize(n)}`).join(', ')}` : '';
  const params = p.stage === 3 ? `; parameters ${formatBytes(p.totalNumel * paramBytesPerElement)} unsharded, kept between uses per rank: ${owned.map((n, r) => `rank ${r} ${formatBytes(n * paramBytesPerElement)}`).join(', ')} (one layer gathered at a time)` : '';
  events.onMessage?.(`ZeRO-${p.stage}: optimizer state ${stateSize(p.totalNumel)} unsharded; per rank: ${owned.map((n, r) => `rank ${r} ${stateSize(n)} (${((100 * n) / p.totalNumel).toFixed(1)} %)`).join(', ')}${grads}${params}`);
}

/**
 * LoRA: the base in the precision's dtype (bf16 under the bf16 precisions) with fp32 adapters,
 * which alone train (fp32 AdamW). No reference model: the base with the adapters off is one.
 */
async function loadLoraModels(config: RunConfig, data: RunData, device: string, resumeFrom: string | null, events: EngineEvents, par: Parallel): Promise<LoadedModels> {
  const dtype = precisionDtype(resolvePrecision(config.precision, device));
  events.onMessage?.(`precision: LoRA adapters and their AdamW state in fp32, the frozen base in ${dtype}`);
  const { policy, shape } = await loadLoraPolicy(config, data.model.modelDir, resumeFrom, { dtype, device });
  events.onMessage?.(`lora: r=${shape.r} alpha=${shape.alpha} on ${policy.adapterParams().length / 2} linears (${policy.adapterParams().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)} trainable parameters)${resumeFrom ? '' : config.lora.from ? `, from ${config.lora.from}` : ''}`);
  try {
    const needsReference = lossUsesReference(config.loss.name);
    const table = needsReference && config.precompute_reference && !lossIsUnpaired(config.loss.name) ? await referenceTable(config, data, device, events, par, policy) : null;
    return { policy, reference: null, table, precision: 'fp32', adapters: shape };
  } catch (err) {
    policy.dispose();
    throw err;
  }
}

export function disposeEngine(e: Engine): void {
  e.zero?.dispose();
  e.sync?.dispose();
  e.trainer.dispose();
  e.policy.dispose();
  e.reference?.dispose();
}
