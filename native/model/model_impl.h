// What a Model handle holds, for engine code (the trainer) that needs the module itself.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api.h"
#include "loss/logprobs.h"
#include "model/llama.h"  // and causal_lm.h (CausalLMBase)
#include "model/lora.h"
#include "model/packed.h"

namespace rpo {

class ModelImpl {
 public:
  // options.init false: the parameters are allocated (in their dtype, on their device) but not
  // written, for Model.load to fill.
  ModelImpl(const ModelConfig& config, const InitOptions& options);

  ModelConfig config;
  std::shared_ptr<CausalLMBase> lm;  // llama.h or gpt_neox.h, by config.architecture
  at::ScalarType dtype;
  at::Device device;
  // Parameters in registration order, under their checkpoint names.
  std::vector<std::pair<std::string, at::Tensor>> params;

  // LoRA adapters (model/lora.h), null without. With them only the adapters train.
  std::shared_ptr<LoraState> lora;

  // A base parameter or, with LoRA, an adapter's (by its PEFT key).
  const at::Tensor& param(const std::string& name) const;
  // What the optimizer updates: the adapters with LoRA, else every parameter.
  const std::vector<std::pair<std::string, at::Tensor>>& trainable() const { return lora ? lora->params : params; }
  // The dtype of the trainable parameters (fp32 adapters on a bf16 base).
  at::ScalarType trainable_dtype() const { return lora ? at::kFloat : dtype; }
};

// Device tensors for rows of a RowBatch, validated against the vocabulary; built on the host
// and moved in one copy (pinned memory on CUDA), so nothing here waits for the device.
struct BatchTensors {
  at::Tensor input_ids, attention_mask, loss_mask;  // [rows, T]: long, each
  LabelIndex labels;                                 // the fused head's label positions
  bool right_padded = false;  // no row has padding before a real token (ForwardOptions)
  // Packed rows (model/packed.h): input_ids is [1, T] of every row's real tokens, labels index
  // it, and attention_mask and loss_mask are undefined. Null: the padded [rows, T] layout.
  std::shared_ptr<const PackedRows> packed;
};
// Throws, naming the entry, unless the batch's buffers have rows x seqLen entries and every id
// is inside the vocabulary.
void check_row_batch(const RowBatch& batch, int64_t vocab_size);
// Rows [row_begin, row_begin + rows) of `batch` (rows < 0: to the end). trim: cut the columns to
// the longest real row of those rows (rows are independent, so the result is the same as the
// padded batch's): rationale rows are often several times longer than response rows.
BatchTensors batch_tensors(const RowBatch& batch, int64_t vocab_size, const at::Device& device, int64_t row_begin = 0,
                           int64_t rows = -1, bool trim = false);
// Real tokens (attention mask ones) of a batch, counted on the host.
int64_t real_tokens(const RowBatch& batch);

at::ScalarType dtype_from_name(const std::string& name);     // float32 | bfloat16 | float16
std::string dtype_name(at::ScalarType t);                     // the reverse
at::ScalarType dtype_from_safetensors(const std::string& code);  // F32 | BF16 | ...
std::string safetensors_dtype(at::ScalarType t);

}  // namespace rpo
