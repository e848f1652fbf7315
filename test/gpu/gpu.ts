// Shared by the GPU suite: whether CUDA is here, the loud skip line, the kernel switch, and the
// Python (torch with CUDA + transformers) the transformers parity runs against.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { cudaAvailable, cudaInfo, type CudaInfo } from '../../lib/native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const REFERENCE_DIR = path.join(REPO_ROOT, 'test', 'reference');

function probe(): { cuda: boolean; info: CudaInfo | null } {
  try {
    const cuda = cudaAvailable();
    return { cuda, info: cuda ? cudaInfo() : null };
  } catch (err) {
    console.warn(`test/gpu: the addon did not load (${(err as Error).message})`);
    return { cuda: false, info: null };
  }
}

const probed = probe();
/**
 * RPO_GPU_DRY_RUN=cpu runs the suite's logic on the CPU instead (to develop the tests on a
 * machine without a GPU: the kernel switch is then a no-op and nothing about CUDA is proven).
 */
export const DRY_RUN: boolean = process.env.RPO_GPU_DRY_RUN === 'cpu';
/** The device the suite runs on. */
export const DEVICE: string = DRY_RUN ? 'cpu' : 'cuda';
/** Run the suite: a CUDA device is usable through the addon (or a dry run was asked for). */
export const CUDA: boolean = probed.cuda || DRY_RUN;
/** The addon's CUDA report (null without CUDA). */
export const CUDA_INFO: CudaInfo | null = probed.info;
/** The fused log-prob head's CUDA kernels were compiled in. */
export const KERNELS: boolean = !!CUDA_INFO?.kernels || DRY_RUN;
/** Generation's decode step can replay CUDA graphs (the addon was built with CUDA's runtime headers). */
export const GRAPHS: boolean = !!CUDA_INFO?.graphs || DRY_RUN;

/** Prints the visible skip line for a file of this suite when there is no CUDA. */
export function announce(file: string): void {
  if (!CUDA) {
    console.warn(`test/gpu/${file}: skipped: no CUDA (this LibTorch or this machine has no GPU)`);
  } else if (DRY_RUN) {
    console.warn(`test/gpu/${file}: DRY RUN on the CPU (RPO_GPU_DRY_RUN=cpu): checks the tests' logic, not CUDA`);
  } else {
    const d = CUDA_INFO?.devices[0];
    console.log(`test/gpu/${file}: on ${d?.name || 'cuda:0'} (CUDA ${CUDA_INFO?.runtimeVersion}, kernels ${KERNELS ? 'built' : 'not built'})`);
  }
}

/** Runs `f` with the fused CUDA kernel on (default) or off (the chunked LibTorch path). */
export async function withKernel<T>(on: boolean, f: () => Promise<T>): Promise<T> {
  const prev = process.env.RPO_CUDA_LOGPROB_KERNEL;
  process.env.RPO_CUDA_LOGPROB_KERNEL = on ? '1' : '0';
  try {
    return await f();
  } finally {
    if (prev === undefined) delete process.env.RPO_CUDA_LOGPROB_KERNEL;
    else process.env.RPO_CUDA_LOGPROB_KERNEL = prev;
  }
}

/** Runs f with generation's CUDA graphs on (the default) or off (RPO_CUDA_GRAPHS=0: the eager decode step). */
export async function withGraphs<T>(on: boolean, f: () => Promise<T>): Promise<T> {
  const prev = process.env.RPO_CUDA_GRAPHS;
  if (on) delete process.env.RPO_CUDA_GRAPHS;
  else process.env.RPO_CUDA_GRAPHS = '0';
  try {
    return await f();
  } finally {
    if (prev === undefined) delete process.env.RPO_CUDA_GRAPHS;
    else process.env.RPO_CUDA_GRAPHS = prev;
  }
}

const PY_ENV = {
  PYTHONUNBUFFERED: '1',
  PYTHONDONTWRITEBYTECODE: '1',
  HF_HUB_OFFLINE: '1',
  HF_HUB_DISABLE_TELEMETRY: '1',
  TOKENIZERS_PARALLELISM: 'false',
};

let checkedPython: string | undefined;

/**
 * The Python the GPU parity runs transformers with: RPO_GPU_PYTHON, RPO_REFERENCE_PYTHON, the
 * project's .venv, else python3. It must import torch (with CUDA usable), transformers and
 * safetensors; otherwise this throws, naming what is missing (a missing reference is a
 * failure where CUDA is, never a skip).
 */
export function gpuPython(): string {
  if (checkedPython) return checkedPython;
  const venv = path.join(REPO_ROOT, '.venv', 'bin', 'python');
  const python = process.env.RPO_GPU_PYTHON || process.env.RPO_REFERENCE_PYTHON || (existsSync(venv) ? venv : 'python3');
  let out: string;
  try {
    out = execFileSync(
      python,
      ['-c', 'import json, torch, transformers, safetensors; print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.cuda.is_available()}))'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, env: { ...process.env, ...PY_ENV } },
    );
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(`The GPU reference Python ${python} cannot import torch, transformers and safetensors ` +
      `(${(e.stderr ?? e.message ?? '').trim().split('\n').slice(-3).join(' ')}); set RPO_GPU_PYTHON to one that can.`);
  }
  const v = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { torch: string; transformers: string; cuda: boolean };
  if (!v.cuda && !DRY_RUN) throw new Error(`The GPU reference Python ${python} (torch ${v.torch}) sees no CUDA device; set RPO_GPU_PYTHON to a CUDA torch.`);
  console.log(`test/gpu: transformers ${v.transformers}, torch ${v.torch} from ${python}`);
  checkedPython = python;
  return python;
}

/** Runs a Python file with gpuPython(), `stdin` on its standard input; returns its stdout. */
export function runGpuPython(file: string, args: readonly string[], stdin = ''): string {
  const python = gpuPython();
  try {
    return execFileSync(python, [file, ...args], {
      encoding: 'utf8',
      input: stdin,
      timeout: 600_000,
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...PY_ENV },
    });
  } catch (err) {
    const e = err as { stderr?: string; status?: number };
    throw new Error(`GPU reference ${path.basename(file)} failed (exit ${e.status}): ${(e.stderr ?? '').trim().split('\n').slice(-30).join('\n')}`);
  }
}
