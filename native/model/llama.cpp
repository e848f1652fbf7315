#include "model/llama.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "model/checkpoint.h"
#include "model/gemm.h"
#include "model/lora.h"
#include "model/packed.h"
#include "parallel/zero3_units.h"

namespace rpo {

// ---------------------------------------------------------------- Linear, embedding

DenseImpl::DenseImpl(int64_t in, int64_t out, bool with_bias, const at::TensorOptions& options) {
  weight = register_parameter("weight", at::empty({out, in}, options));
  if (with_bias) bias = register_parameter("bias", at::empty({out}, options));
}

at::Tensor DenseImpl::forward(const at::Tensor& x) {
  auto y = linear(x, weight, bias);
  if (lora && lora->state->enabled) y = y + lora->delta(x);
  return y;
}

TokenEmbeddingImpl::TokenEmbeddingImpl(int64_t vocab, int64_t dim, const at::TensorOptions& options) {
  weight = register_parameter("weight", at::empty({vocab, dim}, options));
}

at::Tensor TokenEmbeddingImpl::forward(const at::Tensor& ids) { return at::embedding(weight, ids); }

// ---------------------------------------------------------------- RMSNorm

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const at::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", at::empty({dim}, options));
}

// RPO_PLAIN_AUTOGRAD=1: RMSNorm and the MLP as plain ATen ops under autograd, the reference the
// lean functions below are tested against (read at each call).
static bool plain_autograd() {
  const char* env = std::getenv("RPO_PLAIN_AUTOGRAD");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

namespace {

// HF's RMSNorm, op for op, saving only x and the fp32 1/rms ([..., 1]) for backward: autograd on
// the plain ops would also keep the normalized fp32 tensor (and, for bf16 x, x's fp32 copy).
// Backward recomputes the normalized tensor and applies the chain rule autograd would.
struct RmsNormFunction : torch::autograd::Function<RmsNormFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    auto h = x.to(at::kFloat);
    auto rstd = at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
    ctx->save_for_backward({x, weight, rstd});
    return weight * (h * rstd).to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const auto& g = grads[0];
    auto h = x.to(at::kFloat);
    at::Tensor grad_w;
    if (ctx->needs_input_grad(1)) {
      auto normed = (h * rstd).to(x.scalar_type());
      std::vector<int64_t> dims(static_cast<size_t>(x.dim() - 1));
      for (int64_t i = 0; i < x.dim() - 1; ++i) dims[static_cast<size_t>(i)] = i;
      grad_w = (g * normed).sum(dims);
    }
    // y = h * rstd, rstd = (mean(h^2) + eps)^-1/2:  dh = rstd * gy - h * rstd^3 * mean(gy * h)
    auto gy = (g * weight).to(at::kFloat);
    auto dot = (gy * h).mean(-1, /*keepdim=*/true);
    auto grad_x = (gy * rstd).sub_(h * (rstd.pow(3) * dot)).to(x.scalar_type());
    return {grad_x, grad_w, at::Tensor()};
  }
};

// down(silu(a) * b) for the MLP's gate output a and up output b, saving a and b only: the
// product silu(a) * b ([tokens, intermediate], down's input) and silu(a) are recomputed in
// backward instead of kept, as autograd on the plain ops would keep both. Backward applies the
// same ops autograd would (silu_backward, the products' rules), so the numbers are the same.
struct SwiGluDownFunction : torch::autograd::Function<SwiGluDownFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                            const at::Tensor& w) {
    auto p = at::silu(a).mul_(b);
    auto y = product(p.reshape({-1, p.size(-1)}), w.t());
    ctx->save_for_backward({a, b, w});
    auto shape = a.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1], &w = saved[2];
    const int64_t inner = a.size(-1);
    auto g = grads[0].reshape({-1, w.size(0)});
    auto silu = at::silu(a);
    at::Tensor grad_w;
    if (ctx->needs_input_grad(2)) grad_w = product_over_tokens(g, (silu * b).reshape({-1, inner}));
    auto grad_p = product(g, w).view(a.sizes());
    at::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(1)) grad_b = grad_p * silu;
    silu = at::Tensor();
    if (ctx->needs_input_grad(0)) grad_a = at::silu_backward(grad_p.mul_(b), a);
    return {grad_a, grad_b, grad_w};
  }
};

}  // namespace

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  if (!plain_autograd()) return RmsNormFunction::apply(x, weight, eps);
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

at::Tensor forward_positions(const at::Tensor& attention_mask, int64_t T, const ForwardOptions& opts) {
  if (opts.slots) return opts.slots->position_ids;
  if (opts.packed) return opts.packed->position_ids;  // restarting at 0 for each row
  return position_ids_from_mask(attention_mask).narrow(1, opts.past_length, T);
}

at::Tensor forward_mask(const at::Tensor& attention_mask, int64_t T, int64_t sliding_window, const ForwardOptions& opts) {
  if (opts.slots) return opts.slots->mask;
  if (opts.packed) return at::Tensor();  // packed_attention keeps each row to itself
  const int64_t key_length = opts.past_length + T;
  const bool window_cuts = sliding_window > 0 && sliding_window < key_length;
  const char* force = std::getenv("RPO_SDPA_MASK");
  const bool forced = force != nullptr && std::strcmp(force, "1") == 0;
  const bool causal_only = opts.right_padded && !window_cuts && (opts.past_length == 0 || T == 1) && !forced;
  return causal_only ? at::Tensor() : attention_mask_4d(attention_mask, T, sliding_window);
}

