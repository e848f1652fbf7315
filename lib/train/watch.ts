// What a person watches while a run trains, beside metrics.jsonl:
// - TensorBoard event files in <run dir>/tb/: every numeric field of every metrics.jsonl record
//   under the same name (loss, rewards/accuracies, eval_loss, learning_rate, grad_norm,
//   tokens_per_second, ...) at the record's step, flushed at each evaluation;
// - with sample_during_eval, greedy samples of the first n_eval_model_samples test prompts at
//   each evaluation: <run dir>/samples/step-N.json (atomic), TensorBoard text, the report;
// - <run dir>/report.html, rewritten atomically at each evaluation and at the end.
import { rmSync } from 'node:fs';
import path from 'node:path';

import type { RunConfig } from '../config/index.js';
import { complete, generationSettings, sampleSlots, type Completion, type SamplePrompt } from '../eval/sampling.js';
import type { Model } from '../native.js';
import { writeRunReport, type EvalSample, type SampleSet } from '../report/run_report.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import { writeFileAtomic } from '../util/files.js';
import type { MetricRecord } from './metrics.js';
import { EventWriter } from './tensorboard.js';
import { ensureDir } from './run_dir.js';

export const TB_DIR = 'tb';
export const SAMPLES_DIR = 'samples';
export const REPORT_FILE = 'report.html';

export interface WatchSetup {
  config: RunConfig;
  runDir: string;
  /** The policy being trained (sampled from at each evaluation). */
  policy: Model;
  tokenizer: Tokenizer;
  /** The model directory (its generation_config.json, if any, sets the stop tokens' context). */
  modelDir: string;
  /** The test rows to sample: the first n_eval_model_samples of the test split. */
  /** The sample prompts (rowPrompt: text, turns, cleaning) and each one's chosen response. */
  sampleRows: readonly { prompt: SamplePrompt; chosen: string }[];
  /** Resuming: earlier event files and samples are this run's and stay (TensorBoard drops the
   *  steps logged again after the checkpoint). Otherwise what is there is from an attempt that
   *  wrote no checkpoint, and goes. */
  resumed: boolean;
  /** The step training starts from (the checkpoint's when resuming). */
  startStep: number;
}

/** Markdown for TensorBoard's text tab: one block per sample. */
export function samplesMarkdown(set: SampleSet): string {
  const quote = (s: string) => s.split('\n').map((l) => `    ${l}`).join('\n');
  return set.samples
    .map((s, i) => `**${i + 1}. prompt**\n\n${quote(s.prompt)}\n\n**policy (greedy)**\n\n${quote(s.output)}\n`)
    .join('\n---\n\n');
}

export class RunWatch {
  private readonly tb: EventWriter;
  private lastSamples: SampleSet | null = null;
  private closed = false;

  constructor(private readonly s: WatchSetup) {
    if (!s.resumed) for (const d of [TB_DIR, SAMPLES_DIR]) rmSync(path.join(s.runDir, d), { recursive: true, force: true });
    this.tb = new EventWriter(path.join(s.runDir, TB_DIR));
    // A session start at every (re)start: TensorBoard takes the first one as the start and each
    // later one as a restart, dropping what was logged from its step on. After a resume the steps
    // after the checkpoint are trained and logged again, so each step shows once.
    this.tb.sessionStart(s.startStep + 1);
  }

  get eventFile(): string {
    return this.tb.file;
  }

  /** A metrics.jsonl record: its numbers as TensorBoard scalars at its step. */
  record(r: MetricRecord): void {
    const step = typeof r.step === 'number' ? r.step : 0;
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(r)) if (k !== 'step' && typeof v === 'number') values[k] = v;
    this.tb.scalars(step, values);
  }

  /**
   * After an evaluation's record: samples (when asked for), flush, the report. `sampled`: the
   * sample rows' greedy completions, in order, when the caller generated them (data parallel:
   * every rank generates its share, lib/parallel/sampling.ts); otherwise they are generated here.
   */
  async evaluated(step: number, examples: number, sampled?: readonly Completion[]): Promise<SampleSet | null> {
    let set: SampleSet | null = null;
    if (this.s.config.sample_during_eval && this.s.sampleRows.length > 0) {
      set = { step, examples, samples: sampled ? this.withChosen(sampled) : await this.sample() };
      const file = path.join(this.s.runDir, SAMPLES_DIR, `step-${step}.json`);
      ensureDir(path.dirname(file), 'samples directory');
      writeFileAtomic(file, [Buffer.from(`${JSON.stringify(set, null, 2)}\n`, 'utf8')]);
      this.tb.text(step, 'samples', samplesMarkdown(set));
      this.lastSamples = set;
    }
    this.tb.flush();
    this.writeReport('running');
    return set;
  }

  /** Greedy continuations of the sample prompts by the policy as it is now. */
  private async sample(): Promise<EvalSample[]> {
    const { config, policy, tokenizer, modelDir, sampleRows } = this.s;
    const settings = { ...generationSettings(modelDir, config, tokenizer, config.seed), doSample: false };
    return this.withChosen(await complete(policy, tokenizer, config, sampleRows.map((r) => r.prompt), { batchSize: sampleSlots(config, policy, sampleRows.length), settings }));
  }

  private withChosen(out: readonly Completion[]): EvalSample[] {
    const rows = this.s.sampleRows;
    if (out.length !== rows.length) throw new Error(`sample_during_eval: ${out.length} completions for ${rows.length} sample prompts`);
    return out.map((c, i) => ({ prompt: c.prompt, output: c.output, chosen: rows[i]!.chosen }));
  }

  private writeReport(state: 'running' | 'finished' | 'stopped'): void {
    writeRunReport(path.join(this.s.runDir, REPORT_FILE), {
      name: this.s.config.exp_name,
      metricsFile: path.join(this.s.runDir, 'metrics.jsonl'),
      config: JSON.parse(JSON.stringify(this.s.config)) as Record<string, unknown>,
      samples: this.lastSamples,
      state,
    });
  }

  /** Flushes and closes the event file and writes the final report. */
  close(finished: boolean): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.tb.close();
    } finally {
      this.writeReport(finished ? 'finished' : 'stopped');
    }
  }
}
