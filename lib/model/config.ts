// HF config.json <-> the engine's ModelConfig for the Llama family (Llama, Mistral, Qwen2) and,
// through gpt_neox_config.ts, GPTNeoX.
// Defaults follow transformers' config classes, so a file means here what it means there;
// every option the engine does not implement is refused by name rather than silently ignored.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Dtype, ModelConfig, RopeScaling } from '../native.js';
import { Fields, has, isObject, type HfConfigExtras, type Json } from './config_fields.js';
import { neoXConfigToHf, parseNeoXConfig } from './gpt_neox_config.js';

export type { HfConfigExtras } from './config_fields.js';

type Architecture = ModelConfig['architecture'];

const MODEL_TYPES: Readonly<Record<string, Architecture>> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  gpt_neox: 'GPTNeoXForCausalLM',
};

const ARCHITECTURES: readonly Architecture[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPTNeoXForCausalLM'];

function modelTypeOf(arch: Architecture): string {
  return Object.keys(MODEL_TYPES).find((k) => MODEL_TYPES[k] === arch) ?? 'llama';
}

/** transformers' per-class defaults for fields a config.json may leave out. */
const DEFAULTS: Readonly<Record<Architecture, { max_position_embeddings: number; num_key_value_heads: number | 'heads'; sliding_window: number }>> = {
  LlamaForCausalLM: { max_position_embeddings: 2048, num_key_value_heads: 'heads', sliding_window: 0 },
  // MistralConfig's signature defaults: 8 KV heads, a 4096-token window (null means full attention).
  MistralForCausalLM: { max_position_embeddings: 4096 * 32, num_key_value_heads: 8, sliding_window: 4096 },
  Qwen2ForCausalLM: { max_position_embeddings: 32768, num_key_value_heads: 32, sliding_window: 0 },
  GPTNeoXForCausalLM: { max_position_embeddings: 2048, num_key_value_heads: 'heads', sliding_window: 0 }, // gpt_neox_config.ts
};

const NO_SCALING: RopeScaling = {
  rope_type: 'none',
  factor: 1,
  low_freq_factor: 1,
  high_freq_factor: 4,
  original_max_position_embeddings: 8192,
};

function parseArchitecture(f: Fields, json: Json, file: string): Architecture {
  const supported = ARCHITECTURES.join(', ');
  const archs = json.architectures;
  if (archs !== undefined && archs !== null && !(Array.isArray(archs) && archs.length === 0)) {
    if (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string')) {
      f.fail(`architectures must be an array of strings (got ${JSON.stringify(archs)})`);
    }
    for (const a of archs as string[]) {
      if (!(ARCHITECTURES as readonly string[]).includes(a)) {
        throw new Error(`unsupported architecture ${JSON.stringify(a)} in ${file}; supported: ${supported}`);
      }
    }
    const [first] = archs as Architecture[];
    if (!first || (archs as string[]).some((a) => a !== first)) f.fail(`architectures lists different models: ${JSON.stringify(archs)}`);
    // transformers builds the model class from model_type; a disagreement means it would load
    // something other than what architectures says.
    const mt = json.model_type;
    if (typeof mt === 'string' && has(MODEL_TYPES, mt) && MODEL_TYPES[mt] !== first) {
      f.fail(`architectures says ${first} but model_type is ${JSON.stringify(mt)}`);
    }
    return first;
  }
  const mt = json.model_type;
  if (typeof mt === 'string' && has(MODEL_TYPES, mt)) return MODEL_TYPES[mt] as Architecture;
  if (mt === undefined || mt === null) f.fail(`neither architectures nor model_type is set; supported: ${supported}`);
  throw new Error(`unsupported model_type ${JSON.stringify(mt)} in ${file}; supported: ${Object.keys(MODEL_TYPES).join(', ')}`);
}

/**
 * RoPE theta and scaling, from either the transformers 4 form (`rope_theta` + `rope_scaling`)
 * or the transformers 5 form (`rope_parameters: {rope_type, rope_theta, ...}`). As transformers 5
 * does, a non-null rope_scaling wins over rope_parameters and a top-level rope_theta fills in.
 */
function parseRope(f: Fields, json: Json, file: string): { rope_theta: number; rope_scaling: RopeScaling } {
  const scaling = json.rope_scaling;
  const params = json.rope_parameters;
  let key = 'rope_scaling';
  let src: unknown = scaling;
  if (scaling === undefined || scaling === null) {
    key = 'rope_parameters';
    src = params;
  }
  if (src !== undefined && src !== null && !isObject(src)) f.fail(`${key} must be an object or null (got ${JSON.stringify(src)})`);
  const o: Json = isObject(src) ? src : {};
  const r = new Fields(o, file, `${key}.`);

  const theta = r.given('rope_theta') ? r.positiveNumber('rope_theta') : f.positiveNumber('rope_theta', 10000);
  const typeValue = r.given('rope_type') ? o.rope_type : r.given('type') ? o.type : 'default';
  if (typeof typeValue !== 'string') f.fail(`${key}.rope_type must be a string (got ${JSON.stringify(typeValue)})`);
  if (!r.given('rope_type') && !r.given('type') && Object.values(o).some(isObject)) {
    f.fail(`per-layer ${key} are not supported`);
  }
  switch (typeValue) {
    case 'default':
      return { rope_theta: theta, rope_scaling: { ...NO_SCALING } };
    case 'linear':
      return { rope_theta: theta, rope_scaling: { ...NO_SCALING, rope_type: 'linear', factor: r.positiveNumber('factor') } };
    case 'llama3': {
      const low = r.positiveNumber('low_freq_factor');
      const high = r.positiveNumber('high_freq_factor');
      // The smoothing ramp divides by (high - low): equal or inverted factors are a broken config.
      if (high <= low) f.fail(`${key}.high_freq_factor (${high}) must be greater than low_freq_factor (${low})`);
      return {
        rope_theta: theta,
        rope_scaling: {
          rope_type: 'llama3',
          factor: r.positiveNumber('factor'),
          low_freq_factor: low,
          high_freq_factor: high,
          original_max_position_embeddings: r.positiveInt('original_max_position_embeddings'),
        },
      };
    }
    default:
      throw new Error(`unsupported ${key} type ${JSON.stringify(typeValue)} in ${file}; supported: default, linear, llama3`);
  }
}

/** Options the engine does not implement: refused by name so the model is never silently different. */
function refuseUnsupported(f: Fields, json: Json, arch: Architecture): void {
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu') f.fail(`unsupported option hidden_act ${JSON.stringify(act)}; only "silu" is supported`);
  if (json.mlp_bias !== undefined && json.mlp_bias !== null && json.mlp_bias !== false) {
    f.fail(`unsupported option mlp_bias ${JSON.stringify(json.mlp_bias)}; the MLP has no bias`);
  }
  const tp = json.pretraining_tp;
  if (tp !== undefined && tp !== null && tp !== 1) {
    if (typeof tp !== 'number' || !Number.isSafeInteger(tp) || tp < 1) f.fail(`pretraining_tp must be a positive integer (got ${JSON.stringify(tp)})`);
    f.fail(`unsupported option pretraining_tp ${tp}; only 1 is supported`);
  }
  const drop = json.attention_dropout;
  if (drop !== undefined && drop !== null && drop !== 0) f.fail(`unsupported option attention_dropout ${JSON.stringify(drop)}; only 0 is supported`);
  if (json.quantization_config !== undefined && json.quantization_config !== null) {
    f.fail('unsupported option quantization_config: quantized checkpoints cannot be trained; use the unquantized weights');
  }
  if (arch === 'Qwen2ForCausalLM' && json.use_sliding_window === true) {
    f.fail('unsupported option use_sliding_window: true (Qwen2 sliding-window attention)');
  }
}

function parseSlidingWindow(f: Fields, json: Json, arch: Architecture): number {
  if (arch !== 'MistralForCausalLM') return 0; // Qwen2 ignores sliding_window unless use_sliding_window
  if (!has(json, 'sliding_window')) return DEFAULTS.MistralForCausalLM.sliding_window;
  if (json.sliding_window === null) return 0;
  return f.positiveInt('sliding_window');
}

/** Validates an HF config.json (already parsed) into the engine's ModelConfig. */
export function parseHfConfig(json: unknown, file: string): ModelConfig {
  if (!isObject(json)) throw new Error(`${file}: config is not a JSON object`);
  const f = new Fields(json, file);
  const architecture = parseArchitecture(f, json, file);
  if (architecture === 'GPTNeoXForCausalLM') return parseNeoXConfig(f, json, file);
  refuseUnsupported(f, json, architecture);
  const defaults = DEFAULTS[architecture];

  const hidden_size = f.positiveInt('hidden_size');
  const num_attention_heads = f.positiveInt('num_attention_heads');
  // Absent and null differ in transformers for Mistral/Qwen2: absent takes the class default,
  // null means "same as attention heads" (multi-head attention).
  const kvDefault = has(json, 'num_key_value_heads') || defaults.num_key_value_heads === 'heads' ? num_attention_heads : defaults.num_key_value_heads;
  const num_key_value_heads = f.positiveInt('num_key_value_heads', kvDefault);
  if (num_attention_heads % num_key_value_heads !== 0) {
    f.fail(`num_attention_heads (${num_attention_heads}) is not divisible by num_key_value_heads (${num_key_value_heads})`);
  }
  const divisible = hidden_size % num_attention_heads === 0;
  if (!f.given('head_dim') && !divisible) {
    f.fail(`hidden_size (${hidden_size}) is not divisible by num_attention_heads (${num_attention_heads}) and head_dim is not set`);
  }
  // LlamaConfig refuses this even with an explicit head_dim; Mistral (e.g. Nemo) allows it.
  if (architecture === 'LlamaForCausalLM' && !divisible) {
    f.fail(`hidden_size (${hidden_size}) is not divisible by num_attention_heads (${num_attention_heads})`);
  }
  const head_dim = f.positiveInt('head_dim', hidden_size / num_attention_heads);
  if (head_dim % 2 !== 0) f.fail(`head_dim (${head_dim}) must be even for rotary embeddings`);

  const { rope_theta, rope_scaling } = parseRope(f, json, file);
  const isLlama = architecture === 'LlamaForCausalLM';
  return {
    architecture,
    vocab_size: f.positiveInt('vocab_size'),
    hidden_size,
    intermediate_size: f.positiveInt('intermediate_size'),
    num_hidden_layers: f.positiveInt('num_hidden_layers'),
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    rms_norm_eps: f.positiveNumber('rms_norm_eps', 1e-6),
    rope_theta,
    rope_scaling,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    attention_bias: isLlama ? f.bool('attention_bias', false) : false,
    qkv_bias: architecture === 'Qwen2ForCausalLM',
    sliding_window: parseSlidingWindow(f, json, architecture),
    max_position_embeddings: f.positiveInt('max_position_embeddings', defaults.max_position_embeddings),
    initializer_range: f.positiveNumber('initializer_range', 0.02),
  };
}

/** Reads and validates `<dir>/config.json`. */
export function loadHfConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`no config.json in ${dir} (looked for ${file})`);
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return parseHfConfig(json, file);
}

