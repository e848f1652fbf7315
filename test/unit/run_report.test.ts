// report.html of a training run: the demo's charts over the run's metrics.jsonl, the samples of
// the latest evaluation beside them (escaped), and what state the run is in.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { renderRunReport, writeRunReport, type SampleSet } from '../../lib/report/run_report.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-run-report-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const metricsFile = path.join(tmp, 'metrics.jsonl');
writeFileSync(
  metricsFile,
  [
    { step: 0, examples: 0, eval_loss: 0.69 },
    { step: 1, examples: 4, loss: 0.7, learning_rate: 1e-4, grad_norm: 2 },
    { step: 2, examples: 8, loss: 0.6, learning_rate: 2e-4, grad_norm: 1.5 },
    { step: 2, examples: 8, eval_loss: 0.65 },
  ]
    .map((m) => JSON.stringify(m))
    .join('\n') + '\n',
);
const samples: SampleSet = { step: 2, examples: 8, samples: [{ prompt: 'What is <script>alert(1)</script>?', output: 'a & b "quoted"', chosen: "it's fine" }] };

describe('the run report', () => {
  it('puts the samples, escaped, between the curves and the config', () => {
    const html = renderRunReport({ name: 'r1', metricsFile, config: { lr: 1e-4 }, samples, state: 'running', now: new Date('2026-01-02T03:04:05Z') });
    expect(html).toContain('Training in progress: this page is rewritten at each evaluation (last written 2026-01-02 03:04:05 UTC, step 2)');
    expect(html).not.toContain('<script>');
    expect(html).toContain('What is &lt;script&gt;alert(1)&lt;/script&gt;?');
    expect(html).toContain('a &amp; b &quot;quoted&quot;');
    const at = (s: string) => html.indexOf(s);
    expect(at('Samples at step 2')).toBeGreaterThan(at('Training curves'));
    expect(at('Samples at step 2')).toBeLessThan(at('<h2>Configs</h2>'));
    expect(html).toMatch(/<svg[^>]*data-chart="loss"/);
  });

  it('says how the run ended; without metrics or samples it is still a page', () => {
    expect(renderRunReport({ name: 'r1', metricsFile, state: 'finished' })).toMatch(/Training finished; written .* at step 2\./);
    expect(renderRunReport({ name: 'r1', metricsFile, state: 'stopped' })).toMatch(/Training stopped \(interrupted or failed\) at step 2/);
    const empty = renderRunReport({ name: 'none', metricsFile: path.join(tmp, 'absent.jsonl'), state: 'running' });
    expect(empty).toContain('step 0');
    expect(empty).not.toContain('Samples at');
  });

  it('is written atomically: no temp file left, the whole page there', () => {
    const file = path.join(tmp, 'out', 'report.html');
    rmSync(path.dirname(file), { recursive: true, force: true });
    mkdirSync(path.dirname(file));
    writeRunReport(file, { name: 'r1', metricsFile, samples, state: 'finished' });
    expect(readFileSync(file, 'utf8').trimEnd().endsWith('</html>')).toBe(true);
    expect(readdirSync(path.dirname(file))).toEqual(['report.html']);
  });
});
