// The run report: one self-contained HTML page (no scripts, no external styles or fonts, no
// network: a Content-Security-Policy forbids it) with inline SVG line charts of a run's
// metrics.jsonl over steps — loss, reward accuracy, reward margins, chosen / rejected / rationale
// log-probs, train and held-out (eval_*) series — for one or several runs overlaid, a summary
// table, and each run's config.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { stringify as toYaml } from 'yaml';

import { redactSecrets } from '../util/redact.js';

/** One line of metrics.jsonl: step, examples, metric values (numbers; null where not finite), maybe strings. */
export type MetricLine = Readonly<Record<string, unknown>>;

export interface ReportRun {
  /** Shown in legends and tables ("SFT", "RDPO", "DPO"). */
  name: string;
  /** The run's metrics.jsonl lines, in order: train lines and eval lines (eval_* keys). */
  metrics: readonly MetricLine[];
  /** The run's config, shown as YAML. */
  config?: Readonly<Record<string, unknown>>;
  /** Extra columns of this run's row in the summary table (e.g. wall time). */
  summary?: Readonly<Record<string, string | number>>;
}

export interface ReportInput {
  title: string;
  runs: readonly ReportRun[];
  /** A key / value table under the run table (dataset, wall time, machine, ...). */
  summary?: Readonly<Record<string, string | number>>;
  /** Paragraphs under the title (plain text). */
  notes?: readonly string[];
  /** More sections after the summary (the demo's samples and efficiency experiment): a title and HTML made with escapeHtml. */
  sections?: readonly ReportSection[];
}

export interface ReportSection {
  /** The section's element id. */
  id: string;
  title: string;
  html: string;
}

export interface ChartSpec {
  id: string;
  title: string;
  /** The train metric; its held-out series is `eval_${key}`. */
  key: string;
  yLabel: string;
  /** A fixed y range (accuracies: [0, 1]). */
  range?: readonly [number, number];
  /** A labelled horizontal reference line (chance accuracy). */
  reference?: { y: number; label: string };
  /** Drawn only when some run logged the metric (the main charts are always drawn). */
  optional?: boolean;
  /**
   * Runs whose values differ in scale by more than SCALE_RATIO (an SFT loss, a summed NLL in the
   * tens, next to a DPO loss under 1) get a chart each group instead of one flattened chart.
   */
  splitByScale?: boolean;
}

/** Runs in one chart differ in scale (median |value|) by at most this factor (splitByScale). */
export const SCALE_RATIO = 20;

/** The charts, in page order. */
export const REPORT_CHARTS: readonly ChartSpec[] = [
  { id: 'loss', title: 'Loss', key: 'loss', yLabel: 'loss', splitByScale: true },
  { id: 'accuracy', title: 'Reward accuracy', key: 'rewards/accuracies', yLabel: 'accuracy', range: [0, 1], reference: { y: 0.5, label: 'chance' } },
  { id: 'margins', title: 'Reward margin (chosen − rejected)', key: 'rewards/margins', yLabel: 'margin' },
  { id: 'logps-chosen', title: 'Log-prob of the chosen responses', key: 'logps/chosen', yLabel: 'log-prob (sum)' },
  { id: 'logps-rejected', title: 'Log-prob of the rejected responses', key: 'logps/rejected', yLabel: 'log-prob (sum)' },
  { id: 'logps-rationale', title: 'Log-prob of the rationales', key: 'logps/rationale', yLabel: 'log-prob (sum)' },
  { id: 'nll', title: 'NLL of the chosen responses', key: 'nll_loss', yLabel: 'nll', optional: true },
  { id: 'grad-norm', title: 'Gradient norm', key: 'grad_norm', yLabel: 'norm', optional: true },
  { id: 'learning-rate', title: 'Learning rate', key: 'learning_rate', yLabel: 'lr', optional: true },
  { id: 'throughput', title: 'Throughput', key: 'tokens_per_second', yLabel: 'tokens / s', optional: true },
];

/** Run colours (Tableau 10), in run order. */
export const RUN_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

// ---------------------------------------------------------------------------------------------
// Text

/**
 * Escapes text for HTML content and attribute values. "://" is written ":&#47;&#47;" (it reads
 * the same) so that no http(s):// address appears in the page source, even inside a config.
 */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    .replace(/:\/\//g, ':&#47;&#47;');
}

