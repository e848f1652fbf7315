// What a Model handle holds, for engine code (the trainer) that needs the module itself.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "api.h"
#include "model/llama.h"

namespace rpo {

class ModelImpl {
 public:
  ModelImpl(const ModelConfig& config, const InitOptions& options);

  ModelConfig config;
  CausalLM lm{nullptr};
  at::ScalarType dtype;
  at::Device device;
  // Parameters in registration order, under their checkpoint names.
  std::vector<std::pair<std::string, at::Tensor>> params;

  const at::Tensor& param(const std::string& name) const;
};

// Device tensors for a RowBatch, validated against the vocabulary.
struct BatchTensors {
  at::Tensor input_ids, attention_mask, loss_mask;  // [rows, T]: long, long, uint8
};
BatchTensors batch_tensors(const RowBatch& batch, int64_t vocab_size, const at::Device& device);

at::ScalarType dtype_from_name(const std::string& name);     // float32 | bfloat16 | float16
std::string dtype_name(at::ScalarType t);                     // the reverse
at::ScalarType dtype_from_safetensors(const std::string& code);  // F32 | BF16 | ...
std::string safetensors_dtype(at::ScalarType t);

}  // namespace rpo
