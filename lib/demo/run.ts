// `npx rpo demo`: the main job on a built-in default, small enough for a laptop CPU. It makes
// a small Llama (random init) with the project's byte-level tokenizer, fine-tunes it with SFT
// on the bundled synthetic dataset's chosen responses, then trains RDPO from the SFT model
// (and, with --dpo, DPO on the same data for comparison), evaluates held-out reward accuracy,
// exports AlpacaEval-format samples, and writes <out>/report.html.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { loadConfig, type RunConfig } from '../config/index.js';
import { hydraQuote } from '../config/overrides.js';
import { HALOS_PREFIXES } from '../data/format/index.js';
import { loadPreferenceSplit } from '../data/sources/index.js';
import { loadModel } from '../model/io.js';
import { initModelDir } from '../model/init.js';
import { writeFileAtomic } from '../model/safetensors.js';
import { complete, generationSettings } from '../eval/sampling.js';
import { resolveRunModel } from '../train/data.js';
import { train, type TrainResult } from '../train/loop.js';
import { demoDatasetDir } from './dataset.js';
import { readMetricsJsonl, writeReport, type ReportRun } from './report.js';

export interface DemoOptions {
  /** Everything goes here: the model, one run directory per stage, samples, the report. */
  out: string;
  /** Also train DPO from the SFT model on the same data. */
  dpo?: boolean;
  /** Model shape preset (lib/model/presets.ts). */
  preset?: string;
  /** Preference pairs per preference run (RDPO, DPO). */
  preferenceExamples?: number;
  /** AlpacaEval-format samples to export from the RDPO policy. */
  samples?: number;
  seed?: number;
  onMessage?(message: string): void;
  onStep?(stage: string, s: { step: number; totalSteps: number; loss: number; accuracy?: number; tokensPerSecond: number }): void;
}

export interface DemoStage {
  name: string;
  result: TrainResult;
  heldOutAccuracy: number | null;
}

export interface DemoResult {
  stages: DemoStage[];
  report: string;
  samples: string;
  wallSeconds: number;
}

