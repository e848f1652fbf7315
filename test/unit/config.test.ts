import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadHfConfig, modelConfigToHf, parseHfConfig } from '../../lib/model/config.js';
import type { ModelConfig } from '../../lib/native.js';

const FILE = '/models/x/config.json';

const NO_SCALING = { rope_type: 'none', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };

/** A Llama-3-style config.json, shrunk. */
function llama(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 128,
    hidden_size: 64,
    intermediate_size: 160,
    num_hidden_layers: 2,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 4096,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 500000.0,
    rope_scaling: null,
    tie_word_embeddings: false,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    pretraining_tp: 1,
    torch_dtype: 'bfloat16',
    bos_token_id: 1,
    eos_token_id: 2,
    ...over,
  };
}

/** Mistral-7B-Instruct-v0.2's config.json, shrunk. */
function mistral(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['MistralForCausalLM'],
    model_type: 'mistral',
    vocab_size: 256,
    hidden_size: 64,
    intermediate_size: 224,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 1000000.0,
    sliding_window: null,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    ...over,
  };
}

/** Qwen2-0.5B's config.json, shrunk. */
function qwen2(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: 320,
    hidden_size: 56,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    max_window_layers: 24,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    use_sliding_window: false,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    ...over,
  };
}

function without(o: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  const copy = { ...o };
  for (const k of keys) delete copy[k];
  return copy;
}

describe('parseHfConfig: architectures', () => {
  it('Llama', () => {
    expect(parseHfConfig(llama(), FILE)).toEqual<ModelConfig>({
      architecture: 'LlamaForCausalLM',
      vocab_size: 128,
      hidden_size: 64,
      intermediate_size: 160,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 8,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: { ...NO_SCALING, rope_type: 'none' },
      tie_word_embeddings: false,
      attention_bias: false,
      qkv_bias: false,
      sliding_window: 0,
      max_position_embeddings: 4096,
      initializer_range: 0.02,
    });
    const biased = parseHfConfig(llama({ attention_bias: true }), FILE);
    expect([biased.attention_bias, biased.qkv_bias]).toEqual([true, false]);
  });

  it('Mistral: sliding_window null means full attention, a number is kept, absent is the class default 4096', () => {
    const m = parseHfConfig(mistral(), FILE);
    expect(m.architecture).toBe('MistralForCausalLM');
    expect(m.sliding_window).toBe(0);
    expect([m.attention_bias, m.qkv_bias]).toEqual([false, false]);
    expect(m.rope_theta).toBe(1e6);
    expect(parseHfConfig(mistral({ sliding_window: 4096 }), FILE).sliding_window).toBe(4096);
    expect(parseHfConfig(without(mistral(), 'sliding_window'), FILE).sliding_window).toBe(4096);
    expect(() => parseHfConfig(mistral({ sliding_window: -3 }), FILE)).toThrow(/config\.json: sliding_window must be a positive integer \(got -3\)/);
  });

  it('Mistral: an explicit head_dim need not divide hidden_size (Mistral-Nemo)', () => {
    const nemo = parseHfConfig(mistral({ hidden_size: 80, num_attention_heads: 4, head_dim: 16 }), FILE);
    expect(nemo.head_dim).toBe(16);
  });

  it('Qwen2: q/k/v biases, sliding_window ignored unless use_sliding_window, tie as set', () => {
    const q = parseHfConfig(qwen2(), FILE);
    expect(q.architecture).toBe('Qwen2ForCausalLM');
    expect([q.qkv_bias, q.attention_bias]).toEqual([true, false]);
    expect(q.sliding_window).toBe(0);
    expect(q.tie_word_embeddings).toBe(true);
    expect(q.head_dim).toBe(4);
    expect(parseHfConfig(without(qwen2(), 'tie_word_embeddings'), FILE).tie_word_embeddings).toBe(false);
  });

  it('model_type when architectures is absent, null or empty', () => {
    expect(parseHfConfig(without(llama(), 'architectures'), FILE).architecture).toBe('LlamaForCausalLM');
    expect(parseHfConfig(mistral({ architectures: null }), FILE).architecture).toBe('MistralForCausalLM');
    expect(parseHfConfig(qwen2({ architectures: [] }), FILE).architecture).toBe('Qwen2ForCausalLM');
  });
});

