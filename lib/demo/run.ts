// `npx rpo demo`: the main job on a built-in default, small enough for a laptop CPU. It makes
// a small Llama (random init) with a one-token-per-byte tokenizer, fine-tunes it with SFT on the
// bundled synthetic dataset's chosen responses, then trains RDPO from the SFT model (and, with
// --dpo, DPO on the same data for comparison; with --efficiency, both on 25% and 50% of the pairs
// too), evaluates held-out reward accuracy, samples every held-out prompt greedily with each model
// and scores the samples by exact match per task, exports AlpacaEval-format samples, and writes
// <out>/report.html.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import { loadConfig, type RunConfig } from '../config/index.js';
import { hydraQuote } from '../config/overrides.js';
import { HALOS_PREFIXES } from '../data/format/index.js';
import { loadPreferenceSplit } from '../data/sources/index.js';
import { writeByteLevelTokenizer } from '../model/byte_tokenizer.js';
import { initModelDir } from '../model/init.js';
import { writeFileAtomic } from '../util/files.js';
import { resolveRunModel } from '../train/data.js';
import { train, type TrainResult } from '../train/loop.js';
import { demoDatasetDir } from './dataset.js';
import { readMetricsJsonl, writeReport, type ReportRun } from './report.js';
import { DEMO_SAMPLES_SHOWN_PER_TASK, efficiencySection, samplesSection, type EfficiencyPoint } from './report_sections.js';
import { sampleDemoModel } from './samples.js';
import type { DemoScore } from './score.js';

export interface DemoOptions {
  /** Everything goes here: the model, one run directory per stage, samples, the report. */
  out: string;
  /** Also train DPO from the SFT model on the same data. */
  dpo?: boolean;
  /**
   * The data-efficiency experiment: DPO and RDPO from the same SFT model on 25%, 50% and 100% of
   * the preference pairs (the 100% runs are the main RDPO and DPO runs); held-out reward
   * accuracy and exact match of each.
   */
  efficiency?: boolean;
  /** Model shape preset (lib/model/presets.ts). */
  preset?: string;
  /** Preference pairs per preference run (RDPO, DPO). */
  preferenceExamples?: number;
  /** SFT epochs over the train split's chosen responses (default DEMO_SFT_EPOCHS). */
  sftEpochs?: number;
  /** AlpacaEval-format samples to export from the RDPO policy. */
  samples?: number;
  seed?: number;
  onMessage?(message: string): void;
  onStep?(stage: string, s: { step: number; totalSteps: number; loss: number; accuracy?: number; tokensPerSecond: number }): void;
}

export interface DemoStage {
  /** sft, rdpo, dpo; the efficiency runs: rdpo-25, dpo-25, rdpo-50, dpo-50. */
  name: string;
  /** The loss name as the report shows it (SFT, RDPO, DPO). */
  loss: string;
  /** Preference pairs trained on (null for SFT). */
  pairs: number | null;
  result: TrainResult;
  heldOutAccuracy: number | null;
  /** Exact match of greedy samples on every held-out prompt. */
  score: DemoScore;
  /** CPU seconds of the stage (training, evaluation and the greedy samples). */
  cpuSeconds: number;
}

export interface DemoResult {
  stages: DemoStage[];
  /** The efficiency experiment's points (with --efficiency), by loss and share of the pairs. */
  efficiency: EfficiencyPoint[] | null;
  report: string;
  samples: string;
  wallSeconds: number;
  /** CPU time of this process (user + system), the engine's threads included. */
  cpuSeconds: number;
}

/**
 * The model shape (lib/model/presets.ts): a 0.9M-parameter Llama. Small enough for ~1000 SFT
 * steps in the demo's time, which a model this size needs before its answers are right (the
 * 3.4M 'small' preset, four times slower a step, was right on none after 500 steps).
 */
export const DEMO_PRESET = 'mini';
/**
 * SFT epochs over the 2000 train prompts' chosen responses: 1250 steps of 16. At 1000 steps the
 * mini model sorted 76% of the held-out prompts right and had just begun to copy operands; the
 * loss was still falling fast. About 150 s of one core, most of the demo's time.
 */
export const DEMO_SFT_EPOCHS = 10;
/** Shares of the preference pairs in the efficiency experiment. */
export const EFFICIENCY_FRACTIONS: readonly number[] = [0.25, 0.5, 1];

/**
 * The demo's tokenizer: rpo's byte-level tokenizer without merges, one token per byte. The tasks
 * are about characters (reverse, capitalize, sort digits, add), and with BPE merges a word's
 * letters hide inside merged tokens ("guitar" is " g" "u" "it" "ar", its reversal "r" "at" "i"
 * "u" "g"): a model trained from scratch for a few minutes would have to learn every merge's
 * spelling before it could do any task. Written to `dir` (atomically: temp directory, rename).
 */
