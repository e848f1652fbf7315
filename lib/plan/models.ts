// Where `rpo plan` gets a model's shape without downloading anything: a local model directory's
// config.json (model.load_from, then model.name_or_path), a config.json already in the HF hub
// cache, or a built-in table of the models the seed's configs name (configs/model/*.yaml) and a
// few more. The table holds the published config.json values of each model.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { RepoCache, hubCacheDir } from '../hub/cache.js';
import { loadHfConfig } from '../model/config.js';
import { MODEL_PRESETS, roundUpVocab } from '../model/presets.js';
import type { ModelConfig } from '../native.js';

export type Shape = Pick<
  ModelConfig,
  | 'architecture'
  | 'vocab_size'
  | 'hidden_size'
  | 'intermediate_size'
  | 'num_hidden_layers'
  | 'num_attention_heads'
  | 'num_key_value_heads'
  | 'head_dim'
  | 'tie_word_embeddings'
  | 'attention_bias'
  | 'qkv_bias'
  | 'sliding_window'
>;

const MISTRAL_7B: Shape = {
  architecture: 'MistralForCausalLM',
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 128,
  tie_word_embeddings: false,
  attention_bias: false,
  qkv_bias: false,
  sliding_window: 0, // v0.2: null (full attention)
};

const MISTRAL_7B_V01: Shape = { ...MISTRAL_7B, sliding_window: 4096 };

const LLAMA_7B: Shape = {
  architecture: 'LlamaForCausalLM',
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  head_dim: 128,
  tie_word_embeddings: false,
  attention_bias: false,
  qkv_bias: false,
  sliding_window: 0,
};

const QWEN2: Omit<Shape, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim'> = {
  architecture: 'Qwen2ForCausalLM',
  tie_word_embeddings: true,
  attention_bias: false,
  qkv_bias: true,
  sliding_window: 0, // use_sliding_window: false
};

const PYTHIA: Omit<Shape, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim'> = {
  architecture: 'GPTNeoXForCausalLM',
  tie_word_embeddings: false,
  attention_bias: true,
  qkv_bias: false,
  sliding_window: 0,
};

/** A Pythia model's shape: head size hidden / heads, one KV head per head, MLP 4 × hidden. */
function pythia(vocab: number, hidden: number, layers: number, heads: number): Shape {
  return {
    ...PYTHIA,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: 4 * hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: hidden / heads,
  };
}

/** Hub id → shape, for the seed's models (configs/model/*.yaml) and the Qwen2.5 sizes qwen2.5.yaml names. */
export const KNOWN_MODELS: Readonly<Record<string, Shape>> = {
  'mistralai/Mistral-7B-Instruct-v0.2': MISTRAL_7B, // model=mistral7bv2
  'mistralai/Mistral-7B-v0.1': MISTRAL_7B_V01, // model=mistral7b
  'mistralai/Mistral-7B-Instruct-v0.1': MISTRAL_7B_V01, // model=mistral7b_instruct
  'HuggingFaceH4/mistral-7b-sft-beta': MISTRAL_7B_V01, // model=mistral7b_sft_beta
  'HuggingFaceH4/zephyr-7b-beta': MISTRAL_7B_V01, // model=zephyr7beta
  'meta-llama/Meta-Llama-3-8B-Instruct': { ...MISTRAL_7B, architecture: 'LlamaForCausalLM', vocab_size: 128256 }, // model=llama3-8bin
  'meta-llama/Meta-Llama-3-8B': { ...MISTRAL_7B, architecture: 'LlamaForCausalLM', vocab_size: 128256 },
  'huggyllama/llama-7b': LLAMA_7B, // model=llama7b
  'huggyllama/llama-13b': { ...LLAMA_7B, hidden_size: 5120, intermediate_size: 13824, num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 40 }, // model=llama13b
  'huggyllama/llama-30b': { ...LLAMA_7B, hidden_size: 6656, intermediate_size: 17920, num_hidden_layers: 60, num_attention_heads: 52, num_key_value_heads: 52 }, // model=llama30b
  'huggyllama/llama-65b': { ...LLAMA_7B, hidden_size: 8192, intermediate_size: 22016, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 64 }, // model=llama65b
  'EleutherAI/pythia-1.4b': pythia(50304, 2048, 24, 16), // model=pythia1-4b
  'EleutherAI/pythia-2.8b': pythia(50304, 2560, 32, 32), // model=pythia2-8b
  'EleutherAI/pythia-6.9b': pythia(50432, 4096, 32, 32), // model=pythia6-9b
  'EleutherAI/pythia-12b': pythia(50688, 5120, 36, 40), // model=pythia12-0b
  'Qwen/Qwen2.5-0.5B-Instruct': { ...QWEN2, vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, head_dim: 64 }, // model=qwen2.5
  'Qwen/Qwen2.5-1.5B-Instruct': { ...QWEN2, vocab_size: 151936, hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, head_dim: 128 },
  'Qwen/Qwen2.5-3B-Instruct': { ...QWEN2, vocab_size: 151936, hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 2, head_dim: 128 },
  'Qwen/Qwen2.5-7B-Instruct': { ...QWEN2, tie_word_embeddings: false, vocab_size: 152064, hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, head_dim: 128 },
};