describe('parseHfConfig: defaults', () => {
  const minimal = { model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4 };

  it('fills in transformers defaults for a minimal Llama config', () => {
    expect(parseHfConfig(minimal, FILE)).toEqual<ModelConfig>({
      architecture: 'LlamaForCausalLM',
      vocab_size: 100,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      head_dim: 8,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: NO_SCALING as ModelConfig['rope_scaling'],
      tie_word_embeddings: false,
      attention_bias: false,
      qkv_bias: false,
      sliding_window: 0,
      max_position_embeddings: 2048,
      initializer_range: 0.02,
    });
  });

  it('num_key_value_heads: null means the attention heads; absent is the class default', () => {
    expect(parseHfConfig(llama({ num_key_value_heads: null }), FILE).num_key_value_heads).toBe(8);
    expect(parseHfConfig(mistral({ num_key_value_heads: null }), FILE).num_key_value_heads).toBe(4);
    expect(parseHfConfig(without(mistral({ num_attention_heads: 16 }), 'num_key_value_heads'), FILE).num_key_value_heads).toBe(8);
    expect(parseHfConfig(without(llama(), 'num_key_value_heads'), FILE).num_key_value_heads).toBe(8);
  });

  it('per-architecture max_position_embeddings defaults; head_dim null is the default', () => {
    expect(parseHfConfig(without(mistral(), 'max_position_embeddings'), FILE).max_position_embeddings).toBe(131072);
    expect(parseHfConfig(without(qwen2(), 'max_position_embeddings'), FILE).max_position_embeddings).toBe(32768);
    expect(parseHfConfig(mistral({ head_dim: null }), FILE).head_dim).toBe(16);
    expect(parseHfConfig(llama({ head_dim: 8 }), FILE).head_dim).toBe(8);
  });
});

describe('parseHfConfig: rope', () => {
  const llama3 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };

  it('absent, null and "default" mean no scaling', () => {
    expect(parseHfConfig(without(llama(), 'rope_scaling'), FILE).rope_scaling).toEqual(NO_SCALING);
    expect(parseHfConfig(llama({ rope_scaling: { rope_type: 'default' } }), FILE).rope_scaling).toEqual(NO_SCALING);
    expect(parseHfConfig(llama({ rope_scaling: { type: 'default' } }), FILE).rope_scaling).toEqual(NO_SCALING);
  });

  it('linear, with rope_type or the older type key', () => {
    const expected = { ...NO_SCALING, rope_type: 'linear', factor: 2 };
    expect(parseHfConfig(llama({ rope_scaling: { rope_type: 'linear', factor: 2.0 } }), FILE).rope_scaling).toEqual(expected);
    expect(parseHfConfig(llama({ rope_scaling: { type: 'linear', factor: 2 } }), FILE).rope_scaling).toEqual(expected);
    expect(() => parseHfConfig(llama({ rope_scaling: { type: 'linear' } }), FILE)).toThrow(/config\.json: missing required field rope_scaling\.factor/);
  });

  it('llama3 with all four parameters', () => {
    const c = parseHfConfig(llama({ rope_scaling: llama3 }), FILE);
    expect(c.rope_scaling).toEqual({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(c.rope_theta).toBe(500000);
    expect(() => parseHfConfig(llama({ rope_scaling: without(llama3, 'high_freq_factor') }), FILE)).toThrow(/missing required field rope_scaling\.high_freq_factor/);
    expect(() => parseHfConfig(llama({ rope_scaling: { ...llama3, high_freq_factor: 1 } }), FILE)).toThrow(/high_freq_factor \(1\) must be greater than low_freq_factor \(1\)/);
  });

  it('the transformers 5 rope_parameters form', () => {
    const c = parseHfConfig(without(llama({ rope_parameters: { ...llama3, rope_theta: 250000 } }), 'rope_theta', 'rope_scaling'), FILE);
    expect(c.rope_theta).toBe(250000);
    expect(c.rope_scaling.rope_type).toBe('llama3');
    const d = parseHfConfig(without(qwen2({ rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }), 'rope_theta'), FILE);
    expect([d.rope_theta, d.rope_scaling.rope_type]).toEqual([1e6, 'none']);
    // rope_parameters without a theta takes the top-level one.
    expect(parseHfConfig(llama({ rope_parameters: { rope_type: 'default' } }), FILE).rope_theta).toBe(500000);
  });

  it('refuses other scaling types, naming them', () => {
    for (const type of ['yarn', 'dynamic', 'longrope']) {
      expect(() => parseHfConfig(llama({ rope_scaling: { rope_type: type, factor: 4 } }), FILE)).toThrow(
        new RegExp(`unsupported rope_scaling type "${type}" in /models/x/config\\.json; supported: default, linear, llama3`),
      );
    }
    expect(() => parseHfConfig(without(qwen2({ rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 1e6 } }), 'rope_theta'), FILE)).toThrow(
      /unsupported rope_parameters type "yarn"/,
    );
    expect(() => parseHfConfig(llama({ rope_scaling: 2 }), FILE)).toThrow(/config\.json: rope_scaling must be an object or null/);
    expect(() => parseHfConfig(llama({ rope_theta: 0 }), FILE)).toThrow(/config\.json: rope_theta must be a positive number/);
  });
});

