// HF config.json <-> the engine's ModelConfig for GPTNeoX (Pythia, GPT-NeoX-20B). Defaults follow
// transformers' GPTNeoXConfig; both its forms are read: transformers 4's `rotary_pct` +
// `rotary_emb_base` (the Pythia files on the hub) and transformers 5's `rope_parameters:
// {rope_theta, partial_rotary_factor}`. Options the engine does not implement are refused by name.
import type { Dtype, ModelConfig } from '../native.js';
import { Fields, isObject, type HfConfigExtras } from './config_fields.js';

type Json = Record<string, unknown>;

/** GPTNeoXConfig's defaults for what a Pythia config.json may leave out. */
const NEOX_DEFAULTS = {
  rotary_pct: 0.25,
  rotary_emb_base: 10000,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
} as const;

/** int(head_dim * rotary_pct), as transformers computes the rotated dims. */
export function neoxRotaryDims(headDim: number, rotaryPct: number): number {
  return Math.floor(headDim * rotaryPct);
}

function refuseUnsupported(f: Fields, json: Json): void {
  const act = json.hidden_act ?? 'gelu';
  if (act !== 'gelu') f.fail(`unsupported option hidden_act ${JSON.stringify(act)}; GPTNeoX supports only "gelu"`);
  for (const key of ['attention_dropout', 'hidden_dropout'] as const) {
    const v = json[key];
    if (v !== undefined && v !== null && v !== 0) f.fail(`unsupported option ${key} ${JSON.stringify(v)}; only 0 is supported`);
  }
  if (json.quantization_config !== undefined && json.quantization_config !== null) {
    f.fail('unsupported option quantization_config: quantized checkpoints cannot be trained; use the unquantized weights');
  }
  const kv = json.num_key_value_heads;
  if (kv !== undefined && kv !== null && kv !== json.num_attention_heads) {
    f.fail(`num_key_value_heads ${JSON.stringify(kv)}: GPTNeoX has one key/value head per attention head`);
  }
}

/**
 * RoPE base and rotated share. As GPTNeoXConfig (transformers 5) does: a non-null rope_scaling wins
 * over rope_parameters, and rotary_emb_base / rotary_pct fill in what neither sets.
 */
function parseRope(f: Fields, json: Json, file: string): { rope_theta: number; rotary_pct: number } {
  const key = json.rope_scaling !== undefined && json.rope_scaling !== null ? 'rope_scaling' : 'rope_parameters';
  const src = json[key];
  if (src !== undefined && src !== null && !isObject(src)) f.fail(`${key} must be an object or null (got ${JSON.stringify(src)})`);
  const o: Json = isObject(src) ? src : {};
  const r = new Fields(o, file, `${key}.`);
  const type = r.given('rope_type') ? o.rope_type : r.given('type') ? o.type : 'default';
  if (type !== 'default') throw new Error(`unsupported ${key} type ${JSON.stringify(type)} in ${file}; GPTNeoX supports only default rotary embeddings`);
  const rope_theta = r.given('rope_theta') ? r.positiveNumber('rope_theta') : f.positiveNumber('rotary_emb_base', NEOX_DEFAULTS.rotary_emb_base);
  const rotary_pct = r.given('partial_rotary_factor') ? r.positiveNumber('partial_rotary_factor') : f.positiveNumber('rotary_pct', NEOX_DEFAULTS.rotary_pct);
  if (rotary_pct > 1) f.fail(`rotary_pct (${rotary_pct}) must be at most 1`);
  return { rope_theta, rotary_pct };
}

