// GPTNeoX (Pythia, GPT-NeoX-20B) written to match HF transformers' modeling_gpt_neox.py op for
// op. Module names equal the checkpoint keys: "gpt_neox.layers.0.attention.query_key_value.weight",
// ..., "embed_out.weight". What differs from the Llama family (llama.h):
//   - one fused query_key_value projection whose rows are grouped per head: head h owns rows
//     [3 h d, 3 h d + d) for q, the next d for k, the next d for v (d = head_dim);
//   - rotary embeddings on the first rotary_pct * head_dim dims of each head only;
//   - LayerNorm with a bias, a gelu MLP with biases, biased attention projections;
//   - the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) (use_parallel_residual), or the
//     sequential one h = x + attn(ln1(x)); h + mlp(ln2(h)).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "api.h"
#include "model/causal_lm.h"
#include "model/llama.h"  // Dense, TokenEmbedding, Rotary

namespace rpo {

// nn.LayerNorm: "weight" and "bias" [dim].
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

struct NeoXAttentionImpl : torch::nn::Module {
  NeoXAttentionImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  // cos, sin: [rows, T, rotary_ndims]; mask and packed as AttentionImpl's (undefined: causal, no padding).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache, const PackedRows* packed = nullptr);
  Dense query_key_value{nullptr}, dense{nullptr};
  int64_t num_heads, head_dim, rotary_ndims;
};
TORCH_MODULE(NeoXAttention);

struct NeoXMLPImpl : torch::nn::Module {
  NeoXMLPImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // dense_4h_to_h(gelu(dense_h_to_4h(x)))
  Dense dense_h_to_4h{nullptr}, dense_4h_to_h{nullptr};
};
TORCH_MODULE(NeoXMLP);

struct NeoXLayerImpl : torch::nn::Module {
  NeoXLayerImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     LayerCache* cache, const PackedRows* packed = nullptr);
  LayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  NeoXAttention attention{nullptr};
  NeoXMLP mlp{nullptr};
  bool parallel_residual;
};
TORCH_MODULE(NeoXLayer);

// "gpt_neox.*" in the checkpoint: embeddings, layers, final norm.
struct NeoXModelImpl : torch::nn::Module {
  NeoXModelImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  TokenEmbedding embed_in{nullptr};
  torch::nn::ModuleList layers;
  LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(NeoXModel);

// GPTNeoXForCausalLM.
struct GPTNeoXForCausalLMImpl : CausalLMBase {
  GPTNeoXForCausalLMImpl(const ModelConfig& cfg, const at::TensorOptions& options);
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                           const ForwardOptions& opts) override;
  // embed_out.weight, or gpt_neox.embed_in.weight when tie_word_embeddings.
  at::Tensor output_weight() const override;

  ModelConfig config;
  Rotary rotary;  // over the rotated dims only
  NeoXModel gpt_neox{nullptr};
  Dense embed_out{nullptr};  // null when tie_word_embeddings
};
TORCH_MODULE(GPTNeoXForCausalLM);

// int(head_dim * rotary_pct), as transformers computes it.
int64_t neox_rotary_ndims(const ModelConfig& cfg);

}  // namespace rpo
