// Preference losses on per-row log-probs (docs/design.md's table, formulas exactly as written).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "api.h"

namespace rpo {

// Per-row log-probs of one row group: sum and mean over label tokens, token count (float).
struct LogpTensors {
  at::Tensor sum, mean, count;  // each [n_pairs]
  bool defined() const { return sum.defined(); }
};

struct PairTensors {
  LogpTensors chosen, rejected, rationale;  // rationale undefined unless the loss uses it
  // Unpaired losses: [n] bool, per example (chosen holds the examples; kto's rejected, the KL rows).
  at::Tensor desirable;
  int64_t n_desirable = 0;  // desirable examples, counted on the host (no device sync for metrics)
};

struct LossTensors {
  at::Tensor loss;                            // scalar, differentiable w.r.t. the policy
  std::map<std::string, at::Tensor> metrics;  // scalars (means over pairs), detached
};

// `reference` is null for reference-free losses; for reference losses it must hold chosen
// and rejected (never rationale: the reference does not run on rationale rows).
LossTensors compute_loss(const LossConfig& cfg, const PairTensors& policy, const PairTensors* reference);

}  // namespace rpo
