// The engine's option structs, declared once. scripts/gen-boundary.mjs derives from this file
// the C++ structs (native/gen/options.h, included by native/api.h), their N-API readers and
// writers (native/gen/options_js.{h,inc}, used by the binding) and the TypeScript types
// (lib/gen/options.ts, re-exported by lib/native.ts). A field is added here and nowhere else.
//
// A struct: `name`; `where` (how the binding's errors name it: "trainer options: `seed` ...");
// `keys`: 'camel' (chunk_tokens is chunkTokens in JS) or 'snake' (as in C++); `optional`: an
// absent or null argument is the defaults; `toJs`: the engine also hands it back to JS (its TS
// fields are then all present, except those written only `when` a condition holds).
//
// A field: `name` (C++), `type`, `default` (C++ and TS doc), `doc` (one line), and:
// - type: string | number (double) | bool | int (int64_t) | uint (uint64_t) | ints
//   (std::vector<int64_t>) | strings (std::vector<std::string>) | enum:<Name> (a string of
//   ENUMS[Name]) | struct:<Name>;
// - required: JS must give it (no default);
// - min / max: an integer's range (default ± Number.MAX_SAFE_INTEGER; 'INT32': 2^31 - 1),
//   checked where it crosses into the engine;
// - checked: an enum the binding checks (others are the engine's to refuse, with its message);
// - js: the JS key when the struct's `keys` rule does not give it;
// - when: [field, value]: written back to JS only when that field has that value.
import { LOSSES, LOSS_PARAMS } from './losses.mjs';

export const ENUMS = {
  Architecture: ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPTNeoXForCausalLM'],
  RopeType: ['none', 'linear', 'llama3'],
  Dtype: ['float32', 'bfloat16', 'float16'],
  LoraInit: ['kaiming', 'gaussian'],
  LossName: LOSSES.map((l) => l.name),
  RationaleForm: ['code', 'paper'],
  RationaleTerm: ['none', 'logsigmoid', 'linear'],
  OptimizerName: ['AdamW', 'RMSprop'],
  // The engine also takes "" (the policy's own dtype, pure); TS callers leave the key out.
  TrainPrecision: ['fp32', 'bf16-pure', 'bf16-mixed', 'bf16-sr'],
};

const GPT_NEOX = ['architecture', 'GPTNeoXForCausalLM'];

