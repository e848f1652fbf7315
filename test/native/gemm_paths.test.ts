// The engine's fp32 CPU products run on oneDNN (token counts padded to a bucket size with zero
// rows) or on ATen's MKL, chosen per process by RPO_CPU_GEMM. Both must compute the same RDPO
// losses, parameter gradients and logits; the padded oneDNN path is checked against ATen's
// unpadded one, each in its own process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { normRelError } from './helpers.js';
import { cpuHasOnednnFp32 } from './cpu_flags.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'rpo-gemm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome { backend: string; losses: number[]; grads: number[]; logits: number[] }

function run(backend: string): Outcome {
  const out = path.join(dir, `${backend}.json`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'gemm_child.ts'), out], {
    cwd: path.resolve(here, '..', '..'),
    env: { ...process.env, RPO_NUM_THREADS: '2', RPO_CPU_GEMM: backend },
    encoding: 'utf8',
    timeout: 240_000,
  });
  if (r.status !== 0) throw new Error(`gemm_child.ts (${backend}) exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return JSON.parse(readFileSync(out, 'utf8')) as Outcome;
}


describe('oneDNN products (padded token counts) equal ATen products', () => {
  it('RDPO losses, every parameter gradient and the logits agree', () => {
    const aten = run('aten');
    const onednn = run('onednn');
    expect(aten.backend).toBe('aten');
    if (cpuHasOnednnFp32()) expect(onednn.backend).toBe('onednn');
    for (let i = 0; i < aten.losses.length; i++) {
      // fp32 sums of a few hundred log-probs, summed in another order by another kernel.
      expect(Math.abs(onednn.losses[i]! - aten.losses[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(aten.losses[i]!)));
    }
    expect(aten.grads.some((g) => g !== 0)).toBe(true);
    expect(normRelError(onednn.grads, aten.grads)).toBeLessThan(1e-5);
    expect(normRelError(onednn.logits, aten.logits)).toBeLessThan(1e-5);
  }, 300_000);
});
