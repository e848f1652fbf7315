// What every decoder architecture (llama.h: Llama / Mistral / Qwen2, gpt_neox.h: GPTNeoX) gives
// the engine: final hidden states and the output projection's weight. Model, the trainer, the
// log-prob head and generation see only this, so an architecture is one module tree beside the
// others, chosen once from config.architecture (model.cpp).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <utility>
#include <vector>

namespace rpo {

class ParamUnits;  // parallel/zero3_units.h

// Generation's forward over the slot cache (generate.cpp): a packed prefill of prompts into
// their slots, or a decode step of every slot. Each slot keeps its sequence from column 0 (no
// padding), so a slot's keys and values do not depend on what the other slots hold.
struct SlotForward {
  at::Tensor position_ids;  // [rows, T] long
  // bool [rows or 1, 1, T, keys], true = may attend; undefined: causal (one prompt's prefill)
  at::Tensor mask;
  // Token i of the forward (its [rows, T] order flattened) is cached at (write_slot[i], :,
  // write_column[i]).
  at::Tensor write_slot, write_column;  // [rows * T] long
  // > 0: attention reads the first read_slots slots' first read_columns columns (a decode step,
  // rows == read_slots); 0: the forward's own keys and values (a packed prefill, whose mask keeps
  // each prompt to itself).
  int64_t read_slots = 0, read_columns = 0;
};

// Per-layer key/value cache for generation: [slots, kv_heads, capacity, head_dim], allocated
// (zeros) at the first write and written in place after; nothing is concatenated.
struct LayerCache {
  int64_t slots = 0, capacity = 0;
  // ForwardOptions::slots, set by hidden_states for each forward.
  const SlotForward* forward = nullptr;
  // Caches this forward's keys and values [rows, kv_heads, T, head_dim]; returns what attention
  // reads.
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k, const at::Tensor& v);
  // Copies slots src[i]'s first `columns` columns into slots dst[i] (generation's compaction:
  // running rows move down into freed slots so a decode step computes a dense prefix).
  void move_slots(const at::Tensor& src, const at::Tensor& dst, int64_t columns);

 private:
  at::Tensor key_buffer_, value_buffer_;
};

struct PackedRows;  // model/packed.h

struct ForwardOptions {
  bool activation_checkpointing = false;
  std::vector<LayerCache>* cache = nullptr;  // generation: one per layer, with `slots`
  int64_t past_length = 0;                   // tokens before input_ids (attention_mask covers them)
  // The caller checked on its host data that no row has padding before a real token (right
  // padding at most, which causal attention makes harmless to real tokens): attention then
  // runs causal without a mask where the sliding window and the cache allow it.
  bool right_padded = false;
  // Generation: positions, the attention mask and the cache writes come from here, and
  // hidden_states hands it to each layer's cache.
  const SlotForward* slots = nullptr;
  // Generators whose state activation checkpointing restores for a block's recompute, so it
  // draws the same dropout masks (LoRA dropout's).
  std::vector<at::Generator> preserve_rng;
  // Training, padding-free: input_ids is [1, T] of packed rows (model/packed.h); positions and
  // attention come from here, and attention_mask is not read.
  std::shared_ptr<const PackedRows> packed;
};

struct CausalLMBase : torch::nn::Module {
  // Final hidden states (after the last norm), [rows, T, hidden]. attention_mask: [rows,
  // past + T] of 0/1 (1 = real token).
  virtual at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const ForwardOptions& opts) = 0;
  // The [vocab, hidden] matrix the logits are computed with (the LM head, or the tied embedding).
  virtual at::Tensor output_weight() const = 0;
  // ZeRO-3 (parallel/zero3.cpp): when set, the parameters live sharded over the ranks and each
  // layer of a forward without a cache runs through it; null otherwise.
  std::shared_ptr<ParamUnits> param_units;
};

}  // namespace rpo
