// `rpo eval`: the seed's modes. eval: the loss's metrics over the test split; sample: policy
// samples for test prompts; alpacaeval: every AlpacaEval prompt, in the JSON that
// `alpaca_eval evaluate --model_outputs` reads.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, engineLossConfig, lossEvalBatchSize, lossUsesReference, type RunConfig } from '../config/index.js';
import { loadPromptSplit } from '../data/sources/index.js';
import { loadTokenizer } from '../data/tokenize/index.js';
import type { PreferenceRow } from '../data/types.js';
import { loadModel } from '../model/io.js';
import { isAdapterDir } from '../model/lora.js';
import { loadPolicyModel } from '../model/policy.js';
import { writeFileAtomic } from '../util/files.js';
import { Trainer, setNumThreads } from '../native.js';
import { VALUE_HEAD_FILE, findCheckpoint } from '../train/checkpoint.js';
import { buildRunData, loadDatasetRows, loadRows, resolveRunModel } from '../train/data.js';
import { resolveDevice } from '../train/device.js';
import { evaluateSplit, usable } from '../train/evaluate.js';
import { lossGroups, lossHasValueHead, lossIsUnpaired, lossUsesControlTokens } from '../loss/table.js';
import { unpairedItems } from '../train/unpaired.js';
import { csftExamples, csftRunModel } from '../train/csft.js';
import { recordPath, samplingRecord, type SamplingRecord } from './record.js';
import { complete, generationSettings, rowPrompt, sampleSlots, type Completion, type SamplePrompt } from './sampling.js';

export interface EvalEvents {
  onMessage?(message: string): void;
  onProgress?(done: number, total: number, tokens: number): void;
}

/** The policy a run's eval reads: saved_policy, else the run's LATEST checkpoint, else the base model. */
export function policyDir(config: RunConfig): string | null {
  if (config.saved_policy) return config.saved_policy;
  return findCheckpoint(config.local_run_dir) ?? (existsSync(path.join(config.local_run_dir, 'LATEST')) ? path.join(config.local_run_dir, 'LATEST') : null);
}

/** The file a mode writes: `<samples_dir>/eval_<exp>.json`, `<exp>.json` (sample) or `alpaca_<exp>.json`. */
export function evalOutputFile(config: RunConfig): string {
  const name = { eval: `eval_${config.exp_name}`, sample: config.exp_name, alpacaeval: `alpaca_${config.exp_name}` }[config.mode as 'eval' | 'sample' | 'alpacaeval'];
  if (name === undefined) throw new Error(`rpo eval: mode=${config.mode} is not an eval mode (eval, sample or alpacaeval)`);
  return path.join(config.samples_dir, `${name}.json`);
}

/**
 * An earlier output (hours of sampling, perhaps, and what `rpo compare` reads) is not replaced
 * unless overwrite=true, as a run directory is not (lib/train/run_dir.ts): a usage error before
 * any model is loaded.
 */
function claimOutput(config: RunConfig, events: EvalEvents): string {
  const file = evalOutputFile(config);
  if (!existsSync(file)) return file;
  if (!config.overwrite) {
    throw new ConfigError(
      `${file} exists (an earlier mode=${config.mode} of exp_name=${config.exp_name}); pass ++overwrite=true to replace it, ` +
        'or choose another ++exp_name or ++samples_dir',
    );
  }
  events.onMessage?.(`overwrite=true: ${file} will be replaced`);
  return file;
}

function writeJson(file: string, value: unknown): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [Buffer.from(JSON.stringify(value, null, 2) + '\n')]);
  return file;
}

export interface EvalResult {
  file: string;
  metrics?: Record<string, number>;
  samples?: number;
}

export async function runEval(config: RunConfig, events: EvalEvents = {}): Promise<EvalResult> {
  const outFile = claimOutput(config, events);
  if (config.threads) setNumThreads(config.threads);
  const device = resolveDevice(config.device);
  const trained = policyDir(config);
  // The base model's weights are read only when it is the policy (no checkpoint) or the
  // reference of a loss that has one (mode=eval); otherwise its tokenizer files are enough, and
  // sampling from a checkpoint never downloads the base weights.
  // A LoRA adapter directory brings its own base (adapter_config.json) and is its own reference.
  const adapter = trained !== null && isAdapterDir(trained);
  const baseWeights = trained === null || (config.mode === 'eval' && lossUsesReference(config.loss.name) && !adapter);
  const resolved = await resolveRunModel(config, { weights: baseWeights });
  // A csft checkpoint carries the control tokens in its own tokenizer files: sample with those.
  const base = lossUsesControlTokens(config.loss.name) && trained && config.mode !== 'eval' ? { ...resolved, tokenizer: await loadTokenizer(trained) } : resolved;
  const weights = trained ?? base.modelDir;
  events.onMessage?.(`policy: ${weights}${trained ? '' : ' (no trained checkpoint found: the base model)'}`);
  const { model: policy } = await loadPolicyModel(weights, { dtype: config.model.policy_dtype, device });
  try {
    switch (config.mode) {
      case 'eval':
        return await evalMetrics(config, base, policy, device, events, weights, outFile);
      case 'sample':
        return await sampleTest(config, base, policy, weights, events, outFile);
      case 'alpacaeval':
        return await alpacaEval(config, base, policy, weights, events, outFile);
      default:
        throw new Error(`rpo eval: mode=${config.mode} is not an eval mode (eval, sample or alpacaeval)`);
    }
  } finally {
    policy.dispose();
  }
}

