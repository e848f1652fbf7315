// RMSNorm and the MLP's silu(gate) * up -> down run as custom autograd functions that save less
// for backward (x and 1/rms; gate and up) and recompute the rest. RPO_PLAIN_AUTOGRAD=1 (read at
// each call) runs the plain ATen ops under autograd instead: the two must give the same loss and
// the same gradient for every parameter, in float32 and in bfloat16.
import { afterEach, describe, expect, it } from 'vitest';

import { Model, Trainer, type Dtype, type ModelConfig, type RowBatch } from '../../lib/native.js';
import { normRelError, randomBatch, tinyConfig } from './helpers.js';

afterEach(() => {
  delete process.env.RPO_PLAIN_AUTOGRAD;
});

async function run(config: ModelConfig, dtype: Dtype, batch: RowBatch, plain: boolean) {
  if (plain) process.env.RPO_PLAIN_AUTOGRAD = '1';
  else delete process.env.RPO_PLAIN_AUTOGRAD;
  const policy = await Model.create(config, { seed: 61, dtype });
  const reference = await Model.create(config, { seed: 62, dtype });
  const names = policy.params().map((p) => p.name);
  const trainer = new Trainer(policy, reference, { loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 } });
  const step = await trainer.microStep(batch, { nPairs: 2 });
  const grads = await trainer.gradSnapshot(names);
  trainer.dispose();
  policy.dispose();
  reference.dispose();
  return { step, grads };
}

describe('lean RMSNorm and SwiGLU autograd functions equal autograd on the plain ops', () => {
  const cases: Array<[string, ModelConfig, Dtype, number]> = [
    ['llama float32', tinyConfig({ num_hidden_layers: 2 }), 'float32', 1e-5],
    ['qwen2 float32 (attention biases)', tinyConfig({ architecture: 'Qwen2ForCausalLM', qkv_bias: true }), 'float32', 1e-5],
    ['llama bfloat16', tinyConfig({ num_hidden_layers: 2 }), 'bfloat16', 2e-2],
  ];
  it.each(cases)('%s: loss and every parameter gradient', async (_, config, dtype, tol) => {
    const batch = randomBatch(63, { rows: 6, seqLen: 12, vocab: config.vocab_size, minLen: 5 });
    const lean = await run(config, dtype, batch, false);
    const plain = await run(config, dtype, batch, true);
    expect(Math.abs(lean.step.loss - plain.step.loss)).toBeLessThan(dtype === 'float32' ? 1e-6 : 1e-2);
    expect(lean.grads.some((g) => g !== 0)).toBe(true);
    expect(normRelError(lean.grads, plain.grads)).toBeLessThan(tol);
  });
});