/** A number for a table or a tooltip: integers as they are, others to 4 significant digits. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(4)));
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// ---------------------------------------------------------------------------------------------
// Series

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  run: number;
  runName: string;
  key: string;
  split: 'train' | 'eval';
  points: Point[];
}

function finite(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The x of each line: its step; else its examples; else its index. Chosen once for the page. */
function xKeyOf(runs: readonly ReportRun[]): 'step' | 'examples' | null {
  for (const k of ['step', 'examples'] as const) if (runs.some((r) => r.metrics.some((m) => finite(m[k]) !== undefined))) return k;
  return null;
}

/**
 * The finite points of one metric, by x. A repeated x (a run resumed from an earlier checkpoint
 * logs those steps again) keeps the last value. Lines without the key, or with null / NaN /
 * Infinity / a string in it, add no point.
 */
function pointsOf(metrics: readonly MetricLine[], key: string, xKey: 'step' | 'examples' | null): Point[] {
  const byX = new Map<number, number>();
  metrics.forEach((m, i) => {
    const y = finite(m[key]);
    const x = xKey === null ? i : finite(m[xKey]);
    if (y === undefined || x === undefined) return;
    byX.delete(x);
    byX.set(x, y);
  });
  return [...byX].map(([x, y]) => ({ x, y })).sort((a, b) => a.x - b.x);
}

/** At most ~2×buckets points: each bucket of x keeps its lowest and highest point, so spikes stay visible. */
function thin(points: readonly Point[], buckets = 800): Point[] {
  if (points.length <= 2 * buckets) return [...points];
  const out: Point[] = [];
  const size = points.length / buckets;
  for (let b = 0; b < buckets; b++) {
    const chunk = points.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    if (chunk.length === 0) continue;
    let lo = chunk[0]!;
    let hi = chunk[0]!;
    for (const p of chunk) {
      if (p.y < lo.y) lo = p;
      if (p.y > hi.y) hi = p;
    }
    out.push(...(lo.x <= hi.x ? [lo, hi] : [hi, lo]).filter((p, i, a) => i === 0 || p !== a[0]));
  }
  return out;
}

