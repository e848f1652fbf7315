// Attention's two paths: batches with no left padding (training batches are right-padded) run
// SDPA causal with grouped K/V and no mask; others (left padding, a sliding window shorter than
// the sequence) build the [rows, 1, T, T] mask and repeat K/V. RPO_SDPA_MASK=1 sends every call
// down the masked path (read at each call), so one process compares the two on the same
// right-padded batch: values and gradients. HF parity of both paths: model_parity.test.ts.
import { afterEach, describe, expect, it } from 'vitest';

import { Model, Trainer, type LossConfig, type ModelConfig, type RowBatch } from '../../lib/native.js';
import { maxRelError, normRelError, randomBatch, tinyConfig } from './helpers.js';

function withMask<T>(masked: boolean, run: () => Promise<T>): Promise<T> {
  if (masked) process.env.RPO_SDPA_MASK = '1';
  else delete process.env.RPO_SDPA_MASK;
  return run();
}

afterEach(() => {
  delete process.env.RPO_SDPA_MASK;
});

/** Logits at the real positions only (padded positions differ by design: they see padding). */
function realLogits(logits: Float32Array, batch: RowBatch, vocab: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < batch.rows * batch.seqLen; i++) {
    if (batch.attentionMask[i]) for (let v = 0; v < vocab; v++) out.push(logits[i * vocab + v]!);
  }
  return out;
}

async function stepGrads(config: ModelConfig, batch: RowBatch, loss: LossConfig, nPairs: number, masked: boolean) {
  return withMask(masked, async () => {
    const policy = await Model.create(config, { seed: 41 });
    const names = policy.params().map((p) => p.name);
    const zeros = () => ({ sum: new Float64Array(nPairs), mean: new Float64Array(nPairs), count: new Float64Array(nPairs).fill(1) });
    const trainer = new Trainer(policy, null, { loss });
    const step = await trainer.microStep(batch, { nPairs, reference: { chosen: zeros(), rejected: zeros() } });
    const grads = await trainer.gradSnapshot(names);
    trainer.dispose();
    policy.dispose();
    return { step, grads };
  });
}

const configs: Array<[string, ModelConfig]> = [
  ['llama, grouped K/V (4 heads, 2 KV heads)', tinyConfig({ num_hidden_layers: 2 })],
  ['qwen2, q/k/v biases, 4 heads to 1 KV head', tinyConfig({ architecture: 'Qwen2ForCausalLM', qkv_bias: true, num_key_value_heads: 1 })],
  ['mistral, window longer than the batch', tinyConfig({ architecture: 'MistralForCausalLM', sliding_window: 64 })],
];

describe('causal attention without a mask equals the masked path on right-padded batches', () => {
  it.each(configs)('%s: logits at every real position', async (_, config) => {
    const batch = randomBatch(51, { rows: 5, seqLen: 14, vocab: config.vocab_size, minLen: 4 });
    expect(batch.attentionMask.some((a) => a === 0)).toBe(true); // some rows are padded
    const model = await Model.create(config, { seed: 42 });
    const fast = await withMask(false, () => model.logits(batch));
    const masked = await withMask(true, () => model.logits(batch));
    model.dispose();
    const a = realLogits(fast, batch, config.vocab_size);
    const b = realLogits(masked, batch, config.vocab_size);
    expect(maxRelError(a, b, 1e-3)).toBeLessThan(1e-5);
  });

  it.each(configs)('%s: dpo loss and every parameter gradient', async (_, config) => {
    const nPairs = 3;
    const batch = randomBatch(52, { rows: 2 * nPairs, seqLen: 16, vocab: config.vocab_size, minLen: 5, promptLen: 3 });
    const loss: LossConfig = { name: 'dpo', beta: 0.5 };
    const fast = await stepGrads(config, batch, loss, nPairs, false);
    const masked = await stepGrads(config, batch, loss, nPairs, true);
    expect(Math.abs(fast.step.loss - masked.step.loss)).toBeLessThan(1e-6);
    expect(fast.grads.some((g) => g !== 0)).toBe(true);
    expect(normRelError(fast.grads, masked.grads)).toBeLessThan(1e-5);
  });

  // The uncached path: the cached one always masks per slot (generate.cpp), so only the
  // whole-sequence recompute has a mask-free causal path to compare.
  it('greedy generation recomputing the whole sequence (no padding) decodes the same tokens', async () => {
    const config = tinyConfig({ num_hidden_layers: 2 });
    const model = await Model.create(config, { seed: 43 });
    const prompts = [Int32Array.from([5, 9, 2, 7, 1]), Int32Array.from([3, 3, 8, 1, 4]), Int32Array.from([11, 2, 6, 9, 30])];
    const options = { maxNewTokens: 8, doSample: false, stopTokenIds: [], padTokenId: 0, useCache: false };
    const fast = await withMask(false, () => model.generate(prompts, options));
    const masked = await withMask(true, () => model.generate(prompts, options));
    model.dispose();
    expect(fast.tokens.map((t) => Array.from(t))).toEqual(masked.tokens.map((t) => Array.from(t)));
  });
});
