// A Llama-family decoder (Llama, Mistral, Qwen2) written to match HF transformers'
// modeling_llama.py op for op. Module names equal the checkpoint keys, so
// named_parameters() yields "model.layers.0.self_attn.q_proj.weight", ...
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "api.h"

namespace rpo {

// HF LlamaRMSNorm: the statistic is computed in fp32, the result cast back to the input
// dtype before the weight multiplies it.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary embedding tables for positions: cos and sin, [rows, T, head_dim], in `dtype`.
struct Rotary {
  at::Tensor inv_freq;  // [head_dim / 2], fp32, on the model's device
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& position_ids, at::ScalarType dtype) const;
};
Rotary make_rotary(const ModelConfig& cfg, const at::Device& device);

// Per-layer key/value cache for generation: [rows, kv_heads, cached, head_dim].
struct LayerCache {
  at::Tensor key, value;
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& cfg);
  // mask: bool [rows, 1, Tq, Tk], true = may attend.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;
};
TORCH_MODULE(Attention);

struct MLPImpl : torch::nn::Module {
  explicit MLPImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x);  // down(silu(gate(x)) * up(x))
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// "model.*" in the checkpoint: embeddings, layers, final norm.
struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const ModelConfig& cfg);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

struct ForwardOptions {
  bool activation_checkpointing = false;
  std::vector<LayerCache>* cache = nullptr;  // generation: appended to per layer
  int64_t past_length = 0;                   // tokens already in `cache`
};

// LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM.
struct CausalLMImpl : torch::nn::Module {
  explicit CausalLMImpl(const ModelConfig& cfg);
  // Final hidden states (after the last norm), [rows, T, hidden]. attention_mask: [rows,
  // past + T] of 0/1 (1 = real token).
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask, const ForwardOptions& opts);
  // The output projection's weight: lm_head.weight, or embed_tokens.weight when tied.
  at::Tensor output_weight() const;

  ModelConfig config;
  Rotary rotary;
  Decoder model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings
};
TORCH_MODULE(CausalLM);

// bool [rows, 1, T, past + T]: causal, padding (key side), Mistral's sliding window, and
// always a query's own position so padded queries never see an empty row (no NaN).
at::Tensor attention_mask_4d(const at::Tensor& attention_mask, int64_t query_length, int64_t sliding_window);

// HF's position ids for a (possibly left-padded) batch: cumsum(mask) - 1, clamped at 0.
at::Tensor position_ids_from_mask(const at::Tensor& attention_mask);

}  // namespace rpo