// ---------------------------------------------------------------- attention

AttentionImpl::AttentionImpl(const ModelConfig& cfg, const at::TensorOptions& options)
    : num_heads(cfg.num_attention_heads),
      num_kv_heads(cfg.num_key_value_heads),
      head_dim(cfg.head_dim),
      sliding_window(cfg.sliding_window) {
  const bool qkv_bias = cfg.attention_bias || cfg.qkv_bias;
  const bool o_bias = cfg.attention_bias;
  q_proj = register_module("q_proj", Dense(cfg.hidden_size, num_heads * head_dim, qkv_bias, options));
  k_proj = register_module("k_proj", Dense(cfg.hidden_size, num_kv_heads * head_dim, qkv_bias, options));
  v_proj = register_module("v_proj", Dense(cfg.hidden_size, num_kv_heads * head_dim, qkv_bias, options));
  o_proj = register_module("o_proj", Dense(num_heads * head_dim, cfg.hidden_size, o_bias, options));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& mask, LayerCache* cache, const PackedRows* packed) {
  const int64_t rows = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({rows, T, num_heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({rows, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({rows, T, num_kv_heads, head_dim}).transpose(1, 2);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (cache) std::tie(k, v) = cache->append(k, v);
  const int64_t n_rep = num_heads / num_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  at::Tensor out;
  if (packed) {
    out = packed_attention(q, k, v, *packed, sliding_window, scale);
  } else if (!mask.defined()) {
    // Query head h reads kv head h / n_rep inside the kernel (enable_gqa); flash-eligible on CUDA.
    out = at::scaled_dot_product_attention(q, k, v, std::nullopt, 0.0, /*is_causal=*/T > 1, scale,
                                           /*enable_gqa=*/n_rep > 1);
  } else if (n_rep > 1 && q.is_cuda() && T > 1) {
    // CUDA, several queries: no fused kernel takes a mask with grouped heads (flash takes no mask,
    // memory-efficient no unequal head counts), so enable_gqa would fall to the math kernel and
    // materialize the [rows, heads, T, T] scores. HF's repeat_kv (query head h reads kv head
    // h / n_rep) keeps the memory-efficient kernel.
    out = at::scaled_dot_product_attention(q, k.repeat_interleave(n_rep, 1), v.repeat_interleave(n_rep, 1), mask, 0.0,
                                           false, scale);
  } else {
    // repeat_kv inside the kernel: on the CPU the copies of K and V made a decode-shaped call
    // 1.5 ms against 62 us without them (measured in PyTorch); a CUDA decode step (one query)
    // has small scores in any kernel.
    out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale, /*enable_gqa=*/n_rep > 1);
  }
  return o_proj(out.transpose(1, 2).reshape({rows, T, num_heads * head_dim}));
}

// ---------------------------------------------------------------- MLP and layer

MLPImpl::MLPImpl(const ModelConfig& cfg, const at::TensorOptions& options) {
  gate_proj = register_module("gate_proj", Dense(cfg.hidden_size, cfg.intermediate_size, false, options));
  up_proj = register_module("up_proj", Dense(cfg.hidden_size, cfg.intermediate_size, false, options));
  down_proj = register_module("down_proj", Dense(cfg.intermediate_size, cfg.hidden_size, false, options));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  // The fused function reads down_proj's weight alone: an adapted down_proj takes the plain path.
  const bool adapted_down = down_proj->lora && down_proj->lora->state->enabled;
  if (plain_autograd() || down_proj->bias.defined() || adapted_down) return down_proj(at::silu(gate_proj(x)) * up_proj(x));
  return SwiGluDownFunction::apply(gate_proj(x), up_proj(x), down_proj->weight);
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& cfg, const at::TensorOptions& options) {
  self_attn = register_module("self_attn", Attention(cfg, options));
  mlp = register_module("mlp", MLP(cfg, options));
  input_layernorm = register_module("input_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, options));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, options));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& mask, LayerCache* cache, const PackedRows* packed) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, mask, cache, packed);
  return h + mlp(post_attention_layernorm(h));
}

DecoderImpl::DecoderImpl(const ModelConfig& cfg, const at::TensorOptions& options) {
  embed_tokens = register_module("embed_tokens", TokenEmbedding(cfg.vocab_size, cfg.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(DecoderLayer(cfg, options));
  norm = register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, options));
}

// ---------------------------------------------------------------- causal LM

CausalLMImpl::CausalLMImpl(const ModelConfig& cfg, const at::TensorOptions& options) : config(cfg) {
  rotary = make_rotary(cfg, options.device());
  model = register_module("model", Decoder(cfg, options));
  if (!cfg.tie_word_embeddings) lm_head = register_module("lm_head", Dense(cfg.hidden_size, cfg.vocab_size, false, options));
}

at::Tensor CausalLMImpl::output_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor CausalLMImpl::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                       const ForwardOptions& opts) {
  const int64_t T = input_ids.size(1);
  if (rotary.inv_freq.device() != input_ids.device()) rotary.inv_freq = rotary.inv_freq.to(input_ids.device());
  auto positions = forward_positions(attention_mask, T, opts);
  auto h = model->embed_tokens(input_ids.to(at::kLong));
  auto [cos, sin] = rotary.tables(positions, h.scalar_type());
  auto mask = forward_mask(attention_mask, T, config.sliding_window, opts);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers->ptr<DecoderLayerImpl>(i);
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
  return model->norm(h);
}

}  // namespace rpo
