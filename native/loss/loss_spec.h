// One table of losses: each loss one row declaring what it reads (reference or not, sums or
// means, which row groups, its rationale term, its parameters) and the function that computes
// it. The rows are declared in boundary/losses.mjs and generated into gen/loss_table.inc (the
// TS side's lib/gen/loss_table.ts comes from the same declaration); the trainer, compute_loss
// (losses.cpp) and the binding ask them.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "api.h"
#include "loss/losses.h"

namespace rpo {

// How a loss's examples are laid out as rows of a micro-batch.
enum class LossLayout {
  kSft,         // [chosen x n]
  kPaired,      // [chosen x n, rejected x n] (+ [rationale x n] with a rationale term)
  kUnpairedKL,  // kto: [target x n, KL x n]; each target desirable or not
  kUnpaired,    // kto-simple, kto-zero: [target x n]; each target desirable or not
};

// What a loss's compute function hands back; compute_loss adds the rationale term and metrics.
struct LossTerms {
  // Either per_pair, [n] losses averaged over pairs (the rationale gain subtracted first), or
  // gain, [n] terms maximized: loss = offset - mean(gain + rationale gain) (orpo's form, kept
  // as the seed wrote it so its numbers do not move).
  at::Tensor per_pair, gain;
  at::Tensor offset;  // orpo: NLL of the chosen tokens; undefined otherwise
  at::Tensor reward_w, reward_l;  // [n] detached paired rewards; undefined for sft and unpaired
  std::map<std::string, at::Tensor> metrics;  // the loss's own metrics (unpaired losses)
};

struct LossInputs {
  const LossConfig& cfg;
  const PairTensors& policy;
  const PairTensors* reference;  // null for reference-free losses
  const at::Tensor& nll;         // NLL of the chosen tokens (paired and sft layouts); else undefined
};

struct LossSpec {
  const char* name;
  const char* formula;   // one line, for docs and `rpo train --help`
  LossLayout layout;
  bool needs_reference;
  bool policy_mean;      // reads length-normalized policy log-probs (and rationale means)
  bool reference_mean;   // reads length-normalized reference log-probs
  // "" : loss.rationale chooses (none, logsigmoid, linear); "never": no rationale term;
  // otherwise the term the name fixes ("logsigmoid", "linear"; rdpo: by rationale_form).
  const char* rationale;
  bool value_head;       // trains a value head on the policy (ppo: train/ppo_step.h)
  bool control_tokens;   // conditions on control tokens (csft; the TS side adds them)
  bool balanced_kinds;   // each batch is half desirable, half undesirable (kto-simple)
  std::vector<const char*> params;  // the LossConfig parameters it reads (gamma also with a rationale term)
  // Per-row log-probs to terms; null for a value-head loss, whose token-level loss the
  // trainer's value-head step computes (train/ppo_step.cpp).
  LossTerms (*compute)(const LossInputs&);
};

// A loss parameter's range (boundary/losses.mjs): `value` reads it from a LossConfig.
struct LossParamRange {
  const char* name;
  double (*value)(const LossConfig&);
  double lo;
  bool lo_open;
  double hi;
  bool hi_open;
  const char* words;  // "in [0, 1)", "a finite number >= 0", ...
};

const std::vector<LossSpec>& loss_table();
// Throws "unknown loss ... (known: ...)".
const LossSpec& loss_spec(const std::string& name);
const std::vector<LossParamRange>& loss_param_ranges();
// Throws "loss '<name>': <key> must be <range>, got <value>" for a parameter the loss reads
// (its own, and gamma with a rationale term) that is outside its declared range.
void check_loss_params(const LossConfig& cfg);
// The rationale term this configuration adds: "none", "logsigmoid" or "linear".
std::string effective_rationale(const LossConfig& cfg);

// The loss families' compute functions (paired.cpp, kto.cpp).
LossTerms sft_terms(const LossInputs& in);
LossTerms dpo_terms(const LossInputs& in);
LossTerms cdpo_terms(const LossInputs& in);
LossTerms ipo_terms(const LossInputs& in);
LossTerms slic_terms(const LossInputs& in);
LossTerms simpo_terms(const LossInputs& in);
LossTerms orpo_terms(const LossInputs& in);
LossTerms kto_terms(const LossInputs& in);
LossTerms kto_simple_terms(const LossInputs& in);
LossTerms kto_zero_terms(const LossInputs& in);

}  // namespace rpo
