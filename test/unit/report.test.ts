// The run report: one self-contained HTML page with an SVG line chart per metric. Checked on its
// source (charts, series, points, axis labels, escaping, nothing fetched from anywhere) and on a
// headless-Chromium screenshot (scripts/render-report.mjs; the Chromium `npm test`'s setup finds
// or fetches, scripts/chromium.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  REPORT_CHARTS,
  RUN_COLORS,
  escapeHtml,
  niceTicks,
  readMetricsJsonl,
  renderReport,
  writeReport,
  type MetricLine,
  type ReportInput,
} from '../../lib/demo/report.js';
// @ts-expect-error: a plain .mjs script, no type declarations
import { CHROMIUM_HOW_TO, findChromium } from '../../scripts/chromium.mjs';
// @ts-expect-error: a plain .mjs script, no type declarations
import { analyzeScreenshot, renderWithChromium, runColorsOf, sampleReportInput } from '../../scripts/render-report.mjs';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-report-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sample = sampleReportInput() as ReportInput;
const page = renderReport(sample);

/** Each <svg>…</svg> of a page, with its data-chart and id. */
function charts(html: string): { chart: string; id: string; svg: string }[] {
  return [...html.matchAll(/<svg\b[^>]*>[\s\S]*?<\/svg>/g)].map((m) => ({
    chart: /data-chart="([^"]*)"/.exec(m[0])![1]!,
    id: /id="([^"]*)"/.exec(m[0])![1]!,
    svg: m[0],
  }));
}

function seriesOf(svg: string): { run: string; key: string; points: number; d: string }[] {
  return [...svg.matchAll(/<g class="series (?:train|eval)" data-run="([^"]*)" data-key="([^"]*)" data-points="(\d+)">[\s\S]*?<path d="([^"]*)"/g)].map((m) => ({
    run: m[1]!,
    key: m[2]!,
    points: Number(m[3]),
    d: m[4]!,
  }));
}

/** Distinct steps with a finite value of `key`, counted here the plain way. */
function finitePoints(metrics: readonly MetricLine[], key: string): number {
  const steps = new Set<number>();
  for (const m of metrics) {
    const v = m[key];
    if (typeof v === 'number' && Number.isFinite(v)) steps.add(m['step'] as number);
  }
  return steps.size;
}