/** rope_scaling (transformers 4) for a config: null when unscaled. */
function ropeScalingToHf(s: RopeScaling): Json | null {
  switch (s.rope_type) {
    case 'none':
      return null;
    case 'linear':
      return { rope_type: 'linear', factor: s.factor };
    case 'llama3':
      return {
        rope_type: 'llama3',
        factor: s.factor,
        low_freq_factor: s.low_freq_factor,
        high_freq_factor: s.high_freq_factor,
        original_max_position_embeddings: s.original_max_position_embeddings,
      };
  }
}

/** Bias and window flags each architecture can express in its config.json. */
function checkRepresentable(cfg: ModelConfig): void {
  const a = cfg.architecture;
  const bad = (what: string): never => {
    throw new Error(`modelConfigToHf: ${a} cannot express ${what}`);
  };
  if (a !== 'LlamaForCausalLM' && cfg.attention_bias) bad('attention_bias');
  if (a !== 'Qwen2ForCausalLM' && cfg.qkv_bias) bad('qkv_bias');
  if (a === 'Qwen2ForCausalLM' && !cfg.qkv_bias) bad('qkv_bias = false (Qwen2 always has q/k/v biases)');
  if (a !== 'MistralForCausalLM' && cfg.sliding_window !== 0) bad(`sliding_window ${cfg.sliding_window}`);
}

