// Model shapes for random-init models (`rpo init`, the demo, tests). A preset fixes everything but
// the vocabulary, which comes from the tokenizer: vocab_size = the tokenizer's size rounded up to a
// multiple of 64 (VOCAB_MULTIPLE). The extra rows of the embedding and the LM head are never
// produced by the tokenizer; they only get gradient through the softmax's normalizer, which pushes
// their logits down, so a trained model does not sample them in practice.
import type { ModelConfig } from '../native.js';

/** The embedding rows are padded to a multiple of this (as Llama 3, Qwen and Mistral files are). */
export const VOCAB_MULTIPLE = 64;

/** `n` rounded up to a multiple of `multiple`. */
export function roundUpVocab(n: number, multiple: number = VOCAB_MULTIPLE): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`vocabulary size must be a positive integer (got ${n})`);
  if (!Number.isSafeInteger(multiple) || multiple <= 0) throw new Error(`vocabulary multiple must be a positive integer (got ${multiple})`);
  return Math.ceil(n / multiple) * multiple;
}

export interface ModelPreset {
  description: string;
  /** Everything but vocab_size. */
  config: Omit<ModelConfig, 'vocab_size'>;
}

const NO_SCALING: ModelConfig['rope_scaling'] = {
  rope_type: 'none',
  factor: 1,
  low_freq_factor: 1,
  high_freq_factor: 4,
  original_max_position_embeddings: 8192,
};

const TINY: Omit<ModelConfig, 'vocab_size'> = {
  architecture: 'LlamaForCausalLM',
  hidden_size: 64,
  intermediate_size: 176,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  rope_scaling: NO_SCALING,
  tie_word_embeddings: false,
  attention_bias: false,
  qkv_bias: false,
  sliding_window: 0,
  max_position_embeddings: 512,
  initializer_range: 0.02,
};

export const MODEL_PRESETS: Readonly<Record<string, ModelPreset>> = {
  tiny: {
    description: 'Llama, hidden 64, 2 layers, 4 heads (2 KV): ~0.16M parameters with the byte tokenizer (tests)',
    config: TINY,
  },
  small: {
    description: 'Llama, hidden 256, 4 layers, 8 heads (4 KV): ~3.4M parameters with the byte tokenizer',
    config: {
      ...TINY,
      hidden_size: 256,
      intermediate_size: 768,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 32,
      max_position_embeddings: 1024,
    },
  },
  medium: {
    description: 'Llama, hidden 384, 6 layers, 8 heads (4 KV): ~10.1M parameters with the byte tokenizer',
    config: {
      ...TINY,
      hidden_size: 384,
      intermediate_size: 1024,
      num_hidden_layers: 6,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 48,
      max_position_embeddings: 2048,
    },
  },
  'tiny-mistral': {
    description: 'Mistral: tiny with a 32-token sliding window',
    config: { ...TINY, architecture: 'MistralForCausalLM', sliding_window: 32 },
  },
  'tiny-qwen2': {
    description: 'Qwen2: tiny with q/k/v biases, tied embeddings, rope_theta 1e6',
    config: {
      ...TINY,
      architecture: 'Qwen2ForCausalLM',
      qkv_bias: true,
      tie_word_embeddings: true,
      rope_theta: 1_000_000,
      rms_norm_eps: 1e-6,
    },
  },
  'tiny-neox': {
    description: 'GPTNeoX (Pythia layout): tiny with a fused qkv, rotary on a quarter of each head, parallel residual, LayerNorm',
    config: {
      ...TINY,
      architecture: 'GPTNeoXForCausalLM',
      intermediate_size: 256,
      num_key_value_heads: 4,
      rms_norm_eps: 1e-5,
      attention_bias: true,
      layer_norm_eps: 1e-5,
      rotary_pct: 0.25,
      use_parallel_residual: true,
    },
  },
  mini: {
    description: 'Llama, hidden 128, 4 layers, 4 heads: ~0.9M parameters with a one-token-per-byte tokenizer (the demo)',
    config: {
      ...TINY,
      hidden_size: 128,
      intermediate_size: 384,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      head_dim: 32,
      max_position_embeddings: 1024,
    },
  },
};

export const PRESET_NAMES: readonly string[] = Object.keys(MODEL_PRESETS);

/** The preset's config for a tokenizer of `tokenizerVocabSize` ids (vocab_size rounded up to VOCAB_MULTIPLE). */
export function presetConfig(name: string, tokenizerVocabSize: number): ModelConfig {
  const preset = Object.prototype.hasOwnProperty.call(MODEL_PRESETS, name) ? MODEL_PRESETS[name] : undefined;
  if (!preset) throw new Error(`unknown model preset ${JSON.stringify(name)}; known presets: ${PRESET_NAMES.join(', ')}`);
  return { ...preset.config, rope_scaling: { ...preset.config.rope_scaling }, vocab_size: roundUpVocab(tokenizerVocabSize) };
}
