// Watching a run (issue 15) end to end on a tiny model through `rpo train`: TensorBoard event
// files read back by TensorBoard's own reader against every value of metrics.jsonl, the cosine
// schedule's learning rates against transformers.get_scheduler, greedy samples at each
// evaluation against HF transformers' greedy generate on the final checkpoint, and report.html
// rewritten while the run goes.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { loadTokenizer } from '../../lib/data/tokenize/index.js';
import { encodePrompt } from '../../lib/eval/sampling.js';
import type { SampleSet } from '../../lib/report/run_report.js';
import { referencePython, runPython } from '../reference/python.js';
// @ts-expect-error: a plain .mjs script, no type declarations
import { analyzeScreenshot, chromiumEnv, findChromium } from '../../scripts/render-report.mjs';
import { REPO, rpo, rpoLive } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;
let run: string;
let liveReport: string | null = null;
let stderr = '';

const LR = 1e-3;
const args = (): string[] => [
  'train',
  'loss=dpo',
  'model=tiny',
  `model.name_or_path=${modelDir}`,
  `datasets=[${PAIRS}]`,
  'exp_name=watched',
  `cache_dir=${work}`,
  'model.batch_size=4',
  'model.gradient_accumulation_steps=2',
  'model.eval_batch_size=4',
  `lr=${LR}`,
  'n_examples=40',
  'eval_every=8',
  'lr_scheduler_type=cosine',
  'warmup_ratio=0.25',
  'sample_during_eval=true',
  'n_eval_model_samples=2',
];

interface TbRead {
  files: string[];
  records: number;
  file_version: string;
  scalars: Record<string, [number, number | string][]>;
  text: Record<string, [number, string][]>;
}

