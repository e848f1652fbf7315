// The table of losses (loss_spec.h): one row per loss name, declared in boundary/losses.mjs and
// generated into gen/loss_table.inc with each parameter's range. rdpo, rorpo and rorpo-simple are
// rows of their base loss with the rationale term fixed, so `rdpo == dpo + logsigmoid` holds by
// construction and the tests check it on values and gradients.
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "loss/loss_spec.h"

namespace rpo {

#include "gen/loss_table.inc"

const LossSpec& loss_spec(const std::string& name) {
  for (const auto& s : loss_table())
    if (name == s.name) return s;
  std::string known;
  for (const auto& s : loss_table()) known += (known.empty() ? "" : ", ") + std::string(s.name);
  throw std::invalid_argument("unknown loss '" + name + "' (known: " + known + ")");
}

std::string effective_rationale(const LossConfig& cfg) {
  const LossSpec& spec = loss_spec(cfg.name);
  const std::string fixed = spec.rationale;
  if (fixed == "never") {
    if (cfg.rationale != "none")
      throw std::invalid_argument("loss '" + cfg.name + "' takes no rationale term (loss.rationale=" + cfg.rationale + ")");
    return "none";
  }
  if (fixed.empty()) {
    if (cfg.rationale != "none" && cfg.rationale != "logsigmoid" && cfg.rationale != "linear")
      throw std::invalid_argument("loss.rationale must be none, logsigmoid or linear, got '" + cfg.rationale + "'");
    return cfg.rationale;
  }
  const std::string own = fixed == "rationale_form" ? (cfg.rationale_form == "paper" ? "linear" : "logsigmoid") : fixed;
  if (cfg.rationale != "none" && cfg.rationale != own)
    throw std::invalid_argument("loss '" + cfg.name + "' fixes its rationale term (" + own + "); loss.rationale=" + cfg.rationale +
                                " contradicts it");
  return own;
}

void check_loss_params(const LossConfig& cfg) {
  const LossSpec& spec = loss_spec(cfg.name);
  auto reads = [&](const std::string& key) {
    for (const char* p : spec.params)
      if (key == p) return true;
    return key == "gamma" && effective_rationale(cfg) != "none";
  };
  for (const auto& r : loss_param_ranges()) {
    if (!reads(r.name)) continue;
    const double v = r.value(cfg);
    const bool above_lo = r.lo_open ? v > r.lo : v >= r.lo;
    const bool below_hi = r.hi_open ? v < r.hi : v <= r.hi;
    if (!std::isfinite(v) || !above_lo || !below_hi) {
      std::ostringstream got;
      got << v;
      throw std::invalid_argument("loss '" + cfg.name + "': " + r.name + " must be " + r.words + ", got " + got.str());
    }
  }
}

bool loss_needs_reference(const LossConfig& loss) { return loss_spec(loss.name).needs_reference; }

bool loss_uses_rationale(const LossConfig& loss) { return effective_rationale(loss) != "none"; }

int64_t loss_row_groups(const LossConfig& loss) {
  const bool rationale = loss_uses_rationale(loss);  // also rejects a rationale the loss cannot take
  switch (loss_spec(loss.name).layout) {
    case LossLayout::kSft:
    case LossLayout::kUnpaired:
      return 1;
    case LossLayout::kUnpairedKL:
      return 2;
    case LossLayout::kPaired:
      return rationale ? 3 : 2;
  }
  return 2;
}

std::vector<LossDeclaration> loss_declarations() {
  std::vector<LossDeclaration> out;
  for (const auto& s : loss_table()) {
    const char* layout = s.layout == LossLayout::kSft ? "sft" : s.layout == LossLayout::kPaired ? "paired"
                         : s.layout == LossLayout::kUnpairedKL ? "unpaired-kl" : "unpaired";
    out.push_back({s.name, s.formula, layout, s.needs_reference, s.policy_mean, s.reference_mean, s.rationale, s.value_head,
                   std::vector<std::string>(s.params.begin(), s.params.end())});
  }
  return out;
}

}  // namespace rpo
