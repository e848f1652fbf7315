// What `rpo info` reports: versions, devices, and where things live.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { hubCacheDir } from './hub/index.js';
import { addonPath, cudaAvailable, cudaDeviceCount, getNumThreads, libtorchVersion } from './native.js';

export interface Info {
  rpo: string;
  node: string;
  addon: string;
  libtorch: string;
  libtorchRoot: string | null;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
  /** Hugging Face downloads (shared with Python's huggingface_hub). */
  hubCache: string;
}

function readJson(file: string): Record<string, unknown> | null {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : null;
}

export function collectInfo(): Info {
  const root = path.resolve(path.dirname(addonPath), '..', '..');
  const pkg = readJson(path.join(root, 'package.json'));
  const built = readJson(path.join(root, 'build', 'libtorch.json'));
  return {
    rpo: String(pkg?.version ?? 'unknown'),
    node: process.version,
    addon: addonPath,
    libtorch: libtorchVersion(),
    libtorchRoot: typeof built?.root === 'string' ? built.root : null,
    cuda: cudaAvailable(),
    cudaDevices: cudaDeviceCount(),
    threads: getNumThreads(),
    hubCache: hubCacheDir(),
  };
}

export function formatInfo(info: Info): string {
  return [
    `rpo        ${info.rpo}`,
    `node       ${info.node}`,
    `LibTorch   ${info.libtorch}${info.libtorchRoot ? ` (${info.libtorchRoot})` : ''}`,
    `addon      ${info.addon}`,
    `CUDA       ${info.cuda ? `yes, ${info.cudaDevices} device(s)` : 'no'}`,
    `threads    ${info.threads}`,
    `hub cache  ${info.hubCache}`,
  ].join('\n');
}
