// GPU suite: packed (padding-free) micro-batches on CUDA, where attention runs the varlen kernels
// (flash for bf16, memory-efficient for fp32; native/model/packed.cpp), against the padded path
// (SDPA over [rows, T] with its masks) and against the per-row path the CPU uses
// (RPO_PACKED_ATTENTION=rows): the loss (forward) and every parameter's gradient (backward,
// the kernels' own through autograd), bf16 and fp32 (TF32 off), Llama with grouped-query
// attention with and without a sliding window, and GPTNeoX. (fp32 with a window that cuts into
// the rows takes the per-row path on CUDA too: the memory-efficient kernel's window is not
// transformers' one; that case is held to the padded path only.)
//
// Bounds: fp32, a few roundings (norm-wise 1e-5 on gradients, 1e-5 on the loss). bf16: the
// kernels accumulate in fp32 but round their inputs and outputs to bf16 in other places than
// SDPA's math, so 2e-2 norm-wise on gradients and 1e-2 on the loss (a boundary crossed or a
// position not restarting moves them by far more: the CPU test, test/native/packed.test.ts,
// holds the exact bounds).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, allowTF32, setAllowTF32, type Dtype, type LossConfig, type ModelConfig, type RowBatch, type StepResult } from '../../lib/native.js';
import { normRelError, randomBatch, tinyConfig } from '../native/helpers.js';
import { CUDA, DEVICE, announce } from './gpu.js';

announce('packed');

afterEach(() => {
  delete process.env.RPO_PACKED_ATTENTION;
});

const N = 4;
// head_dim 16: the flash kernel takes multiples of 8.
const LLAMA = tinyConfig({ initializer_range: 0.1, head_dim: 16, num_attention_heads: 4, num_key_value_heads: 2 });
const MISTRAL = { ...LLAMA, architecture: 'MistralForCausalLM', sliding_window: 7 } as ModelConfig;
const NEOX = tinyConfig({ initializer_range: 0.1, head_dim: 16, architecture: 'GPTNeoXForCausalLM', num_key_value_heads: 4, rotary_pct: 0.5, layer_norm_eps: 1e-5, use_parallel_residual: true });

async function side(config: ModelConfig, dtype: Dtype, loss: LossConfig, batch: RowBatch, paddingFree: boolean): Promise<{ step: StepResult; grads: Float64Array }> {
  const policy = await Model.create(config, { seed: 21, dtype, device: DEVICE });
  const reference = await Model.create(config, { seed: 22, dtype, device: DEVICE });
  const trainer = new Trainer(policy, reference, { loss, seed: 3, paddingFree });
  try {
    const step = await trainer.microStep(batch, { nPairs: N });
    return { step, grads: await trainer.gradSnapshot(policy.params().map((p) => p.name)) };
  } finally {
    trainer.dispose();
    policy.dispose();
    reference.dispose();
  }
}

describe.skipIf(!CUDA)('packed micro-batches on CUDA: varlen kernels against padded SDPA and per-row SDPA', () => {
  let tf32 = false;
  beforeAll(() => {
    tf32 = allowTF32();
    setAllowTF32(false);
  });
  afterAll(() => setAllowTF32(tf32));

  const loss: LossConfig = { name: 'rdpo', beta: 0.3, gamma: 0.2 };
  const batch = randomBatch(17, { rows: 3 * N, seqLen: 40, vocab: LLAMA.vocab_size, minLen: 4 });
  const cases: Array<[string, ModelConfig]> = [
    ['Llama (GQA)', LLAMA],
    ['Mistral (GQA, sliding window)', MISTRAL],
    ['GPTNeoX', NEOX],
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const bound = dtype === 'float32' ? { loss: 1e-5, grads: 1e-5 } : { loss: 1e-2, grads: 2e-2 };
    for (const [label, config] of cases) {
      it(`${label}, ${dtype}: loss and every gradient equal the padded path's and the per-row path's`, async () => {
        const padded = await side(config, dtype, loss, batch, false);
        const varlen = await side(config, dtype, loss, batch, true);
        process.env.RPO_PACKED_ATTENTION = 'rows';
        const rows = await side(config, dtype, loss, batch, true);
        for (const [name, other] of [['padded', padded], ['per-row', rows]] as const) {
          expect(Math.abs(varlen.step.loss - other.step.loss), `loss vs ${name}`).toBeLessThan(bound.loss * Math.max(1, Math.abs(other.step.loss)));
          const rel = normRelError(varlen.grads, other.grads);
          console.log(`[packed gpu] ${label} ${dtype}: gradients vs ${name}: norm-wise ${rel.toExponential(2)}`);
          expect(rel, `gradients vs ${name}`).toBeLessThan(bound.grads);
        }
        expect(varlen.grads.some((g) => g !== 0)).toBe(true);
      });
    }
  }
});