function writeDemoTokenizer(dir: string): string {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeByteLevelTokenizer(tmp, { extraMerges: 0 });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
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
    // One token per byte: prompt + response rows are up to 80 tokens; rationale rows carry the
    // seed's rationale question with both responses (up to 275 tokens) and the rationale (up to
    // 395 in all), and none is cut.
    'model.max_length=416',
    'model.max_prompt_length=288',
    'model.gradient_accumulation_steps=1',
    'model.eval_batch_size=50',
    'n_eval_examples=200',
    'do_first_eval=true',
    'debug=false',
    // each demo run trains its stages afresh, replacing the previous demo's runs
    'overwrite=true',
    // HALOs' turn markers (10 and 15 bytes), not the seed's Llama-3 header tokens: the demo's
    // tokenizer spells every marker out byte by byte, and those are twice as long.
    ...Object.entries(HALOS_PREFIXES).map(([k, v]) => `${k}=${hydraQuote(v)}`),
  ];
}

const STAGES = {
  // SFT teaches the answer format and the tasks from the chosen responses.
  sft: ['loss=sft', 'lr=2e-3', 'warmup_steps=10', 'model.batch_size=16', 'eval_every=1000000'],
  // Preference stages start from the SFT model, which is also their reference. Its log-probs are
  // computed with each batch: a run trains on 768 of the 2000 train pairs, and precomputing them
  // would run the reference over all 2000 (with their ~400-token rationale rows) first. An
  // evaluation of the 200 test pairs costs about a quarter of the run's training: at the start,
  // halfway and at the end.
  rdpo: ['loss=rdpo', 'loss.gamma=0.01', 'lr=2e-4', 'warmup_steps=5', 'model.batch_size=16', 'eval_every=384', 'precompute_reference=false'],
  dpo: ['loss=dpo', 'lr=2e-4', 'warmup_steps=5', 'model.batch_size=16', 'eval_every=384', 'precompute_reference=false'],
} as const;

type StageKind = keyof typeof STAGES;

function stageConfig(o: Required<Pick<DemoOptions, 'out' | 'seed'>>, modelDir: string, kind: StageKind, exp: string, extra: string[]): RunConfig {
  return loadConfig({ overrides: [...stageOverrides(o, modelDir, exp), ...STAGES[kind], ...extra] }).config;
}