// Base models share their instruct model's shape.
for (const id of ['Qwen/Qwen2.5-0.5B', 'Qwen/Qwen2.5-1.5B', 'Qwen/Qwen2.5-3B', 'Qwen/Qwen2.5-7B']) {
  (KNOWN_MODELS as Record<string, Shape>)[id] = KNOWN_MODELS[`${id}-Instruct`]!;
}

/**
 * The model `rpo init` writes by default (preset tiny, the byte-level tokenizer of 509 tokens,
 * rounded up to 512): what configs/model/tiny.yaml points at when its directory does not exist.
 */
export const TINY_BYTE_TOKENIZER_VOCAB = 509;

function tinyShape(): Shape {
  return { ...MODEL_PRESETS.tiny!.config, vocab_size: roundUpVocab(TINY_BYTE_TOKENIZER_VOCAB) };
}

export interface ResolvedShape {
  config: Shape;
  /** Where the shape came from, for the printout. */
  source: string;
}

/** The config.json of a hub model already in the local HF cache (main), if any. Never fetches. */
function cachedHubConfig(id: string): string | null {
  if (!/^[\w.-]+\/[\w.-]+$/.test(id)) return null;
  const cache = new RepoCache(hubCacheDir(), id, 'model');
  const commit = cache.commitFor('main');
  if (!commit) return null;
  const file = cache.pointerPath(commit, 'config.json');
  return existsSync(file) ? path.dirname(file) : null;
}

/**
 * The shape of the model a run config names. `group` is the model config group chosen
 * (model=tiny), used when its name_or_path is a directory that does not exist yet.
 */
export function resolveModelShape(model: { name_or_path: string; load_from: string | null }, group: string | null): ResolvedShape {
  for (const dir of [model.load_from, model.name_or_path]) {
    if (dir && existsSync(path.join(dir, 'config.json'))) return { config: loadHfConfig(dir), source: `${path.join(dir, 'config.json')}` };
  }
  const cached = cachedHubConfig(model.name_or_path);
  if (cached) return { config: loadHfConfig(cached), source: `${model.name_or_path} (config.json from the HF cache)` };
  const known = Object.prototype.hasOwnProperty.call(KNOWN_MODELS, model.name_or_path) ? KNOWN_MODELS[model.name_or_path] : undefined;
  if (known) return { config: known, source: `${model.name_or_path} (built-in shape; not downloaded)` };
  if (group === 'tiny') return { config: tinyShape(), source: `${model.name_or_path} (not found: the shape \`rpo init\` writes by default)` };
  throw new Error(
    `no shape for model ${JSON.stringify(model.name_or_path)}: it is not a local directory with a config.json, not in the HF cache, ` +
      `and not one of the built-in shapes (${Object.keys(KNOWN_MODELS).join(', ')}). ` +
      'Point model.name_or_path at a directory holding its config.json (the weights are not needed).',
  );
}
