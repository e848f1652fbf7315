#!/usr/bin/env node
// Renders a run report (lib/demo/report.ts) in headless Chromium and checks the screenshot shows
// the charts: the page is not blank and the colour of every run the report holds is drawn.
//
//   node scripts/render-report.mjs                      a sample report (synthetic metrics)
//   node scripts/render-report.mjs runs/demo/report.html an existing report
//   options: --out shot.png (default: a temp dir)  --html-out sample.html  --size 1200,2000
//
// Needs Chromium: $CHROMIUM, the system's, or the copy `npm test`'s setup unpacks into
// .cache/chromium (scripts/chromium.mjs); it installs nothing itself. Chromium runs with
// networking features off and a throwaway profile; the page itself forbids any load
// (Content-Security-Policy). test/unit/report.test.ts runs the same check.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

import { CHROMIUM_HOW_TO, chromiumEnv, findChromium } from './chromium.mjs';

export { findChromium, chromiumEnv };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Screenshots `htmlFile` with headless Chromium into `pngFile`. Throws with Chromium's output when
 * it fails or writes no screenshot.
 * @param {string} htmlFile @param {string} pngFile
 * @param {{ chromium?: string, width?: number, height?: number, timeoutMs?: number }} [opts]
 */
export function renderWithChromium(htmlFile, pngFile, opts = {}) {
  const chromium = opts.chromium ?? findChromium();
  if (!chromium) throw new Error(`chromium not found: ${CHROMIUM_HOW_TO} (\`npm test\`'s setup fetches one into .cache/chromium on Debian/Ubuntu)`);
  const profile = mkdtempSync(path.join(os.tmpdir(), 'rpo-chromium-'));
  rmSync(pngFile, { force: true });
  try {
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-extensions',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      `--screenshot=${path.resolve(pngFile)}`,
      `--window-size=${opts.width ?? 1200},${opts.height ?? 2000}`,
      pathToFileURL(path.resolve(htmlFile)).href,
    ];
    const r = spawnSync(chromium, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 90_000, env: chromiumEnv(chromium) });
    if (r.error || r.status !== 0 || !existsSync(pngFile)) {
      const why = r.error ? r.error.message : `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}`;
      throw new Error(`chromium failed to screenshot ${htmlFile}: ${why}\n${(r.stderr ?? '').slice(-2000)}`);
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
  return pngFile;
}

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to RGBA pixels. */
export function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0, height = 0, colorType = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      colorType = data[9];
      if (depth !== 8 || (colorType !== 2 && colorType !== 6) || data[12] !== 0) throw new Error(`unsupported PNG (depth ${depth}, color type ${colorType}, interlace ${data[12]})`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(width * height * 4);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? line[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      let add = 0;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i] + add) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      out[(y * width + x) * 4] = line[x * bpp];
      out[(y * width + x) * 4 + 1] = line[x * bpp + 1];
      out[(y * width + x) * 4 + 2] = line[x * bpp + 2];
      out[(y * width + x) * 4 + 3] = bpp === 4 ? line[x * bpp + 3] : 255;
    }
    prev = line;
  }
  return { width, height, pixels: out };
}

/**
 * What a screenshot shows: its size, the share of pixels that are not (near) white, and for each
 * given colour ('#rrggbb') how many pixels are close to it.
 */
export function analyzeScreenshot(pngFile, colors = []) {
  const { width, height, pixels } = decodePng(readFileSync(pngFile));
  const targets = colors.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
  const counts = colors.map(() => 0);
  let ink = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const r = pixels[i], g = pixels[i + 1], b = pixels[i + 2];
    if (r < 235 || g < 235 || b < 235) ink++;
    targets.forEach((t, k) => {
      if (Math.abs(r - t[0]) <= 24 && Math.abs(g - t[1]) <= 24 && Math.abs(b - t[2]) <= 24) counts[k]++;
    });
  }
  return { width, height, inkFraction: ink / (width * height), colorPixels: Object.fromEntries(colors.map((c, k) => [c, counts[k]])) };
}

/**
 * The colours of the runs a report holds, in order: read from its runs table's swatches (the
 * colour lib/demo/report.ts gives each run), so the check expects what this report draws (a demo
 * report has SFT and RDPO, and DPO only with --dpo).
 * @param {string} html
 */