function metrics(): Record<string, number | string | null>[] {
  return readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string | null>);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-watch-'));
  modelDir = path.join(work, 'tiny-model');
  const init = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(init.code, init.stderr).toBe(0);
  run = path.join(work, 'watched');
  let evals = 0;
  const r = await rpoLive(args(), (line) => {
    // At the third evaluation's log line the first two have rewritten the report: read it while
    // the run is still going (an atomic rename: whole, never torn).
    if (/eval at/.test(line) && ++evals === 3) liveReport = readFileSync(path.join(run, 'report.html'), 'utf8');
  });
  stderr = r.stderr;
  expect(r.code, r.stderr).toBe(0);
}, 600_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('a watched run', () => {
  it('TensorBoard holds every number of metrics.jsonl under the same name at the same step', () => {
    const tb = JSON.parse(runPython('tb_events.py', [path.join(run, 'tb')])) as TbRead;
    expect(tb.files).toHaveLength(1);
    expect(tb.file_version).toBe('brain.Event:2');
    const want = new Map<string, [number, number][]>();
    for (const m of metrics()) {
      for (const [k, v] of Object.entries(m)) if (k !== 'step' && typeof v === 'number') {
        const list = want.get(k) ?? [];
        list.push([m.step as number, v]);
        want.set(k, list);
      }
    }
    for (const k of ['loss', 'eval_loss', 'rewards/accuracies', 'eval_rewards/accuracies', 'learning_rate', 'grad_norm', 'tokens_per_second']) expect(want.has(k), k).toBe(true);
    expect(Object.keys(tb.scalars).sort()).toEqual([...want.keys()].sort());
    let compared = 0;
    for (const [k, points] of want) {
      const got = tb.scalars[k]!;
      expect(got.map((p) => p[0]), k).toEqual(points.map((p) => p[0]));
      points.forEach(([, v], i) => {
        expect(got[i]![1], `${k} at step ${points[i]![0]}`).toBe(Math.fround(v));
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(100);
  });

  it('the cosine schedule with warmup_ratio gives transformers\' learning rates', () => {
    const train = metrics().filter((m) => typeof m.learning_rate === 'number');
    const total = train.length;
    expect(total).toBe(10);
    const [ref] = JSON.parse(runPython('lr_schedule.py', JSON.stringify([{ type: 'cosine', lr: LR, warmup_steps: 0, warmup_ratio: 0.25, total }]))) as number[][];
    train.forEach((m, i) => expect(Math.abs((m.learning_rate as number) - ref![i]!), `step ${i + 1}`).toBeLessThan(1e-15));
  });

  it('samples at each evaluation: samples/step-N.json, TensorBoard text, the report; greedy as HF generates', async () => {
    const evalSteps = metrics().filter((m) => typeof m.eval_loss === 'number').map((m) => m.step as number);
    expect(evalSteps).toEqual([0, 2, 4, 6, 8, 10]);
    expect(readdirSync(path.join(run, 'samples')).sort()).toEqual(evalSteps.map((s) => `step-${s}.json`).sort());
    const tb = JSON.parse(runPython('tb_events.py', [path.join(run, 'tb')])) as TbRead;
    expect(tb.text.samples!.map((p) => p[0])).toEqual(evalSteps);

    const last = JSON.parse(readFileSync(path.join(run, 'samples', 'step-10.json'), 'utf8')) as SampleSet;
    expect(last.step).toBe(10);
    expect(last.samples).toHaveLength(2);
    const testRows = readFileSync(path.join(PAIRS, 'test.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; chosen: string });
    expect(last.samples.map((s) => s.chosen)).toEqual(testRows.map((r) => r.chosen));
    expect(tb.text.samples![5]![1]).toContain(last.samples[0]!.output.split('\n')[0]!);

    // The policy at step 10 is the final checkpoint: HF's greedy continuation of the same prompt
    // ids, decoded by the run's tokenizer, is the sample. Both prompts were one batch, left-padded
    // to the longer: max_length (prompt included, as HF's) counts that padding, so one at a time
    // a shorter prompt has as many fewer new tokens as it had padding.
    const config = loadConfig({ overrides: args().slice(1), env: {} }).config;
    const tok = await loadTokenizer(path.join(run, 'LATEST'));
    const prompts = await Promise.all(last.samples.map(async (s) => Array.from(await encodePrompt(s.prompt, config, tok))));
    const longest = Math.max(...prompts.map((p) => p.length));
    const hf = JSON.parse(
      runPython('hf_greedy_samples.py', [path.join(run, 'LATEST')], JSON.stringify({ prompts, max_lengths: prompts.map((p) => config.model.max_length - (longest - p.length)), eos_token_ids: [...tok.stopTokenIds], pad_token_id: tok.padTokenId ?? 0 })),
    ) as number[][];
    for (let i = 0; i < prompts.length; i++) {
      const text = (await tok.decode(hf[i]!, { skipSpecialTokens: true })).trim();
      expect(last.samples[i]!.output, `sample ${i}`).toBe(text);
    }
  });

  it('report.html: live while training, final at the end, with curves and samples', () => {
    expect(liveReport, stderr).not.toBeNull();
    expect(liveReport!).toMatch(/Training in progress/);
    expect(liveReport!.trimEnd().endsWith('</html>')).toBe(true);
    expect(liveReport!).toMatch(/Samples at step \d+/);
    const final = readFileSync(path.join(run, 'report.html'), 'utf8');
    expect(final).toMatch(/Training finished; written .* at step 10\./);
    expect(final).toContain('Samples at step 10');
    expect(final).toMatch(/<svg[^>]*class="chart"/);
    expect(final).toContain('Learning rate');
    expect(existsSync(path.join(run, 'report.html.tmp'))).toBe(false);
    expect(readdirSync(run).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});

const CHROMIUM = findChromium() as string | null;
const hasChromium = CHROMIUM !== null;
if (!hasChromium) console.warn('watch.test.ts: skipping the TensorBoard screenshot: no Chromium (`npm test` fetches one into .cache/chromium on Debian/Ubuntu; else install it or set CHROMIUM=/path/to/chrome)');

/** A free loopback port (the OS picks it; closed again before TensorBoard binds it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

describe('tensorboard --logdir <run dir>/tb', () => {
  it.skipIf(!hasChromium)('serves the curves and draws them in headless Chromium', async () => {
    const port = await freePort();
    const tb = spawn(referencePython(), ['-m', 'tensorboard.main', '--logdir', path.join(run, 'tb'), '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    tb.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      // TensorBoard's own HTTP API (what its UI draws): every tag, and the loss values as stored.
      const url = `http://127.0.0.1:${port}`;
      let tags: Record<string, Record<string, unknown>> = {};
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        try {
          tags = (await (await fetch(`${url}/data/plugin/scalars/tags`)).json()) as typeof tags;
          if (tags['.'] && Object.keys(tags['.']).includes('eval_loss')) break;
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(Object.keys(tags['.'] ?? {}).sort(), log).toContain('loss');
      const served = (await (await fetch(`${url}/data/plugin/scalars/scalars?run=.&tag=loss`)).json()) as [number, number, number][];
      const want = metrics().filter((m) => typeof m.loss === 'number');
      expect(served.map((p) => p[1])).toEqual(want.map((m) => m.step));
      expect(served.map((p) => p[2])).toEqual(want.map((m) => Math.fround(m.loss as number)));

      const png = path.join(work, 'tensorboard.png');
      const profile = mkdtempSync(path.join(tmpdir(), 'rpo-chromium-'));
      const r = spawnSync(
        CHROMIUM!,
        ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`,
          '--window-size=1400,1000', '--virtual-time-budget=15000', `--screenshot=${png}`, `${url}/#timeseries`],
        { encoding: 'utf8', timeout: 120_000, env: chromiumEnv(CHROMIUM!) as NodeJS.ProcessEnv },
      );
      rmSync(profile, { recursive: true, force: true });
      expect(existsSync(png), r.stderr).toBe(true);
      // The run's line colour (TensorBoard's first run colour) drawn in the charts: curves, not
      // just the legend dot (about 100 pixels).
      const shot = analyzeScreenshot(png, ['#425066']) as { width: number; colorPixels: Record<string, number> };
      expect(shot.width).toBe(1400);
      expect(shot.colorPixels['#425066']).toBeGreaterThan(500);
    } finally {
      tb.kill('SIGTERM');
    }
  }, 300_000);
});
