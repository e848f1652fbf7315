// The trainer's optimizer: AdamW (one fused-kernel call over the parameters) or RMSprop, under
// one of four precisions (docs/precision.md):
//
//   fp32        fp32 weights and grads, fp32 moments                       16 bytes/param
//   bf16-pure   bf16 weights and grads, bf16 moments (the seed's)           8 bytes/param
//   bf16-mixed  bf16 compute weights and grads; fp32 master weights and
//               fp32 moments held here; the master is updated and copied
//               (round to nearest) into the bf16 weights                   16 bytes/param
//   bf16-sr     bf16 weights, grads and moments; the update is computed in
//               fp32 and stochastically rounded back to bf16                8 bytes/param
//
// The precision a trainer runs under is checked against the policy's dtype (fp32 needs a float32
// policy, the bf16 modes a bfloat16 one); without one (""), it follows the policy's dtype: fp32
// for float32, bf16-pure for bfloat16, fp16-pure for float16 (today's behaviour for every dtype).
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api.h"

namespace rpo {

class ModelImpl;

enum class Precision { kFp32, kPure, kMixed, kSr };

// The precision `requested` names ("" = the policy's dtype), checked against the policy's dtype.
// `name` is what the state file records and errors say: fp32 | bf16-pure | fp16-pure | bf16-mixed | bf16-sr.
struct PrecisionChoice {
  Precision mode;
  std::string name;
};
PrecisionChoice resolve_precision(const std::string& requested, at::ScalarType policy_dtype);

// Stochastic rounding of a contiguous float32 tensor to bfloat16: 16 uniform random bits are added
// below bf16's mantissa and the low half of the word is cut off, so a value between two bf16
// neighbours a < x < b becomes b with probability (x - a) / (b - a): E[round(x)] = x.
at::Tensor stochastic_round_bf16(const at::Tensor& x, at::Generator& gen);

struct AdamParamState {
  int64_t step = 0;
  at::Tensor step_t;  // float32 scalar on the parameter's device: the fused kernel reads it
  at::Tensor exp_avg, exp_avg_sq;
  at::Tensor master;  // bf16-mixed: the fp32 weights
  bool defined() const { return exp_avg.defined(); }
};

// AdamW's state tensors of a saved optimizer state (`<parameter>.exp_avg`, `.exp_avg_sq`, and
// `.master` in bf16-mixed), located in the safetensors files beside `path` (optimizer.pt): for a
// rank's ranged reads (SafetensorsReader, model/sharded_io.h). Empty for a torch::optim state.
std::vector<TensorSpec> optimizer_state_tensors(const std::string& path);

class TrainOptimizer {
 public:
  TrainOptimizer(ModelImpl& model, const TrainerOptions& options);
  ~TrainOptimizer();

  // Clips the gradients to max_grad_norm (> 0; the norm over all gradients before clipping is
  // returned), updates the weights with `lr` unless that norm is not finite, and drops the
  // gradients.
  double step(double lr, double max_grad_norm);

  // The state (moments, step counts, master weights, the SR generator's seed and step) to an
  // archive at `path`, and back. AdamW's tensors (fused, stochastic rounding) go beside it into
  // safetensors files (stem "optimizer", shards of at most max_shard_bytes), streamed tensor by
  // tensor, written before the archive. load() checks everything against the model and this
  // optimizer's precision before it changes anything; errors name `path` and the parameter.
  void save(torch::serialize::OutputArchive& archive, const std::string& path, uint64_t max_shard_bytes) const;
  void load(torch::serialize::InputArchive& archive, const std::string& path);

  const std::string& precision() const { return precision_.name; }

 private:
  // ZeRO-1 (native/parallel/zero.cpp) sets which parameters this rank updates and keeps state
  // for; the clip norm still covers every gradient. Empty: all of them.
  std::vector<bool> owned_;
  // ZeRO-2 (zero.cpp) sets it: this rank then holds its share's gradients only, and it sums a
  // float32 [parameters] tensor of per-parameter gradient norms (zeros where this rank holds
  // none) over the ranks, so the clip norm and coefficient are the single process's.
  std::function<at::Tensor(const at::Tensor&)> sum_norms_;
  // ZeRO-3 (zero3.cpp) sets it: the parameters, gradients and state live in its flat shards, and
  // step() is its update (the same AdamW, on the shards).
  std::function<double(double lr, double max_grad_norm)> sharded_step_;
  friend class ZeroShardImpl;
  friend class Zero3Impl;

  enum class Kind { kFusedAdamW, kSrAdamW, kTorch };

  double clip_fp32(const std::vector<size_t>& with_grad, double max_grad_norm, at::Tensor& coef) const;
  double clip_sharded(const std::vector<size_t>& with_grad, double max_grad_norm, at::Tensor& coef) const;
  void step_fused(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef);
  void step_sr(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef);
  void step_torch(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef);
  AdamParamState& adam_state(size_t i);
  std::unique_ptr<torch::optim::Optimizer> make_torch(const std::vector<at::Tensor>& targets) const;
  std::string kind_name() const;

  std::vector<std::string> names_;
  std::vector<at::Tensor> params_;
  PrecisionChoice precision_;
  std::string optimizer_;  // AdamW | RMSprop
  Kind kind_;
  double weight_decay_option_;  // < 0: the optimizer's default (AdamW 1e-2, RMSprop 0)
  // AdamW: torch's defaults (what torch::optim::AdamW used before).
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8, weight_decay_ = 1e-2;

  // kFusedAdamW, kSrAdamW: per-parameter state, created at a parameter's first update.
  std::vector<AdamParamState> adam_;
  // kTorch: torch::optim over the parameters, or over fp32 masters (bf16-mixed).
  std::unique_ptr<torch::optim::Optimizer> torch_;
  std::vector<at::Tensor> masters_;

  // bf16-sr: the random bits of update k come from a generator seeded with mix(seed_, k), so the
  // generator's whole state is (seed_, sr_steps_) and a resumed run draws the same bits.
  uint64_t seed_ = 0;
  int64_t sr_steps_ = 0;
  at::Generator gen_;
};

}  // namespace rpo
