// What `rpo info` reports: versions, devices, and where things live.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { hubCacheDir } from './hub/index.js';
import { addonPath, cpuFewRowKernel, cpuGemmBackend, cudaAvailable, cudaDeviceCount, cudaInfo, getNumThreads, libtorchVersion, type CudaInfo } from './native.js';
import { distInfo } from './parallel/native.js';

export interface Info {
  rpo: string;
  node: string;
  addon: string;
  libtorch: string;
  libtorchRoot: string | null;
  cuda: boolean;
  cudaDevices: number;
  /** The addon's CUDA report; device names filled from nvidia-smi where it lacks them. */
  cudaDetail: CudaInfo;
  /** The NVIDIA driver's release (nvidia-smi), "" when unknown. */
  nvidiaDriver: string;
  threads: number;
  /** fp32 CPU matrix products: oneDNN where the CPU runs it (AVX-512), else ATen's (MKL); RPO_CPU_GEMM forces one. */
  cpuGemm: 'onednn' | 'aten';
  /** Decode-step products (at most 16 rows) on the AVX-512 few-row kernels (RPO_CPU_SKINNY=0: off). */
  cpuFewRow: boolean;
  /** Data parallelism (rpo launch): the c10d backends built, or why none. */
  parallel: string;
  /** Hugging Face downloads (shared with Python's huggingface_hub). */
  hubCache: string;
}

function readJson(file: string): Record<string, unknown> | null {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : null;
}

/** GPU names and the driver from nvidia-smi, for an addon built without the CUDA runtime's headers. */
function nvidiaSmi(): { names: string[]; memories: number[]; driver: string } | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000,
    });
    const rows = out.trim().split('\n').filter(Boolean).map((l) => l.split(',').map((x) => x.trim()));
    return { names: rows.map((r) => r[0] ?? ''), memories: rows.map((r) => Number(r[1] ?? 0) * 2 ** 20), driver: rows[0]?.[2] ?? '' };
  } catch {
    return null;
  }
}

function cudaDetail(): { info: CudaInfo; driver: string } {
  const info = cudaInfo();
  const smi = info.available ? nvidiaSmi() : null;
  if (smi) {
    info.devices = info.devices.map((d) => ({
      ...d,
      name: d.name || smi.names[d.index] || '',
      totalMemory: d.totalMemory || smi.memories[d.index] || 0,
    }));
  }
  return { info, driver: smi?.driver ?? '' };
}

export function collectInfo(): Info {
  const root = path.resolve(path.dirname(addonPath), '..', '..');
  const pkg = readJson(path.join(root, 'package.json'));
  const built = readJson(path.join(root, 'build', 'libtorch.json'));
  const cuda = cudaDetail();
  return {
    rpo: String(pkg?.version ?? 'unknown'),
    node: process.version,
    addon: addonPath,
    libtorch: libtorchVersion(),
    libtorchRoot: typeof built?.root === 'string' ? built.root : null,
    cuda: cudaAvailable(),
    cudaDevices: cudaDeviceCount(),
    cudaDetail: cuda.info,
    nvidiaDriver: cuda.driver,
    threads: getNumThreads(),
    cpuGemm: cpuGemmBackend(),
    cpuFewRow: cpuFewRowKernel(),
    parallel: parallelLine(),
    hubCache: hubCacheDir(),
  };
}

function parallelLine(): string {
  const d = distInfo();
  // The addon's reason names the system package; without root, the build fetches it itself.
  return d.available
    ? `rpo launch: c10d Gloo${d.nccl ? ' + NCCL' : ''}`
    : `not built (${d.reason}; without root on Debian/Ubuntu, \`npm run build:native\` alone fetches them into .cache/gloo)`;
}

function formatCuda(c: CudaInfo, driver: string): string[] {
  if (!c.built) return [];
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(0)} GiB`;
  const drv = driver || c.driverVersion ? `${driver || '?'}${c.driverVersion ? ` (CUDA ${c.driverVersion})` : ''}` : c.available ? '?' : 'none';
  const lines = [
    `CUDA runtime ${c.runtimeVersion || '?'}, driver ${drv}, ` +
      `kernels ${c.kernels ? 'built' : 'not built (no nvcc at build time)'}, decode graphs ${c.graphs ? 'built' : 'not built (no CUDA headers at build time)'}${c.available ? `, TF32 ${c.tf32 ? 'on' : 'off'}` : ''}`,
  ];
  for (const d of c.devices) {
    const cap = d.capability !== '0.0' ? `, sm ${d.capability}` : '';
    const sms = d.multiprocessors ? `, ${d.multiprocessors} SMs` : '';
    lines.push(`  cuda:${d.index}  ${d.name || 'unknown device'}${d.totalMemory ? `, ${gib(d.totalMemory)}` : ''}${cap}${sms}`);
  }
  return lines;
}

export function formatInfo(info: Info): string {
  return [
    `rpo        ${info.rpo}`,
    `node       ${info.node}`,
    `LibTorch   ${info.libtorch}${info.libtorchRoot ? ` (${info.libtorchRoot})` : ''}`,
    `addon      ${info.addon}`,
    `CUDA       ${info.cuda ? `yes, ${info.cudaDevices} device(s)` : 'no'}`,
    ...formatCuda(info.cudaDetail, info.nvidiaDriver).map((l) => `           ${l}`),
    `threads    ${info.threads}`,
    `cpu gemm   ${info.cpuGemm} (RPO_CPU_GEMM=auto|onednn|aten); few-row products ${info.cpuFewRow ? 'avx512' : 'as above'} (RPO_CPU_SKINNY=0: off)`,
    `parallel   ${info.parallel}`,
    `hub cache  ${info.hubCache}`,
  ].join('\n');
}
