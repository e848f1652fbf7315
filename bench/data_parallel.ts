// CPU benchmark of data parallelism (issue 11): the same DPO train step on the ~100M Llama, its
// global batch trained by 1 process × 2 threads and by 2 ranks × 1 thread (c10d Gloo on loopback,
// bucketed gradient all-reduce launched during backward), by 2 ranks with ZeRO-1 (each keeps half
// the AdamW state) and with ZeRO-2 (each gradient reduced to its owner only). Prints a table;
// passes or fails on nothing.
//
//   npx tsx bench/data_parallel.ts
//   RPO_BENCH_STEPS=N      timed steps (default 2, after 1 warmup step)
//   RPO_BENCH_PAIRS=N      global batch in pairs (default 4), RPO_BENCH_SEQ=N tokens per row (default 128)
//   RPO_BENCH_SHAPE=...    bench/common.ts shape (default llama-100m)
//   RPO_BENCH_CASES=0,3    which rows of the table to run (default all four)
//
// Columns: median step seconds and tokens/s over the timed steps (the slowest rank's step), peak
// RSS of each process, and "comm not hidden": the median fraction of the step the ranks waited on
// the all-reduce after backward finished. The loss of each step is printed for both cases: the
// same global batch gives the same loss. On a GPU machine, the NCCL version of this is
// `rpo launch --nproc-per-node N -- train ...` on a real run (not measured here).
import { spawn } from 'node:child_process';
import path from 'node:path';

import { freePort } from '../lib/parallel/launch.js';
import { CACHE, HERE, SHAPES, makeRows, median, modelConfig, writeJsonOnce } from './common.js';

const steps = Number(process.env.RPO_BENCH_STEPS ?? 2);
const pairs = Number(process.env.RPO_BENCH_PAIRS ?? 4);
const seqLen = Number(process.env.RPO_BENCH_SEQ ?? 128);
const shape = process.env.RPO_BENCH_SHAPE ?? 'llama-100m';
const vocab = modelConfig(shape).vocab_size;
const rowsFile = writeJsonOnce(path.join(CACHE, `dp-rows-${pairs}x${seqLen}-${vocab}.json`), () => makeRows(11, pairs, seqLen, vocab));

interface RankOut {
  rank: number;
  steps: { seconds: number; waitSeconds: number; tokens: number; loss: number }[];
  peakRssBytes: number;
}

function runProcess(env: NodeJS.ProcessEnv): Promise<RankOut> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'data_parallel_case.ts')], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as RankOut) : reject(new Error(`case exited with ${code}`))));
    child.stdin.end(JSON.stringify({ shape, rowsFile, steps }));
  });
}

async function runCase(ranks: number, threads: number, zero: 0 | 1 | 2): Promise<RankOut[]> {
  const t = { RPO_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), RPO_ZERO: String(zero) };
  if (ranks === 1) return [await runProcess({ ...t, WORLD_SIZE: '1' })];
  const port = await freePort();
  return Promise.all(
    Array.from({ length: ranks }, (_, r) =>
      runProcess({ ...t, RANK: String(r), WORLD_SIZE: String(ranks), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: String(ranks), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }),
    ),
  );
}

const gib = (b: number) => (b / 2 ** 30).toFixed(2);
console.log(`data parallel on the CPU: ${SHAPES[shape]!.label}, DPO, global batch ${pairs} pairs x ${seqLen} tokens, ${steps} timed steps`);
console.log('| case | step s (median) | tokens/s | peak RSS per process GiB | comm not hidden | losses |');
console.log('|---|---|---|---|---|---|');
const CASES = [[1, 2, 0], [2, 1, 0], [2, 1, 1], [2, 1, 2]] as const;
const only = process.env.RPO_BENCH_CASES?.split(',').map(Number);
for (const [ranks, threads, zero] of CASES.filter((_, i) => !only || only.includes(i))) {
  const out = await runCase(ranks, threads, zero);
  const stepSeconds = out[0]!.steps.map((_, i) => Math.max(...out.map((o) => o.steps[i]!.seconds)));
  const hidden = out[0]!.steps.map((_, i) => Math.max(...out.map((o) => o.steps[i]!.waitSeconds / o.steps[i]!.seconds)));
  const tokens = out[0]!.steps[0]!.tokens;
  const s = median(stepSeconds);
  console.log(
    `| ${ranks} rank(s) x ${threads} thread(s)${zero ? `, ZeRO-${zero}` : ''} | ${s.toFixed(2)} | ${(tokens / s).toFixed(0)} | ${out.map((o) => gib(o.peakRssBytes)).join(' / ')} | ${ranks > 1 ? `${(100 * median(hidden)).toFixed(1)} %` : '-'} | ${out[0]!.steps.map((x) => x.loss.toFixed(6)).join(', ')} |`,
  );
}