describe('renderReport', () => {
  it('is one HTML page with one <svg> per chart: the six main charts, and the optional ones that have data', () => {
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page.match(/<html\b/g)).toHaveLength(1);
    expect(page.match(/<\/html>/g)).toHaveLength(1);
    const svgs = charts(page);
    expect((page.match(/<svg\b/g) ?? []).length).toBe(svgs.length);
    const main = ['loss', 'accuracy', 'margins', 'logps-chosen', 'logps-rejected', 'logps-rationale'];
    const optional = ['nll', 'grad-norm', 'learning-rate', 'throughput'];
    expect([...new Set(svgs.map((c) => c.chart))]).toEqual([...main, ...optional]);
    // The SFT loss (tens) and the preference losses (under 1) differ in scale: a loss chart each.
    expect(svgs.filter((c) => c.chart === 'loss').map((c) => c.id)).toEqual(['chart-loss-1', 'chart-loss-2']);
    expect(svgs.length).toBe(main.length + optional.length + 1);
    expect(new Set(svgs.map((c) => c.id)).size).toBe(svgs.length);
  });

  it('draws a train and a held-out series per run that logged the metric, with every finite point', () => {
    for (const spec of REPORT_CHARTS) {
      const drawn = charts(page)
        .filter((c) => c.chart === spec.id)
        .flatMap((c) => seriesOf(c.svg));
      const expected: { run: string; key: string; points: number }[] = [];
      for (const run of sample.runs) {
        for (const key of [spec.key, `eval_${spec.key}`]) {
          const n = finitePoints(run.metrics, key);
          if (n > 0) expected.push({ run: run.name, key, points: n });
        }
      }
      const byName = (a: { run: string; key: string }, b: { run: string; key: string }) => (a.run + a.key < b.run + b.key ? -1 : 1);
      expect(drawn.map(({ run, key, points }) => ({ run, key, points })).sort(byName), spec.id).toEqual(expected.sort(byName));
    }
    const count = (id: string) => seriesOf(charts(page).find((c) => c.id === id)!.svg).length;
    expect(count('chart-accuracy')).toBe(4); // RDPO and DPO, train and held-out; SFT has no rewards
    expect(count('chart-logps-chosen')).toBe(6);
    expect(count('chart-logps-rationale')).toBe(2); // only RDPO has a rationale term
    // DPO's null loss at one step is skipped, not drawn as 0
    const dpoLoss = seriesOf(charts(page).find((c) => c.id === 'chart-loss-2')!.svg).find((s) => s.run === 'DPO' && s.key === 'loss')!;
    expect(dpoLoss.points).toBe(sample.runs[2]!.metrics.filter((m) => 'loss' in m).length - 1);
  });

  it('labels the axes, the legend and the chance line', () => {
    for (const { svg, chart } of charts(page)) {
      const spec = REPORT_CHARTS.find((s) => s.id === chart)!;
      expect(svg).toContain('<text class="axis-label x-label"');
      expect(svg).toMatch(/class="axis-label x-label"[^>]*>step<\/text>/);
      expect(svg).toContain(`>${escapeHtml(spec.yLabel)}</text>`);
      expect((svg.match(/class="ytick"/g) ?? []).length).toBeGreaterThanOrEqual(2);
      expect((svg.match(/class="xtick"/g) ?? []).length).toBeGreaterThanOrEqual(2);
      for (const s of seriesOf(svg)) expect(svg).toContain(`>${s.run} ${s.key.startsWith('eval_') ? 'held-out' : 'train'}</text>`);
    }
    const acc = charts(page).find((c) => c.id === 'chart-accuracy')!.svg;
    expect(acc).toContain('class="reference"');
    expect(acc).toContain('>chance</text>');
    expect(acc).toMatch(/class="ytick"[^>]*>0<\/text>/);
    expect(acc).toMatch(/class="ytick"[^>]*>1\.0<\/text>/);
  });

  it('maps values onto the plot linearly, between the first and last ticks', () => {
    const run = { name: 'one', metrics: [4, 3, 2, 1].map((loss, step) => ({ step, loss })) };
    const svg = charts(renderReport({ title: 't', runs: [run] })).find((c) => c.chart === 'loss')!.svg;
    const frame = /<rect class="frame" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg)!.slice(1).map(Number);
    const [fx, fy, fw, fh] = frame as [number, number, number, number];
    const ticks = (cls: string) => [...svg.matchAll(new RegExp(`class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => Number(m[1]));
    const xt = ticks('xtick');
    const yt = ticks('ytick');
    expect(xt[0]).toBeLessThanOrEqual(0);
    expect(xt[xt.length - 1]).toBeGreaterThanOrEqual(3);
    expect(yt[0]).toBeLessThanOrEqual(1);
    expect(yt[yt.length - 1]).toBeGreaterThanOrEqual(4);
    const px = (x: number) => fx + ((x - xt[0]!) / (xt[xt.length - 1]! - xt[0]!)) * fw;
    const py = (y: number) => fy + fh - ((y - yt[0]!) / (yt[yt.length - 1]! - yt[0]!)) * fh;
    const d = seriesOf(svg)[0]!.d;
    const coords = [...d.matchAll(/[ML]([-\d.]+) ([-\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(coords).toHaveLength(4);
    coords.forEach(([x, y], i) => {
      expect(x).toBeCloseTo(px(i), 0);
      expect(y).toBeCloseTo(py(4 - i), 0);
    });
  });

  it('escapes every text: title, notes, run names, summary, config', () => {
    const evil = '<script>alert("x")</script> & \'q\'';
    const html = renderReport({
      title: `T ${evil}`,
      notes: [`N ${evil}`],
      runs: [{ name: `R ${evil}`, metrics: [{ step: 1, loss: 1 }], config: { note: evil, nested: { list: ['<b>', 'a&b'] } }, summary: { [`k ${evil}`]: `v ${evil}` } }],
      summary: { [`S ${evil}`]: `V ${evil}` },
    });
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<b>');
    const escaped = '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;';
    for (const s of [`T ${escaped}`, `N ${escaped}`, `R ${escaped}`, `k ${escaped}`, `v ${escaped}`, `S ${escaped}`, `V ${escaped}`, '&lt;b&gt;', 'a&amp;b']) expect(html).toContain(s);
    // the config is shown as YAML in a <details>
    expect(html).toMatch(/<details class="config"><summary>R &lt;script&gt;[\s\S]*?<pre>[\s\S]*note: [\s\S]*nested:\n {2}list:\n {4}- &lt;b&gt;\n {4}- a&amp;b[\s\S]*<\/pre>\n<\/details>/);
    expect(escapeHtml('a<b>&"c\'')).toBe('a&lt;b&gt;&amp;&quot;c&#39;');
  });

  it('fetches nothing: no http(s):// anywhere, no scripts, no external styles, fonts or images, and a CSP that forbids loads', () => {
    expect(JSON.stringify(sample.runs[0]!.config)).toContain('https://'); // the sample config holds a URL
    for (const html of [page, renderReport({ title: 'see https://example.com', runs: [{ name: 'http://x', metrics: [] }] })]) {
      expect(html).not.toMatch(/https?:\/\//i);
      expect(html).not.toMatch(/<script|<link|<img|<iframe|<object|<embed|@import|url\(|\bsrc=|\bhref=/i);
      expect(html).not.toContain('xmlns');
      expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
    }
    expect(page).toContain('hub: https:&#47;&#47;huggingface.co'); // shown, but not as an address
  });

  it('summarizes each run: loss name, last step, final train and held-out values', () => {
    const table = /<table class="runs">[\s\S]*?<\/table>/.exec(page)![0];
    const rows = [...table.matchAll(/<tr><th scope="row">[\s\S]*?<\/tr>/g)].map((m) => m[0]);
    expect(rows).toHaveLength(3);
    const rdpo = sample.runs[1]!.metrics;
    const lastEval = [...rdpo].reverse().find((m) => 'eval_rewards/accuracies' in m)!;
    expect(rows[1]).toContain('>rdpo</td>');
    expect(rows[1]).toContain(`>${(100 * (lastEval['eval_rewards/accuracies'] as number)).toFixed(1)}%</td>`);
    expect(rows[1]).toContain(`>${rdpo[rdpo.length - 1]!['step']}</td>`);
    expect(rows[0]).toContain('class="missing"'); // SFT: no held-out reward accuracy
    const kv = /<table class="summary">[\s\S]*?<\/table>/.exec(page)![0];
    for (const [k, v] of Object.entries(sample.summary!)) expect(kv).toContain(`<th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td>`);
  });

  it('handles missing metrics, a single point, no runs, non-finite values and x without steps', () => {
    const html = renderReport({
      title: 'edge',
      runs: [
        { name: 'single', metrics: [{ step: 5, loss: 0.7, 'rewards/accuracies': 0.5, 'logps/rationale': null, 'logps/chosen': 'NaN' }] },
        { name: 'empty', metrics: [] },
        { name: 'nan', metrics: [{ step: 1, loss: null }, { step: 2, loss: Number.NaN }, { step: 3, loss: Number.POSITIVE_INFINITY }] },
      ],
    });
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
    const svgs = charts(html);
    expect(svgs.map((c) => c.chart)).toEqual(['loss', 'accuracy', 'margins', 'logps-chosen', 'logps-rejected', 'logps-rationale']);
    const loss = svgs.find((c) => c.chart === 'loss')!.svg;
    expect(seriesOf(loss)).toEqual([{ run: 'single', key: 'loss', points: 1, d: expect.stringMatching(/^M[\d.]+ [\d.]+$/) }]);
    expect(loss).toMatch(/<circle cx="[\d.]+" cy="[\d.]+" r="3"/); // a lone point gets a marker
    for (const id of ['logps-rationale', 'logps-chosen', 'margins']) expect(svgs.find((c) => c.chart === id)!.svg).toContain('class="no-data"');

    const none = renderReport({ title: 'none', runs: [] });
    expect(charts(none)).toHaveLength(6);
    expect(none).toContain('No runs.');

    // lines without step: by examples, else by line number
    const byExamples = renderReport({ title: 'x', runs: [{ name: 'r', metrics: [{ examples: 32, loss: 1 }, { examples: 64, loss: 0.5 }] }] });
    expect(byExamples).toMatch(/class="axis-label x-label"[^>]*>examples<\/text>/);
    const byLine = renderReport({ title: 'x', runs: [{ name: 'r', metrics: [{ loss: 1 }, { loss: 0.5 }] }] });
    expect(byLine).toMatch(/class="axis-label x-label"[^>]*>logged line<\/text>/);
  });

  it('keeps the last value of a repeated step (a resumed run) and thins long series without losing spikes', () => {
    const resumed = renderReport({ title: 'r', runs: [{ name: 'r', metrics: [{ step: 1, loss: 5 }, { step: 2, loss: 4 }, { step: 2, loss: 3 }, { step: 3, loss: 2 }] }] });
    expect(seriesOf(charts(resumed)[0]!.svg)[0]!.points).toBe(3);
    const long = Array.from({ length: 6000 }, (_, i) => ({ step: i + 1, loss: i === 3000 ? 50 : 1 + (i % 7) / 10 }));
    const svg = charts(renderReport({ title: 'l', runs: [{ name: 'l', metrics: long }] }))[0]!.svg;
    const s = seriesOf(svg)[0]!;
    expect(s.points).toBe(6000);
    const ys = [...s.d.matchAll(/[ML][-\d.]+ ([-\d.]+)/g)].map((m) => Number(m[1]));
    expect(ys.length).toBeLessThanOrEqual(1600);
    const top = Number(/<rect class="frame" x="[\d.]+" y="([\d.]+)"/.exec(svg)![1]);
    expect(Math.min(...ys)).toBeCloseTo(top, 0); // the spike (the maximum) is still drawn, at the top of the plot
  });

  it('is deterministic', () => {
    expect(renderReport(sampleReportInput() as ReportInput)).toBe(page);
  });
});

describe('niceTicks', () => {
  it('gives round steps (1, 2 or 5 × 10^k) that cover the range', () => {
    for (const [lo, hi] of [[0, 1], [-130, -55], [0.2, 0.27], [3e-7, 1e-3], [0, 60], [21000, 22500], [-1, 1]] as const) {
      const { ticks, lo: a, hi: b } = niceTicks(lo, hi);
      expect(a).toBeLessThanOrEqual(lo);
      expect(b).toBeGreaterThanOrEqual(hi);
      expect(ticks.length).toBeGreaterThanOrEqual(2);
      expect(ticks.length).toBeLessThanOrEqual(12);
      const step = ticks[1]! - ticks[0]!;
      const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      expect([1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6)).toBe(true);
      for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBeCloseTo(step, 9);
    }
    expect(niceTicks(5, 5, 6, true).ticks).toEqual([4, 5, 6]);
    expect(niceTicks(0, 3, 6, true).ticks).toEqual([0, 1, 2, 3]);
  });
});

describe('writeReport and readMetricsJsonl', () => {
  it('writes the page atomically: the final file holds the page, no temp file is left, an old report is replaced', () => {
    const dir = path.join(tmp, 'run', 'nested');
    const file = path.join(dir, 'report.html');
    expect(writeReport(file, { title: 'first', runs: [] })).toBe(file);
    expect(readFileSync(file, 'utf8')).toContain('<title>first</title>');
    writeReport(file, sample);
    expect(readFileSync(file, 'utf8')).toBe(page);
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('reads metrics.jsonl, dropping a last line cut short and naming a broken line', () => {
    const file = path.join(tmp, 'metrics.jsonl');
    writeFileSync(file, '{"step":1,"loss":0.7}\n\n{"step":2,"loss":null}\n{"step":3,"lo');
    expect(readMetricsJsonl(file)).toEqual([{ step: 1, loss: 0.7 }, { step: 2, loss: null }]);
    writeFileSync(file, '{"step":1}\n{oops\n{"step":2}\n');
    expect(() => readMetricsJsonl(file)).toThrow(/metrics\.jsonl:2: not JSON/);
    writeFileSync(file, '{"step":1}\n[1,2]\n');
    expect(() => readMetricsJsonl(file)).toThrow(/metrics\.jsonl:2: not a JSON object/);
  });
});

const CHROMIUM = findChromium();
if (!CHROMIUM) console.warn(`report.test.ts: skipping the headless-Chromium render checks: no Chromium (${CHROMIUM_HOW_TO}; \`npm test\` fetches one into .cache/chromium on Debian/Ubuntu)`);

describe('the render check expects the runs a report holds', () => {
  it('reads the run colours from the runs table, in order: two for SFT + RDPO, none for no runs', () => {
    const two = { ...sample, runs: sample.runs.filter((r) => r.name !== 'DPO') };
    expect(two.runs.map((r) => r.name)).toEqual(['SFT', 'RDPO']);
    expect(runColorsOf(renderReport(two))).toEqual(RUN_COLORS.slice(0, 2));
    expect(runColorsOf(page)).toEqual(RUN_COLORS.slice(0, 3));
    expect(runColorsOf(renderReport({ title: 'empty', runs: [] }))).toEqual([]);
  });
});

describe.skipIf(!CHROMIUM)('in headless Chromium', () => {
  it("renders the sample report: charts drawn in every run's colour", () => {
    const html = writeReport(path.join(tmp, 'render', 'report.html'), sample);
    const png = renderWithChromium(html, path.join(tmp, 'render', 'report.png'), { chromium: CHROMIUM!, width: 1200, height: 2000 });
    const colors = RUN_COLORS.slice(0, sample.runs.length);
    const shot = analyzeScreenshot(png, colors) as { width: number; height: number; inkFraction: number; colorPixels: Record<string, number> };
    expect([shot.width, shot.height]).toEqual([1200, 2000]);
    expect(shot.inkFraction).toBeGreaterThan(0.02);
    expect(shot.inkFraction).toBeLessThan(0.5);
    for (const c of colors) expect(shot.colorPixels[c], c).toBeGreaterThan(300);
    // and a page without runs draws none of those colours: the count means something
    const empty = writeReport(path.join(tmp, 'render', 'empty.html'), { title: 'empty', runs: [] });
    const blank = analyzeScreenshot(renderWithChromium(empty, path.join(tmp, 'render', 'empty.png'), { chromium: CHROMIUM! }), colors) as { colorPixels: Record<string, number> };
    for (const c of colors) expect(blank.colorPixels[c], c).toBeLessThan(50);
  });

  it('node scripts/render-report.mjs passes a demo-like report of SFT + RDPO (no DPO) and fails a report without runs', () => {
    const two = writeReport(path.join(tmp, 'render', 'two.html'), { ...sample, runs: sample.runs.filter((r) => r.name !== 'DPO') });
    const script = path.join(import.meta.dirname, '..', '..', 'scripts', 'render-report.mjs');
    const ok = spawnSync(process.execPath, [script, two, '--out', path.join(tmp, 'render', 'two.png')], { encoding: 'utf8', env: { ...process.env, CHROMIUM: CHROMIUM! } });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`${RUN_COLORS[0]}: `);
    expect(ok.stdout).not.toContain(`${RUN_COLORS[2]}: `);
    const none = writeReport(path.join(tmp, 'render', 'none.html'), { title: 'empty', runs: [] });
    const bad = spawnSync(process.execPath, [script, none, '--out', path.join(tmp, 'render', 'none.png')], { encoding: 'utf8', env: { ...process.env, CHROMIUM: CHROMIUM! } });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('no runs in this report');
  });
});