type Base = Awaited<ReturnType<typeof resolveRunModel>>;

async function evalMetrics(config: RunConfig, base: Base, policy: Awaited<ReturnType<typeof loadModel>>, device: string, events: EvalEvents, weights: string, outFile: string): Promise<EvalResult> {
  const groups = lossGroups(config.loss);
  // csft: the run's base with its control tokens (made again from the base when the run's copy is gone).
  const csft = lossUsesControlTokens(config.loss.name) ? await csftRunModel(config, config.local_run_dir) : null;
  const data = await buildRunData(config, { splits: ['test'], withRationale: groups === 3, model: csft ?? base, onStage: events.onMessage });
  // A LoRA policy's reference is its base with the adapters off (the trainer does it).
  const withAdapters = policy.adapterParams().length > 0;
  const reference = lossUsesReference(config.loss.name) && !withAdapters ? await loadModel(base.modelDir, { dtype: config.model.reference_dtype, device }) : null;
  const trainer = new Trainer(policy, reference, { loss: engineLossConfig(config.loss), chunkTokens: config.chunk_tokens, paddingFree: config.padding_free });
  try {
    // ppo: the checkpoint's value head (a fresh one, drawn from the seed, for a base model).
    if (lossHasValueHead(config.loss.name)) {
      if (existsSync(path.join(weights, VALUE_HEAD_FILE))) await trainer.loadValueHead(weights);
      else events.onMessage?.(`loss=${config.loss.name}: no ${VALUE_HEAD_FILE} in ${weights}: the value head is a fresh one`);
    }
    const unpaired = lossIsUnpaired(config.loss.name);
    const examples = unpaired ? unpairedItems(data.test) : csft ? csftExamples(data.test, csft.ids, config.model.max_length) : usable(data.test, groups);
    const metrics = await evaluateSplit(trainer, examples, {
      batchSize: lossEvalBatchSize(config.model),
      groups,
      padTokenId: base.tokenizer.padTokenId ?? 0,
      table: null,
      ...(unpaired ? { unpaired: { loss: config.loss.name, maxLength: config.model.max_length } } : {}),
    });
    const file = writeJson(outFile, metrics);
    return { file, metrics };
  } finally {
    trainer.dispose();
    reference?.dispose();
  }
}

async function sampleTest(config: RunConfig, base: Base, policy: Awaited<ReturnType<typeof loadModel>>, weights: string, events: EvalEvents, outFile: string): Promise<EvalResult> {
  // The first n_samples test rows over the datasets in order, each dataset's prompts formatted
  // as training formats them: its remove_extra_spaces trait, and a multi-turn row (hh, oasst)
  // after its whole history (the row's turns), not its plain text. One continuous batch over all.
  const datasets = await loadDatasetRows(config, 'test');
  const total = Math.min(config.n_samples, datasets.reduce((n, d) => n + d.rows.length, 0));
  const rows: { row: PreferenceRow; removeExtraSpaces: boolean }[] = [];
  for (const d of datasets) for (const row of d.rows.slice(0, total - rows.length)) rows.push({ row, removeExtraSpaces: d.traits.remove_extra_spaces });
  const { completions, record } = await sampleWithRecord(config, base, policy, weights, rows.map((r) => rowPrompt(r.row, r.removeExtraSpaces)), events);
  const samples = completions.map((c: Completion, i) => ({ prompt: c.prompt, chosen: rows[i]!.row.chosen, policy: c.output }));
  const file = writeJson(outFile, samples);
  writeJson(recordPath(file), { ...record, samples_file: path.basename(file) });
  return { file, samples: samples.length };
}

async function alpacaEval(config: RunConfig, base: Base, policy: Awaited<ReturnType<typeof loadModel>>, weights: string, events: EvalEvents, outFile: string): Promise<EvalResult> {
  const prompts = (await loadPromptSplit('alpacaeval', 'test')).slice(0, config.n_samples);
  const { completions, record } = await sampleWithRecord(config, base, policy, weights, prompts, events);
  // `instruction` is the dataset's string as read (alpaca_eval joins on it), byte for byte.
  const outputs = completions.map((c, i) => ({
    instruction: prompts[i]!.prompt,
    output: c.output,
    generator: config.exp_name,
    dataset: prompts[i]!.dataset ?? 'alpaca_eval',
  }));
  const file = writeJson(outFile, outputs);
  writeJson(recordPath(file), { ...record, samples_file: path.basename(file) });
  return { file, samples: outputs.length };
}

/** Samples every prompt (one continuous batch of eval_batch_size slots) and records how. */
async function sampleWithRecord(
  config: RunConfig,
  base: Base,
  policy: Awaited<ReturnType<typeof loadModel>>,
  weights: string,
  prompts: readonly SamplePrompt[],
  events: EvalEvents,
): Promise<{ completions: Completion[]; record: SamplingRecord }> {
  const settings = generationSettings(weights, config, base.tokenizer, config.seed);
  const slots = sampleSlots(config, policy, prompts.length);
  const started = performance.now();
  const completions = await complete(policy, base.tokenizer, config, prompts, {
    batchSize: slots,
    settings,
    onProgress: (p) => events.onProgress?.(p.done, p.total, p.tokens),
  });
  const seconds = (performance.now() - started) / 1000;
  const record = samplingRecord({ samplesFile: '', model: config.model.name_or_path, checkpoint: weights, settings, slots, completions, seconds });
  return { completions, record };
}
