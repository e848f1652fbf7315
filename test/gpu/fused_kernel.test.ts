// The fused log-prob head's CUDA kernels (native/kernels/fused_logprob.cu) against the chunked
// LibTorch path they replace (RPO_CUDA_LOGPROB_KERNEL=0) and the naive full-logits head, on the
// GPU, in float32, bfloat16 and float16: per-row log-probs and every parameter's gradient.
//
// The kernel and the chunked path see the very same logits (one cuBLAS matmul per chunk, the
// same chunks), so they differ only in how the fp32 log-sum-exp is summed: ≪ 1e-5 on the
// values in every dtype. Gradients are rounded to the parameters' dtype in both, so bf16/fp16
// allow a rare flipped last bit. The naive head computes logits with one big matmul, so in
// bf16 it differs by bf16 rounding (~1e-2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, allowTF32, setAllowTF32, type Dtype, type ModelConfig } from '../../lib/native.js';
import { maxRelError, normRelError, randomBatch, tinyConfig } from '../native/helpers.js';
import { CUDA, DEVICE, KERNELS, announce, withKernel } from './gpu.js';

announce('fused_kernel');
if (CUDA && !KERNELS) {
  console.warn('test/gpu/fused_kernel: skipped: the addon was built without the CUDA kernels (no nvcc at build time: see `npm run build:native` output)');
}

interface Case {
  name: string;
  config: ModelConfig;
  rows: number;
  seqLen: number;
  chunkTokens: number;
}

const CASES: Case[] = [
  // vocab 97: rows are not 16-byte aligned, so the scalar path of the kernels runs.
  { name: 'vocab 97 (scalar loads)', config: tinyConfig({ initializer_range: 0.1 }), rows: 4, seqLen: 16, chunkTokens: 7 },
  // vocab 256: 16-byte loads, one chunk.
  { name: 'vocab 256 (vector loads)', config: tinyConfig({ vocab_size: 256, initializer_range: 0.1 }), rows: 3, seqLen: 20, chunkTokens: 1024 },
  // vocab 32000: every thread of the block streams many packs; several chunks of 512 labels.
  {
    name: 'vocab 32000, 1000+ labels',
    config: tinyConfig({ vocab_size: 32000, hidden_size: 64, intermediate_size: 128, head_dim: 16, initializer_range: 0.05 }),
    rows: 4,
    seqLen: 300,
    chunkTokens: 512,
  },
  // vocab 32003: rows not aligned, the long scalar tail of a big vocabulary.
  {
    name: 'vocab 32003 (unaligned rows)',
    config: tinyConfig({ vocab_size: 32003, hidden_size: 64, intermediate_size: 128, head_dim: 16, initializer_range: 0.05 }),
    rows: 2,
    seqLen: 64,
    chunkTokens: 100,
  },
];

const DTYPES: { dtype: Dtype; values: number; grads: number; naive: number }[] = [
  { dtype: 'float32', values: 1e-5, grads: 1e-5, naive: 1e-5 },
  { dtype: 'bfloat16', values: 1e-5, grads: 5e-3, naive: 3e-2 },
  { dtype: 'float16', values: 1e-5, grads: 2e-3, naive: 5e-3 },
];

