// report.html for any `rpo train` run: the run's curves (metrics.jsonl, drawn by the demo's
// chart renderer, used unchanged), the greedy samples of the latest evaluation beside them, and
// the run's config. Rewritten atomically at each evaluation and at the end, so a browser
// refresh shows the run so far and never half a page.
import { existsSync } from 'node:fs';

import { escapeHtml, readMetricsJsonl, renderReport, type MetricLine } from '../demo/report.js';
import { writeFileAtomic } from '../util/files.js';
import { redactSecrets } from '../util/redact.js';

export interface EvalSample {
  prompt: string;
  /** The policy's greedy continuation. */
  output: string;
  /** The dataset's chosen response, for comparison. */
  chosen?: string;
}

export interface SampleSet {
  step: number;
  examples: number;
  samples: readonly EvalSample[];
}

export interface RunReportInput {
  /** The run's name (exp_name). */
  name: string;
  /** The run's metrics.jsonl (read as it is now; missing: no curves yet). */
  metricsFile: string;
  config?: Readonly<Record<string, unknown>>;
  /** The latest evaluation's samples (sample_during_eval). */
  samples?: SampleSet | null;
  /** running: the page says it will change; stopped: interrupted or failed; finished. */
  state: 'running' | 'finished' | 'stopped';
  /** When the page is written (tests pass a fixed time). */
  now?: Date;
}

/** The samples as an HTML section: prompt, the policy's greedy output, the chosen response. */
export function samplesSection(set: SampleSet): string {
  const rows = set.samples
    .map(
      (s, i) =>
        `<tr><td class="num">${i + 1}</td><td><pre class="sample">${escapeHtml(s.prompt)}</pre></td>` +
        `<td><pre class="sample">${escapeHtml(s.output)}</pre></td><td><pre class="sample">${escapeHtml(s.chosen ?? '')}</pre></td></tr>`,
    )
    .join('\n');
  return [
    `<h2 id="samples">Samples at step ${set.step}</h2>`,
    `<p class="note">Greedy continuations of ${set.samples.length} test prompts by the policy at step ${set.step} (${set.examples} examples), beside each prompt's chosen response. Every evaluation's samples are in samples/step-N.json.</p>`,
    '<style>table.samples { width: 100%; table-layout: fixed; } table.samples th:first-child { width: 2.5em; } pre.sample { white-space: pre-wrap; margin: 0; max-height: 16em; overflow: auto; }</style>',
    `<table class="samples"><thead><tr><th>#</th><th>prompt</th><th>policy (greedy)</th><th>chosen</th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>`,
  ].join('\n');
}

export function renderRunReport(input: RunReportInput): string {
  const metrics: MetricLine[] = existsSync(input.metricsFile) ? readMetricsJsonl(input.metricsFile) : [];
  const when = (input.now ?? new Date()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const last = [...metrics].reverse().find((m) => typeof m.step === 'number');
  const at = `step ${String(last?.step ?? 0)}`;
  const notes = [
    input.state === 'running'
      ? `Training in progress: this page is rewritten at each evaluation (last written ${when}, ${at}); refresh to see the run so far.`
      : input.state === 'finished'
        ? `Training finished; written ${when} at ${at}.`
        : `Training stopped (interrupted or failed) at ${at}; written ${when}.`,
  ];
  const html = renderReport({ title: `rpo run: ${input.name}`, runs: [{ name: input.name, metrics, config: input.config }], notes });
  if (!input.samples || input.samples.samples.length === 0) return html;
  // The samples go beside the curves: before the configs (or the footer) of the demo's page.
  const section = samplesSection(input.samples);
  for (const marker of ['<h2>Configs</h2>', '<footer>', '</body>']) {
    const at = html.indexOf(marker);
    if (at >= 0) return `${html.slice(0, at)}${section}\n${html.slice(at)}`;
  }
  return html + section;
}

/** Renders and writes the report atomically (temp file, fsync, rename). */
export function writeRunReport(file: string, input: RunReportInput): void {
  // The config shown holds what the user typed; secrets from the environment are masked.
  writeFileAtomic(file, [Buffer.from(redactSecrets(renderRunReport(input)), 'utf8')]);
}
