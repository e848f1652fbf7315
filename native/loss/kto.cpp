// The seed's unpaired losses (its trainers.py KTOTrainer, SimpleKTOTrainer, KTOZeroTrainer): each
// example a prompt with one response, desirable or not; r = beta (pi - ref) on summed log-probs.
// policy.chosen / reference->chosen hold the examples, policy.desirable their kinds; for kto,
// policy.rejected / reference->rejected hold the KL rows (each prompt with another example's
// response).
#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "loss/loss_spec.h"

namespace rpo {

namespace {

// Mean of x over the rows where mask is 1, given their count (the caller knows it is > 0).
at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask, int64_t count) {
  return (x * mask).sum() / static_cast<double>(count);
}

// The seed's metrics of an unpaired batch: rewards and summed log-probs by kind, the margin
// between the kinds' mean rewards (0 for a kind with no example, as the seed's nan_to_num).
// A kind with no example in the micro-batch reports no reward or log-prob of its own.
void kind_metrics(const LossInputs& in, const at::Tensor& logratio, LossTerms& t) {
  const at::Tensor d = in.policy.desirable.to(logratio.scalar_type());
  const at::Tensor u = 1.0 - d;
  const int64_t n = logratio.size(0);
  const int64_t nd = in.policy.n_desirable;
  const int64_t nu = n - nd;
  const at::Tensor rewards = in.cfg.beta * logratio.detach();
  const at::Tensor logps = in.policy.chosen.sum.detach();
  at::Tensor margin = at::zeros({}, rewards.options());
  if (nd > 0) {
    t.metrics["rewards/chosen"] = masked_mean(rewards, d, nd);
    t.metrics["logps/chosen"] = masked_mean(logps, d, nd);
    margin = margin + t.metrics["rewards/chosen"];
  }
  if (nu > 0) {
    t.metrics["rewards/rejected"] = masked_mean(rewards, u, nu);
    t.metrics["logps/rejected"] = masked_mean(logps, u, nu);
    margin = margin - t.metrics["rewards/rejected"];
  }
  t.metrics["rewards/margins"] = margin;
}

}  // namespace

LossTerms kto_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor logratio = in.policy.chosen.sum - in.reference->chosen.sum.detach();
  // The KL estimate: the mean log-ratio of the mismatched (prompt, response) rows, a constant to
  // the gradient, never below 0. TODO(dp): averaged over ranks once data-parallel training lands.
  const at::Tensor kl = (in.policy.rejected.sum - in.reference->rejected.sum.detach()).mean().detach().clamp_min(0.0);
  const at::Tensor desirable = in.policy.desirable;
  t.per_pair = at::where(desirable, in.cfg.desirable_weight * (1.0 - at::sigmoid(beta * (logratio - kl))),
                         in.cfg.undesirable_weight * (1.0 - at::sigmoid(beta * (kl - logratio))));
  kind_metrics(in, logratio, t);
  t.metrics["rewards/KL_estimate"] = kl;
  return t;
}

LossTerms kto_simple_terms(const LossInputs& in) {
  const int64_t n = in.policy.chosen.sum.size(0);
  const int64_t nd = in.policy.n_desirable;
  if (nd == 0 || nd == n)
    throw std::invalid_argument("loss 'kto-simple' needs desirable and undesirable examples in every micro-batch (got " +
                                std::to_string(nd) + " desirable of " + std::to_string(n) + ")");
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor logratio = in.policy.chosen.sum - in.reference->chosen.sum.detach();
  const at::Tensor d = in.policy.desirable.to(logratio.scalar_type());
  // Each kind's reference point is the other kind's mean log-ratio, clamped at 0; the seed keeps
  // it in the graph (no detach), so its gradient flows.
  const at::Tensor kl_d = masked_mean(logratio, d, nd).clamp_min(0.0);
  const at::Tensor kl_u = masked_mean(logratio, 1.0 - d, n - nd).clamp_min(0.0);
  t.per_pair = at::where(in.policy.desirable, 1.0 - at::sigmoid(beta * (logratio - kl_u)),
                         1.0 - at::sigmoid(beta * (kl_d - logratio)));
  kind_metrics(in, logratio, t);
  return t;
}

LossTerms kto_zero_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor logratio = in.policy.chosen.sum - in.reference->chosen.sum.detach();
  t.per_pair = at::where(in.policy.desirable, 1.0 - at::sigmoid(beta * logratio), 1.0 - at::sigmoid(-beta * logratio));
  kind_metrics(in, logratio, t);
  return t;
}

}  // namespace rpo