describe.skipIf(!CUDA || !KERNELS)('fused CUDA log-prob kernel vs the chunked LibTorch path', () => {
  let tf32 = false;
  beforeAll(() => {
    tf32 = allowTF32();
    setAllowTF32(false); // fp32: the naive head's one big matmul and the chunks' must not differ by TF32
  });
  afterAll(() => setAllowTF32(tf32));

  for (const c of CASES) {
    for (const d of DTYPES) {
      it(`${c.name}, ${d.dtype}: per-row log-probs`, async () => {
        const model = await Model.create(c.config, { seed: 7, device: DEVICE, dtype: d.dtype });
        try {
          const batch = randomBatch(11, { rows: c.rows, seqLen: c.seqLen, vocab: c.config.vocab_size, minLen: Math.floor(c.seqLen / 2) });
          const opts = { chunkTokens: c.chunkTokens };
          const kernel = await withKernel(true, () => model.logprobs(batch, opts));
          const chunked = await withKernel(false, () => model.logprobs(batch, opts));
          const naive = await model.logprobs(batch, { naive: true });
          expect(kernel.sum.every((v) => Number.isFinite(v))).toBe(true);
          const eChunk = maxRelError(kernel.sum, chunked.sum);
          const eNaive = normRelError(kernel.sum, naive.sum);
          console.log(`[kernel] ${c.name} ${d.dtype}: vs chunked ${eChunk.toExponential(2)}, vs naive ${eNaive.toExponential(2)}`);
          expect(eChunk).toBeLessThan(d.values);
          expect(maxRelError(kernel.mean, chunked.mean)).toBeLessThan(d.values);
          expect(eNaive).toBeLessThan(d.naive);
          expect(Array.from(kernel.count)).toEqual(Array.from(chunked.count));
        } finally {
          model.dispose();
        }
      });

      it(`${c.name}, ${d.dtype}: gradients of every parameter (SFT and DPO)`, async () => {
        const nPairs = Math.max(1, Math.floor(c.rows / 2));
        for (const [loss, groups] of [[{ name: 'sft' }, 1], [{ name: 'dpo', beta: 0.5 }, 2]] as const) {
          const batch = randomBatch(12 + groups, { rows: nPairs * groups, seqLen: c.seqLen, vocab: c.config.vocab_size, minLen: Math.floor(c.seqLen / 2) });
          const run = (on: boolean) =>
            withKernel(on, async () => {
              const policy = await Model.create(c.config, { seed: 8, device: DEVICE, dtype: d.dtype });
              const reference = groups === 2 ? await Model.create(c.config, { seed: 9, device: DEVICE, dtype: d.dtype }) : null;
              const trainer = new Trainer(policy, reference, { loss, chunkTokens: c.chunkTokens });
              try {
                // Σ over rows of |policy sum| + |reference sum|: what the loss bound below scales with.
                const abs = (xs: ArrayLike<number>) => Array.from(xs).reduce((t, x) => t + Math.abs(x), 0);
                const sums = abs((await policy.logprobs(batch, { chunkTokens: c.chunkTokens })).sum) +
                  (reference ? abs((await reference.logprobs(batch, { chunkTokens: c.chunkTokens })).sum) : 0);
                const step = await trainer.microStep(batch, { nPairs });
                return { step, sums, grads: await trainer.gradSnapshot(policy.params().map((p) => p.name)) };
              } finally {
                trainer.dispose();
                policy.dispose();
                reference?.dispose();
              }
            });
          const k = await run(true);
          const r = await run(false);
          expect(k.step.finite).toBe(true);
          // The loss from sums the two paths compute within d.values relative each (the per-row
          // test above): SFT's is a mean of log-probs; DPO's, -logsigmoid(beta (Δpolicy - Δref))
          // averaged over pairs, moves by at most beta x the sums' errors (|d logsigmoid| <= 1), and
          // with 1000+ labels a row those sums are ~1e4 (a relative 1e-5 of the loss is too tight).
          const bound = loss.name === 'dpo' ? (d.values * loss.beta * r.sums) / nPairs : d.values * Math.max(1, Math.abs(r.step.loss));
          expect(Math.abs(k.step.loss - r.step.loss)).toBeLessThanOrEqual(bound);
          expect(r.grads.some((x) => x !== 0)).toBe(true);
          expect(k.grads.every((x) => Number.isFinite(x))).toBe(true);
          const e = normRelError(k.grads, r.grads);
          console.log(`[kernel] ${c.name} ${d.dtype} ${loss.name}: gradient norm-wise rel error ${e.toExponential(2)}`);
          // DPO scales each pair's gradient by sigmoid(-z), z = beta (Δpolicy - Δref): where it
          // saturates, its relative change is ~|δz|, the same bound as the loss's above (7.6e-4 in
          // fp32 at vocab 32000 on an H200, with z ~ 1e2); SFT's gradients test the kernel tightly.
          expect(e).toBeLessThan(loss.name === 'dpo' ? d.grads + bound : d.grads);
        }
      });
    }
  }
});
