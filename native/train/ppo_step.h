// The trainer's step for loss=ppo (the seed's PPOTrainer.train and get_batch_metrics): a
// gradient-free pass fixes the reference's token log-probs, the value head's estimates and the
// GAE targets; then ppo_epochs passes of the policy, each loss backpropagated (gradients add up
// over the passes, as the seed's do before its optimizer step).
//
// The seed whitened the advantages over its whole batch (trainers.py PPOTrainer.train: one
// compute_advantages call per batch). With gradient accumulation, rpo's optimizer step covers
// several micro-batches: Trainer::ppo_prepare takes the gradient-free pass of all of them first
// and whitens over their response tokens together; each micro_step then trains its own. A
// micro_step of a batch that was not prepared prepares it alone (whitened over itself).
#pragma once

#include <torch/optim/optimizer.h>

#include <ATen/core/Generator.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "api.h"
#include "loss/ppo.h"
#include "model/value_head.h"

namespace rpo {

class TrainerImpl;

// The value head a ppo trainer trains beside the policy, with its own optimizer of the
// trainer's kind and the policy's learning rate (the seed's one optimizer over both), its
// gradients clipped to the seed's v_head_max_grad_norm.
// A micro-batch's gradient-free pass (ppo_prepare): the reference's token log-probs, the values
// and the GAE targets, its advantages whitened over every micro-batch prepared with it.
struct PpoPrepared {
  uint64_t key = 0;  // the micro-batch's tokens, mask and kinds (micro_step checks it is this one)
  at::Tensor masks, ref_logps, old_values;
  PpoTargets targets;
};

struct PpoState {
  static constexpr double kValueHeadMaxGradNorm = 0.1;  // the seed's model.v_head_max_grad_norm
  ValueHead head{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  // The head's dropout masks: seeded per micro-batch from (seed, its tokens), as LoRA's, so a
  // resumed run, seeing the same batches, draws the same masks with no state to save.
  at::Generator dropout_gen;
  // The optimizer step's micro-batches, prepared and not yet trained, in order.
  std::deque<PpoPrepared> prepared;
  // Data parallel (GradSync::attach_value_head): sums a tensor over the ranks, so that
  // ppo_prepare whitens with the global batch's statistics; null in one process.
  std::function<at::Tensor(const at::Tensor&)> sum_over_ranks;
};

std::unique_ptr<PpoState> make_ppo_state(const TrainerImpl& s);
StepResult ppo_step(TrainerImpl& s, const RowBatch& batch, int64_t n, double scale, bool backward);
// Clip and update the value head with `lr`, drop its gradients (and any prepared micro-batch).
void ppo_optimizer_step(PpoState& p, double lr);

}  // namespace rpo
