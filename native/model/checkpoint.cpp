#include "model/checkpoint.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <mutex>

namespace rpo {

namespace {

// The block travels to backward inside the autograd context as a capsule, with the generators
// it draws from and their states when forward ran.
struct BlockHolder : torch::CustomClassHolder {
  BlockHolder(BlockFn f, std::vector<at::Generator> g) : fn(std::move(f)), gens(std::move(g)) {
    for (auto& gen : gens) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      states.push_back(gen.get_state());
    }
  }
  BlockFn fn;
  std::vector<at::Generator> gens;
  std::vector<at::Tensor> states;
};

// Sets each generator to a state for a scope, and back to where it was after.
struct RngScope {
  RngScope(std::vector<at::Generator>& g, const std::vector<at::Tensor>& to) : gens(g) {
    for (size_t i = 0; i < gens.size(); ++i) {
      std::lock_guard<std::mutex> lock(gens[i].mutex());
      saved.push_back(gens[i].get_state());
      gens[i].set_state(to[i]);
    }
  }
  ~RngScope() {
    for (size_t i = 0; i < gens.size(); ++i) {
      std::lock_guard<std::mutex> lock(gens[i].mutex());
      gens[i].set_state(saved[i]);
    }
  }
  std::vector<at::Generator>& gens;
  std::vector<at::Tensor> saved;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Autograd is off inside forward: the block's activations are freed as it goes.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const BlockFn& fn, const at::Tensor& x,
                            const std::vector<at::Generator>& gens) {
    ctx->saved_data["fn"] = at::IValue::make_capsule(c10::make_intrusive<BlockHolder>(fn, gens));
    ctx->save_for_backward({x});
    return fn(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["fn"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    {
      at::AutoGradMode enable(true);
      RngScope rng(holder->gens, holder->states);
      auto y = holder->fn(x);
      // A nested backward: accumulates into the block's parameters' .grad and into x.grad.
      torch::autograd::backward({y}, {grad_outputs[0]});
    }
    return {at::Tensor(), x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed(const BlockFn& fn, const at::Tensor& x, const std::vector<at::Generator>& preserve) {
  // Autograd records the function only when an input requires grad: a leaf stand-in for an x
  // that does not (its gradient is computed in backward and dropped; one block input's worth).
  if (at::GradMode::is_enabled() && !x.requires_grad()) {
    return CheckpointFunction::apply(fn, x.detach().requires_grad_(true), preserve);
  }
  return CheckpointFunction::apply(fn, x, preserve);
}

}  // namespace rpo
