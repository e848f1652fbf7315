// ZeRO-3 on CUDA through NCCL (issue 25): a 1-rank job's sharded steps (parameters all-gathered
// per layer, gradients reduce-scattered as each layer's backward ends, AdamW on the flat shards,
// the live reference sharded too) end where the plain Trainer's steps do. One rank is all one GPU
// gives; test/e2e/zero3.test.ts proves 2 ranks against 1 process on Gloo. Some CUDA kernels
// (attention's backward) may add in a varying order, so two plain runs set the floor: ZeRO-3 must
// be as close to one of them as the other is (exactly, when they agree exactly).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { precisionDtype } from '../../lib/config/index.js';
import { loadModel, saveModel } from '../../lib/model/io.js';
import { Model, Trainer, type LossConfig, type TrainPrecision } from '../../lib/native.js';
import { freePort } from '../../lib/parallel/launch.js';
import { distInfo, ProcessGroup, ZeroShard } from '../../lib/parallel/native.js';
import { randomBatch, tinyConfig } from '../native/helpers.js';
import { modelWeights } from '../native/weights.js';
import { CUDA, DEVICE, DRY_RUN, announce } from './gpu.js';

announce('zero3');

const info = distInfo();
// The GPU suite runs where the addon was built with NCCL (.ci/run's CUDA phase); the CPU dry run
// takes Gloo instead.
const BACKEND = DRY_RUN ? 'gloo' : 'nccl';
if (CUDA && !DRY_RUN && !info.nccl) throw new Error('test/gpu/zero3: this addon has no NCCL backend (build with nccl.h and the CUDA headers)');

// Odd sizes (hidden 36, intermediate 75): each unit's flat shard is padded.
const config = tinyConfig({ hidden_size: 36, intermediate_size: 75, head_dim: 12, num_attention_heads: 3, num_key_value_heads: 1, initializer_range: 0.05 });
const LOSS: LossConfig = { name: 'dpo', beta: 0.5 };
const N_PAIRS = 2;
const batches = [0, 1, 2].map((k) => randomBatch(700 + k, { rows: N_PAIRS * 2, seqLen: 20, vocab: config.vocab_size, minLen: 10, promptLen: 4 }));
const STEPS = 4;

let dir: string;
let initDir: string;
let group: ProcessGroup | null = null;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-gpu-zero3-'));
  initDir = path.join(dir, 'init');
  const m = await Model.create(config, { seed: 17 });
  await saveModel(m, initDir);
  m.dispose();
  if (CUDA && info.available) {
    group = await ProcessGroup.connect({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), timeoutMs: 60_000, backend: BACKEND, deviceIndex: 0 });
  }
});
afterAll(() => {
  group?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** STEPS optimizer steps of one micro-step each; ZeRO-3 when `sharded`. The final weights. */
async function run(precision: TrainPrecision, checkpointing: boolean, sharded: boolean): Promise<Float64Array> {
  const dtype = precisionDtype(precision);
  const model = await loadModel(initDir, { dtype, device: DEVICE });
  const reference = await loadModel(initDir, { dtype, device: DEVICE });
  const trainer = new Trainer(model, reference, { loss: LOSS, precision, seed: 3, activationCheckpointing: checkpointing, chunkTokens: 32 });
  const zero = sharded ? new ZeroShard(trainer, group!, 3) : null;
  try {
    if (zero) expect(zero.plan.stage).toBe(3);
    for (let s = 0; s < STEPS; s++) {
      const r = await trainer.microStep(batches[s % batches.length]!, { nPairs: N_PAIRS });
      expect(r.finite, `step ${s}`).toBe(true);
      await trainer.optimizerStep({ lr: 1e-3, maxGradNorm: 10 });
    }
    // ZeRO-3: rank 0 holds the whole model again for the write, as for a checkpoint.
    await zero?.gatherState();
    return (await modelWeights(model)).values;
  } finally {
    zero?.dispose();
    trainer.dispose();
    model.dispose();
    reference.dispose();
  }
}

function maxDiff(a: Float64Array, b: Float64Array): number {
  expect(b.length).toBe(a.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.skipIf(!CUDA || !info.available)(`ZeRO-3 on one ${DRY_RUN ? 'CPU (dry run, Gloo)' : 'GPU (NCCL)'} rank = the plain Trainer`, () => {
  for (const precision of ['fp32', 'bf16-mixed'] as const) {
    for (const checkpointing of [true, false]) {
      it(`${precision}, activation checkpointing ${checkpointing ? 'on' : 'off'}`, async () => {
        const plain = await run(precision, checkpointing, false);
        const again = await run(precision, checkpointing, false);
        const zero3 = await run(precision, checkpointing, true);
        const initial = await loadModel(initDir, { dtype: precisionDtype(precision), device: 'cpu' });
        const start = (await modelWeights(initial)).values;
        initial.dispose();
        // It trained: the weights moved.
        expect(maxDiff(start, zero3)).toBeGreaterThan(1e-4);
        // One rank: its shard is the whole unit, the reduce-scatter a copy, AdamW per parameter
        // piece the plain step's arithmetic: as close to the plain run as two plain runs are.
        expect(maxDiff(plain, zero3)).toBeLessThanOrEqual(maxDiff(plain, again));
      });
    }
  }
});
