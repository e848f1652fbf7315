// Shared by the GPU benchmarks: model shapes (models.json), random batches, the bf16 peak, the
// JSON each benchmark writes, and where Python is.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseHfConfig } from '../../lib/model/config.js';
import type { ModelConfig, RowBatch } from '../../lib/native.js';
import { PEAK_ENV } from '../../lib/train/throughput.js';
import { mulberry32 } from '../../lib/util/random.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

/** The model shapes: name -> engine config (and the HF config.json fields it came from). */
export function modelShape(name: string): { config: ModelConfig; hf: Record<string, unknown> } {
  const all = JSON.parse(readFileSync(path.join(HERE, 'models.json'), 'utf8')) as Record<string, unknown>;
  const hf = all[name];
  if (!hf || typeof hf !== 'object' || name.startsWith('_')) {
    throw new Error(`no model "${name}" in bench/gpu/models.json (have: ${Object.keys(all).filter((k) => !k.startsWith('_')).join(', ')})`);
  }
  return { config: parseHfConfig(hf, `models.json:${name}`), hf: hf as Record<string, unknown> };
}

/** mulberry32: the same batches in every run. */
export const rng = mulberry32;

/** `rows` full rows of `seqLen` random tokens (ids 3..vocab-1); labels after the first `prompt`. */
export function fullRows(seed: number, rows: number, seqLen: number, vocab: number, prompt: number): RowBatch {
  const r = rng(seed);
  const n = rows * seqLen;
  const inputIds = new Int32Array(n);
  const attentionMask = new Uint8Array(n).fill(1);
  const lossMask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    inputIds[i] = 3 + Math.floor(r() * (vocab - 3));
    lossMask[i] = i % seqLen >= prompt ? 1 : 0;
  }
  return { rows, seqLen, inputIds, attentionMask, lossMask };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The Python with torch the comparisons run: RPO_GPU_PYTHON, else python3 (the GPU image's), else .venv. */
export function python(): string {
  if (process.env.RPO_GPU_PYTHON) return process.env.RPO_GPU_PYTHON;
  try {
    execFileSync('python3', ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 });
    return 'python3';
  } catch {
    const venv = path.join(REPO_ROOT, '.venv', 'bin', 'python');
    return existsSync(venv) ? venv : 'python3';
  }
}

/**
 * The bf16 matmul peak in TFLOP/s: --peak-tflops, RPO_BF16_PEAK_TFLOPS, else measured now with
 * bench/gpu/peak_matmul.py (an 8192^3 bf16 matmul through PyTorch, median of 20) on CUDA; null
 * on the CPU.
 */
export function bf16PeakTflops(given: string | undefined, cuda: boolean): { tflops: number | null; source: string } {
  const v = given ?? process.env[PEAK_ENV];
  if (v) return { tflops: Number(v), source: 'given' };
  if (!cuda) return { tflops: null, source: 'no GPU' };
  try {
    const out = execFileSync(python(), [path.join(HERE, 'peak_matmul.py')], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'inherit'] });
    const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { tflops?: number };
    return { tflops: r.tflops ?? null, source: 'peak_matmul.py' };
  } catch (err) {
    return { tflops: null, source: `peak_matmul.py failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

export function writeResult(file: string | undefined, result: Record<string, unknown>): void {
  const line = JSON.stringify(result);
  if (file) {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeFileSync(file, line + '\n');
  }
  console.log(line);
}

export const GiB = 2 ** 30;
