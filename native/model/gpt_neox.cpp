#include "model/gpt_neox.h"

#include <ATen/ATen.h>

#include <cmath>

#include "model/checkpoint.h"
#include "model/packed.h"
#include "parallel/zero3_units.h"

namespace rpo {

int64_t neox_rotary_ndims(const ModelConfig& cfg) {
  return static_cast<int64_t>(static_cast<double>(cfg.head_dim) * cfg.rotary_pct);
}

// ---------------------------------------------------------------- LayerNorm

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, const at::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", at::empty({dim}, options));
  bias = register_parameter("bias", at::empty({dim}, options));
}

// The same ATen op nn.LayerNorm calls (statistics in fp32 for bf16 inputs, in the kernel).
at::Tensor LayerNormImpl::forward(const at::Tensor& x) { return at::layer_norm(x, {weight.size(0)}, weight, bias, eps); }

// ---------------------------------------------------------------- attention

NeoXAttentionImpl::NeoXAttentionImpl(const ModelConfig& cfg, const at::TensorOptions& options)
    : num_heads(cfg.num_attention_heads), head_dim(cfg.head_dim), rotary_ndims(neox_rotary_ndims(cfg)) {
  const int64_t inner = num_heads * head_dim;
  query_key_value = register_module("query_key_value", Dense(cfg.hidden_size, 3 * inner, cfg.attention_bias, options));
  dense = register_module("dense", Dense(inner, cfg.hidden_size, cfg.attention_bias, options));
}

static at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor NeoXAttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                      const at::Tensor& mask, LayerCache* cache, const PackedRows* packed) {
  const int64_t rows = x.size(0), T = x.size(1);
  // [rows, T, heads, 3 d] -> [rows, heads, T, 3 d]: each head's q, k, v are adjacent (HF's layout).
  // One split (HF's chunk): its backward concatenates dq, dk, dv into one buffer, where three
  // narrows would each build a zero-filled buffer of the whole projection and add them up.
  auto qkv = query_key_value(x).view({rows, T, num_heads, 3 * head_dim}).transpose(1, 2).chunk(3, -1);
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  auto rope = [&](const at::Tensor& t) {
    if (rotary_ndims == head_dim) return t * c + rotate_half(t) * s;
    auto rot = t.narrow(-1, 0, rotary_ndims);
    return at::cat({rot * c + rotate_half(rot) * s, t.narrow(-1, rotary_ndims, head_dim - rotary_ndims)}, -1);
  };
  q = rope(q);
  k = rope(k);
  if (cache) std::tie(k, v) = cache->append(k, v);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto out = packed            ? packed_attention(q, k, v, *packed, /*sliding_window=*/0, scale)
             : mask.defined() ? at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale)
                            : at::scaled_dot_product_attention(q, k, v, std::nullopt, 0.0, /*is_causal=*/T > 1, scale);
  return dense(out.transpose(1, 2).reshape({rows, T, num_heads * head_dim}));
}

// ---------------------------------------------------------------- MLP and layer

NeoXMLPImpl::NeoXMLPImpl(const ModelConfig& cfg, const at::TensorOptions& options) {
  dense_h_to_4h = register_module("dense_h_to_4h", Dense(cfg.hidden_size, cfg.intermediate_size, true, options));
  dense_4h_to_h = register_module("dense_4h_to_h", Dense(cfg.intermediate_size, cfg.hidden_size, true, options));
}

// hidden_act "gelu": the exact (erf) form, as ACT2FN["gelu"].
at::Tensor NeoXMLPImpl::forward(const at::Tensor& x) { return dense_4h_to_h(at::gelu(dense_h_to_4h(x))); }

NeoXLayerImpl::NeoXLayerImpl(const ModelConfig& cfg, const at::TensorOptions& options)
    : parallel_residual(cfg.use_parallel_residual) {
  // Registration order = HF's, so a saved file lists tensors as transformers' does.
  input_layernorm = register_module("input_layernorm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, options));
  post_attention_layernorm =
      register_module("post_attention_layernorm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, options));
  attention = register_module("attention", NeoXAttention(cfg, options));
  mlp = register_module("mlp", NeoXMLP(cfg, options));
}

at::Tensor NeoXLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& mask, LayerCache* cache, const PackedRows* packed) {
  auto attn = attention(input_layernorm(x), cos, sin, mask, cache, packed);
  // HF's sums, in HF's order (mlp + attn + x), so float rounding matches too.
  if (parallel_residual) return mlp(post_attention_layernorm(x)) + attn + x;
  auto h = attn + x;
  return mlp(post_attention_layernorm(h)) + h;
}

NeoXModelImpl::NeoXModelImpl(const ModelConfig& cfg, const at::TensorOptions& options) {
  embed_in = register_module("embed_in", TokenEmbedding(cfg.vocab_size, cfg.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(NeoXLayer(cfg, options));
  final_layer_norm = register_module("final_layer_norm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, options));
}

// ---------------------------------------------------------------- causal LM

GPTNeoXForCausalLMImpl::GPTNeoXForCausalLMImpl(const ModelConfig& cfg, const at::TensorOptions& options)
    : config(cfg) {
  // Llama's rotary (same inv_freq, scaling and tables) over the rotated dims.
  ModelConfig rotated = cfg;
  rotated.head_dim = neox_rotary_ndims(cfg);
  rotary = make_rotary(rotated, options.device());
  gpt_neox = register_module("gpt_neox", NeoXModel(cfg, options));
  if (!cfg.tie_word_embeddings)
    embed_out = register_module("embed_out", Dense(cfg.hidden_size, cfg.vocab_size, false, options));
}

at::Tensor GPTNeoXForCausalLMImpl::output_weight() const {
  return embed_out ? embed_out->weight : gpt_neox->embed_in->weight;
}

at::Tensor GPTNeoXForCausalLMImpl::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                                 const ForwardOptions& opts) {
  const int64_t T = input_ids.size(1);
  if (rotary.inv_freq.device() != input_ids.device()) rotary.inv_freq = rotary.inv_freq.to(input_ids.device());
  auto positions = forward_positions(attention_mask, T, opts);
  auto h = gpt_neox->embed_in(input_ids.to(at::kLong));
  auto [cos, sin] = rotary.tables(positions, h.scalar_type());
  auto mask = forward_mask(attention_mask, T, /*sliding_window=*/0, opts);
  for (size_t i = 0; i < gpt_neox->layers->size(); ++i) {
    auto layer = gpt_neox->layers->ptr<NeoXLayerImpl>(i);
    LayerCache* cache = opts.cache ? &(*opts.cache)[i] : nullptr;
    if (cache) cache->forward = opts.slots;  // where this forward's keys and values go
    if (param_units && !cache) {
      // ZeRO-3 gathers the layer around its forward and its recompute; the packed rows are held by
      // the recompute, which runs after this forward has returned.
      h = param_units->layer(i, [=, packed = opts.packed](const at::Tensor& x) { return layer->forward(x, cos, sin, mask, nullptr, packed.get()); }, h,
                             opts.activation_checkpointing && at::GradMode::is_enabled(), opts.preserve_rng);
    } else if (opts.activation_checkpointing && !cache && at::GradMode::is_enabled()) {
      // The packed rows are held by the recompute, which runs after this forward has returned.
      h = checkpointed([=, packed = opts.packed](const at::Tensor& x) { return layer->forward(x, cos, sin, mask, nullptr, packed.get()); },
                       h, opts.preserve_rng);
    } else {
      h = layer->forward(h, cos, sin, mask, cache, opts.packed.get());
    }
  }
  return gpt_neox->final_layer_norm(h);
}

}  // namespace rpo
