// What a Trainer holds, shared by the step code (trainer.cpp) and the optimizer-state files
// (optimizer_state.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>

#include "api.h"
#include "train/optimizer.h"
#include "train/ppo_step.h"

namespace rpo {

class TrainerImpl {
 public:
  TrainerImpl(std::shared_ptr<Model> p, std::shared_ptr<Model> r, const TrainerOptions& o);

  std::shared_ptr<Model> policy, reference;
  TrainerOptions options;
  // Over the policy's parameters in the order of ModelImpl::params (the state file's checks name
  // parameters by that order); owns the moments and, in bf16-mixed, the fp32 master weights.
  std::unique_ptr<TrainOptimizer> optimizer;
  std::unique_ptr<PpoState> ppo;  // loss=ppo: the value head and its optimizer; null otherwise
};

// A micro-step's result: the loss and every metric read back in one device-to-host copy (read one
// by one, each would wait for the device), with the pairs and the batch's real tokens.
StepResult read_step_result(const at::Tensor& loss, const std::map<std::string, at::Tensor>& metrics, int64_t n_pairs,
                            const RowBatch& batch);

}  // namespace rpo
