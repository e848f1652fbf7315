// ZeRO-3 as the model code sees it: the parameters of a sharded model live on their owners, and a
// model's forward asks for them unit by unit (native/parallel/zero3.cpp). A unit is one decoder
// layer, or the "outer" unit: everything outside the layers (embeddings, final norm, LM head).
// No c10d here: llama.cpp, gpt_neox.cpp and trainer.cpp include it whatever the build.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "model/checkpoint.h"  // BlockFn

namespace rpo {

class ParamUnits {
 public:
  virtual ~ParamUnits() = default;
  // Decoder layer `index` applied to x: its parameters are gathered for the forward (the next
  // layer's gather is started meanwhile) and freed after; `checkpoint`: run through
  // checkpointed(), whose recompute gathers them again. Under autograd, the layer's backward
  // gathers them again first, and reduce-scatters their gradients as it ends.
  virtual at::Tensor layer(size_t index, const BlockFn& block, const at::Tensor& x, bool checkpoint,
                           const std::vector<at::Generator>& preserve) = 0;
  // A whole forward (embeddings, layers, final norm, head) with the outer unit gathered around
  // it; the outputs that require grad gather it again for their backward.
  virtual std::vector<at::Tensor> model(const std::function<std::vector<at::Tensor>()>& forward) = 0;
};

}  // namespace rpo