function seriesFor(runs: readonly ReportRun[], key: string, xKey: 'step' | 'examples' | null): Series[] {
  const out: Series[] = [];
  runs.forEach((run, i) => {
    for (const split of ['train', 'eval'] as const) {
      const k = split === 'train' ? key : `eval_${key}`;
      const points = pointsOf(run.metrics, k, xKey);
      if (points.length > 0) out.push({ run: i, runName: run.name, key: k, split, points });
    }
  });
  return out;
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length === 0 ? 0 : v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/**
 * The series grouped by run scale: runs sorted by the median |value| of their series, a new group
 * whenever one is more than SCALE_RATIO times the group's smallest. Groups in run order.
 */
function scaleGroups(series: readonly Series[]): Series[][] {
  const runs = [...new Set(series.map((s) => s.run))];
  const scale = new Map(runs.map((r) => [r, Math.max(1e-12, median(series.filter((s) => s.run === r).flatMap((s) => s.points.map((p) => Math.abs(p.y)))))]));
  const groups: number[][] = [];
  for (const r of [...runs].sort((a, b) => scale.get(a)! - scale.get(b)! || a - b)) {
    const g = groups[groups.length - 1];
    if (g && scale.get(r)! <= scale.get(g[0]!)! * SCALE_RATIO) g.push(r);
    else groups.push([r]);
  }
  return groups.map((g) => g.sort((a, b) => a - b)).sort((a, b) => a[0]! - b[0]!).map((g) => series.filter((s) => g.includes(s.run)));
}

// ---------------------------------------------------------------------------------------------
// Axes

/** Round ticks (1, 2, 5 × 10^k) covering [lo, hi], and the domain they span. */
export function niceTicks(lo: number, hi: number, target = 5, integer = false): { ticks: number[]; lo: number; hi: number } {
  if (!(hi > lo)) {
    const pad = lo !== 0 ? Math.abs(lo) * 0.1 : 1;
    return niceTicks(lo - (integer ? Math.max(1, pad) : pad), hi + (integer ? Math.max(1, pad) : pad), target, integer);
  }
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return { ticks, lo: ticks[0]!, hi: ticks[ticks.length - 1]! };
}

/** Labels for an axis's ticks, in one format for the whole axis. */
function tickLabels(ticks: readonly number[]): string[] {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : Math.abs(ticks[0] ?? 1) || 1;
  const top = Math.max(...ticks.map(Math.abs));
  if (top >= 1e4 && top < 1e7 && step >= 1000) return ticks.map((v) => (v === 0 ? '0' : `${Number((v / 1000).toPrecision(6))}k`));
  if (step < 1e-3 || top >= 1e7) {
    const digits = Math.max(0, Math.min(3, Math.floor(Math.log10(top) + 1e-9) - Math.floor(Math.log10(step) + 1e-9)));
    return ticks.map((v) => (v === 0 ? '0' : v.toExponential(digits).replace(/\.?0+e/, 'e').replace('e+', 'e')));
  }
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return ticks.map((v) => (v === 0 ? '0' : v.toFixed(decimals)));
}

// ---------------------------------------------------------------------------------------------
// One chart

const W = 560;
const M = { left: 66, right: 18, top: 34, bottom: 44 };
const PLOT_H = 220;
const LEGEND_ROW = 18;
const LEGEND_COLS = 3;

const r1 = (v: number) => Math.round(v * 10) / 10;

/** [min, max] without spreading (long series would overflow the argument list). */
function extent(vs: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of vs) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

export function renderChart(spec: ChartSpec, series: readonly Series[], xLabel: string, allIntegerX: boolean, part?: { id: string; title: string }): string {
  const legendEntries = series.length;
  const runsInChart = new Set(series.map((s) => s.run)).size;
  const twoRows = series.some((s) => s.split === 'eval' && series.some((o) => o.run === s.run && o.split === 'train'));
  const legendRows = Math.ceil(runsInChart / LEGEND_COLS) * (twoRows ? 2 : 1);
  const plotW = W - M.left - M.right;
  const H = M.top + PLOT_H + M.bottom + (legendRows > 0 ? legendRows * LEGEND_ROW + 6 : 0);
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" id="chart-${escapeHtml(part?.id ?? spec.id)}" data-chart="${escapeHtml(spec.id)}" data-key="${escapeHtml(spec.key)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(part?.title ?? spec.title)}">`,
  );
  parts.push(`<text class="chart-title" x="${M.left}" y="20">${escapeHtml(part?.title ?? spec.title)}</text>`);

  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  if (spec.reference && !spec.range) ys.push(spec.reference.y);
  const [xMin, xMax] = extent(xs);
  const [yMin, yMax] = extent(ys);
  const xAxis = xs.length > 0 ? niceTicks(xMin, xMax, 6, allIntegerX) : niceTicks(0, 1, 5, allIntegerX);
  const yAxis = spec.range ? niceTicks(spec.range[0], spec.range[1], 5) : ys.length > 0 ? niceTicks(yMin, yMax, 5) : niceTicks(0, 1, 5);
  const sx = (x: number) => r1(M.left + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * plotW);
  const sy = (y: number) => r1(M.top + PLOT_H - ((y - yAxis.lo) / (yAxis.hi - yAxis.lo)) * PLOT_H);
  const bottom = M.top + PLOT_H;

  // grid and ticks
  parts.push('<g class="grid">');
  for (const t of yAxis.ticks) parts.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${sy(t)}" y2="${sy(t)}"/>`);
  for (const t of xAxis.ticks) parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${M.top}" y2="${bottom}"/>`);
  parts.push('</g>');
  parts.push(`<rect class="frame" x="${M.left}" y="${M.top}" width="${plotW}" height="${PLOT_H}"/>`);
  parts.push('<g class="ticks">');
  const yLabels = tickLabels(yAxis.ticks);
  const xLabels = tickLabels(xAxis.ticks);
  yAxis.ticks.forEach((t, i) => parts.push(`<text class="ytick" x="${M.left - 6}" y="${r1(sy(t) + 4)}">${escapeHtml(yLabels[i]!)}</text>`));
  xAxis.ticks.forEach((t, i) => parts.push(`<text class="xtick" x="${sx(t)}" y="${bottom + 16}">${escapeHtml(xLabels[i]!)}</text>`));
  parts.push('</g>');
  parts.push(`<text class="axis-label x-label" x="${r1(M.left + plotW / 2)}" y="${bottom + 36}">${escapeHtml(xLabel)}</text>`);
  parts.push(
    `<text class="axis-label y-label" x="14" y="${r1(M.top + PLOT_H / 2)}" transform="rotate(-90 14 ${r1(M.top + PLOT_H / 2)})">${escapeHtml(spec.yLabel)}</text>`,
  );

  if (spec.reference) {
    const y = sy(spec.reference.y);
    parts.push(`<line class="reference" x1="${M.left}" x2="${M.left + plotW}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="reference-label" x="${M.left + plotW - 4}" y="${r1(y - 4)}">${escapeHtml(spec.reference.label)}</text>`);
  }

  if (series.length === 0) {
    parts.push(
      `<text class="no-data" x="${r1(M.left + plotW / 2)}" y="${r1(M.top + PLOT_H / 2)}">no run logged ${escapeHtml(spec.key)} or eval_${escapeHtml(spec.key)}</text>`,
    );
  }

  // series: train first (thin, solid), eval on top (dashed, with markers)
  const ordered = [...series].sort((a, b) => (a.split === b.split ? a.run - b.run : a.split === 'train' ? -1 : 1));
  for (const s of ordered) {
    const color = RUN_COLORS[s.run % RUN_COLORS.length]!;
    const pts = thin(s.points);
    const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.x)} ${sy(p.y)}`).join('');
    const last = s.points[s.points.length - 1]!;
    const label = `${s.runName} ${s.split === 'eval' ? 'held-out' : 'train'} ${s.key}: ${formatNumber(last.y)} at ${xLabel} ${formatNumber(last.x)}`;
    parts.push(
      `<g class="series ${s.split}" data-run="${escapeHtml(s.runName)}" data-key="${escapeHtml(s.key)}" data-points="${s.points.length}">`,
      `<title>${escapeHtml(label)}</title>`,
      `<path d="${d}" stroke="${color}"/>`,
    );
    if (s.split === 'eval' || s.points.length === 1) {
      const markers = s.points.length <= 200 ? s.points : [last];
      for (const p of markers) {
        parts.push(`<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="3" fill="${color}"><title>${escapeHtml(`${s.runName} ${s.key} = ${formatNumber(p.y)} at ${xLabel} ${formatNumber(p.x)}`)}</title></circle>`);
      }
    }
    parts.push('</g>');
  }

  // legend: a column per run (three to a row), train above held-out
  if (legendEntries > 0) {
    const colW = (W - M.left) / LEGEND_COLS;
    const runsHere = [...new Set(series.map((s) => s.run))].sort((a, b) => a - b);
    parts.push('<g class="legend">');
    for (const s of series) {
      const k = runsHere.indexOf(s.run);
      const x = r1(M.left + (k % LEGEND_COLS) * colW);
      const row = (twoRows ? 2 : 1) * Math.floor(k / LEGEND_COLS) + (twoRows && s.split === 'eval' && series.some((o) => o.run === s.run && o.split === 'train') ? 1 : 0);
      const y = bottom + M.bottom + 6 + row * LEGEND_ROW;
      const color = RUN_COLORS[s.run % RUN_COLORS.length]!;
      parts.push(
        `<g class="legend-entry ${s.split}"><line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${color}"/>` +
          (s.split === 'eval' ? `<circle cx="${x + 11}" cy="${y}" r="3" fill="${color}"/>` : '') +
          `<text x="${x + 28}" y="${y + 4}">${escapeHtml(`${s.runName} ${s.split === 'eval' ? 'held-out' : 'train'}`)}</text></g>`,
      );
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Tables

