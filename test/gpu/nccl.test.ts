// NCCL, once on a GPU (issue 25): one rank on c10d's ProcessGroupNCCL runs all-reduce,
// reduce-scatter, all-gather and broadcast on CUDA tensors of its GPU (ProcessGroup.collectives,
// native/binding/dist_wrap.cpp), in float32 and bfloat16, each against this file's own
// arithmetic. Rank r sends x·(r + 1); with world size W and S = W(W + 1)/2:
//   all-reduce     x·S
//   reduce-scatter rank r's block of Σ_r [x·(r+1)·1, ..., x·(r+1)·W] = x·(r + 1)·S
//   all-gather     [x·1, x·2, ..., x·W]
//   broadcast      rank 0's x·1
// The inputs (nccl_inputs.ts) make every sum exact in both dtypes: results must be equal, not
// close. One GPU means one rank: NCCL then copies, but every call goes through the communicator
// on the device (the device string says which). Each rank is its own process (nccl_worker.ts),
// as under `rpo launch`.
// The CPU dry run (RPO_GPU_DRY_RUN=cpu) runs the same checks on Gloo with two ranks, where each
// collective's result differs from its input.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { freePort } from '../../lib/parallel/launch.js';
import { distInfo } from '../../lib/parallel/native.js';
import { CUDA, DRY_RUN, REPO_ROOT, announce } from './gpu.js';
import { COLLECTIVE_INPUTS } from './nccl_inputs.js';

announce('nccl');

const here = path.dirname(fileURLToPath(import.meta.url));

function expected(x: readonly number[], rank: number, world: number) {
  const S = (world * (world + 1)) / 2;
  return {
    allReduce: x.map((v) => v * S),
    reduceScatter: x.map((v) => v * (rank + 1) * S),
    allGather: Array.from({ length: world }, (_, k) => x.map((v) => v * (k + 1))).flat(),
    broadcast: [...x],
  };
}

type RankOut = Record<string, { device: string; allReduce: number[]; reduceScatter: number[]; allGather: number[]; broadcast: number[] }>;

function runRank(rank: number, world: number, port: number, backend: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'nccl_worker.ts')], {
      cwd: REPO_ROOT,
      env: {
        ...process.env, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(world),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RPO_DIST_TIMEOUT_S: '60', RPO_NUM_THREADS: '1', RPO_TEST_BACKEND: backend,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!CUDA)('c10d collectives on the GPU backend', () => {
  // The GPU: NCCL, one rank on cuda:0. The dry run: Gloo, two ranks on the CPU.
  const backend = DRY_RUN ? 'gloo' : 'nccl';
  const world = DRY_RUN ? 2 : 1;

  it(`${backend}: the addon has it`, () => {
    const info = distInfo();
    expect(info.available, info.reason).toBe(true);
    if (!DRY_RUN) expect(info.nccl, 'the addon was built without NCCL (nccl.h and CUDA headers not found at build time)').toBe(true);
  });

  it(`${backend}, ${world} rank(s): all-reduce, reduce-scatter, all-gather, broadcast equal their sums (float32, bfloat16)`, async () => {
    const port = await freePort();
    const runs = await Promise.all(Array.from({ length: world }, (_, rank) => runRank(rank, world, port, backend)));
    runs.forEach((r, rank) => {
      expect(r.code, `rank ${rank}: ${r.stderr}`).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as RankOut;
      for (const [name, { values }] of Object.entries(COLLECTIVE_INPUTS)) {
        const got = out[name]!;
        expect(got.device, name).toBe(DRY_RUN ? 'cpu' : `cuda:${rank}`);
        const e = expected(values, rank, world);
        expect(got.allReduce, `rank ${rank} ${name} all-reduce`).toEqual(e.allReduce);
        expect(got.reduceScatter, `rank ${rank} ${name} reduce-scatter`).toEqual(e.reduceScatter);
        expect(got.allGather, `rank ${rank} ${name} all-gather`).toEqual(e.allGather);
        expect(got.broadcast, `rank ${rank} ${name} broadcast`).toEqual(e.broadcast);
      }
    });
    console.log(`[nccl] ${backend}, ${world} rank(s) on ${DRY_RUN ? 'the CPU' : 'cuda'}: all-reduce, reduce-scatter, all-gather, broadcast exact in ${Object.keys(COLLECTIVE_INPUTS).join(', ')}`);
  }, 180_000);
});
