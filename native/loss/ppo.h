// The seed's offline PPO (its trainers.py PPOTrainer) on token-level tensors: rewards from the
// examples' labels at their last token, GAE targets, the clipped policy-ratio loss against the
// reference's log-probs, the critic loss and the KL penalty. Every tensor is [rows, T-1], one
// column per label position (column t: token t+1, predicted from position t); masks 1 on the
// response's tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "api.h"
#include "loss/losses.h"

namespace rpo {

// What the first, gradient-free forward fixes for the ppo_epochs passes (detached).
struct PpoTargets {
  at::Tensor advantages;                 // GAE, whitened over the batch's response tokens
  at::Tensor returns;                    // advantages + values (a metric, as in the seed)
  at::Tensor discounted_future_rewards;  // the critic's target
};

// scores: [rows] +1 (desirable) or -1, placed on each row's last response token; values: the
// policy's value estimates from the first forward. Throws when a row has no response token.
// The advantages whitened over these rows' response tokens.
PpoTargets ppo_targets(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& masks, double gamma, double lam);

// ppo_targets without the whitening: the raw GAE advantages (masked).
PpoTargets ppo_gae(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& masks, double gamma, double lam);

// Whitens the raw advantages of several micro-batches (targets[i] with masks[i]) in place, with
// the mean and biased variance over all their response tokens together (the seed's masked_mean
// and masked_var over its batch; one micro-batch: exactly ppo_targets' whitening). Data parallel,
// `sum_over_ranks` sums the local sums over the ranks (each rank whitens its micro-batches with
// the global batch's statistics; a rank with none still takes part).
void whiten_advantages(std::vector<PpoTargets*>& targets, const std::vector<at::Tensor>& masks,
                       const std::function<at::Tensor(const at::Tensor&)>& sum_over_ranks = nullptr);

// One pass: logps / values from the policy (with gradients), ref_logps and old_values detached.
// Metrics: the seed's loss/critic, loss/policy, clipfrac/policy, loss/policykl, loss/seqratio,
// returns/mean, returns/var, val/mean, val/var.
LossTensors ppo_loss(const LossConfig& cfg, const at::Tensor& logps, const at::Tensor& values, const at::Tensor& ref_logps,
                     const at::Tensor& old_values, const at::Tensor& masks, const PpoTargets& targets);

}  // namespace rpo