describe('parseHfConfig: refusals name the option and the file', () => {
  it('unsupported architectures and model types', () => {
    expect(() => parseHfConfig(llama({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }), FILE)).toThrow(
      /^unsupported architecture "GPT2LMHeadModel" in \/models\/x\/config\.json; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPTNeoXForCausalLM$/,
    );
    expect(() => parseHfConfig(without(llama({ model_type: 'gemma' }), 'architectures'), FILE)).toThrow(/unsupported model_type "gemma" in \/models\/x\/config\.json/);
    expect(() => parseHfConfig(without(llama(), 'architectures', 'model_type'), FILE)).toThrow(/config\.json: neither architectures nor model_type is set/);
    expect(() => parseHfConfig(llama({ architectures: 'LlamaForCausalLM' }), FILE)).toThrow(/config\.json: architectures must be an array of strings/);
    expect(() => parseHfConfig(llama({ model_type: 'mistral' }), FILE)).toThrow(/config\.json: architectures says LlamaForCausalLM but model_type is "mistral"/);
  });

  it('mlp_bias, hidden_act, pretraining_tp, attention_dropout, quantization_config, use_sliding_window', () => {
    expect(() => parseHfConfig(llama({ mlp_bias: true }), FILE)).toThrow(/config\.json: unsupported option mlp_bias true/);
    expect(() => parseHfConfig(llama({ hidden_act: 'gelu' }), FILE)).toThrow(/config\.json: unsupported option hidden_act "gelu"; only "silu"/);
    expect(() => parseHfConfig(llama({ pretraining_tp: 2 }), FILE)).toThrow(/config\.json: unsupported option pretraining_tp 2/);
    expect(() => parseHfConfig(llama({ attention_dropout: 0.1 }), FILE)).toThrow(/config\.json: unsupported option attention_dropout 0\.1/);
    expect(() => parseHfConfig(llama({ quantization_config: { quant_method: 'gptq' } }), FILE)).toThrow(/config\.json: unsupported option quantization_config/);
    expect(() => parseHfConfig(qwen2({ use_sliding_window: true }), FILE)).toThrow(/config\.json: unsupported option use_sliding_window/);
  });

  it('non-integer, non-positive, missing and mistyped sizes', () => {
    expect(() => parseHfConfig(llama({ hidden_size: 64.5 }), FILE)).toThrow(/config\.json: hidden_size must be a positive integer \(got 64\.5\)/);
    expect(() => parseHfConfig(llama({ vocab_size: 0 }), FILE)).toThrow(/config\.json: vocab_size must be a positive integer \(got 0\)/);
    expect(() => parseHfConfig(llama({ num_hidden_layers: -2 }), FILE)).toThrow(/num_hidden_layers must be a positive integer \(got -2\)/);
    expect(() => parseHfConfig(llama({ intermediate_size: '160' }), FILE)).toThrow(/intermediate_size must be a positive integer \(got "160"\)/);
    expect(() => parseHfConfig(without(llama(), 'vocab_size'), FILE)).toThrow(/config\.json: missing required field vocab_size/);
    expect(() => parseHfConfig(llama({ rms_norm_eps: -1 }), FILE)).toThrow(/rms_norm_eps must be a positive number/);
    expect(() => parseHfConfig(llama({ tie_word_embeddings: 'yes' }), FILE)).toThrow(/config\.json: tie_word_embeddings must be true or false/);
  });

  it('head counts that do not divide', () => {
    expect(() => parseHfConfig(llama({ num_key_value_heads: 3 }), FILE)).toThrow(/num_attention_heads \(8\) is not divisible by num_key_value_heads \(3\)/);
    expect(() => parseHfConfig(mistral({ hidden_size: 66 }), FILE)).toThrow(/hidden_size \(66\) is not divisible by num_attention_heads \(4\) and head_dim is not set/);
    expect(() => parseHfConfig(llama({ hidden_size: 68, head_dim: 8 }), FILE)).toThrow(/hidden_size \(68\) is not divisible by num_attention_heads \(8\)/);
    expect(() => parseHfConfig(mistral({ head_dim: 15 }), FILE)).toThrow(/head_dim \(15\) must be even/);
  });

  it('a config that is not an object', () => {
    expect(() => parseHfConfig([llama()], FILE)).toThrow(/config\.json: config is not a JSON object/);
    expect(() => parseHfConfig(null, FILE)).toThrow(/config\.json: config is not a JSON object/);
  });
});

