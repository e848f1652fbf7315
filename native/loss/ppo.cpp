// The seed's PPOTrainer formulas (compute_advantages, loss, get_batch_metrics) in ATen.
#include "loss/ppo.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "loss/loss_spec.h"

namespace rpo {

namespace {

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& m) { return (x * m).sum() / m.sum(); }

// The seed's masked_var: the biased variance over the masked entries.
at::Tensor masked_var(const at::Tensor& x, const at::Tensor& m) {
  const at::Tensor centered = x - masked_mean(x, m);
  return masked_mean(centered * centered, m);
}

}  // namespace

PpoTargets ppo_targets(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& masks, double gamma, double lam) {
  PpoTargets out = ppo_gae(values, scores, masks, gamma, lam);
  std::vector<PpoTargets*> one{&out};
  whiten_advantages(one, {masks});
  return out;
}

void whiten_advantages(std::vector<PpoTargets*>& targets, const std::vector<at::Tensor>& masks,
                       const std::function<at::Tensor(const at::Tensor&)>& sum_over_ranks) {
  if (targets.size() != masks.size() || (targets.empty() && !sum_over_ranks)) throw std::invalid_argument("ppo: one mask per micro-batch's advantages");
  // Sums over the micro-batches, on the device: for one micro-batch these are masked_mean's and
  // masked_var's own operations.
  at::Tensor sum, count;
  for (size_t i = 0; i < targets.size(); ++i) {
    const at::Tensor s = (targets[i]->advantages * masks[i]).sum(), c = masks[i].sum();
    sum = i == 0 ? s : sum + s;
    count = i == 0 ? c : count + c;
  }
  if (sum_over_ranks) {
    // This rank's sums (zeros without micro-batches), then the job's: one collective for both.
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(masks.empty() ? at::Device(at::kCPU) : masks[0].device());
    const at::Tensor local = targets.empty() ? at::zeros({2}, opts) : at::stack({sum.to(at::kFloat), count.to(at::kFloat)});
    const at::Tensor total = sum_over_ranks(local);
    sum = total[0];
    count = total[1];
  }
  const at::Tensor mean = sum / count;
  at::Tensor sq;
  for (size_t i = 0; i < targets.size(); ++i) {
    const at::Tensor centered = targets[i]->advantages - mean;
    const at::Tensor s = (centered * centered * masks[i]).sum();
    sq = i == 0 ? s : sq + s;
  }
  if (sum_over_ranks) sq = sum_over_ranks(targets.empty() ? at::zeros({1}, mean.options()) : sq.reshape({1}).to(at::kFloat))[0];
  const at::Tensor var = sq / count;
  for (size_t i = 0; i < targets.size(); ++i)
    targets[i]->advantages = ((targets[i]->advantages - mean) * at::rsqrt(var + 1e-8) * masks[i]).detach();
}

PpoTargets ppo_gae(const at::Tensor& values_in, const at::Tensor& scores, const at::Tensor& masks, double gamma, double lam) {
  if (values_in.dim() != 2 || masks.sizes() != values_in.sizes())
    throw std::invalid_argument("ppo: values and masks must both be [rows, T]");
  if (scores.dim() != 1 || scores.size(0) != masks.size(0))
    throw std::invalid_argument("ppo: one score per row is needed (" + std::to_string(masks.size(0)) + " rows)");
  const int64_t rows = masks.size(0), T = masks.size(1);
  // Each row's reward: its score on its last response token. One device-to-host copy checks
  // that every row has one.
  const at::Tensor empty = (masks.sum(1) <= 0).nonzero().cpu();
  if (empty.numel() > 0) throw std::invalid_argument("ppo: row " + std::to_string(empty[0][0].item<int64_t>()) + " has no response token");
  const at::Tensor last = (masks.to(at::kFloat) * at::arange(1, T + 1, masks.options().dtype(at::kFloat))).argmax(1);
  at::Tensor rewards = at::zeros_like(masks);
  rewards.index_put_({at::arange(rows, last.options()), last}, scores.to(masks.scalar_type()));
  rewards = rewards * masks;
  const at::Tensor values = values_in.detach() * masks;

  // GAE, back to front; the discounted future reward at t counts rewards after t only (the
  // seed appends it before adding rewards[t]).
  std::vector<at::Tensor> adv(T), future(T);
  at::Tensor gae = at::zeros({rows}, masks.options());
  at::Tensor discounted = at::zeros({rows}, masks.options());
  for (int64_t t = T - 1; t >= 0; --t) {
    const at::Tensor next = t < T - 1 ? values.select(1, t + 1) : at::zeros({rows}, masks.options());
    const at::Tensor delta = rewards.select(1, t) + gamma * next - values.select(1, t);
    gae = delta + gamma * lam * gae;
    adv[t] = gae;
    future[t] = discounted;
    discounted = rewards.select(1, t) + gamma * discounted;
  }
  PpoTargets out;
  out.advantages = (at::stack(adv, 1) * masks).detach();
  out.returns = out.advantages + values;
  out.discounted_future_rewards = at::stack(future, 1) * masks;
  return out;
}

LossTensors ppo_loss(const LossConfig& cfg, const at::Tensor& logps, const at::Tensor& values, const at::Tensor& ref_logps,
                     const at::Tensor& old_values, const at::Tensor& masks, const PpoTargets& targets) {
  for (const auto* t : {&logps, &values, &ref_logps, &old_values})
    if (t->sizes() != masks.sizes()) throw std::invalid_argument("ppo: log-probs, values and masks must all be [rows, T]");
  // Positions outside the response hold 0 in both log-probs (the seed's token-level log-probs are
  // masked), so their ratio is 1 and the row product skips them.
  const at::Tensor lp = logps * masks, ref = ref_logps.detach() * masks;
  const at::Tensor value_losses = (values - targets.discounted_future_rewards.detach()).pow(2);
  const at::Tensor critic = 0.5 * masked_mean(value_losses, masks);

  const at::Tensor ratio = at::exp(lp - ref);
  const at::Tensor& a = targets.advantages;
  const at::Tensor pl = -a * ratio;
  const at::Tensor pl_clipped = -a * at::clamp(ratio, cfg.cliprange, 1.0 / cfg.cliprange);
  const at::Tensor policy = masked_mean(at::max(pl, pl_clipped), masks);
  const at::Tensor kl = masked_mean(ref - lp, masks);

  LossTensors out;
  out.loss = policy + cfg.critic_coef * critic + cfg.KL_coef * kl;
  out.metrics["loss"] = out.loss.detach().clone();
  out.metrics["loss/critic"] = critic.detach();
  out.metrics["loss/policy"] = policy.detach();
  out.metrics["clipfrac/policy"] = masked_mean(at::gt(pl_clipped, pl).to(masks.scalar_type()), masks).detach();
  out.metrics["loss/policykl"] = kl.detach();
  out.metrics["loss/seqratio"] = at::where(masks > 0, ratio, at::ones_like(ratio)).prod(1).mean().detach();
  out.metrics["returns/mean"] = masked_mean(targets.returns, masks).detach();
  out.metrics["returns/var"] = masked_var(targets.returns, masks).detach();
  out.metrics["val/mean"] = masked_mean(old_values.detach(), masks);
  out.metrics["val/var"] = masked_var(old_values.detach(), masks);
  return out;
}

}  // namespace rpo
