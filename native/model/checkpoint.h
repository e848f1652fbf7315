// Activation checkpointing: run a block without keeping its activations, and run it again
// in backward to get them (torch.utils.checkpoint's reentrant form).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace rpo {

using BlockFn = std::function<at::Tensor(const at::Tensor&)>;

// y = fn(x), storing only x; gradients reach fn's parameters and x as without it, also when x
// does not require grad (a frozen embedding under LoRA: the reentrant form would otherwise give
// fn's parameters no gradient). `preserve`: generators fn draws from (dropout), set back to
// their forward state for the recompute so it draws the same numbers.
at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x, const std::vector<at::Generator>& preserve = {});

}  // namespace rpo