describe('modelConfigToHf', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['llama', llama()],
    ['llama with bias, linear rope, tied', llama({ attention_bias: true, rope_scaling: { rope_type: 'linear', factor: 4 }, tie_word_embeddings: true })],
    ['llama3 rope', llama({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } })],
    ['mistral full attention', mistral()],
    ['mistral sliding window', mistral({ sliding_window: 4096, head_dim: 32 })],
    ['qwen2', qwen2()],
  ];

  for (const [name, json] of cases) {
    it(`round trips through parseHfConfig: ${name}`, () => {
      const cfg = parseHfConfig(json, FILE);
      const hf = modelConfigToHf(cfg, 'bfloat16');
      expect(parseHfConfig(hf, 'out/config.json')).toEqual(cfg);
      // Every transformers 5 reader path sees the same theta.
      expect(hf.rope_theta).toBe(cfg.rope_theta);
      expect((hf.rope_parameters as Record<string, unknown>).rope_theta).toBe(cfg.rope_theta);
      expect(hf.architectures).toEqual([cfg.architecture]);
    });
  }

  it('writes the fields transformers reads, per architecture', () => {
    const l = modelConfigToHf(parseHfConfig(llama(), FILE), 'bfloat16', { bos_token_id: 1, eos_token_id: [2, 3] });
    expect(l).toMatchObject({
      model_type: 'llama',
      dtype: 'bfloat16',
      torch_dtype: 'bfloat16',
      hidden_act: 'silu',
      head_dim: 8,
      mlp_bias: false,
      attention_bias: false,
      pretraining_tp: 1,
      rope_scaling: null,
      rope_parameters: { rope_type: 'default', rope_theta: 500000 },
      bos_token_id: 1,
      eos_token_id: [2, 3],
    });
    expect(l).not.toHaveProperty('pad_token_id');
    const m = modelConfigToHf(parseHfConfig(mistral({ sliding_window: 4096 }), FILE), 'float32');
    expect(m).toMatchObject({ model_type: 'mistral', sliding_window: 4096, dtype: 'float32' });
    expect(m).not.toHaveProperty('attention_bias');
    expect(modelConfigToHf(parseHfConfig(mistral(), FILE), 'float16').sliding_window).toBeNull();
    const q = modelConfigToHf(parseHfConfig(qwen2(), FILE), 'bfloat16');
    expect(q).toMatchObject({ model_type: 'qwen2', use_sliding_window: false, sliding_window: null, max_window_layers: 3, tie_word_embeddings: true });
    const l3 = modelConfigToHf(parseHfConfig(llama({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }), FILE), 'bfloat16');
    expect(l3.rope_parameters).toEqual({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, rope_theta: 500000 });
  });

  it('refuses configs the architecture cannot express, and invalid sizes', () => {
    const m = parseHfConfig(mistral(), FILE);
    expect(() => modelConfigToHf({ ...m, attention_bias: true }, 'bfloat16')).toThrow(/MistralForCausalLM cannot express attention_bias/);
    const q = parseHfConfig(qwen2(), FILE);
    expect(() => modelConfigToHf({ ...q, qkv_bias: false }, 'bfloat16')).toThrow(/Qwen2ForCausalLM cannot express qkv_bias = false/);
    const l = parseHfConfig(llama(), FILE);
    expect(() => modelConfigToHf({ ...l, sliding_window: 128 }, 'bfloat16')).toThrow(/LlamaForCausalLM cannot express sliding_window 128/);
    expect(() => modelConfigToHf({ ...l, vocab_size: 0 }, 'bfloat16')).toThrow(/vocab_size must be a positive integer/);
  });
});

describe('loadHfConfig', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'rpo-config-'));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('reads <dir>/config.json', () => {
    const dir = path.join(root, 'ok');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(qwen2()));
    expect(loadHfConfig(dir).architecture).toBe('Qwen2ForCausalLM');
  });

  it('a missing config.json', () => {
    const dir = path.join(root, 'empty');
    mkdirSync(dir);
    expect(() => loadHfConfig(dir)).toThrow(/no config\.json in .*empty/);
  });

  it('invalid JSON, and errors that name the file', () => {
    const dir = path.join(root, 'bad');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'config.json'), '{"vocab_size": 12,');
    expect(() => loadHfConfig(dir)).toThrow(/bad\/config\.json: invalid JSON/);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(llama({ hidden_act: 'relu' })));
    expect(() => loadHfConfig(dir)).toThrow(/bad\/config\.json: unsupported option hidden_act "relu"/);
  });
});
