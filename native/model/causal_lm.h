// What every decoder architecture (llama.h: Llama / Mistral / Qwen2, gpt_neox.h: GPTNeoX) gives
// the engine: final hidden states and the output projection's weight. Model, the trainer, the
// log-prob head and generation see only this, so an architecture is one module tree beside the
// others, chosen once from config.architecture (model.cpp).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <utility>
#include <vector>

namespace rpo {

// A generation batch's prompts packed for the prefill: their real tokens side by side as one row
// [1, total], so no work is spent on padding (left-padded prompts of 8..64 tokens are ~45%
// padding). Attention is causal within each prompt and blind across prompts (`mask`); the cache
// keeps keys and values in the padded layout [rows, kv_heads, padded_length, head_dim] the
// decode steps read, token j of the packed row at (row_index[j], slot_index[j]).
struct PackedPrompts {
  at::Tensor position_ids;  // [1, total]: 0.. within each prompt, as HF's from the padded mask
  at::Tensor mask;          // [1, 1, total, total] bool: same prompt, key not after the query
  at::Tensor row_index;     // [total] long
  at::Tensor slot_index;    // [total] long: the token's column in the padded prompt
  int64_t rows = 0, padded_length = 0;
};

// Per-layer key/value cache for generation: key and value are [rows, kv_heads, cached, head_dim].
struct LayerCache {
  at::Tensor key, value;
  // The prompt plus every new token, when the caller knows it: the cache is allocated once at
  // this length and each step writes its tokens in place (concatenating copied the whole cache at
  // every step). 0: concatenate.
  int64_t capacity = 0;
  // ForwardOptions::packed, set by hidden_states for each forward: the keys and values come packed.
  const PackedPrompts* packing = nullptr;
  // Adds this step's keys and values [rows, kv_heads, T, head_dim]; returns what attention reads
  // (everything cached, or for a packed prefill the packed tokens themselves).
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k, const at::Tensor& v);

 private:
  at::Tensor key_buffer_, value_buffer_;
};

struct ForwardOptions {
  bool activation_checkpointing = false;
  std::vector<LayerCache>* cache = nullptr;  // generation: appended to per layer
  int64_t past_length = 0;                   // tokens already in `cache`
  // The caller checked on its host data that no row has padding before a real token (right
  // padding at most, which causal attention makes harmless to real tokens): attention then
  // runs causal without a mask where the sliding window and the cache allow it.
  bool right_padded = false;
  // Generation's packed prefill: input_ids is [1, total]; positions and the attention mask come
  // from here, and hidden_states hands it to each layer's cache.
  const PackedPrompts* packed = nullptr;
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