/**
 * A config.json for `cfg` that transformers (4.43+ and 5) loads as the same architecture. RoPE is
 * written in both forms: `rope_parameters` (transformers 5) and `rope_theta` + `rope_scaling`
 * (transformers 4, vLLM); they agree, so either reader gets the same model.
 */
export function modelConfigToHf(cfg: ModelConfig, dtype: Dtype, extras: HfConfigExtras = {}): Record<string, unknown> {
  if (!ARCHITECTURES.includes(cfg.architecture)) throw new Error(`modelConfigToHf: unsupported architecture ${JSON.stringify(cfg.architecture)}`);
  if (cfg.architecture === 'GPTNeoXForCausalLM') {
    const neox = neoXConfigToHf(cfg, dtype, extras);
    parseHfConfig(neox, 'config for GPTNeoXForCausalLM');
    return neox;
  }
  checkRepresentable(cfg);
  const a = cfg.architecture;
  const rope_scaling = ropeScalingToHf(cfg.rope_scaling);
  const out: Record<string, unknown> = {
    architectures: [a],
    model_type: modelTypeOf(a),
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    head_dim: cfg.head_dim,
    hidden_act: 'silu',
    max_position_embeddings: cfg.max_position_embeddings,
    initializer_range: cfg.initializer_range,
    rms_norm_eps: cfg.rms_norm_eps,
    rope_theta: cfg.rope_theta,
    rope_scaling,
    rope_parameters: { ...(rope_scaling ?? { rope_type: 'default' }), rope_theta: cfg.rope_theta },
    tie_word_embeddings: cfg.tie_word_embeddings,
    attention_dropout: 0.0,
    use_cache: true,
    dtype,
    torch_dtype: dtype,
  };
  if (a === 'LlamaForCausalLM') {
    Object.assign(out, { attention_bias: cfg.attention_bias, mlp_bias: false, pretraining_tp: 1 });
  } else if (a === 'MistralForCausalLM') {
    out.sliding_window = cfg.sliding_window === 0 ? null : cfg.sliding_window;
  } else {
    Object.assign(out, { use_sliding_window: false, sliding_window: null, max_window_layers: cfg.num_hidden_layers });
  }
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (extras[k] !== undefined) out[k] = extras[k];
  }
  // Validate the sizes the same way a load would, so a bad cfg fails here and not in Python.
  parseHfConfig(out, `config for ${a}`);
  return out;
}
