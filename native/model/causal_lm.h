// What every decoder architecture (llama.h: Llama / Mistral / Qwen2, gpt_neox.h: GPTNeoX) gives
// the engine: final hidden states and the output projection's weight. Model, the trainer, the
// log-prob head and generation see only this, so an architecture is one module tree beside the
// others, chosen once from config.architecture (model.cpp).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <vector>

namespace rpo {

// Per-layer key/value cache for generation: [rows, kv_heads, cached, head_dim].
struct LayerCache {
  at::Tensor key, value;
};

struct ForwardOptions {
  bool activation_checkpointing = false;
  std::vector<LayerCache>* cache = nullptr;  // generation: appended to per layer
  int64_t past_length = 0;                   // tokens already in `cache`
  // The caller checked on its host data that no row has padding before a real token (right
  // padding at most, which causal attention makes harmless to real tokens): attention then
  // runs causal without a mask where the sliding window and the cache allow it.
  bool right_padded = false;
  // Generators whose state activation checkpointing restores for a block's recompute, so it
  // draws the same dropout masks (LoRA dropout's).
  std::vector<at::Generator> preserve_rng;
};

struct CausalLMBase : torch::nn::Module {
  // Final hidden states (after the last norm), [rows, T, hidden]. attention_mask: [rows,
  // past + T] of 0/1 (1 = real token).
  virtual at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const ForwardOptions& opts) = 0;
  // The [vocab, hidden] matrix the logits are computed with (the LM head, or the tied embedding).
  virtual at::Tensor output_weight() const = 0;
};

}  // namespace rpo