function lastValue(metrics: readonly MetricLine[], key: string): number | undefined {
  for (let i = metrics.length - 1; i >= 0; i--) {
    const v = finite(metrics[i]![key]);
    if (v !== undefined) return v;
  }
  return undefined;
}

function sumOf(metrics: readonly MetricLine[], key: string): number | undefined {
  let sum: number | undefined;
  for (const m of metrics) {
    const v = finite(m[key]);
    if (v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
}

function lossName(config: ReportRun['config']): string | undefined {
  const loss = config?.['loss'];
  if (typeof loss === 'string') return loss;
  if (loss && typeof loss === 'object' && typeof (loss as Record<string, unknown>)['name'] === 'string') return (loss as Record<string, string>)['name'];
  return undefined;
}

const percent = (v: number) => `${(100 * v).toFixed(1)}%`;

function cell(v: string | number | undefined): string {
  if (v === undefined) return '<td class="missing">–</td>';
  return typeof v === 'number' ? `<td class="num">${escapeHtml(formatNumber(v))}</td>` : `<td>${escapeHtml(v)}</td>`;
}

function runTable(runs: readonly ReportRun[]): string {
  const extra: string[] = [];
  for (const r of runs) for (const k of Object.keys(r.summary ?? {})) if (!extra.includes(k)) extra.push(k);
  const head = ['run', 'loss', 'steps', 'examples', 'final train loss', 'held-out loss', 'held-out reward accuracy', 'held-out reward margin', 'step + eval time', ...extra];
  const rows = runs.map((r, i) => {
    const m = r.metrics;
    const acc = lastValue(m, 'eval_rewards/accuracies');
    const time = (sumOf(m, 'step_seconds') ?? 0) + (sumOf(m, 'eval_seconds') ?? 0);
    const hasTime = sumOf(m, 'step_seconds') !== undefined || sumOf(m, 'eval_seconds') !== undefined;
    const color = RUN_COLORS[i % RUN_COLORS.length]!;
    return (
      `<tr><th scope="row"><span class="swatch" style="background:${color}"></span>${escapeHtml(r.name)}</th>` +
      cell(lossName(r.config)) +
      cell(lastValue(m, 'step')) +
      cell(lastValue(m, 'examples')) +
      cell(lastValue(m, 'loss')) +
      cell(lastValue(m, 'eval_loss')) +
      (acc === undefined ? cell(undefined) : `<td class="num accuracy">${percent(acc)}</td>`) +
      cell(lastValue(m, 'eval_rewards/margins')) +
      (hasTime ? `<td class="num">${escapeHtml(formatSeconds(time))}</td>` : cell(undefined)) +
      extra.map((k) => cell(r.summary?.[k])).join('') +
      '</tr>'
    );
  });
  return `<table class="runs"><thead><tr>${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}

function keyValueTable(summary: Readonly<Record<string, string | number>>): string {
  const rows = Object.entries(summary).map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th>${cell(v)}</tr>`);
  return `<table class="summary"><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}

/** A config as YAML (JSON where YAML cannot write it). */
function configText(config: Readonly<Record<string, unknown>>): string {
  try {
    return toYaml(config, { lineWidth: 0 });
  } catch {
    return JSON.stringify(config, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
  }
}

// ---------------------------------------------------------------------------------------------
// The page

const STYLE = `
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px auto; max-width: 1180px; padding: 0 16px; color: #1b1f23; background: #fff; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #e1e4e8; padding-bottom: 4px; }
p.note { margin: 4px 0; color: #444; max-width: 75em; line-height: 1.4; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
thead th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.missing { color: #999; text-align: center; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
figure { margin: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 18px 24px; }
svg.chart { width: 100%; height: auto; max-width: 560px; font-size: 11px; background: #fff; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1b1f23; }
svg .grid line { stroke: #eaecef; stroke-width: 1; }
svg .frame { fill: none; stroke: #c9ced4; stroke-width: 1; }
svg .ytick { text-anchor: end; fill: #555; }
svg .xtick { text-anchor: middle; fill: #555; }
svg .axis-label { text-anchor: middle; fill: #333; font-size: 12px; }
svg .reference { stroke: #888; stroke-width: 1; stroke-dasharray: 2 3; }
svg .reference-label { text-anchor: end; fill: #777; font-size: 10px; }
svg .no-data { text-anchor: middle; fill: #999; font-size: 13px; }
svg .series path { fill: none; stroke-linejoin: round; stroke-linecap: round; }
svg .series.train path { stroke-width: 1.4; opacity: 0.8; }
svg .series.eval path { stroke-width: 2.2; stroke-dasharray: 6 3; }
svg .legend line { stroke-width: 2; }
svg .legend-entry.eval line { stroke-dasharray: 6 3; }
svg .legend text { fill: #333; font-size: 11.5px; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: 10px; overflow: auto; font-size: 12.5px; line-height: 1.35; }
table.samples td.right { background: #e6f4ea; }
table.samples td.wrong { background: #fdecea; }
table.samples td { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.mark { font-weight: 700; margin-right: 4px; }
footer { margin-top: 28px; color: #777; font-size: 12px; }
`;

/** The report page: self-contained HTML (inline CSS and SVG only). */
export function renderReport(input: ReportInput): string {
  const xKey = xKeyOf(input.runs);
  const xLabel = xKey ?? 'logged line';
  const allIntegerX = input.runs.every((r) => r.metrics.every((m, i) => Number.isInteger(xKey === null ? i : (finite(m[xKey]) ?? 0))));
  const charts = REPORT_CHARTS.map((spec) => ({ spec, series: seriesFor(input.runs, spec.key, xKey) })).filter((c) => !c.spec.optional || c.series.length > 0);
  const main = charts.filter((c) => !c.spec.optional);
  const more = charts.filter((c) => c.spec.optional);
  const figure = (c: (typeof charts)[number]): string => {
    const groups = c.spec.splitByScale ? scaleGroups(c.series) : [c.series];
    if (groups.length <= 1) return `<figure>\n${renderChart(c.spec, c.series, xLabel, allIntegerX)}\n</figure>`;
    return groups
      .map((g, i) => {
        const names = [...new Set(g.map((s) => s.runName))].join(', ');
        return `<figure>\n${renderChart(c.spec, g, xLabel, allIntegerX, { id: `${c.spec.id}-${i + 1}`, title: `${c.spec.title}: ${names}` })}\n</figure>`;
      })
      .join('\n');
  };

  const body: string[] = [];
  body.push(`<h1>${escapeHtml(input.title)}</h1>`);
  for (const n of input.notes ?? []) body.push(`<p class="note">${escapeHtml(n)}</p>`);
  body.push('<h2>Summary</h2>');
  body.push(input.runs.length > 0 ? runTable(input.runs) : '<p class="note">No runs.</p>');
  if (input.summary && Object.keys(input.summary).length > 0) body.push(keyValueTable(input.summary));
  for (const sec of input.sections ?? []) body.push(`<section id="${escapeHtml(sec.id)}">\n<h2>${escapeHtml(sec.title)}</h2>\n${sec.html}\n</section>`);
  body.push('<h2>Training curves</h2>');
  body.push(
    `<p class="note">Over ${escapeHtml(xLabel)}s. Solid thin lines: train batches; dashed lines with dots: the held-out (test) split (eval_* metrics). Rewards are β·(log π − log π_ref) per response; accuracy is the share of pairs whose chosen reward beats the rejected one.</p>`,
  );
  body.push(`<div class="charts">\n${main.map(figure).join('\n')}\n</div>`);
  if (more.length > 0) {
    body.push('<h2>Optimization</h2>');
    body.push(`<div class="charts">\n${more.map(figure).join('\n')}\n</div>`);
  }
  const configs = input.runs.filter((r) => r.config !== undefined);
  if (configs.length > 0) {
    body.push('<h2>Configs</h2>');
    for (const r of configs) {
      body.push(`<details class="config"><summary>${escapeHtml(r.name)}</summary>\n<pre>${escapeHtml(configText(r.config!))}</pre>\n</details>`);
    }
  }
  body.push('<footer>Written by rpo. Self-contained: no scripts, no network.</footer>');

  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(input.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Writes the report to `file` (a temp file in the same directory, then renamed over it). Returns the path. */
export function writeReport(file: string, input: ReportInput): string {
  // The configs shown are the runs'; secrets from the environment are masked.
  const html = redactSecrets(renderReport(input));
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return file;
}

/**
 * The lines of a metrics.jsonl. Blank lines are skipped; a last line cut short (a crash while it
 * was written) is dropped; any other line that is not a JSON object is an error naming the line.
 */
export function readMetricsJsonl(file: string): MetricLine[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: MetricLine[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      // The last line with no newline after it: cut short by a crash.
      if (i === lines.length - 1) return;
      throw new Error(`${file}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}:${i + 1}: not a JSON object`);
    out.push(v as MetricLine);
  });
  return out;
}
