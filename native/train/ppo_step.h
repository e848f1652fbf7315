// The trainer's step for loss=ppo (the seed's PPOTrainer.train and get_batch_metrics): a
// gradient-free pass fixes the reference's token log-probs, the value head's estimates and the
// GAE targets; then ppo_epochs passes of the policy, each loss backpropagated (gradients add up
// over the passes, as the seed's do before its optimizer step).
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>

#include "api.h"
#include "model/value_head.h"

namespace rpo {

class TrainerImpl;

// The value head a ppo trainer trains beside the policy, with its own optimizer of the
// trainer's kind and the policy's learning rate (the seed's one optimizer over both), its
// gradients clipped to the seed's v_head_max_grad_norm.
struct PpoState {
  static constexpr double kValueHeadMaxGradNorm = 0.1;  // the seed's model.v_head_max_grad_norm
  ValueHead head{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

std::unique_ptr<PpoState> make_ppo_state(const TrainerImpl& s);
StepResult ppo_step(TrainerImpl& s, const RowBatch& batch, int64_t n, double scale, bool backward);
// Clip and update the value head with `lr`, drop its gradients.
void ppo_optimizer_step(PpoState& p, double lr);

}  // namespace rpo
