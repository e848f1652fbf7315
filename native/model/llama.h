// A Llama-family decoder (Llama, Mistral, Qwen2) written to match HF transformers'
// modeling_llama.py op for op. Module names equal the checkpoint keys, so
// named_parameters() yields "model.layers.0.self_attn.q_proj.weight", ...
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

#include "api.h"
#include "model/causal_lm.h"

namespace rpo {

// The modules allocate their parameters in the model's dtype and device without initializing
// them (torch::nn::Linear would draw a kaiming init in fp32 on the CPU first): Model.create
// fills them from a seed (init_weights), Model.load from a checkpoint.

struct LoraAdapter;  // model/lora.h

// A Linear layer: "weight" [out, in], "bias" [out] when `bias`. Products go through gemm.h.
// `lora`: a LoRA adapter added to the output while its model's adapters are on (model/lora.h).
struct DenseImpl : torch::nn::Module {
  DenseImpl(int64_t in, int64_t out, bool bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
  std::shared_ptr<LoraAdapter> lora;
};
TORCH_MODULE(Dense);

// A token embedding: "weight" [vocab, dim].
struct TokenEmbeddingImpl : torch::nn::Module {
  TokenEmbeddingImpl(int64_t vocab, int64_t dim, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& ids);
  at::Tensor weight;
};
TORCH_MODULE(TokenEmbedding);

// HF LlamaRMSNorm: the statistic is computed in fp32, the result cast back to the input
// dtype before the weight multiplies it.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
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

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  // mask: bool [rows, 1, Tq, Tk], true = may attend; undefined: causal attention needs no mask
  // (no query has a padded key before it, no sliding window cuts in, and Tq == Tk or Tq == 1):
  // one SDPA call with is_causal and grouped K/V, no [rows, 1, T, T] mask and no repeated K/V.
  // packed: x is [1, T] of packed rows (model/packed.h); mask and cache are not read.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache, const PackedRows* packed = nullptr);
  Dense q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, num_kv_heads, head_dim, sliding_window;
};
TORCH_MODULE(Attention);

struct MLPImpl : torch::nn::Module {
  MLPImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // down(silu(gate(x)) * up(x))
  Dense gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache, const PackedRows* packed = nullptr);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// "model.*" in the checkpoint: embeddings, layers, final norm.
struct DecoderImpl : torch::nn::Module {
  DecoderImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  TokenEmbedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

// LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM.
struct CausalLMImpl : CausalLMBase {
  CausalLMImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                           const ForwardOptions& opts) override;
  // The output projection's weight: lm_head.weight, or embed_tokens.weight when tied.
  at::Tensor output_weight() const override;

  ModelConfig config;
  Rotary rotary;
  Decoder model{nullptr};
  Dense lm_head{nullptr};  // null when tie_word_embeddings
};
TORCH_MODULE(CausalLM);

// bool [rows, 1, T, past + T]: causal, padding (key side), Mistral's sliding window, and
// always a query's own position so padded queries never see an empty row (no NaN).
at::Tensor attention_mask_4d(const at::Tensor& attention_mask, int64_t query_length, int64_t sliding_window);

// HF's position ids for a (possibly left-padded) batch: cumsum(mask) - 1, clamped at 0.
at::Tensor position_ids_from_mask(const at::Tensor& attention_mask);

// What every architecture's hidden_states runs a forward with (`attention_mask` [rows, past + T]):
// the T tokens' positions, and the attention mask, undefined where causal attention needs none
// (the caller vouches for right padding, and neither the sliding window nor a chunked prefill
// needs one; RPO_SDPA_MASK=1 always builds it, so tests can compare the two paths). A
// generation's forward (opts.slots) brings both.
at::Tensor forward_positions(const at::Tensor& attention_mask, int64_t T, const ForwardOptions& opts);
at::Tensor forward_mask(const at::Tensor& attention_mask, int64_t T, int64_t sliding_window, const ForwardOptions& opts);

}  // namespace rpo