export const STRUCTS = [
  {
    name: 'RopeScaling', doc: '`rope_scaling` from config.json; rope_type "none" when absent.', where: 'model config rope_scaling', keys: 'snake', toJs: true,
    fields: [
      { name: 'rope_type', type: 'enum:RopeType', default: 'none', checked: true, doc: 'none | linear | llama3' },
      { name: 'factor', type: 'number', default: 1.0, doc: 'positions are divided by it (linear; llama3 on low frequencies)' },
      { name: 'low_freq_factor', type: 'number', default: 1.0, doc: 'llama3' },
      { name: 'high_freq_factor', type: 'number', default: 4.0, doc: 'llama3' },
      { name: 'original_max_position_embeddings', type: 'int', default: 8192, min: 1, doc: 'llama3' },
    ],
  },
  {
    name: 'ModelConfig', doc: 'A validated HF config.json (lib/model/config.ts validates; this is the plain result).', where: 'model config', keys: 'snake', toJs: true,
    fields: [
      { name: 'architecture', type: 'enum:Architecture', required: true, doc: 'the HF architectures entry' },
      // Sizes: the engine says which must be positive; here only what a cast needs.
      { name: 'vocab_size', type: 'int', required: true, min: 0, max: 'INT32', doc: 'token ids are int32' },
      { name: 'hidden_size', type: 'int', required: true, min: 0, doc: '' },
      { name: 'intermediate_size', type: 'int', required: true, min: 0, doc: '' },
      { name: 'num_hidden_layers', type: 'int', required: true, min: 0, doc: '' },
      { name: 'num_attention_heads', type: 'int', required: true, min: 0, doc: '' },
      { name: 'num_key_value_heads', type: 'int', required: true, min: 0, doc: '' },
      { name: 'head_dim', type: 'int', required: true, min: 0, doc: '' },
      { name: 'rms_norm_eps', type: 'number', required: true, default: 1e-6, doc: '' },
      { name: 'rope_theta', type: 'number', required: true, default: 10000.0, doc: '' },
      { name: 'rope_scaling', type: 'struct:RopeScaling', doc: 'absent: none' },
      { name: 'tie_word_embeddings', type: 'bool', default: false, doc: '' },
      { name: 'attention_bias', type: 'bool', default: false, doc: 'Llama: q, k, v and o projections carry a bias; GPTNeoX: query_key_value and dense do' },
      { name: 'qkv_bias', type: 'bool', default: false, doc: 'Qwen2: q, k and v carry a bias, o does not' },
      { name: 'sliding_window', type: 'int', default: 0, min: 0, doc: 'Mistral: 0 = full attention' },
      { name: 'max_position_embeddings', type: 'int', default: 0, min: 0, doc: '' },
      { name: 'initializer_range', type: 'number', default: 0.02, doc: 'the std of random weights' },
      { name: 'layer_norm_eps', type: 'number', default: 1e-5, when: GPT_NEOX, doc: 'GPTNeoX: LayerNorm epsilon' },
      { name: 'rotary_pct', type: 'number', default: 1.0, when: GPT_NEOX, doc: 'GPTNeoX: share of each head\'s dims that are rotated (partial_rotary_factor)' },
      { name: 'use_parallel_residual', type: 'bool', default: true, when: GPT_NEOX, doc: 'GPTNeoX: x + attn(ln1(x)) + mlp(ln2(x)), else sequential residuals' },
    ],
  },
  {
    name: 'InitOptions', doc: 'How Model.create allocates the weights.', where: 'model options', keys: 'camel', optional: true,
    fields: [
      { name: 'dtype', type: 'enum:Dtype', default: 'float32', doc: 'float32 | bfloat16 | float16' },
      { name: 'device', type: 'string', default: 'cpu', doc: 'cpu | cuda | cuda:N' },
      { name: 'seed', type: 'uint', default: 0, min: 0, doc: 'seeds the random weights' },
      { name: 'init', type: 'bool', default: true, doc: 'false: allocate the weights without writing them, for load() to fill next (no random draw, no page touched before the checkpoint\'s bytes land in it)' },
    ],
  },
  {
    name: 'LogpOptions', doc: 'How Model.logprobs computes per-row log-probs.', where: 'log-prob options', keys: 'camel', optional: true,
    fields: [
      { name: 'chunk_tokens', type: 'int', default: 1024, min: 1, doc: 'label positions per logits chunk (fused path)' },
      { name: 'naive', type: 'bool', default: false, doc: 'full [rows, T, vocab] logits: the reference path' },
      { name: 'adapters', type: 'bool', default: true, doc: 'false: LoRA adapters off (the base model\'s log-probs)' },
    ],
  },
  {
    name: 'LoraOptions', doc: 'LoRA adapters (model/lora.h; PEFT\'s LoraConfig names in the docs).', where: 'lora options', keys: 'camel',
    fields: [
      { name: 'r', type: 'int', required: true, default: 8, min: 1, max: 'INT32', doc: 'the adapters\' rank' },
      { name: 'alpha', type: 'number', required: true, default: 8.0, doc: 'lora_alpha' },
      { name: 'dropout', type: 'number', default: 0.0, doc: 'lora_dropout' },
      { name: 'target_modules', type: 'strings', required: true, doc: 'module-name suffixes (q_proj, ...) or ["all-linear"]' },
      { name: 'rslora', type: 'bool', default: false, doc: 'use_rslora: scaling alpha / sqrt(r) instead of alpha / r' },
      { name: 'init', type: 'enum:LoraInit', default: 'kaiming', doc: 'kaiming: PEFT\'s default (A kaiming-uniform(a=sqrt 5), B zeros); gaussian: A normal(0, 1/r)' },
      { name: 'seed', type: 'uint', default: 0, min: 0, doc: 'seeds A' },
    ],
  },
  {
    name: 'LossConfig', doc: 'A loss and its parameters (boundary/losses.mjs declares both; native/loss/table.cpp computes them).', where: 'loss config', keys: 'snake',
    fields: [
      { name: 'name', type: 'enum:LossName', required: true, default: 'dpo', doc: 'a row of the loss table' },
      { name: 'rationale_form', type: 'enum:RationaleForm', default: 'code', checked: true, doc: 'rdpo: code = -log sigmoid(gamma pi_r); paper = -gamma pi_r' },
      { name: 'rationale', type: 'enum:RationaleTerm', default: 'none', doc: 'the rationale term of a paired loss: none | logsigmoid | linear (rdpo, rorpo and rorpo-simple fix their own)' },
      ...Object.entries(LOSS_PARAMS).map(([name, p]) => ({ name, type: p.type, default: p.default, min: p.type === 'int' ? p.min : undefined, doc: p.doc })),
    ],
  },
  {
    name: 'GenerateOptions', doc: 'Model.generate\'s sampling and stopping.', where: 'generate options', keys: 'camel',
    fields: [
      { name: 'max_new_tokens', type: 'int', default: 0, min: 0, doc: 'new tokens at most; 0: bounded by max_length only' },
      { name: 'max_length', type: 'int', default: 0, min: 0, doc: 'each prompt\'s own length + its response (docs/departures.md); 0: none' },
      { name: 'prompt_max_new_tokens', type: 'ints', min: 1, max: 'INT32', doc: 'per prompt (one each, or none): its new tokens at most, in place of max_new_tokens (benchmarks\' spread stop points)' },
      { name: 'do_sample', type: 'bool', default: true, doc: 'false: greedy' },
      { name: 'temperature', type: 'number', default: 1.0, doc: '' },
      { name: 'top_p', type: 'number', default: 1.0, doc: '' },
      { name: 'top_k', type: 'int', default: 0, min: 0, doc: '0: off' },
      { name: 'repetition_penalty', type: 'number', default: 1.0, doc: 'transformers\' RepetitionPenaltyLogitsProcessor; 1: off' },
      // Token ids: whether they are inside the vocabulary is the model's check (Model::generate).
      { name: 'stop_token_ids', type: 'ints', min: 0, max: 'INT32', doc: 'EOS and extra stop tokens; the stop token is not returned' },
      { name: 'pad_token_id', type: 'int', default: 0, min: 0, max: 'INT32', doc: '' },
      { name: 'seed', type: 'uint', default: 0, min: 0, doc: 'with the prompt\'s index, its sampling stream\'s key' },
      { name: 'slots', type: 'int', default: 0, min: 0, doc: 'rows decoded at once (continuous batching: a finished row\'s slot takes the next prompt); 0: every prompt at once' },
      { name: 'first_prompt_index', type: 'int', default: 0, min: 0, doc: 'the first prompt\'s index in the whole job: prompt i samples from the stream of (seed, first_prompt_index + i)' },
      { name: 'use_cache', type: 'bool', default: true, doc: 'false: recompute the whole sequence each step (the reference for the KV cache)' },
    ],
  },
  {
    name: 'TrainerOptions', doc: 'A Trainer\'s loss, optimizer and precision.', where: 'trainer options', keys: 'camel',
    fields: [
      { name: 'loss', type: 'struct:LossConfig', required: true, doc: '' },
      { name: 'optimizer', type: 'enum:OptimizerName', default: 'AdamW', doc: 'AdamW | RMSprop' },
      { name: 'weight_decay', type: 'number', default: -1.0, doc: '< 0: the torch default for the optimizer' },
      { name: 'precision', type: 'enum:TrainPrecision', default: '', doc: 'how the policy trains (docs/precision.md), checked against its dtype; "": the policy\'s own dtype, pure (fp32, bf16-pure, fp16-pure)' },
      { name: 'fused_adamw', js: 'fusedAdamW', type: 'bool', default: true, doc: 'false: torch::optim::AdamW\'s per-parameter loop instead of the fused kernel (tests)' },
      // A negative seed wraps (two's complement).
      { name: 'seed', type: 'uint', default: 0, min: '-SAFE', doc: 'bf16-sr: seeds the stochastic-rounding bits' },
      { name: 'activation_checkpointing', type: 'bool', default: false, doc: '' },
      { name: 'chunk_tokens', type: 'int', default: 1024, min: 1, doc: 'label positions per logits chunk' },
      { name: 'naive_logprobs', type: 'bool', default: false, doc: 'full-logits reference head instead of the fused one (tests)' },
      { name: 'padding_free', type: 'bool', default: true, doc: 'each micro-batch\'s rows packed into one sequence without padding (model/packed.h); false: padded to the longest row' },
    ],
  },
];
