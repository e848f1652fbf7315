// evaluate_ppo (api.h): ppo's targets, loss, metrics and gradients on given token-level
// log-probs and values, in float64 with autograd, for tests against the Python reference.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "api.h"
#include "loss/loss_spec.h"
#include "loss/ppo.h"

namespace rpo {

namespace {

at::Tensor grid(const std::vector<double>& v, int64_t rows, int64_t cols, const char* what) {
  if (static_cast<int64_t>(v.size()) != rows * cols)
    throw std::invalid_argument(std::string("evaluate_ppo: ") + what + " has " + std::to_string(v.size()) + " entries, expected " +
                                std::to_string(rows) + " x " + std::to_string(cols));
  at::Tensor t = at::empty({rows, cols}, at::TensorOptions().dtype(at::kDouble));
  if (!v.empty()) std::memcpy(t.data_ptr<double>(), v.data(), v.size() * sizeof(double));
  return t;
}

std::vector<double> flat(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

PpoResult evaluate_ppo(const LossConfig& cfg, const PpoTokens& in) {
  check_loss_params(cfg);
  c10::AutoGradMode grad_mode(true);
  const int64_t R = in.rows, T = in.T;
  at::Tensor logps = grid(in.logps, R, T, "logps").requires_grad_(true);
  at::Tensor values = grid(in.values, R, T, "values").requires_grad_(true);
  const at::Tensor ref = grid(in.ref_logps, R, T, "ref_logps");
  const at::Tensor old_values = grid(in.old_values, R, T, "old_values");
  const at::Tensor masks = grid(in.masks, R, T, "masks");
  const at::Tensor scores = grid(in.scores, R, 1, "scores").squeeze(1);
  const PpoTargets targets = ppo_targets(old_values, scores, masks, cfg.gamma, cfg.lam);
  LossTensors lt = ppo_loss(cfg, logps, values, ref, old_values, masks, targets);
  lt.loss.backward();
  PpoResult r;
  r.loss = lt.loss.item<double>();
  for (const auto& [k, v] : lt.metrics) r.metrics[k] = v.item<double>();
  r.grad_logps = flat(logps.grad());
  r.grad_values = flat(values.grad());
  r.advantages = flat(targets.advantages);
  r.discounted_future_rewards = flat(targets.discounted_future_rewards);
  return r;
}

}  // namespace rpo
