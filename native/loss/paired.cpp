// SFT and the paired losses (docs/design.md's table): each a function of per-pair log-probs.
// compute_loss (losses.cpp) has checked every field read here.
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "loss/loss_spec.h"

namespace rpo {

namespace {

// log(p / (1 - p)) for p = exp(logp), logp < 0: logp - log(1 - exp(logp)), with expm1 for accuracy.
at::Tensor log_odds(const at::Tensor& logp) { return logp - at::log(-at::expm1(logp)); }

// beta * ((pi_w - pi_l) - (ref_w - ref_l)) on sums, with the rewards beta * (pi - ref).
at::Tensor dpo_logits(const LossInputs& in, LossTerms& t) {
  const double beta = in.cfg.beta;
  const at::Tensor& pw = in.policy.chosen.sum;
  const at::Tensor& pl = in.policy.rejected.sum;
  const at::Tensor rw = in.reference->chosen.sum.detach();
  const at::Tensor rl = in.reference->rejected.sum.detach();
  t.reward_w = beta * (pw.detach() - rw);
  t.reward_l = beta * (pl.detach() - rl);
  return beta * ((pw - pl) - (rw - rl));
}

}  // namespace

LossTerms sft_terms(const LossInputs& in) {
  LossTerms t;
  t.per_pair = -in.policy.chosen.sum;
  return t;
}

LossTerms dpo_terms(const LossInputs& in) {
  LossTerms t;
  t.per_pair = -at::log_sigmoid(dpo_logits(in, t));
  return t;
}

LossTerms cdpo_terms(const LossInputs& in) {
  LossTerms t;
  const at::Tensor logits = dpo_logits(in, t);
  const double eps = in.cfg.epsilon;
  t.per_pair = (1.0 - eps) * (-at::log_sigmoid(logits)) + eps * (-at::log_sigmoid(-logits));
  return t;
}

LossTerms ipo_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const auto& p = in.policy;
  const auto& r = *in.reference;
  // Rewards on sums, as for dpo; the loss on length-normalized log-probs.
  t.reward_w = beta * (p.chosen.sum.detach() - r.chosen.sum.detach());
  t.reward_l = beta * (p.rejected.sum.detach() - r.rejected.sum.detach());
  const at::Tensor h = (p.chosen.mean - p.rejected.mean) - (r.chosen.mean.detach() - r.rejected.mean.detach());
  t.per_pair = (h - 1.0 / (2.0 * beta)).pow(2);
  return t;
}

LossTerms slic_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor& pw = in.policy.chosen.sum;
  const at::Tensor& pl = in.policy.rejected.sum;
  t.reward_w = beta * pw.detach();
  t.reward_l = beta * pl.detach();
  t.per_pair = at::clamp_min(beta - pw + pl, 0.0) + in.cfg.lambda * (-pw);
  return t;
}

LossTerms simpo_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor& pw = in.policy.chosen.mean;
  const at::Tensor& pl = in.policy.rejected.mean;
  t.reward_w = beta * pw.detach();
  t.reward_l = beta * pl.detach();
  t.per_pair = -at::log_sigmoid(beta * pw - beta * pl - in.cfg.margin);
  return t;
}

LossTerms orpo_terms(const LossInputs& in) {
  LossTerms t;
  const double beta = in.cfg.beta;
  const at::Tensor& pw = in.policy.chosen.mean;
  const at::Tensor& pl = in.policy.rejected.mean;
  t.reward_w = beta * pw.detach();
  t.reward_l = beta * pl.detach();
  t.gain = beta * at::log_sigmoid(log_odds(pw) - log_odds(pl));
  t.offset = in.nll;
  return t;
}

}  // namespace rpo