export function runColorsOf(html) {
  return [...html.matchAll(/<span class="swatch" style="background:(#[0-9a-fA-F]{6})">/g)].map((m) => m[1].toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// A sample report: three runs (SFT, RDPO, DPO) with synthetic, plausible metrics.

function noise(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function sampleRun(name, { steps, evalEvery, rationale, preference, seed }) {
  const n = noise(seed);
  const lines = [];
  const at = (t) => 1 - Math.exp(-3 * t);
  const evalLine = (step) => {
    const t = at(step / steps);
    const line = { step, examples: step * 32 };
    if (preference) {
      Object.assign(line, {
        eval_loss: 0.69 - 0.45 * t + (rationale ? 0.3 * (1 - t) : 0),
        'eval_rewards/accuracies': 0.5 + (rationale ? 0.42 : 0.36) * t,
        'eval_rewards/margins': (rationale ? 3.2 : 2.6) * t,
        'eval_logps/chosen': -42 + 6 * t,
        'eval_logps/rejected': -45 - 22 * t,
      });
      if (rationale) line['eval_logps/rationale'] = -130 + 70 * t;
    } else {
      Object.assign(line, { eval_loss: 120 - 80 * t, 'eval_logps/chosen': -120 + 80 * t });
    }
    line.eval_seconds = 1.5;
    return line;
  };
  lines.push(evalLine(0));
  for (let step = 1; step <= steps; step++) {
    const t = at(step / steps);
    const line = { step, examples: step * 32, epoch: 0 };
    if (preference) {
      Object.assign(line, {
        loss: 0.69 - 0.5 * t + (rationale ? 0.3 * (1 - t) : 0) + 0.08 * n(),
        'rewards/chosen': 0.4 * t + 0.1 * n(),
        'rewards/rejected': -2.8 * t + 0.1 * n(),
        'rewards/accuracies': Math.min(1, Math.max(0, 0.5 + 0.45 * t + 0.15 * n())),
        'rewards/margins': 3.4 * t + 0.4 * n(),
        'logps/chosen': -42 + 7 * t + 3 * n(),
        'logps/rejected': -45 - 24 * t + 3 * n(),
      });
      if (rationale) line['logps/rationale'] = -130 + 75 * t + 6 * n();
    } else {
      Object.assign(line, { loss: 120 - 85 * t + 6 * n(), 'logps/chosen': -120 + 85 * t + 6 * n(), nll_loss: 3.2 - 2.1 * t + 0.1 * n() });
    }
    Object.assign(line, {
      grad_norm: 2 + 6 * (1 - t) + n(),
      learning_rate: 1e-3 * Math.min(1, step / 11),
      tokens_per_second: 21000 + 1500 * n(),
      step_seconds: 0.42 + 0.05 * n(),
      peak_memory_bytes: 9e8,
    });
    lines.push(line);
    if (step % evalEvery === 0 || step === steps) lines.push(evalLine(step));
  }
  return lines;
}

const sampleConfig = (loss, extra = {}) => ({
  exp_name: `demo_${loss}`,
  seed: 0,
  lr: 1e-3,
  n_epochs: 1,
  eval_every: 320,
  datasets: ['./assets/demo'],
  model: { name_or_path: 'tiny-llama (random init)', batch_size: 32, max_length: 128, max_prompt_length: 64, hub: 'https://huggingface.co' },
  loss: { name: loss, ...extra },
  human_prefix: '\n<|user|>\n',
  assistant_prefix: '\n<|assistant|>\n',
  note: 'a <script>alert("x")</script> & \'quoted\' value',
});

/** The sample report's input: SFT, RDPO and DPO runs with synthetic metrics (the DPO run has a null loss, as JSON writes NaN). */
export function sampleReportInput() {
  const dpo = sampleRun('DPO', { steps: 60, evalEvery: 10, rationale: false, preference: true, seed: 3 });
  dpo[7].loss = null; // a non-finite value, as JSON writes NaN
  return {
    title: 'rpo demo: SFT → RDPO vs DPO on the synthetic task',
    notes: ['Synthetic metrics, to check how the report renders.'],
    runs: [
      { name: 'SFT', metrics: sampleRun('SFT', { steps: 40, evalEvery: 10, rationale: false, preference: false, seed: 1 }), config: sampleConfig('sft') },
      { name: 'RDPO', metrics: sampleRun('RDPO', { steps: 60, evalEvery: 10, rationale: true, preference: true, seed: 2 }), config: sampleConfig('rdpo', { beta: 0.1, gamma: 0.001 }) },
      { name: 'DPO', metrics: dpo, config: sampleConfig('dpo', { beta: 0.1 }) },
    ],
    summary: { dataset: 'assets/demo (2000 train / 200 test pairs)', 'wall time': '3 min 12 s', machine: 'laptop CPU' },
  };
}

async function loadReportModule() {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    return await import(pathToFileURL(path.join(ROOT, 'lib', 'demo', 'report.ts')).href);
  } catch (err) {
    const dist = path.join(ROOT, 'dist', 'lib', 'demo', 'report.js');
    if (existsSync(dist)) return await import(pathToFileURL(dist).href);
    throw err;
  }
}

async function main(argv) {
  const opt = (name) => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    argv.splice(i, 2);
    return v;
  };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-report-'));
  const out = opt('--out') ?? path.join(tmp, 'report.png');
  const htmlOut = opt('--html-out');
  const [w, h] = (opt('--size') ?? '1200,2000').split(',').map(Number);
  let html = argv[0];
  if (!html) {
    const { writeReport } = await loadReportModule();
    html = writeReport(htmlOut ?? path.join(tmp, 'report.html'), sampleReportInput());
    console.log(`sample report: ${html}`);
  }
  const colors = runColorsOf(readFileSync(html, 'utf8'));
  if (colors.length === 0) {
    console.error(`${html}: no runs in this report (no run swatches in its runs table): nothing to check`);
    return 1;
  }
  if (!findChromium()) {
    console.error(`chromium not found: ${CHROMIUM_HOW_TO} (\`npm test\`'s setup fetches one into .cache/chromium on Debian/Ubuntu)`);
    return 2;
  }
  renderWithChromium(html, out, { width: w, height: h });
  const a = analyzeScreenshot(out, colors);
  console.log(`screenshot: ${out} (${a.width}×${a.height}), ${(100 * a.inkFraction).toFixed(1)}% non-white`);
  for (const [c, n] of Object.entries(a.colorPixels)) console.log(`  ${c}: ${n} pixels`);
  const blank = a.inkFraction < 0.01 || Object.values(a.colorPixels).some((n) => n < 100);
  if (blank) console.error('the screenshot looks empty: the page did not render its charts');
  return blank ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
