// `npx rpo demo` as a user runs it: SFT then RDPO and DPO on the bundled synthetic task. Both
// preference losses must lift held-out reward accuracy well above chance (0.5), the report must
// be one self-contained page that renders, and the samples must be AlpacaEval's format.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { REPO, rpo } from './cli.js';

const out = mkdtempSync(path.join(tmpdir(), 'rpo-demo-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('rpo demo', () => {
  it('SFT, then RDPO and DPO raise held-out reward accuracy well above chance; report and samples', async () => {
    const r = rpo(['demo', '--out', out, '--dpo'], { timeoutMs: 1_200_000 });
    expect(r.code, r.stderr).toBe(0);
    const acc = (name: string) => Number(new RegExp(`^\\s+${name}\\s+([0-9.]+)`, 'm').exec(r.stdout)?.[1]);
    expect(acc('rdpo')).toBeGreaterThan(0.7);
    expect(acc('dpo')).toBeGreaterThan(0.7);
    // the number printed is the last evaluation in metrics.jsonl
    const evals = readFileSync(path.join(out, 'rdpo', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m['eval_rewards/accuracies'] !== undefined);
    expect(evals.at(-1)!['eval_rewards/accuracies']).toBeCloseTo(acc('rdpo'), 3);
    expect(evals[0]!['eval_rewards/accuracies']).toBeLessThan(acc('rdpo')); // it learned

    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script/i);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(6);
    for (const name of ['SFT', 'RDPO', 'DPO']) expect(html).toContain(name);

    const samples = JSON.parse(readFileSync(path.join(out, 'samples', 'alpaca_rpo-demo-rdpo.json'), 'utf8')) as Record<string, unknown>[];
    expect(samples.length).toBe(16);
    for (const s of samples) expect(Object.keys(s).sort()).toEqual(['dataset', 'generator', 'instruction', 'output']);

    const { findChromium, renderWithChromium, decodePng } = (await import(path.join(REPO, 'scripts', 'render-report.mjs'))) as {
      findChromium(): string | null;
      renderWithChromium(html: string, png: string): string;
      decodePng(buf: Buffer): { width: number; height: number; pixels: Uint8Array };
    };
    if (!findChromium()) {
      console.warn('test/e2e/demo: skipped the Chromium render check: chromium is not installed');
      return;
    }
    const png = renderWithChromium(path.join(out, 'report.html'), path.join(out, 'report.png'));
    const { pixels } = decodePng(readFileSync(png));
    let ink = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i]! < 200 || pixels[i + 1]! < 200 || pixels[i + 2]! < 200) ink++;
    expect(ink / (pixels.length / 4)).toBeGreaterThan(0.01); // charts and text, not a blank page
    expect(existsSync(png)).toBe(true);
  });
});
