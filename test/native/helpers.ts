// Shared fixtures for the native tests: tiny configs, seeded random batches.
import type { ModelConfig, RowBatch } from '../../lib/native.js';
import { mulberry32 } from '../../lib/util/random.js';

/** A deterministic PRNG (mulberry32) so fixtures are the same on every run. */
export const rng = mulberry32;

export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: 'LlamaForCausalLM',
    vocab_size: 97,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: { rope_type: 'none', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: false,
    attention_bias: false,
    qkv_bias: false,
    sliding_window: 0,
    max_position_embeddings: 256,
    initializer_range: 0.02,
    ...overrides,
  };
}

/**
 * `rows` right-padded rows of random tokens with lengths in [minLen, seqLen]; the first
 * `promptLen` tokens of each row are prompt (not labels), the rest labels.
 */
export function randomBatch(
  seed: number,
  opts: { rows: number; seqLen: number; vocab: number; minLen?: number; promptLen?: number },
): RowBatch {
  const r = rng(seed);
  const { rows, seqLen, vocab } = opts;
  const minLen = opts.minLen ?? Math.max(2, seqLen - 4);
  const promptLen = opts.promptLen ?? 2;
  const inputIds = new Int32Array(rows * seqLen);
  const attentionMask = new Uint8Array(rows * seqLen);
  const lossMask = new Uint8Array(rows * seqLen);
  for (let row = 0; row < rows; row++) {
    const len = minLen + Math.floor(r() * (seqLen - minLen + 1));
    for (let t = 0; t < seqLen; t++) {
      const i = row * seqLen + t;
      if (t < len) {
        inputIds[i] = Math.floor(r() * vocab);
        attentionMask[i] = 1;
        lossMask[i] = t >= promptLen ? 1 : 0;
      }
    }
  }
  return { rows, seqLen, inputIds, attentionMask, lossMask };
}

/** max |a - b| / max(|b|, floor), elementwise over the arrays. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor);
    if (err > worst) worst = err;
  }
  return worst;
}

/** ||a - b|| / ||b|| over whole arrays: the norm-wise relative error. */
export function normRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}
