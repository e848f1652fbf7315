// The table of losses (loss_spec.h): one row per loss name. rdpo, rorpo and rorpo-simple are
// rows of their base loss with the rationale term fixed, so `rdpo == dpo + logsigmoid` holds by
// construction and the tests check it on values and gradients.
#include <stdexcept>
#include <string>

#include "loss/loss_spec.h"

namespace rpo {

const std::vector<LossSpec>& loss_table() {
  using L = LossLayout;
  // name, formula, layout, needs_reference, policy_mean, reference_mean, rationale, compute, check
  static const std::vector<LossSpec> table = {
      {"sft", "-logp(y_w)", L::kSft, false, false, false, "never", sft_terms, nullptr},
      {"csft", "-logp(y | x, control token): chosen after <|good|>, rejected after <|bad|>", L::kSft, false, false, false, "never", sft_terms, nullptr},
      {"dpo", "-log s(beta((pi_w - pi_l) - (ref_w - ref_l)))", L::kPaired, true, false, false, "", dpo_terms, nullptr},
      {"cdpo", "(1-eps) dpo(x) + eps dpo(-x)", L::kPaired, true, false, false, "", cdpo_terms, check_cdpo},
      {"ipo", "((pi_w - pi_l) - (ref_w - ref_l) - 1/(2 beta))^2 on means", L::kPaired, true, true, true, "", ipo_terms, check_ipo},
      {"slic", "max(0, beta - pi_w + pi_l) - lambda pi_w", L::kPaired, false, false, false, "", slic_terms, nullptr},
      {"simpo", "-log s(beta mean_w - beta mean_l - margin)", L::kPaired, false, true, false, "", simpo_terms, nullptr},
      {"orpo", "NLL_w - beta log s(log odds(mean_w) - log odds(mean_l))", L::kPaired, false, true, false, "", orpo_terms, nullptr},
      {"rdpo", "dpo - log s(gamma pi_r) (rationale_form=code) or dpo - gamma pi_r (paper)", L::kPaired, true, false, false, "rationale_form", dpo_terms, check_rdpo},
      {"rorpo", "orpo - log s(gamma mean_r)", L::kPaired, false, true, false, "logsigmoid", orpo_terms, nullptr},
      {"rorpo-simple", "orpo - gamma mean_r", L::kPaired, false, true, false, "linear", orpo_terms, nullptr},
      {"kto", "w_d (1 - s(beta(r - KL))) | w_u (1 - s(beta(KL - r))), r = pi - ref, KL from mismatched pairs", L::kUnpairedKL, true, false, false, "never", kto_terms, check_kto},
      {"kto-simple", "1 - s(beta(r - KL_u)) | 1 - s(beta(KL_d - r)), KL_* = mean r of the other kind", L::kUnpaired, true, false, false, "never", kto_simple_terms, nullptr},
      {"kto-zero", "1 - s(beta r) | 1 - s(-beta r)", L::kUnpaired, true, false, false, "never", kto_zero_terms, nullptr},
      {"ppo", "offline PPO: clipped ratio pi/ref with GAE advantages of +-1 at the last token + critic_coef critic + KL_coef KL", L::kUnpaired, true, false, false, "never", ppo_terms, check_ppo},
  };
  return table;
}

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
    out.push_back({s.name, s.formula, layout, s.needs_reference, s.policy_mean, s.reference_mean, s.rationale});
  }
  return out;
}

}  // namespace rpo