/** The overrides every demo stage shares: the small model, the bundled data, short sequences. */
function stageOverrides(o: Required<Pick<DemoOptions, 'out' | 'seed'>>, modelDir: string, exp: string): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${demoDatasetDir()}]`,
    `exp_name=${exp}`,
    `cache_dir=${o.out}`,
    `samples_dir=${path.join(o.out, 'samples')}`,
    `seed=${o.seed}`,
    // rationale rows carry the seed's rationale question with both responses: ~150 byte-level tokens
    'model.max_length=192',
    'model.max_prompt_length=160',
    'model.gradient_accumulation_steps=1',
    'model.eval_batch_size=50',
    'n_eval_examples=200',
    'do_first_eval=true',
    'debug=false',
    // each demo run trains its stages afresh, replacing the previous demo's runs
    'overwrite=true',
    // The demo's byte-level tokenizer has HALOs' turn markers as special tokens (the seed's
    // Llama-3 header tokens would be spelled out byte by byte and crowd the 192-token rows).
    ...Object.entries(HALOS_PREFIXES).map(([k, v]) => `${k}=${hydraQuote(v)}`),
  ];
}

const STAGES = {
  // SFT teaches the answer format and the tasks from the chosen responses.
  sft: ['loss=sft', 'lr=2e-3', 'warmup_steps=10', 'model.batch_size=16', 'n_epochs=2', 'eval_every=1000'],
  // Preference stages start from the SFT model, which is also their reference.
  rdpo: ['loss=rdpo', 'loss.gamma=0.01', 'lr=2e-4', 'warmup_steps=5', 'model.batch_size=16', 'eval_every=256', 'precompute_reference=true'],
  dpo: ['loss=dpo', 'lr=2e-4', 'warmup_steps=5', 'model.batch_size=16', 'eval_every=256', 'precompute_reference=true'],
} as const;

function stageConfig(o: Required<Pick<DemoOptions, 'out' | 'seed'>>, modelDir: string, name: keyof typeof STAGES, extra: string[]): RunConfig {
  return loadConfig({ overrides: [...stageOverrides(o, modelDir, name), ...STAGES[name], ...extra] }).config;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const o = { out: path.resolve(options.out), seed: options.seed ?? 1 };
  const say = options.onMessage ?? (() => undefined);
  mkdirSync(o.out, { recursive: true });
  const modelDir = path.join(o.out, 'model');
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    const made = await initModelDir(modelDir, { preset: options.preset ?? 'small', tokenizer: 'bytes', seed: o.seed });
    say(`model: ${made.numParameters.toLocaleString()} parameters (${options.preset ?? 'small'}), byte-level tokenizer, at ${modelDir}`);
  }
  const stages: DemoStage[] = [];
  const run = async (name: keyof typeof STAGES, extra: string[]) => {
    const config = stageConfig(o, modelDir, name, extra);
    say(`${name}: training (${config.loss.name}, lr ${config.lr}, batch ${config.model.batch_size})`);
    const result = await train(config, { onMessage: (m) => say(`${name}: ${m}`), onStep: (s) => options.onStep?.(name, s) });
    const acc = result.lastEval?.['eval_rewards/accuracies'];
    stages.push({ name, result, heldOutAccuracy: typeof acc === 'number' ? acc : null });
    return result;
  };

  const sft = await run('sft', []);
  const sftModel = sft.checkpoint ?? path.join(sft.runDir, 'LATEST');
  const pairs = options.preferenceExamples ?? 768;
  const preference = [`model.load_from=${sftModel}`, `n_examples=${pairs}`, 'n_epochs=null'];
  const rdpo = await run('rdpo', preference);
  if (options.dpo) await run('dpo', preference);

  // AlpacaEval-format samples from the RDPO policy on held-out prompts.
  const samplesFile = await exportSamples(o, modelDir, rdpo, options.samples ?? 16);
  say(`samples: ${samplesFile}`);

  const wallSeconds = (Date.now() - started) / 1000;
  const summary: Record<string, string | number> = { 'wall time (s)': Math.round(wallSeconds) };
  for (const s of stages) if (s.heldOutAccuracy !== null) summary[`${s.name} held-out reward accuracy`] = s.heldOutAccuracy.toFixed(3);
  const reportRuns: ReportRun[] = stages.map((s) => ({
    name: s.name.toUpperCase(),
    metrics: readMetricsJsonl(path.join(s.result.runDir, 'metrics.jsonl')),
    config: loadConfig({ configPath: s.result.runDir, configName: 'config' }).raw,
  }));
  const report = writeReport(path.join(o.out, 'report.html'), {
    title: 'rpo demo: SFT, then RDPO' + (options.dpo ? ' and DPO' : '') + ' on the synthetic preference task',
    runs: reportRuns,
    summary,
    notes: ['Held-out reward accuracy is measured on the 200 test pairs, whose inputs never occur in training.'],
  });
  return { stages, report, samples: samplesFile, wallSeconds };
}

async function exportSamples(o: { out: string; seed: number }, modelDir: string, rdpo: TrainResult, n: number): Promise<string> {
  const config = loadConfig({ configPath: rdpo.runDir, configName: 'config' }).config;
  const base = await resolveRunModel(config);
  const weights = rdpo.checkpoint ?? path.join(rdpo.runDir, 'LATEST');
  const policy = await loadModel(weights, { dtype: 'float32' });
  try {
    const prompts = (await loadPreferenceSplit(demoDatasetDir(), 'test')).slice(0, n);
    const completions = await complete(policy, base.tokenizer, { ...config, model: { ...config.model, max_length: 96 } }, prompts.map((p) => p.prompt), {
      batchSize: 16,
      settings: { ...generationSettings(weights, { ...config, model: { ...config.model, max_length: 96 } }, base.tokenizer, o.seed), doSample: false },
    });
    const outputs = completions.map((c, i) => ({ instruction: prompts[i]!.prompt, output: c.output, generator: 'rpo-demo-rdpo', dataset: 'rpo-demo' }));
    const file = path.join(o.out, 'samples', 'alpaca_rpo-demo-rdpo.json');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, [Buffer.from(JSON.stringify(outputs, null, 2) + '\n')]);
    return file;
  } finally {
    policy.dispose();
  }
}
