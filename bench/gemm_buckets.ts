// What oneDNN's per-shape kernels cost when shapes keep changing, as in training on batches padded
// to their longest row: SFT micro-steps of the demo's model (the "small" preset: hidden 256, 4
// layers) on 16-row batches whose length is drawn from 96..192 tokens at every step, run once
// with RPO_CPU_GEMM=aten and once with RPO_CPU_GEMM=onednn (token counts bucketed, see
// native/model/gemm.h), each in its own process with the same batches. Prints a table of the
// first steps (where kernels are compiled) and the rest.
//
//   node --import tsx bench/gemm_buckets.ts [--steps 40] [--threads 2]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { Model, Trainer, cpuGemmBackend, type RowBatch } from '../lib/native.js';
import { MODEL_PRESETS } from '../lib/model/presets.js';
import { mulberry32 } from '../lib/util/random.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const STEPS = arg('steps', 40);
const THREADS = arg('threads', 2);
const FIRST = 10;

function batch(rand: () => number, rows: number, seqLen: number, vocab: number): RowBatch {
  const inputIds = new Int32Array(rows * seqLen);
  const attentionMask = new Uint8Array(rows * seqLen);
  const lossMask = new Uint8Array(rows * seqLen);
  for (let r = 0; r < rows; r++) {
    const len = r === 0 ? seqLen : Math.max(8, Math.floor(seqLen * (0.5 + 0.5 * rand())));
    for (let t = 0; t < len; t++) {
      inputIds[r * seqLen + t] = 3 + Math.floor(rand() * (vocab - 3));
      attentionMask[r * seqLen + t] = 1;
      lossMask[r * seqLen + t] = t >= len / 3 ? 1 : 0;
    }
  }
  return { inputIds, attentionMask, lossMask, rows, seqLen };
}

async function child(): Promise<void> {
  const config = { ...MODEL_PRESETS.small!.config, vocab_size: 259 };
  const model = await Model.create(config, { seed: 3 });
  const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
  const rand = mulberry32(11);
  const times: number[] = [];
  let tokens = 0;
  for (let s = 0; s < STEPS; s++) {
    const seqLen = 96 + Math.floor(rand() * 97);
    const b = batch(rand, 16, seqLen, config.vocab_size);
    const t0 = performance.now();
    await trainer.microStep(b, { nPairs: 16 });
    await trainer.optimizerStep({ lr: 1e-4 });
    times.push((performance.now() - t0) / 1000);
    tokens += b.attentionMask.reduce((a: number, v: number) => a + v, 0);
  }
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ backend: cpuGemmBackend(), times, tokens, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
}

function main(): void {
  const rows: string[] = [];
  for (const want of ['aten', 'onednn', 'aten', 'onednn']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--steps', String(STEPS)], {
      env: { ...process.env, RPO_CPU_GEMM: want, RPO_NUM_THREADS: String(THREADS) },
      encoding: 'utf8',
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.status !== 0 || !line) throw new Error(`child (${want}) failed: ${r.stderr.slice(-2000)}`);
    const o = JSON.parse(line) as { backend: string; times: number[]; tokens: number; cpuSeconds: number };
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    const first = sum(o.times.slice(0, FIRST));
    const rest = sum(o.times.slice(FIRST));
    rows.push(`| ${want} | ${o.backend} | ${first.toFixed(2)} | ${rest.toFixed(2)} | ${(o.tokens / sum(o.times)).toFixed(0)} | ${o.cpuSeconds.toFixed(1)} |`);
  }
  console.log(`SFT steps of the "small" preset, 16 rows x 96..192 tokens (a new length nearly every step), ${THREADS} threads, ${STEPS} steps`);
  console.log('');
  console.log(`| RPO_CPU_GEMM | ran | first ${FIRST} steps s | other ${STEPS - FIRST} steps s | tokens/s | process CPU s |`);
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

if (process.argv.includes('--child')) await child();
else main();
