// Per-row log-probs of label tokens from a model's final hidden states.
//
// The fused path never materializes [rows, T, vocab] logits: it gathers the label positions,
// then walks them in chunks, each chunk's logits living only inside one step of forward or
// backward (a custom autograd function recomputes them). The naive path builds the full
// logits and is kept as the reference the fused one is tested against.
#pragma once

#include <ATen/core/Tensor.h>

#include "api.h"

namespace rpo {

struct RowLogpTensors {
  at::Tensor sum, mean, count;  // [rows], fp32; count as float
};

// The label positions of a batch, built on the host from its RowBatch (model_impl.h's
// batch_tensors), so the fused head gathers without a device round trip.
struct LabelIndex {
  at::Tensor source;  // [M] long: row * T + t - 1, the hidden state that predicts label t
  at::Tensor label;   // [M] long: the token id at (row, t)
  at::Tensor row;     // [M] long
  at::Tensor count;   // [rows] float: labels per row
};

// The fused head on host-built label positions (options.naive: the full-logits reference on
// the same positions). hidden: [rows, T, H] padded, or [1, T, H] of packed rows.
RowLogpTensors row_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const LabelIndex& labels,
                            const LogpOptions& options);

// hidden: [rows, T, H] final hidden states; weight: [vocab, H] output projection;
// input_ids, loss_mask: [rows, T]. Token t of row r counts when loss_mask[r, t] != 0 and
// t >= 1 (its logit comes from position t - 1).
RowLogpTensors row_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& input_ids,
                            const at::Tensor& loss_mask, const LogpOptions& options);

// The fused head alone: log p(labels[i] | hidden[i]) for [M, H] hidden rows, fp32 [M].
at::Tensor token_logprobs_fused(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                int64_t chunk_tokens);

}  // namespace rpo
