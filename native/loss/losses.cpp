// Preference losses on per-row log-probs: docs/design.md's table, formulas exactly as written.
#include "loss/losses.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace rpo {

namespace {

const std::vector<std::string>& known_losses() {
  static const std::vector<std::string> names = {"sft",  "dpo",   "cdpo", "ipo",          "slic",
                                                 "simpo", "orpo", "rdpo", "rorpo-simple"};
  return names;
}

std::string known_list() {
  std::string out;
  for (const auto& n : known_losses()) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

void check_known(const std::string& loss) {
  for (const auto& n : known_losses())
    if (n == loss) return;
  throw std::invalid_argument("unknown loss '" + loss + "' (known: " + known_list() + ")");
}

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

// log(p / (1 - p)) for p = exp(logp), logp < 0: logp - log(1 - exp(logp)), with expm1 for accuracy.
at::Tensor log_odds(const at::Tensor& logp) { return logp - at::log(-at::expm1(logp)); }

at::Tensor scalar_metric(const at::Tensor& t) { return t.detach().mean(); }

}  // namespace

bool loss_needs_reference(const std::string& loss) {
  check_known(loss);
  return loss == "dpo" || loss == "cdpo" || loss == "ipo" || loss == "rdpo";
}

bool loss_uses_rationale(const std::string& loss) {
  check_known(loss);
  return loss == "rdpo" || loss == "rorpo-simple";
}

int64_t loss_row_groups(const std::string& loss) {
  check_known(loss);
  if (loss == "sft") return 1;
  return loss_uses_rationale(loss) ? 3 : 2;
}

LossTensors compute_loss(const LossConfig& cfg, const PairTensors& policy, const PairTensors* reference) {
  const std::string& name = cfg.name;
  check_known(name);
  const bool needs_ref = loss_needs_reference(name);
  const bool uses_rationale = loss_uses_rationale(name);
  const int64_t groups = loss_row_groups(name);
  const double beta = cfg.beta;
  const double gamma = cfg.gamma;

  // --- validation ---
  if (!policy.chosen.sum.defined() && !policy.chosen.mean.defined())
    throw std::invalid_argument("loss '" + name + "': the policy's chosen log-probs are missing");
  const at::Tensor& any_chosen = policy.chosen.sum.defined() ? policy.chosen.sum : policy.chosen.mean;
  if (any_chosen.dim() != 1) throw std::invalid_argument("loss '" + name + "': log-probs must be 1-D [n_pairs]");
  const int64_t n = any_chosen.size(0);
  if (n == 0) throw std::invalid_argument("loss '" + name + "': no pairs");

  const bool pol_mean = name == "ipo" || name == "simpo" || name == "orpo" || name == "rorpo-simple";
  // Sums are always needed: logps/chosen, logps/rejected and nll_loss report them.
  check_group(policy.chosen, n, "policy chosen", true, pol_mean, true);
  if (groups >= 2) {
    if (!policy.rejected.sum.defined() && !policy.rejected.mean.defined())
      throw std::invalid_argument("loss '" + name + "' needs rejected rows: the policy's rejected log-probs are missing");
    check_group(policy.rejected, n, "policy rejected", true, pol_mean, false);
  }
  if (uses_rationale) {
    if (!policy.rationale.sum.defined() && !policy.rationale.mean.defined())
      throw std::invalid_argument("loss '" + name + "' needs rationale rows: the policy's rationale log-probs are missing");
    check_group(policy.rationale, n, "policy rationale", true, name == "rorpo-simple", false);
  } else if (policy.rationale.defined()) {
    check_group(policy.rationale, n, "policy rationale", true, false, false);
  }
  if (needs_ref) {
    if (reference == nullptr)
      throw std::invalid_argument("loss '" + name + "' needs a reference (a reference model or precomputed reference log-probs)");
    const bool ref_mean = name == "ipo";
    if (!reference->chosen.sum.defined() && !reference->chosen.mean.defined())
      throw std::invalid_argument("loss '" + name + "': the reference's chosen log-probs are missing");
    if (!reference->rejected.sum.defined() && !reference->rejected.mean.defined())
      throw std::invalid_argument("loss '" + name + "': the reference's rejected log-probs are missing");
    check_group(reference->chosen, n, "reference chosen", true, ref_mean, false);
    check_group(reference->rejected, n, "reference rejected", true, ref_mean, false);
  }
  if (name == "ipo" && !(beta > 0))
    throw std::invalid_argument("loss 'ipo': beta must be > 0 (the target margin is 1/(2 beta)), got " + std::to_string(beta));
  if (name == "cdpo" && !(cfg.epsilon >= 0 && cfg.epsilon < 1))
    throw std::invalid_argument("loss 'cdpo': epsilon must be in [0, 1), got " + std::to_string(cfg.epsilon));
  if (name == "rdpo" && cfg.rationale_form != "code" && cfg.rationale_form != "paper")
    throw std::invalid_argument("loss 'rdpo': rationale_form must be 'code' or 'paper', got '" + cfg.rationale_form + "'");

  const at::Tensor& pw = policy.chosen.sum;
  const at::Tensor& pw_mean = policy.chosen.mean;
  // NLL_w: token-mean cross-entropy over every chosen token of the micro-batch (one scalar).
  const at::Tensor nll = -pw.sum() / policy.chosen.count.sum();

  LossTensors out;
  at::Tensor loss;
  at::Tensor reward_w, reward_l;  // per pair, detached

  if (name == "sft") {
    loss = (-pw).mean();
  } else {
    const at::Tensor& pl = policy.rejected.sum;
    const at::Tensor& pl_mean = policy.rejected.mean;
    if (needs_ref) {
      const at::Tensor rw = reference->chosen.sum.detach();
      const at::Tensor rl = reference->rejected.sum.detach();
      reward_w = beta * (pw.detach() - rw);
      reward_l = beta * (pl.detach() - rl);
      if (name == "ipo") {
        const at::Tensor h = (pw_mean - pl_mean) - (reference->chosen.mean.detach() - reference->rejected.mean.detach());
        loss = (h - 1.0 / (2.0 * beta)).pow(2).mean();
      } else {
        const at::Tensor logits = beta * ((pw - pl) - (rw - rl));
        at::Tensor per_pair = -at::log_sigmoid(logits);
        if (name == "cdpo") {
          per_pair = (1.0 - cfg.epsilon) * per_pair + cfg.epsilon * (-at::log_sigmoid(-logits));
        } else if (name == "rdpo") {
          const at::Tensor& pr = policy.rationale.sum;
          per_pair = cfg.rationale_form == "paper" ? per_pair - gamma * pr : per_pair - at::log_sigmoid(gamma * pr);
        }
        loss = per_pair.mean();
      }
    } else if (name == "slic") {
      reward_w = beta * pw.detach();
      reward_l = beta * pl.detach();
      loss = (at::clamp_min(beta - pw + pl, 0.0) + cfg.lambda * (-pw)).mean();
    } else if (name == "simpo") {
      reward_w = beta * pw_mean.detach();
      reward_l = beta * pl_mean.detach();
      loss = (-at::log_sigmoid(beta * pw_mean - beta * pl_mean - cfg.margin)).mean();
    } else {  // orpo, rorpo-simple
      reward_w = beta * pw_mean.detach();
      reward_l = beta * pl_mean.detach();
      at::Tensor term = beta * at::log_sigmoid(log_odds(pw_mean) - log_odds(pl_mean));
      if (name == "rorpo-simple") term = term + gamma * policy.rationale.mean;
      loss = nll - term.mean();
    }
  }

  out.loss = loss;
  out.metrics["loss"] = loss.detach().clone();
  out.metrics["logps/chosen"] = scalar_metric(pw);
  out.metrics["nll_loss"] = nll.detach().clone();
  if (name != "sft") {
    out.metrics["logps/rejected"] = scalar_metric(policy.rejected.sum);
    out.metrics["rewards/chosen"] = reward_w.mean();
    out.metrics["rewards/rejected"] = reward_l.mean();
    out.metrics["rewards/accuracies"] = (reward_w > reward_l).to(reward_w.scalar_type()).mean();
    out.metrics["rewards/margins"] = (reward_w - reward_l).mean();
  }
  if (policy.rationale.defined()) out.metrics["logps/rationale"] = scalar_metric(policy.rationale.sum);
  return out;
}

}  // namespace rpo
