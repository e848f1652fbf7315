// Packed (padding-free) micro-batches: a micro-batch's rows concatenated into one sequence
// [1, T] of their real tokens, with each row's boundaries (cu_seqlens) and positions that restart
// at 0 per row. Attention keeps every row to itself (block-diagonal causal), so a row's hidden
// states, log-probs and gradients are those of the padded batch, without computing the padding.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

#include "api.h"

namespace rpo {

struct BatchTensors;  // model_impl.h

struct PackedRows {
  at::Tensor cu_seqlens;    // int32 [rows + 1] on the model's device: row i is tokens [cu[i], cu[i+1])
  at::Tensor position_ids;  // [1, T] long: 0, 1, ... within each row
  // [T] long: where each packed token sits in the padded [rows, max_length] layout (r * max_length
  // + t), for code that reads per-position tensors in that layout (ppo's token pass).
  at::Tensor padded_index;
  std::vector<int64_t> lengths;  // each row's tokens, on the host (the CPU path splits by them)
  int64_t max_length = 0;        // the longest row: the padded layout's columns
};

// Rows [row_begin, row_begin + rows) of `batch` packed (rows < 0: to the end). The label
// positions (BatchTensors::labels) index the packed sequence: label t of row r is predicted by
// the row's token t - 1. attention_mask and loss_mask are left undefined (everything is real).
// nullopt when a row has padding before a real token: the padded path then keeps its meaning.
std::optional<BatchTensors> packed_batch_tensors(const RowBatch& batch, int64_t vocab_size, const at::Device& device,
                                                 int64_t row_begin = 0, int64_t rows = -1);

// Attention over packed rows. q [1, heads, T, d], k and v [1, kv_heads, T, d] (kv_heads divides
// heads: grouped-query attention); causal within each row, and a query sees keys less than
// `sliding_window` positions back when it is > 0 (Mistral's window). Returns [1, heads, T, d].
// CUDA: the varlen flash kernel (fp16/bf16) or the memory-efficient one (fp32, no window), with
// their own backward through autograd; otherwise (the CPU) one SDPA call per row, each causal.
at::Tensor packed_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedRows& rows,
                            int64_t sliding_window, double scale);

// [1, T, H] packed hidden states laid out as the padded batch's [rows, max_length, H], zeros
// where the padded batch has padding.
at::Tensor unpack_rows(const at::Tensor& hidden, const PackedRows& rows);

}  // namespace rpo
