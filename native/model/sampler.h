// Choosing the next token on the device: transformers' logits processors (repetition penalty,
// temperature, top-k, top-p) and a sampler whose draws come from a counter-based stream per
// prompt, so a prompt's sample depends on (seed, prompt index, token index) only: not on the
// batch, the slot, the other rows or the world size.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "api.h"

namespace rpo {

// The processors on fp32 logits [rows, V]. seen: bool [rows, V], the tokens of each row's
// prompt and response so far (read when repetition_penalty != 1; may be undefined otherwise).
at::Tensor warp_logits(at::Tensor logits, const at::Tensor& seen, const GenerateOptions& o);

// A stream key per prompt: splitmix64 of (seed, prompt index), on the host.
int64_t stream_key(uint64_t seed, int64_t prompt_index);

// One uniform in [0, 1) per row, float64: splitmix64 of (key, counter) computed with tensor
// integer ops, so it is the same number on every device. key, counter: [rows] long.
at::Tensor stream_uniforms(const at::Tensor& key, const at::Tensor& counter);

// The next token per row [rows] long: argmax when greedy, else an inverse-CDF draw from the
// warped distribution with each row's uniform.
at::Tensor choose_tokens(const at::Tensor& logits, const at::Tensor& seen, const at::Tensor& key,
                         const at::Tensor& counter, const GenerateOptions& o);

}  // namespace rpo
