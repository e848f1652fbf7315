// The decode kernels (native/model/skinny_gemm.h: fp32 CPU products of at most 16 rows, AVX-512)
// against transformers, and against the engine's other product path (RPO_CPU_SKINNY=0, read at
// each call). The model's sizes are chosen to reach every case of the kernels: hidden 40 and
// intermediate 88 (a length that is not a multiple of 16: the masked tail), 8-wide k/v projections
// (fewer columns than 16, and not a multiple of the 3 or 4 weight rows a kernel step takes), a
// vocabulary of 203, and 3, 8, 13 and 16 token rows (the kernels pad to 4, 8 or 16 rows); 17 rows
// take the other path. Generation (every decode step on the kernels) is checked against HF's
// greedy generate.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, cpuFewRowKernel, type RowBatch } from '../../lib/native.js';
import { saveModel } from '../../lib/model/io.js';
import { readFloat32, runReferenceJobs, type ReferenceJob } from '../reference/python.js';
import { tinyConfig } from './helpers.js';
import { batchJson, maxPositionError, paddedBatch } from './parity.js';

const config = tinyConfig({
  vocab_size: 203, hidden_size: 40, intermediate_size: 88, num_hidden_layers: 2,
  num_attention_heads: 5, num_key_value_heads: 1, head_dim: 8, initializer_range: 0.1,
});
const V = config.vocab_size;

// Token counts 3 (4-row kernel), 8 (8-row, one row padded), 13 and 16 (16-row), 17 (the other path).
const CASES: Record<string, number[]> = { '3 tokens': [3], '2 rows, 8 tokens': [4, 2], '13 tokens': [13], '4 rows, 16 tokens': [4, 4, 3, 4], '17 tokens': [17] };
const GEN_PROMPTS = [[5, 9, 13], [7], [11, 2, 3, 4, 8, 1, 2], [100, 200, 150, 3, 9], [17, 18]];
const GEN_TOKENS = 10;

const WORK = mkdtempSync(path.join(tmpdir(), 'rpo-few-row-'));
let model: Model;
const refLogits = new Map<string, Float32Array>();
let refTokens: number[][] = [];

function cpuHasAvx512(): boolean {
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    return ['avx512f', 'avx512dq', 'avx512vl', 'avx512bw'].every((f) => new RegExp(`\\b${f}\\b`).test(flags));
  } catch {
    return false;
  }
}

async function logitsWith(skinny: boolean, batch: RowBatch): Promise<Float32Array> {
  const before = process.env.RPO_CPU_SKINNY;
  process.env.RPO_CPU_SKINNY = skinny ? '1' : '0';
  try {
    return await model.logits(batch);
  } finally {
    if (before === undefined) delete process.env.RPO_CPU_SKINNY;
    else process.env.RPO_CPU_SKINNY = before;
  }
}

beforeAll(async () => {
  model = await Model.create(config, { seed: 61 });
  const dir = path.join(WORK, 'model');
  await saveModel(model, dir);
  // One Python process for every reference call (each start costs seconds).
  const jobs: ReferenceJob[] = [];
  for (const [name, lengths] of Object.entries(CASES)) {
    const batch = paddedBatch(name.length * 7 + lengths.length, V, lengths);
    const input = path.join(WORK, `${jobs.length}.in.json`);
    writeFileSync(input, batchJson(batch));
    jobs.push({ script: 'hf_logits.py', args: ['--model', dir, '--input', input, '--out', path.join(WORK, `${name}.bin`)] });
  }
  const genInput = path.join(WORK, 'gen.in.json');
  writeFileSync(genInput, JSON.stringify({ prompts: GEN_PROMPTS }));
  jobs.push({ script: 'hf_greedy.py', args: ['--model', dir, '--input', genInput, '--max-new-tokens', String(GEN_TOKENS)] });
  const out = runReferenceJobs(jobs);
  for (const name of Object.keys(CASES)) refLogits.set(name, readFloat32(path.join(WORK, `${name}.bin`)));
  refTokens = (out[out.length - 1] as { tokens: number[][] }).tokens;
}, 300_000);

afterAll(() => {
  model?.dispose();
  rmSync(WORK, { recursive: true, force: true });
});

describe('few-row products (decode kernels)', () => {
  it('run where the CPU has AVX-512 (F, DQ, VL, BW), and RPO_CPU_SKINNY=0 turns them off', () => {
    expect(cpuFewRowKernel()).toBe(cpuHasAvx512());
    process.env.RPO_CPU_SKINNY = '0';
    try {
      expect(cpuFewRowKernel()).toBe(false);
    } finally {
      delete process.env.RPO_CPU_SKINNY;
    }
  });

  for (const [name, lengths] of Object.entries(CASES)) {
    it(`${name}: logits match transformers, and the other product path`, async () => {
      const batch = paddedBatch(name.length * 7 + lengths.length, V, lengths);
      const fast = await logitsWith(true, batch);
      const other = await logitsWith(false, batch);
      const hf = maxPositionError(fast, refLogits.get(name)!, batch, V);
      const paths = maxPositionError(fast, other, batch, V);
      console.log(`[few-row] ${name}: vs transformers ${hf.toExponential(2)}, vs RPO_CPU_SKINNY=0 ${paths.toExponential(2)}`);
      // The model parity bound (test/native/model_parity.test.ts); a wrong tail, row or column is ≫ 1e-2.
      expect(hf).toBeLessThanOrEqual(1e-4);
      // The same fp32 sums in another order.
      expect(paths).toBeLessThanOrEqual(1e-5);
    });
  }

  it('greedy generation (left-padded batch, every step on the kernels) equals HF generate per prompt', async () => {
    const r = await model.generate(GEN_PROMPTS.map((p) => Int32Array.from(p)), { doSample: false, maxNewTokens: GEN_TOKENS, padTokenId: 0 });
    expect(r.tokens.map((t) => Array.from(t))).toEqual(refTokens);
  });
});
