// How the CPU benchmark drivers (bench/train_step.ts, bench/packing.ts) run a case: each in a
// child process of its own (its peak RSS is its own), rpo's through a TypeScript case script,
// PyTorch's through bench/pytorch_case.py, with the same thread settings; and the HF model
// directories both sides load (random init, written once by a child: the drivers never load
// LibTorch themselves).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';

import { CACHE, HERE, modelConfig, python, removeQuietly } from './common.js';

export const steps = Number(process.env.RPO_BENCH_STEPS ?? 2);
export const threads = Number(process.env.RPO_BENCH_THREADS ?? 2);
/** The seed of every model directory's random init. */
export const SEED = 1;

export const env = {
  ...process.env,
  RPO_NUM_THREADS: String(threads),
  OMP_NUM_THREADS: String(threads),
  MKL_NUM_THREADS: String(threads),
  TOKENIZERS_PARALLELISM: 'false',
  HF_HUB_DISABLE_PROGRESS_BARS: '1',
};

export const mib = (b: number | null | undefined) => (b == null ? 'n/a' : `${(b / 2 ** 20).toFixed(0)} MiB`);
export const log = (s: string) => process.stderr.write(`${s}\n`);
export const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? (a / b).toFixed(2) : 'n/a');

/** Runs a TypeScript case script (default bench/train_step_case.ts) with the case as JSON; its last stdout line is the result. */
export function runNode(c: unknown, script = path.join(HERE, 'train_step_case.ts')): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, JSON.stringify(c)], {
    encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

export function runPython(c: unknown): Record<string, unknown> {
  const out = execFileSync(python(), [path.join(HERE, 'pytorch_case.py'), JSON.stringify(c)], {
    encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** Runs a case, logging its time; a failure is logged and returned as { error } (the table shows it as FAILED). */
export function attempt(what: string, run: () => Record<string, unknown>): Record<string, unknown> {
  const t0 = performance.now();
  try {
    const r = run();
    log(`  ${what}: ${typeof r.error === 'string' ? `FAILED: ${r.error}` : `${((performance.now() - t0) / 1e3).toFixed(0)} s`}`);
    return r;
  } catch (err) {
    const message = (err as Error).message.split('\n').slice(0, 3).join(' ');
    log(`  ${what}: FAILED: ${message}`);
    return { error: message };
  }
}

/** The HF model dir of a shape (written once, by a child process). */
export function modelDir(shape: string): string {
  const dir = path.join(CACHE, `${shape}-seed${SEED}`);
  if (existsSync(path.join(dir, 'config.json')) && existsSync(path.join(dir, 'model.safetensors'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  removeQuietly(tmp);
  mkdirSync(CACHE, { recursive: true });
  attempt(`write ${shape} (random init, seed ${SEED}) to ${dir}`, () => runNode({ kind: 'init', config: modelConfig(shape), seed: SEED, dir: tmp, threads }));
  removeQuietly(dir);
  renameSync(tmp, dir);
  return dir;
}
