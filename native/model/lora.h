// LoRA adapters (PEFT's LoraLayer for nn.Linear): y = W x + b + scaling * B (A dropout(x)),
// A [r, in], B [out, r], scaling = alpha / r (alpha / sqrt(r) with rslora).
//
// The hook is generic: attach_lora walks the model's modules and puts an adapter on every Dense
// whose module name ends in a targeted name ("q_proj" matches "model.layers.3.self_attn.q_proj"),
// PEFT's rule for a list of target_modules. Any architecture whose linears are Dense modules
// registered under their HF names gets LoRA by naming them (a GPTNeoX model: query_key_value,
// dense, dense_h_to_4h, dense_4h_to_h). "all-linear" is every Dense but the output head (PEFT's
// shorthand leaves lm_head out).
//
// Adapters are fp32 whatever the base's dtype (PEFT's autocast_adapter_dtype): the adapter's
// input is cast to fp32 and its output back to the base's dtype, as PEFT's forward does.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api.h"

namespace rpo {

// What every adapter of one model shares.
struct LoraState {
  LoraOptions options;
  double scaling = 1.0;
  bool enabled = true;  // false: the base model alone (the reference; AdaptersOff)
  // Dropout applies in training forwards only (PEFT's model.train()): set by the trainer around a
  // micro-step's policy forward, so activation checkpointing's no-grad forward and its recompute
  // both drop (grad mode cannot tell: it is off in the checkpointed forward).
  bool training = false;
  // Dropout masks are drawn from this generator (the trainer seeds it per micro-step, so a
  // resumed run draws the same masks; activation checkpointing restores it for the recompute).
  at::Generator dropout_gen;
  // PEFT's keys, in module order: "base_model.model.<module>.lora_A.weight", then lora_B.
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<std::string> modules;  // the adapted modules' names
};

struct LoraAdapter {
  at::Tensor A, B;
  std::shared_ptr<LoraState> state;
  // scaling * B A dropout(x), in x's dtype; zero work when the adapters are off (caller checks).
  at::Tensor delta(const at::Tensor& x) const;
};

// Adds adapters to `lm`'s targeted Dense modules (fresh, initialized from options.seed as PEFT
// does: A kaiming-uniform(a = sqrt(5)) or gaussian(1 / r), B zeros) and freezes every base
// parameter. Throws when a target matches no module.
std::shared_ptr<LoraState> attach_lora(torch::nn::Module& lm, const LoraOptions& options, const at::Device& device);

// W += scaling * B A (computed in fp32, rounded once into W's dtype) for every adapted module,
// then removes the adapters and makes the base trainable again.
void merge_lora(torch::nn::Module& lm, LoraState& state);

// The adapted linears' HF module names that `target_modules` selects, for errors and configs.
std::vector<std::string> lora_module_names(torch::nn::Module& lm, const std::vector<std::string>& target_modules);

// Switches the adapters off for a scope (the reference forward: the base with adapters off).
class AdaptersOff {
 public:
  explicit AdaptersOff(LoraState* s) : s_(s), was_(s ? s->enabled : false) {
    if (s_) s_->enabled = false;
  }
  ~AdaptersOff() {
    if (s_) s_->enabled = was_;
  }
  AdaptersOff(const AdaptersOff&) = delete;
  AdaptersOff& operator=(const AdaptersOff&) = delete;

 private:
  LoraState* s_;
  bool was_;
};

}  // namespace rpo
