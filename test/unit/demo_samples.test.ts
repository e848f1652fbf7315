// The demo's exact-match scoring and its report sections (samples side by side, exact match per
// task, the data-efficiency table and charts), on hand-made samples whose counts are worked out
// here by hand.
import { describe, expect, it } from 'vitest';

import { renderReport } from '../../lib/demo/report.js';
import { efficiencySection, samplesSection, type EfficiencyPoint } from '../../lib/demo/report_sections.js';
import { demoTaskOf, rate, scoreDemoSamples } from '../../lib/demo/score.js';

const ROWS = [
  { prompt: 'Sort: 7 3 9', chosen: 'Sure! Sorted: 3 7 9.' },
  { prompt: 'Sort these numbers: 5 1 2 0', chosen: 'Sure! Sorted: 0 1 2 5.' },
  { prompt: 'Reverse the word: cat', chosen: 'Sure! Reversed: tac.' },
  { prompt: 'Spell backwards: dog', chosen: 'Sure! Reversed: god.' },
  { prompt: 'Uppercase: pen', chosen: 'Sure! In capitals: PEN.' },
  { prompt: 'Write in capitals: <b>', chosen: 'Sure! In capitals: <B>.' },
  { prompt: 'Add 3 and 4', chosen: 'Sure! 3 + 4 = 7.' },
  { prompt: 'What is 12 + 30?', chosen: 'Sure! 12 + 30 = 42.' },
];

// SFT: right on the first sort, the first reverse (with surrounding whitespace), both uppercase;
// wrong on a curt answer, a missing period, a wrong sum, an empty output.
const SFT = ['Sure! Sorted: 3 7 9.', 'ok: 0 1 2 5', ' Sure! Reversed: tac. ', 'Sure! Reversed: god', 'Sure! In capitals: PEN.', 'Sure! In capitals: <B>.', 'Sure! 3 + 4 = 8.', ''];
// RDPO: right on everything but the last sort and the second add.
const RDPO = ROWS.map((r, i) => (i === 1 ? 'Sure! Sorted: 0 1 5 2.' : i === 7 ? 'Sure! 12 + 30 = 1230.' : r.chosen));

describe('demo exact match', () => {
  it('knows each task by its two phrasings, and no other prompt', () => {
    expect(ROWS.map((r) => demoTaskOf(r.prompt))).toEqual(['sort', 'sort', 'reverse', 'reverse', 'uppercase', 'uppercase', 'add', 'add']);
    expect(demoTaskOf('Sort of a question')).toBeNull();
    expect(demoTaskOf('What is 2 + 2? Explain.')).toBeNull();
  });

  it('counts a sample right only when it is the correct response (surrounding whitespace aside)', () => {
    const s = scoreDemoSamples(ROWS, SFT);
    expect(s.samples.map((x) => x.exact)).toEqual([true, false, true, false, true, true, false, false]);
    expect(s.byTask).toEqual({ sort: { exact: 1, total: 2 }, reverse: { exact: 1, total: 2 }, uppercase: { exact: 2, total: 2 }, add: { exact: 0, total: 2 } });
    expect(s.all).toEqual({ exact: 4, total: 8 });
    expect(rate(s.all)).toBe(0.5);
    expect(rate({ exact: 0, total: 0 })).toBeNaN();
    expect(() => scoreDemoSamples(ROWS, SFT.slice(1))).toThrow(/8 prompts but 7 outputs/);
    expect(() => scoreDemoSamples([{ prompt: 'Hello', chosen: 'Hi' }], ['Hi'])).toThrow(/prompt 0 is not a demo task: "Hello"/);
  });
});