/** The process's CPU seconds (user + system; every thread, the engine's included). */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const cpuStarted = cpuSeconds();
  const o = { out: path.resolve(options.out), seed: options.seed ?? 1 };
  const say = options.onMessage ?? (() => undefined);
  const sftEpochs = options.sftEpochs ?? DEMO_SFT_EPOCHS;
  if (!Number.isInteger(sftEpochs) || sftEpochs < 1) throw new Error(`rpo demo: the SFT epochs must be a positive integer, got ${sftEpochs}`);
  const pairs = options.preferenceExamples ?? 768;
  if (!Number.isInteger(pairs) || pairs < 4) throw new Error(`rpo demo: --pairs must be an integer of at least 4 (a quarter of it is a run), got ${pairs}`);
  mkdirSync(o.out, { recursive: true });
  // A fresh model every run (random init is cheap and deterministic in the seed), so a model
  // left by an earlier demo with another preset or tokenizer is never trained on.
  const modelDir = path.join(o.out, 'model');
  const preset = options.preset ?? DEMO_PRESET;
  const made = await initModelDir(modelDir, { preset, tokenizer: writeDemoTokenizer(path.join(o.out, 'tokenizer')), seed: o.seed, overwrite: true });
  say(`model: ${made.numParameters.toLocaleString()} parameters (${preset}), one token per byte, at ${modelDir}`);
  const heldOut = await loadPreferenceSplit(demoDatasetDir(), 'test');
  const stages: DemoStage[] = [];
  const run = async (kind: StageKind, name: string, stagePairs: number | null, extra: string[]): Promise<DemoStage> => {
    const config = stageConfig(o, modelDir, kind, name, extra);
    const cpu0 = cpuSeconds();
    say(`${name}: training (${config.loss.name}${stagePairs === null ? '' : `, ${stagePairs} pairs`}, lr ${config.lr}, batch ${config.model.batch_size})`);
    const result = await train(config, { onMessage: (m) => say(`${name}: ${m}`), onStep: (s) => options.onStep?.(name, s) });
    const acc = result.lastEval?.['eval_rewards/accuracies'];
    const weights = result.checkpoint ?? path.join(result.runDir, 'LATEST');
    const base = await resolveRunModel(config);
    const score = await sampleDemoModel(weights, config, base.tokenizer, heldOut, o.seed);
    const file = path.join(o.out, 'samples', `greedy_${name}.json`);
    mkdirSync(path.dirname(file), { recursive: true });
    const greedy = score.samples.map((g) => ({ prompt: g.prompt, task: g.task, correct: g.answer, output: g.output, exact: g.exact }));
    writeFileAtomic(file, [Buffer.from(JSON.stringify(greedy, null, 2) + '\n')]);
    say(`${name}: greedy samples exactly right on ${score.all.exact} of ${score.all.total} held-out prompts (${file})`);
    const stage: DemoStage = { name, loss: kind.toUpperCase(), pairs: stagePairs, result, heldOutAccuracy: typeof acc === 'number' ? acc : null, score, cpuSeconds: cpuSeconds() - cpu0 };
    stages.push(stage);
    return stage;
  };

  const sft = await run('sft', 'sft', null, [`n_epochs=${sftEpochs}`]);
  const sftModel = sft.result.checkpoint ?? path.join(sft.result.runDir, 'LATEST');
  const preference = (n: number) => [`model.load_from=${sftModel}`, `n_examples=${n}`, 'n_epochs=null'];
  const rdpo = await run('rdpo', 'rdpo', pairs, preference(pairs));
  const dpo = options.dpo || options.efficiency ? await run('dpo', 'dpo', pairs, preference(pairs)) : null;

  // The efficiency experiment: the same SFT model, the first 25% and 50% of the same pairs (the
  // preference runs take the train split in one fixed order, so a smaller run's pairs are a
  // prefix of a larger one's); the 100% points are the runs above.
  let efficiency: EfficiencyPoint[] | null = null;
  if (options.efficiency) {
    efficiency = [];
    for (const fraction of EFFICIENCY_FRACTIONS) {
      for (const [kind, full] of [['dpo', dpo!], ['rdpo', rdpo]] as const) {
        const n = Math.round(fraction * pairs);
        const stage = fraction === 1 ? full : await run(kind, `${kind}-${Math.round(fraction * 100)}`, n, preference(n));
        efficiency.push({ loss: kind.toUpperCase(), fraction, pairs: n, heldOutAccuracy: stage.heldOutAccuracy, exact: stage.score.all, byTask: stage.score.byTask });
      }
    }
  }

  // AlpacaEval-format samples from the RDPO policy on held-out prompts (its greedy samples).
  const samplesFile = exportSamples(o, rdpo, options.samples ?? 16);
  say(`samples: ${samplesFile}`);

  const wallSeconds = (Date.now() - started) / 1000;
  const cpu = cpuSeconds() - cpuStarted;
  const main = stages.filter((s) => s.name === s.loss.toLowerCase());
  const summary: Record<string, string | number> = { 'wall time (s)': Math.round(wallSeconds), 'CPU time (s)': Math.round(cpu) };
  for (const s of main) if (s.heldOutAccuracy !== null) summary[`${s.name} held-out reward accuracy`] = s.heldOutAccuracy.toFixed(3);
  for (const s of main) summary[`${s.name} exact match of greedy samples`] = `${s.score.all.exact} / ${s.score.all.total}`;
  const reportRuns: ReportRun[] = main.map((s) => ({
    name: s.loss,
    metrics: readMetricsJsonl(path.join(s.result.runDir, 'metrics.jsonl')),
    config: loadConfig({ configPath: s.result.runDir, configName: 'config' }).raw,
  }));
  const sections = [samplesSection(main.map((s) => ({ name: s.loss, score: s.score })), DEMO_SAMPLES_SHOWN_PER_TASK)];
  if (efficiency) sections.push(efficiencySection(efficiency, pairs));
  const report = writeReport(path.join(o.out, 'report.html'), {
    title: 'rpo demo: SFT, then RDPO' + (dpo ? ' and DPO' : '') + ' on the synthetic preference task',
    runs: reportRuns,
    summary,
    notes: [
      `Held-out reward accuracy is measured on the ${heldOut.length} test pairs, whose inputs never occur in training. ` +
        'Exact match: the share of the same held-out prompts whose greedy sample is the correct response, character for character.',
    ],
    sections,
  });
  return { stages, efficiency, report, samples: samplesFile, wallSeconds, cpuSeconds: cpu };
}

/** The first `n` held-out prompts with the RDPO model's greedy samples, in AlpacaEval's format. */
function exportSamples(o: { out: string }, rdpo: DemoStage, n: number): string {
  const outputs = rdpo.score.samples.slice(0, n).map((s) => ({ instruction: s.prompt, output: s.output, generator: 'rpo-demo-rdpo', dataset: 'rpo-demo' }));
  const file = path.join(o.out, 'samples', 'alpaca_rpo-demo-rdpo.json');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [Buffer.from(JSON.stringify(outputs, null, 2) + '\n')]);
  return file;
}
