// GPTNeoX config.json <-> ModelConfig: the transformers 4 form Pythia's hub files use, the
// transformers 5 form (rope_parameters), GPTNeoXConfig's defaults, and the options refused by name.
import { describe, expect, it } from 'vitest';

import { modelConfigToHf, parseHfConfig } from '../../lib/model/config.js';
import { checkTensorsAgainstParams } from '../../lib/model/safetensors.js';
import type { TensorSpec } from '../../lib/native.js';

const FILE = '/models/pythia/config.json';

/** EleutherAI/pythia-1.4b's published config.json (transformers 4.24 form). */
function pythia14b(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['GPTNeoXForCausalLM'],
    bos_token_id: 0,
    eos_token_id: 0,
    hidden_act: 'gelu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 2048,
    model_type: 'gpt_neox',
    num_attention_heads: 16,
    num_hidden_layers: 24,
    rotary_emb_base: 10000,
    rotary_pct: 0.25,
    tie_word_embeddings: false,
    torch_dtype: 'float16',
    transformers_version: '4.24.0',
    use_cache: true,
    use_parallel_residual: true,
    vocab_size: 50304,
    ...over,
  };
}

describe('GPTNeoX config.json', () => {
  it("reads Pythia's transformers 4 file", () => {
    expect(parseHfConfig(pythia14b(), FILE)).toMatchObject({
      architecture: 'GPTNeoXForCausalLM',
      vocab_size: 50304,
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      head_dim: 128,
      rope_theta: 10000,
      rotary_pct: 0.25,
      layer_norm_eps: 1e-5,
      use_parallel_residual: true,
      attention_bias: true,
      qkv_bias: false,
      tie_word_embeddings: false,
      sliding_window: 0,
    });
  });

  it("reads transformers 5's rope_parameters, which win over rotary_pct / rotary_emb_base", () => {
    const cfg = parseHfConfig(
      pythia14b({ rope_parameters: { rope_type: 'default', rope_theta: 500, partial_rotary_factor: 0.5 }, rotary_pct: 0.25, rotary_emb_base: 10000 }),
      FILE,
    );
    expect(cfg).toMatchObject({ rope_theta: 500, rotary_pct: 0.5 });
  });

  it("takes GPTNeoXConfig's defaults for absent fields (rotary_pct 0.25, parallel residual, biases)", () => {
    const o = pythia14b();
    for (const k of ['rotary_pct', 'rotary_emb_base', 'use_parallel_residual', 'layer_norm_eps', 'hidden_act', 'max_position_embeddings']) delete o[k];
    expect(parseHfConfig(o, FILE)).toMatchObject({ rotary_pct: 0.25, rope_theta: 10000, use_parallel_residual: true, layer_norm_eps: 1e-5, max_position_embeddings: 2048, attention_bias: true });
    delete o.architectures;
    expect(parseHfConfig(o, FILE).architecture).toBe('GPTNeoXForCausalLM'); // from model_type
  });

  it('refuses what the engine does not implement, by name', () => {
    expect(() => parseHfConfig(pythia14b({ hidden_act: 'gelu_new' }), FILE)).toThrow(/hidden_act "gelu_new"; GPTNeoX supports only "gelu"/);
    expect(() => parseHfConfig(pythia14b({ hidden_dropout: 0.1 }), FILE)).toThrow(/hidden_dropout 0.1/);
    expect(() => parseHfConfig(pythia14b({ rope_scaling: { type: 'linear', factor: 2 } }), FILE)).toThrow(/unsupported rope_scaling type "linear"/);
    // 128 × 0.3 = 38.4 → 38 rotated dims is fine; 128 × 0.01 → 1 is odd.
    expect(parseHfConfig(pythia14b({ rotary_pct: 0.3 }), FILE).rotary_pct).toBe(0.3);
    expect(() => parseHfConfig(pythia14b({ rotary_pct: 0.01 }), FILE)).toThrow(/gives 1 rotary dims/);
    expect(() => parseHfConfig(pythia14b({ hidden_size: 2050 }), FILE)).toThrow(/not divisible by num_attention_heads/);
    expect(() => parseHfConfig(pythia14b({ model_type: 'llama' }), FILE)).toThrow(/architectures says GPTNeoXForCausalLM but model_type is "llama"/);
  });

  it('writes both rotary forms, which read back to the same config', () => {
    const cfg = parseHfConfig(pythia14b({ use_parallel_residual: false, rotary_pct: 0.5, tie_word_embeddings: true }), FILE);
    const hf = modelConfigToHf(cfg, 'bfloat16', { bos_token_id: 0, eos_token_id: 0 });
    expect(hf).toMatchObject({
      architectures: ['GPTNeoXForCausalLM'],
      model_type: 'gpt_neox',
      rotary_pct: 0.5,
      rotary_emb_base: 10000,
      rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 },
      use_parallel_residual: false,
      tie_word_embeddings: true,
      hidden_act: 'gelu',
      eos_token_id: 0,
    });
    expect(parseHfConfig(hf, FILE)).toEqual(cfg);
    // Either form alone means the same.
    const v4 = { ...hf };
    delete v4.rope_parameters;
    expect(parseHfConfig(v4, FILE)).toEqual(cfg);
    const v5 = { ...hf };
    delete v5.rotary_pct;
    delete v5.rotary_emb_base;
    expect(parseHfConfig(v5, FILE)).toEqual(cfg);
  });
});

describe('GPTNeoX checkpoints', () => {
  const spec = (name: string, shape: number[], dtype = 'F16'): TensorSpec => ({ name, file: '/ck/model.safetensors', dtype, shape, begin: 0, end: 0 });
  const param = (name: string, shape: number[]) => ({ name, dtype: 'F32', shape, nbytes: 4 * shape.reduce((a, b) => a * b, 1) });

  it("skips older files' causal-mask buffers and a tied head's copy, as transformers does, and nothing else", () => {
    const params = [param('gpt_neox.embed_in.weight', [8, 4]), param('gpt_neox.layers.0.attention.query_key_value.bias', [12])];
    const tensors = [
      spec('gpt_neox.embed_in.weight', [8, 4]),
      spec('gpt_neox.layers.0.attention.query_key_value.bias', [12]),
      spec('gpt_neox.layers.0.attention.bias', [1, 1, 16, 16], 'BOOL'),
      spec('gpt_neox.layers.0.attention.masked_bias', [], 'F32'),
      spec('gpt_neox.layers.0.attention.rotary_emb.inv_freq', [2], 'F32'),
      spec('embed_out.weight', [8, 4]),
    ];
    const r = checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: true });
    expect(r.load.map((t) => t.name)).toEqual(params.map((p) => p.name));
    expect(r.ignored.length).toBe(4);
    // Untied, embed_out is a parameter the model must have; a stray attention.bias elsewhere is not skipped.
    expect(() => checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false })).toThrow(/unexpected 1 tensor .*embed_out\.weight/);
    expect(() => checkTensorsAgainstParams([...tensors, spec('gpt_neox.layers.0.mlp.bias', [4])], params, { tieWordEmbeddings: true })).toThrow(/gpt_neox\.layers\.0\.mlp\.bias/);
  });
});
