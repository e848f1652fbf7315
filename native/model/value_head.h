// The seed's ValueHead (its models.py): a scalar per position from the policy's final hidden
// states, summary = Linear(H, H), Dropout, ReLU, Linear(H, H), Dropout, ReLU, Linear(H, 1), in
// fp32 on detached hidden states (the critic's loss never reaches the language model). Its
// Linears keep PyTorch's default init, as the seed's (v_head_init_strategy None).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <ATen/core/Generator.h>

#include <string>
#include <utility>
#include <vector>

namespace rpo {

class ValueHeadImpl : public torch::nn::Module {
 public:
  // The seed's summary_dropout_prob default (its Llama configs carry none).
  static constexpr double kDropout = 0.1;

  explicit ValueHeadImpl(int64_t hidden_size);
  // hidden: [..., H] -> [...] fp32. train: dropout on (the seed's policy.train()), its masks
  // drawn from `gen` when given (a trainer seeds it per micro-batch so a resumed run draws the
  // same masks), else from the default generator.
  at::Tensor forward(const at::Tensor& hidden, bool train, at::Generator* gen = nullptr);
  // Parameters under the seed's state-dict names (summary.0.weight, ..., summary.6.bias).
  std::vector<std::pair<std::string, at::Tensor>> named() const;

  torch::nn::Linear l0{nullptr}, l3{nullptr}, l6{nullptr};
};
TORCH_MODULE(ValueHead);

// value_head.safetensors in `dir`: the head's tensors as F32, written atomically / read back
// (names, shapes and dtype checked; errors name the file and tensor).
void save_value_head(const ValueHeadImpl& head, const std::string& dir);
void load_value_head(ValueHeadImpl& head, const std::string& dir);
extern const char* const kValueHeadFile;

}  // namespace rpo