describe('demo report sections', () => {
  const sft = scoreDemoSamples(ROWS, SFT);
  const rdpo = scoreDemoSamples(ROWS, RDPO);

  it('samples: exact match per task per model, then the same prompts side by side with the correct response', () => {
    const sec = samplesSection([{ name: 'SFT', score: sft }, { name: 'RDPO', score: rdpo }], 1);
    const exact = /<table class="exact-match" id="exact-match">([\s\S]*?)<\/table>/.exec(sec.html)![1]!;
    const cells = [...exact.matchAll(/<tr><th scope="row">(\w+)<\/th>((?:<td[^>]*>[^<]*<\/td>)+)<\/tr>/g)].map((m) => [m[1], ...[...m[2]!.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((c) => c[1])]);
    expect(cells).toEqual([
      ['sort', '1 / 2 (50%)', '1 / 2 (50%)'],
      ['reverse', '1 / 2 (50%)', '2 / 2 (100%)'],
      ['uppercase', '2 / 2 (100%)', '2 / 2 (100%)'],
      ['add', '0 / 2 (0%)', '1 / 2 (50%)'],
      ['all', '4 / 8 (50%)', '6 / 8 (75%)'],
    ]);
    const table = /<table class="samples" id="samples">([\s\S]*?)<\/table>/.exec(sec.html)![1]!;
    const rows = [...table.matchAll(/<tr><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td>(<td[\s\S]*?)<\/tr>/g)];
    // one prompt per task: the first of each
    expect(rows.map((r) => r[2])).toEqual(['Sort: 7 3 9', 'Reverse the word: cat', 'Uppercase: pen', 'Add 3 and 4']);
    expect(rows.map((r) => [...r[4]!.matchAll(/class="(right|wrong)"/g)].map((c) => c[1]))).toEqual([
      ['right', 'right'],
      ['right', 'right'],
      ['right', 'right'],
      ['wrong', 'right'],
    ]);
    expect(rows[3]![4]).toContain('<span class="mark">✗</span>Sure! 3 + 4 = 8.');
    // text is escaped: the "<b>" prompt shows as text when it is in the table
    const all = samplesSection([{ name: 'SFT', score: sft }], 2).html;
    expect(all).toContain('Write in capitals: &lt;b&gt;');
    expect(all).not.toContain('<b>');
    expect(() => samplesSection([{ name: 'SFT', score: sft }, { name: 'X', score: scoreDemoSamples(ROWS.slice(1), SFT.slice(1)) }], 1)).toThrow(/X's samples are not for the same prompts/);
  });

  it('efficiency: a row per share of the pairs and a chart each for accuracy and exact match, points at the pair counts', () => {
    const pt = (loss: string, fraction: number, acc: number, exact: number): EfficiencyPoint => ({
      loss,
      fraction,
      pairs: 768 * fraction,
      heldOutAccuracy: acc,
      exact: { exact, total: 200 },
      byTask: { sort: { exact: 0, total: 50 }, reverse: { exact: 0, total: 50 }, uppercase: { exact: 0, total: 50 }, add: { exact: 0, total: 50 } },
    });
    const points = [pt('DPO', 0.25, 0.6, 20), pt('RDPO', 0.25, 0.65, 30), pt('DPO', 0.5, 0.7, 40), pt('RDPO', 0.5, 0.72, 50), pt('DPO', 1, 0.88, 60), pt('RDPO', 1, 0.845, 70)];
    const sec = efficiencySection(points, 768);
    const table = /<table class="efficiency" id="efficiency">([\s\S]*?)<\/table>/.exec(sec.html)![1]!;
    expect([...table.matchAll(/<th scope="row">([^<]*)<\/th>/g)].map((m) => m[1])).toEqual(['192 (25%)', '384 (50%)', '768 (100%)']);
    expect(table).toContain('<th scope="row">768 (100%)</th><td class="num">0.88</td><td class="num">0.845</td><td class="num">60 / 200 (30%)</td><td class="num">70 / 200 (35%)</td>');
    const svgs = [...sec.html.matchAll(/<svg\b[^>]*id="chart-(efficiency-\w+)"[\s\S]*?<\/svg>/g)];
    expect(svgs.map((m) => m[1])).toEqual(['efficiency-accuracy', 'efficiency-exact']);
    for (const m of svgs) {
      const series = [...m[0].matchAll(/data-run="(\w+)" data-key="held-out" data-points="(\d+)"/g)].map((s) => [s[1], Number(s[2])]);
      // drawn in the training charts' run order and colours: RDPO, then DPO
      expect(series).toEqual([
        ['RDPO', 3],
        ['DPO', 3],
      ]);
    }
    // the exact-match chart's last RDPO marker: 70/200 at 768 pairs
    expect(svgs[1]![0]).toContain('RDPO held-out = 0.35 at preference pairs 768');
    // in a report page, after the summary
    const page = renderReport({ title: 't', runs: [], sections: [sec] });
    expect(page.indexOf('<h2>Summary</h2>')).toBeLessThan(page.indexOf('<section id="efficiency-section">'));
  });
});
