// Activation checkpointing: run a block without keeping its activations, and run it again
// in backward to get them (torch.utils.checkpoint's reentrant form).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

namespace rpo {

using BlockFn = std::function<at::Tensor(const at::Tensor&)>;

// y = fn(x), storing only x; gradients reach fn's parameters and x as without it.
at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x);

}  // namespace rpo
