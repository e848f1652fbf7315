// compute_loss: checks the inputs a loss's table row (loss_spec.h) declares, runs its compute
// function, adds the rationale term and the shared metrics.
#include "loss/losses.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "loss/loss_spec.h"

namespace rpo {

namespace {

// One field of a row group: defined, 1-D, n elements.
void check_field(const at::Tensor& t, int64_t n, const std::string& what) {
  if (!t.defined()) throw std::invalid_argument("loss: " + what + " is missing");
  if (t.dim() != 1) throw std::invalid_argument("loss: " + what + " must be 1-D [n_pairs], got " + std::to_string(t.dim()) + " dims");
  if (t.size(0) != n)
    throw std::invalid_argument("loss: " + what + " has " + std::to_string(t.size(0)) + " entries, expected " +
                                std::to_string(n) + " (one per pair)");
}

void check_group(const LogpTensors& g, int64_t n, const std::string& what, bool need_sum, bool need_mean, bool need_count) {
  if (!g.defined() && !g.mean.defined()) throw std::invalid_argument("loss: " + what + " log-probs are missing");
  if (need_sum) check_field(g.sum, n, what + ".sum");
  if (need_mean) check_field(g.mean, n, what + ".mean");
  if (need_count) check_field(g.count, n, what + ".count");
  // Fields given but not needed must still agree in size (an empty one counts as not given).
  auto unused = [&](const at::Tensor& t) { return t.defined() && t.numel() > 0; };
  if (!need_sum && unused(g.sum)) check_field(g.sum, n, what + ".sum");
  if (!need_mean && unused(g.mean)) check_field(g.mean, n, what + ".mean");
  if (!need_count && unused(g.count)) check_field(g.count, n, what + ".count");
}

bool present(const LogpTensors& g) { return g.sum.defined() || g.mean.defined(); }

at::Tensor scalar_metric(const at::Tensor& t) { return t.detach().mean(); }

// The rationale term as a gain (subtracted from the loss): gamma pi_r or log s(gamma pi_r).
at::Tensor rationale_gain(const std::string& form, double gamma, const at::Tensor& pr) {
  return form == "linear" ? gamma * pr : at::log_sigmoid(gamma * pr);
}

}  // namespace

LossTensors compute_loss(const LossConfig& cfg, const PairTensors& policy, const PairTensors* reference) {
  const std::string& name = cfg.name;
  const LossSpec& spec = loss_spec(name);
  if (!spec.compute)
    throw std::invalid_argument("loss '" + name + "' is computed on token-level log-probs and values (the trainer's value-head step), not per-row sums");
  check_loss_params(cfg);
  const std::string rationale = effective_rationale(cfg);
  const bool uses_rationale = rationale != "none";
  const bool paired = spec.layout == LossLayout::kPaired;
  const bool unpaired = spec.layout == LossLayout::kUnpaired || spec.layout == LossLayout::kUnpairedKL;

  // --- validation ---
  if (!present(policy.chosen)) throw std::invalid_argument("loss '" + name + "': the policy's chosen log-probs are missing");
  const at::Tensor& any_chosen = policy.chosen.sum.defined() ? policy.chosen.sum : policy.chosen.mean;
  if (any_chosen.dim() != 1) throw std::invalid_argument("loss '" + name + "': log-probs must be 1-D [n_pairs]");
  const int64_t n = any_chosen.size(0);
  if (n == 0) throw std::invalid_argument("loss '" + name + "': no pairs");

  // Sums are always needed: logps/chosen, logps/rejected and nll_loss report them.
  check_group(policy.chosen, n, "policy chosen", true, spec.policy_mean, !unpaired);
  const bool reads_rejected = paired || spec.layout == LossLayout::kUnpairedKL;
  const char* rejected_rows = paired ? "rejected" : "KL";
  if (reads_rejected) {
    if (!present(policy.rejected))
      throw std::invalid_argument("loss '" + name + "' needs " + rejected_rows + " rows: the policy's " + rejected_rows + " log-probs are missing");
    check_group(policy.rejected, n, std::string("policy ") + rejected_rows, true, spec.policy_mean, false);
  }
  if (uses_rationale) {
    if (!present(policy.rationale))
      throw std::invalid_argument("loss '" + name + "' needs rationale rows: the policy's rationale log-probs are missing");
    check_group(policy.rationale, n, "policy rationale", true, spec.policy_mean, false);
  } else if (policy.rationale.defined()) {
    check_group(policy.rationale, n, "policy rationale", true, false, false);
  }
  if (unpaired) {
    if (!policy.desirable.defined() || policy.desirable.dim() != 1 || policy.desirable.size(0) != n)
      throw std::invalid_argument("loss '" + name + "' needs each example's kind (desirable or not): " + std::to_string(n) +
                                  " flags, one per example");
    if (policy.desirable.scalar_type() != at::kBool) throw std::invalid_argument("loss '" + name + "': the desirable flags must be bool");
  }
  if (spec.needs_reference) {
    if (reference == nullptr)
      throw std::invalid_argument("loss '" + name + "' needs a reference (a reference model or precomputed reference log-probs)");
    if (!present(reference->chosen)) throw std::invalid_argument("loss '" + name + "': the reference's chosen log-probs are missing");
    check_group(reference->chosen, n, "reference chosen", true, spec.reference_mean, false);
    if (reads_rejected) {
      if (!present(reference->rejected))
        throw std::invalid_argument("loss '" + name + "': the reference's " + rejected_rows + " log-probs are missing");
      check_group(reference->rejected, n, std::string("reference ") + rejected_rows, true, spec.reference_mean, false);
    }
  }

  const at::Tensor& pw = policy.chosen.sum;
  // NLL_w: token-mean cross-entropy over every chosen token of the micro-batch (one scalar).
  const at::Tensor nll = unpaired ? at::Tensor() : -pw.sum() / policy.chosen.count.sum();

  LossTerms t = spec.compute(LossInputs{cfg, policy, spec.needs_reference ? reference : nullptr, nll});
  at::Tensor loss;
  if (t.gain.defined()) {
    at::Tensor gain = t.gain;
    if (uses_rationale) gain = gain + rationale_gain(rationale, cfg.gamma, spec.policy_mean ? policy.rationale.mean : policy.rationale.sum);
    loss = t.offset - gain.mean();
  } else {
    at::Tensor per_pair = t.per_pair;
    if (uses_rationale) per_pair = per_pair - rationale_gain(rationale, cfg.gamma, spec.policy_mean ? policy.rationale.mean : policy.rationale.sum);
    loss = per_pair.mean();
    if (t.offset.defined()) loss = t.offset + loss;
  }

  LossTensors out;
  out.loss = loss;
  out.metrics["loss"] = loss.detach().clone();
  if (unpaired) {
    for (auto& [k, v] : t.metrics) out.metrics[k] = v.detach();
    return out;
  }
  out.metrics["logps/chosen"] = scalar_metric(pw);
  out.metrics["nll_loss"] = nll.detach().clone();
  if (paired) {
    out.metrics["logps/rejected"] = scalar_metric(policy.rejected.sum);
    out.metrics["rewards/chosen"] = t.reward_w.mean();
    out.metrics["rewards/rejected"] = t.reward_l.mean();
    out.metrics["rewards/accuracies"] = (t.reward_w > t.reward_l).to(t.reward_w.scalar_type()).mean();
    out.metrics["rewards/margins"] = (t.reward_w - t.reward_l).mean();
  }
  if (policy.rationale.defined()) out.metrics["logps/rationale"] = scalar_metric(policy.rationale.sum);
  return out;
}

}  // namespace rpo