/** Validates a GPTNeoX config.json (already parsed; `architecture` already checked). */
export function parseNeoXConfig(f: Fields, json: Json, file: string): ModelConfig {
  refuseUnsupported(f, json);
  const hidden_size = f.positiveInt('hidden_size');
  const num_attention_heads = f.positiveInt('num_attention_heads');
  // GPTNeoXConfig refuses this; the head size is always hidden_size / heads (no head_dim key).
  if (hidden_size % num_attention_heads !== 0) f.fail(`hidden_size (${hidden_size}) is not divisible by num_attention_heads (${num_attention_heads})`);
  const head_dim = hidden_size / num_attention_heads;
  const { rope_theta, rotary_pct } = parseRope(f, json, file);
  const rotary = neoxRotaryDims(head_dim, rotary_pct);
  if (rotary <= 0 || rotary % 2 !== 0) {
    f.fail(`rotary_pct ${rotary_pct} of head size ${head_dim} gives ${rotary} rotary dims; they must be a positive even number`);
  }
  const layer_norm_eps = f.positiveNumber('layer_norm_eps', NEOX_DEFAULTS.layer_norm_eps);
  return {
    architecture: 'GPTNeoXForCausalLM',
    vocab_size: f.positiveInt('vocab_size'),
    hidden_size,
    intermediate_size: f.positiveInt('intermediate_size'),
    num_hidden_layers: f.positiveInt('num_hidden_layers'),
    num_attention_heads,
    num_key_value_heads: num_attention_heads,
    head_dim,
    // Unused by GPTNeoX (its norms are LayerNorms: layer_norm_eps); kept equal to it.
    rms_norm_eps: layer_norm_eps,
    rope_theta,
    rope_scaling: { rope_type: 'none', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    attention_bias: f.bool('attention_bias', true),
    qkv_bias: false,
    sliding_window: 0,
    max_position_embeddings: f.positiveInt('max_position_embeddings', NEOX_DEFAULTS.max_position_embeddings),
    initializer_range: f.positiveNumber('initializer_range', 0.02),
    layer_norm_eps,
    rotary_pct,
    use_parallel_residual: f.bool('use_parallel_residual', true),
  };
}

/**
 * A GPTNeoX config.json that transformers 4 and 5 load as the same model: the rotary settings in
 * both forms (rotary_pct + rotary_emb_base, and rope_parameters), which agree.
 */
export function neoXConfigToHf(cfg: ModelConfig, dtype: Dtype, extras: HfConfigExtras): Record<string, unknown> {
  const bad = (what: string): never => {
    throw new Error(`modelConfigToHf: GPTNeoXForCausalLM cannot express ${what}`);
  };
  if (cfg.qkv_bias) bad('qkv_bias');
  if (cfg.sliding_window !== 0) bad(`sliding_window ${cfg.sliding_window}`);
  if (cfg.rope_scaling.rope_type !== 'none') bad(`rope_scaling ${cfg.rope_scaling.rope_type}`);
  if (cfg.num_key_value_heads !== cfg.num_attention_heads) bad(`${cfg.num_key_value_heads} key/value heads for ${cfg.num_attention_heads} heads`);
  if (cfg.head_dim * cfg.num_attention_heads !== cfg.hidden_size) bad(`head_dim ${cfg.head_dim} with hidden_size ${cfg.hidden_size} and ${cfg.num_attention_heads} heads`);
  const rotary_pct = cfg.rotary_pct ?? 1;
  const out: Record<string, unknown> = {
    architectures: ['GPTNeoXForCausalLM'],
    model_type: 'gpt_neox',
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    hidden_act: 'gelu',
    max_position_embeddings: cfg.max_position_embeddings,
    initializer_range: cfg.initializer_range,
    layer_norm_eps: cfg.layer_norm_eps ?? NEOX_DEFAULTS.layer_norm_eps,
    rotary_pct,
    rotary_emb_base: cfg.rope_theta,
    rope_parameters: { rope_type: 'default', rope_theta: cfg.rope_theta, partial_rotary_factor: rotary_pct },
    use_parallel_residual: cfg.use_parallel_residual ?? true,
    attention_bias: cfg.attention_bias,
    tie_word_embeddings: cfg.tie_word_embeddings,
    attention_dropout: 0.0,
    hidden_dropout: 0.0,
    use_cache: true,
    dtype,
    torch_dtype: dtype,
  };
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (extras[k] !== undefined) out[k] = extras[k];
  }
  return out;
}
