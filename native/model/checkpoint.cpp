#include "model/checkpoint.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace rpo {

namespace {

// The block travels to backward inside the autograd context as a capsule.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(BlockFn f) : fn(std::move(f)) {}
  BlockFn fn;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Autograd is off inside forward: the block's activations are freed as it goes.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const BlockFn& fn, const at::Tensor& x) {
    ctx->saved_data["fn"] = at::IValue::make_capsule(c10::make_intrusive<BlockHolder>(fn));
    ctx->save_for_backward({x});
    return fn(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["fn"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    {
      at::AutoGradMode enable(true);
      auto y = holder->fn(x);
      // A nested backward: accumulates into the block's parameters' .grad and into x.grad.
      torch::autograd::backward({y}, {grad_outputs[0]});
    }
    return {at::Tensor(), x.grad()};
  }
};

}  // namespace

at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x) { return CheckpointFunction::apply(fn, x); }

}  // namespace rpo
