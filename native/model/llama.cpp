#include "model/llama.h"

#include <ATen/ATen.h>

#include <cmath>

#include "model/checkpoint.h"

namespace rpo {

using torch::nn::Linear;
using torch::nn::LinearOptions;

// ---------------------------------------------------------------- RMSNorm

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto h = x.to(at::kFloat);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

// ---------------------------------------------------------------- rotary

// inv_freq exactly as transformers' ROPE_INIT_FUNCTIONS compute it, in fp32.
Rotary make_rotary(const ModelConfig& cfg, const at::Device& device) {
  const int64_t dim = cfg.head_dim;
  auto exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  auto inv_freq = 1.0 / at::pow(cfg.rope_theta, exponents);
  const auto& rs = cfg.rope_scaling;
  if (rs.rope_type == "linear") {
    inv_freq = inv_freq / rs.factor;
  } else if (rs.rope_type == "llama3") {
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / rs.low_freq_factor;
    const double high_freq_wavelen = old_len / rs.high_freq_factor;
    auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
    auto smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    inv_freq = at::where(is_medium, smoothed, scaled);
  }
  return Rotary{inv_freq.to(device)};
}

std::pair<at::Tensor, at::Tensor> Rotary::tables(const at::Tensor& position_ids, at::ScalarType dtype) const {
  // [rows, T, 1] * [dim/2] — the same single product per element as HF's matmul form.
  auto freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq;
  auto emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

static at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  return at::cat({-x2, x1}, -1);
}

// ---------------------------------------------------------------- masks and positions

at::Tensor position_ids_from_mask(const at::Tensor& attention_mask) {
  return (attention_mask.to(at::kLong).cumsum(-1) - 1).clamp_min(0);
}

at::Tensor attention_mask_4d(const at::Tensor& attention_mask, int64_t query_length, int64_t sliding_window) {
  const int64_t rows = attention_mask.size(0);
  const int64_t key_length = attention_mask.size(1);
  const int64_t past = key_length - query_length;
  auto opts = at::TensorOptions().dtype(at::kLong).device(attention_mask.device());
  auto q_pos = at::arange(past, key_length, opts).view({query_length, 1});
  auto k_pos = at::arange(0, key_length, opts).view({1, key_length});
  auto allowed = k_pos <= q_pos;  // causal
  if (sliding_window > 0) allowed = allowed.logical_and(q_pos - k_pos < sliding_window);
  auto key_valid = attention_mask.to(at::kBool).view({rows, 1, 1, key_length});
  auto mask = allowed.view({1, 1, query_length, key_length}).logical_and(key_valid);
  // A padded query whose every key is masked would give softmax(-inf...) = NaN; let it see
  // itself. Real tokens always see themselves anyway, so their outputs are unchanged.
  return mask.logical_or((k_pos == q_pos).view({1, 1, query_length, key_length}));
}

// ---------------------------------------------------------------- attention

AttentionImpl::AttentionImpl(const ModelConfig& cfg)
    : num_heads(cfg.num_attention_heads), num_kv_heads(cfg.num_key_value_heads), head_dim(cfg.head_dim) {
  const bool qkv_bias = cfg.attention_bias || cfg.qkv_bias;
  const bool o_bias = cfg.attention_bias;
  q_proj = register_module("q_proj", Linear(LinearOptions(cfg.hidden_size, num_heads * head_dim).bias(qkv_bias)));
  k_proj = register_module("k_proj", Linear(LinearOptions(cfg.hidden_size, num_kv_heads * head_dim).bias(qkv_bias)));
  v_proj = register_module("v_proj", Linear(LinearOptions(cfg.hidden_size, num_kv_heads * head_dim).bias(qkv_bias)));
  o_proj = register_module("o_proj", Linear(LinearOptions(num_heads * head_dim, cfg.hidden_size).bias(o_bias)));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& mask, LayerCache* cache) {
  const int64_t rows = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({rows, T, num_heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({rows, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({rows, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (cache) {
    if (cache->key.defined()) {
      k = at::cat({cache->key, k}, 2);
      v = at::cat({cache->value, v}, 2);
    }
    cache->key = k;
    cache->value = v;
  }
  const int64_t n_rep = num_heads / num_kv_heads;
  if (n_rep > 1) {  // HF repeat_kv: query head h reads kv head h / n_rep
    k = k.repeat_interleave(n_rep, 1);
    v = v.repeat_interleave(n_rep, 1);
  }
  auto out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, 1.0 / std::sqrt(static_cast<double>(head_dim)));
  return o_proj(out.transpose(1, 2).reshape({rows, T, num_heads * head_dim}));
}

// ---------------------------------------------------------------- MLP and layer

MLPImpl::MLPImpl(const ModelConfig& cfg) {
  gate_proj = register_module("gate_proj", Linear(LinearOptions(cfg.hidden_size, cfg.intermediate_size).bias(false)));
  up_proj = register_module("up_proj", Linear(LinearOptions(cfg.hidden_size, cfg.intermediate_size).bias(false)));
  down_proj = register_module("down_proj", Linear(LinearOptions(cfg.intermediate_size, cfg.hidden_size).bias(false)));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) { return down_proj(at::silu(gate_proj(x)) * up_proj(x)); }

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& cfg) {
  self_attn = register_module("self_attn", Attention(cfg));
  mlp = register_module("mlp", MLP(cfg));
  input_layernorm = register_module("input_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& mask, LayerCache* cache) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, mask, cache);
  return h + mlp(post_attention_layernorm(h));
}

DecoderImpl::DecoderImpl(const ModelConfig& cfg) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(cfg.vocab_size, cfg.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(DecoderLayer(cfg));
  norm = register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
}

// ---------------------------------------------------------------- causal LM

CausalLMImpl::CausalLMImpl(const ModelConfig& cfg) : config(cfg) {
  rotary = make_rotary(cfg, at::kCPU);
  model = register_module("model", Decoder(cfg));
  if (!cfg.tie_word_embeddings) {
    lm_head = register_module("lm_head", Linear(LinearOptions(cfg.hidden_size, cfg.vocab_size).bias(false)));
  }
}

at::Tensor CausalLMImpl::output_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor CausalLMImpl::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                       const ForwardOptions& opts) {
  const int64_t T = input_ids.size(1);
  if (rotary.inv_freq.device() != input_ids.device()) rotary.inv_freq = rotary.inv_freq.to(input_ids.device());
  auto positions = position_ids_from_mask(attention_mask).narrow(1, opts.past_length, T);
  auto h = model->embed_tokens(input_ids.to(at::kLong));
  auto [cos, sin] = rotary.tables(positions, h.scalar_type());
  auto mask = attention_mask_4d(attention_mask, T, config.sliding_window);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers->ptr<DecoderLayerImpl>(i);
    LayerCache* cache = opts.cache ? &(*opts.cache)[i] : nullptr;
    if (opts.activation_checkpointing && !cache && at::GradMode::is_enabled()) {
      h = checkpointed([=](const at::Tensor& x) { return layer->forward(x, cos, sin, mask, nullptr); }, h);
    } else {
      h = layer->forward(h, cos, sin, mask, cache);
    }
  }
  return model->norm(h);
}

}  // namespace rpo
