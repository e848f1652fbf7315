// What a Trainer holds, shared by the step code (trainer.cpp) and the optimizer-state files
// (optimizer_state.cpp).
#pragma once

#include <memory>

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

}  // namespace rpo
