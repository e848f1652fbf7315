// A post-hook on a parameter's gradient accumulator: it runs a callback once autograd has
// accumulated the parameter's gradient for this backward. The data-parallel gradient sync
// (grad_sync.cpp) launches a bucket's reduce from it, ZeRO-3 (zero3.cpp) a unit's reduce-scatter.
#pragma once

#include <torch/csrc/autograd/function_hook.h>

#include <functional>
#include <utility>

namespace rpo {

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  explicit ReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace rpo
