// The demo report's own sections: the models' greedy samples side by side on the same held-out
// prompts with the correct response, their exact match per task, and the data-efficiency
// experiment (held-out reward accuracy and exact match against the number of preference pairs).
import { DEMO_TASKS, type DemoTask } from './dataset.js';
import { escapeHtml, formatNumber, renderChart, type ChartSpec, type ReportSection, type Series } from './report.js';
import { rate, type DemoScore, type ExactMatch } from './score.js';

/** Held-out prompts of each task shown in the samples table (exact match counts all of them). */
export const DEMO_SAMPLES_SHOWN_PER_TASK = 4;

/** A run's colour in the training charts: runs are drawn SFT, RDPO, DPO in this order. */
const COLOR_INDEX: Readonly<Record<string, number>> = { SFT: 0, RDPO: 1, DPO: 2 };

const pct = (m: ExactMatch): string => (m.total === 0 ? '–' : `${m.exact} / ${m.total} (${(100 * rate(m)).toFixed(0)}%)`);

/** One point of the efficiency experiment: a preference loss trained on a share of the pairs. */
export interface EfficiencyPoint {
  /** DPO or RDPO. */
  loss: string;
  /** The share of the pairs (0.25, 0.5, 1). */
  fraction: number;
  pairs: number;
  heldOutAccuracy: number | null;
  /** Exact match of greedy samples over every held-out prompt, and per task. */
  exact: ExactMatch;
  byTask: Record<DemoTask, ExactMatch>;
}

/**
 * Exact match per task for each model, then a table of the first `perTask` held-out prompts of
 * each task with the correct response and each model's greedy sample (✓ exactly right, ✗ not).
 */
export function samplesSection(models: readonly { name: string; score: DemoScore }[], perTask: number): ReportSection {
  if (models.length === 0) throw new Error('samplesSection: no models');
  const n = models[0]!.score.samples.length;
  for (const m of models) {
    if (m.score.samples.length !== n || m.score.samples.some((s, i) => s.prompt !== models[0]!.score.samples[i]!.prompt)) {
      throw new Error(`samplesSection: ${m.name}'s samples are not for the same prompts as ${models[0]!.name}'s`);
    }
  }
  const head = (cols: readonly string[]) => `<thead><tr>${cols.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr></thead>`;
  const html: string[] = [];
  html.push(
    `<p class="note">Greedy samples of each model on the ${n} held-out prompts (their inputs never occur in training). ` +
      'Exact match: the sample is the correct response character for character (the right answer in the polite format).</p>',
  );
  const rows = [...DEMO_TASKS, 'all'].map((task) => {
    const cells = models.map((m) => `<td class="num">${escapeHtml(pct(task === 'all' ? m.score.all : m.score.byTask[task as DemoTask]))}</td>`).join('');
    return `<tr><th scope="row">${escapeHtml(task)}</th>${cells}</tr>`;
  });
  html.push(`<table class="exact-match" id="exact-match">${head(['task', ...models.map((m) => `${m.name} exact match`)])}<tbody>\n${rows.join('\n')}\n</tbody></table>`);

  const shown: number[] = [];
  for (const task of DEMO_TASKS) {
    const idx = models[0]!.score.samples.map((s, i) => (s.task === task ? i : -1)).filter((i) => i >= 0);
    shown.push(...idx.slice(0, perTask));
  }
  const sampleRows = shown.map((i) => {
    const s0 = models[0]!.score.samples[i]!;
    const outs = models
      .map((m) => {
        const s = m.score.samples[i]!;
        return `<td class="${s.exact ? 'right' : 'wrong'}"><span class="mark">${s.exact ? '✓' : '✗'}</span>${escapeHtml(s.output)}</td>`;
      })
      .join('');
    return `<tr><td>${escapeHtml(s0.task)}</td><td>${escapeHtml(s0.prompt)}</td><td>${escapeHtml(s0.answer)}</td>${outs}</tr>`;
  });
  html.push(`<table class="samples" id="samples">${head(['task', 'prompt', 'correct response', ...models.map((m) => m.name)])}<tbody>\n${sampleRows.join('\n')}\n</tbody></table>`);
  return { id: 'samples-section', title: 'Samples on held-out prompts', html: html.join('\n') };
}

const ACCURACY_CHART: ChartSpec = {
  id: 'efficiency-accuracy',
  title: 'Held-out reward accuracy by preference pairs',
  key: 'rewards/accuracies',
  yLabel: 'accuracy',
  range: [0, 1],
  reference: { y: 0.5, label: 'chance' },
};
const EXACT_CHART: ChartSpec = { id: 'efficiency-exact', title: 'Exact match of greedy samples by preference pairs', key: 'exact_match', yLabel: 'exact match', range: [0, 1] };

/** The efficiency experiment: a table of every point and two charts over the number of pairs. */
export function efficiencySection(points: readonly EfficiencyPoint[], totalPairs: number): ReportSection {
  const losses = [...new Set(points.map((p) => p.loss))];
  const fractions = [...new Set(points.map((p) => p.fraction))].sort((a, b) => a - b);
  const at = (loss: string, f: number) => points.find((p) => p.loss === loss && p.fraction === f);
  const series = (value: (p: EfficiencyPoint) => number | null): Series[] =>
    losses.map((loss) => ({
      run: COLOR_INDEX[loss] ?? 3,
      runName: loss,
      key: 'held-out',
      split: 'eval' as const,
      points: points
        .filter((p) => p.loss === loss)
        .sort((a, b) => a.pairs - b.pairs)
        .flatMap((p) => {
          const y = value(p);
          return y === null || !Number.isFinite(y) ? [] : [{ x: p.pairs, y }];
        }),
    }));
  const html: string[] = [];
  html.push(
    `<p class="note">DPO and RDPO trained from the same SFT model on ${fractions.map((f) => `${Math.round(100 * f)}%`).join(', ')} of the ` +
      `${totalPairs} preference pairs (the smaller runs see the first pairs of the same order), everything else equal. ` +
      'Each point is one run with one seed: differences of a few points are within what another seed would change.</p>',
  );
  const cols = ['pairs', ...losses.map((l) => `${l} held-out reward accuracy`), ...losses.map((l) => `${l} exact match`)];
  const rows = fractions.map((f) => {
    const pairs = points.find((p) => p.fraction === f)!.pairs;
    const acc = losses.map((l) => {
      const v = at(l, f)?.heldOutAccuracy;
      return v === undefined || v === null ? '<td class="missing">–</td>' : `<td class="num">${escapeHtml(formatNumber(v))}</td>`;
    });
    const ex = losses.map((l) => {
      const p = at(l, f);
      return p ? `<td class="num">${escapeHtml(pct(p.exact))}</td>` : '<td class="missing">–</td>';
    });
    return `<tr><th scope="row">${pairs} (${Math.round(100 * f)}%)</th>${acc.join('')}${ex.join('')}</tr>`;
  });
  html.push(`<table class="efficiency" id="efficiency">\n<thead><tr>${cols.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`);
  html.push(
    '<div class="charts">\n' +
      `<figure>\n${renderChart(ACCURACY_CHART, series((p) => p.heldOutAccuracy), 'preference pairs', true)}\n</figure>\n` +
      `<figure>\n${renderChart(EXACT_CHART, series((p) => rate(p.exact)), 'preference pairs', true)}\n</figure>\n` +
      '</div>',
  );
  return { id: 'efficiency-section', title: 'Data efficiency: DPO and RDPO on a share of the pairs', html: html.join('\n') };
}

