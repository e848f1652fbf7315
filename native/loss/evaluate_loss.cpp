// evaluate_loss (api.h): a loss, its metrics and its gradients on given per-pair log-probs,
// in float64 with autograd, for tests and scripts.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "api.h"
#include "loss/losses.h"

namespace rpo {

namespace {

at::Tensor to_tensor(const std::vector<double>& v, bool requires_grad) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions().dtype(at::kDouble));
  if (!v.empty()) std::memcpy(t.data_ptr<double>(), v.data(), v.size() * sizeof(double));
  if (requires_grad) t.requires_grad_(true);
  return t;
}

at::Tensor to_tensor(const std::vector<int64_t>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions().dtype(at::kDouble));
  double* p = t.data_ptr<double>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<double>(v[i]);
  return t;
}

bool given(const RowLogps& r) { return !r.sum.empty() || !r.mean.empty() || !r.count.empty(); }

// Leaves for the fields a group was given; an empty field stays undefined.
LogpTensors leaves(const RowLogps& r, bool requires_grad, const std::string& what) {
  const size_t n = !r.sum.empty() ? r.sum.size() : !r.mean.empty() ? r.mean.size() : r.count.size();
  auto check = [&](size_t size, const char* field) {
    if (size != 0 && size != n)
      throw std::invalid_argument("evaluate_loss: " + what + "." + field + " has " + std::to_string(size) +
                                  " entries, the group's other fields " + std::to_string(n));
  };
  check(r.sum.size(), "sum");
  check(r.mean.size(), "mean");
  check(r.count.size(), "count");
  LogpTensors t;
  if (!r.sum.empty()) t.sum = to_tensor(r.sum, requires_grad);
  if (!r.mean.empty()) t.mean = to_tensor(r.mean, requires_grad);
  if (!r.count.empty()) t.count = to_tensor(r.count);
  return t;
}

std::vector<double> grad_of(const at::Tensor& leaf) {
  std::vector<double> out(static_cast<size_t>(leaf.numel()), 0.0);
  const at::Tensor g = leaf.grad();
  if (g.defined()) {
    const at::Tensor c = g.detach().to(at::kDouble).contiguous();
    std::memcpy(out.data(), c.data_ptr<double>(), out.size() * sizeof(double));
  }
  return out;
}

}  // namespace

LossResult evaluate_loss(const LossConfig& cfg, const PairLogps& policy, const std::optional<PairLogps>& reference) {
  c10::AutoGradMode grad_mode(true);

  PairTensors pol;
  const bool has_rejected = given(policy.rejected);
  const bool has_rationale = given(policy.rationale);
  pol.chosen = leaves(policy.chosen, true, "policy chosen");
  if (has_rejected) pol.rejected = leaves(policy.rejected, true, "policy rejected");
  if (has_rationale) pol.rationale = leaves(policy.rationale, true, "policy rationale");
  if (!policy.desirable.empty()) {
    pol.desirable = at::empty({static_cast<int64_t>(policy.desirable.size())}, at::TensorOptions().dtype(at::kBool));
    bool* d = pol.desirable.data_ptr<bool>();
    for (size_t i = 0; i < policy.desirable.size(); ++i) {
      d[i] = policy.desirable[i] != 0;
      pol.n_desirable += d[i] ? 1 : 0;
    }
  }

  PairTensors ref;
  if (reference) {
    // The reference never runs on rationale rows: only chosen and rejected are read.
    ref.chosen = leaves(reference->chosen, false, "reference chosen");
    ref.rejected = leaves(reference->rejected, false, "reference rejected");
  }

  LossTensors lt = compute_loss(cfg, pol, reference ? &ref : nullptr);
  if (lt.loss.requires_grad()) lt.loss.backward();

  LossResult result;
  result.loss = lt.loss.detach().item<double>();
  for (const auto& [key, value] : lt.metrics) result.metrics[key] = value.item<double>();

  auto add = [&](const std::string& group, const LogpTensors& t) {
    if (t.sum.defined()) result.grads[group + ".sum"] = grad_of(t.sum);
    if (t.mean.defined()) result.grads[group + ".mean"] = grad_of(t.mean);
  };
  add("chosen", pol.chosen);
  if (has_rejected) add("rejected", pol.rejected);
  if (has_rationale) add("rationale", pol.rationale);
  return result;
}

}  // namespace rpo
