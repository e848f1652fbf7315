// The train step: one micro-batch forward + loss + backward, and the optimizer step.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/serialize.h>

#include <cstdio>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "loss/logprobs.h"
#include "loss/losses.h"
#include "model/model_impl.h"

namespace rpo {

class TrainerImpl {
 public:
  TrainerImpl(std::shared_ptr<Model> p, std::shared_ptr<Model> r, const TrainerOptions& o)
      : policy(std::move(p)), reference(std::move(r)), options(o) {
    if (!policy) throw std::invalid_argument("trainer: a policy model is required");
    loss_row_groups(options.loss.name);  // throws on an unknown loss name
    if (reference && reference->config().vocab_size != policy->config().vocab_size)
      throw std::invalid_argument("trainer: the reference model's vocabulary differs from the policy's");
    if (options.chunk_tokens <= 0) throw std::invalid_argument("trainer: chunkTokens must be positive");
    std::vector<at::Tensor> params;
    for (auto& [name, t] : policy->impl().params) params.push_back(t);
    if (options.optimizer == "AdamW") {
      torch::optim::AdamWOptions opts(1e-3);  // lr is set at every step
      if (options.weight_decay >= 0) opts.weight_decay(options.weight_decay);
      optimizer = std::make_unique<torch::optim::AdamW>(params, opts);
    } else if (options.optimizer == "RMSprop") {
      torch::optim::RMSpropOptions opts(1e-3);
      if (options.weight_decay >= 0) opts.weight_decay(options.weight_decay);
      optimizer = std::make_unique<torch::optim::RMSprop>(params, opts);
    } else {
      throw std::invalid_argument("trainer: unknown optimizer \"" + options.optimizer + "\" (AdamW or RMSprop)");
    }
  }

  std::shared_ptr<Model> policy, reference;
  TrainerOptions options;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

namespace {

LogpTensors slice(const RowLogpTensors& r, int64_t group, int64_t n) {
  return {r.sum.narrow(0, group * n, n), r.mean.narrow(0, group * n, n), r.count.narrow(0, group * n, n)};
}

LogpTensors from_vectors(const RowLogps& r, int64_t n, const at::Device& device, const char* what) {
  if (static_cast<int64_t>(r.sum.size()) != n || static_cast<int64_t>(r.mean.size()) != n)
    throw std::invalid_argument(std::string("micro-step: reference ") + what + " log-probs need sum and mean for " + std::to_string(n) + " pairs");
  auto t = [&](const std::vector<double>& v) { return at::tensor(v, at::kDouble).to(at::kFloat).to(device); };
  std::vector<double> count(r.count.begin(), r.count.end());
  if (count.empty()) count.assign(n, 1.0);
  return {t(r.sum), t(r.mean), t(count)};
}

double item(const at::Tensor& t) { return t.detach().to(at::kDouble).cpu().item<double>(); }

// Rows [begin, begin + count) of a right-padded batch, cut to their longest real row: rationale
// rows (the rationale question quotes both responses) are often several times longer than the
// response rows, and padding every row to them would multiply the work.
BatchTensors rows_trimmed(const BatchTensors& t, int64_t begin, int64_t count, const at::Device& device) {
  auto att = t.attention_mask.narrow(0, begin, count);
  auto used = att.any(0).nonzero();
  const int64_t T = used.numel() == 0 ? 1 : used.max().item<int64_t>() + 1;
  return {t.input_ids.narrow(0, begin, count).narrow(1, 0, T).to(device), att.narrow(1, 0, T).to(device),
          t.loss_mask.narrow(0, begin, count).narrow(1, 0, T).to(device)};
}

RowLogpTensors forward_logps(ModelImpl& m, const BatchTensors& t, const ForwardOptions& fwd, const LogpOptions& lp) {
  auto hidden = m.lm->hidden_states(t.input_ids, t.attention_mask, fwd);
  return row_logprobs(hidden, m.lm->output_weight(), t.input_ids, t.loss_mask, lp);
}

RowLogpTensors concat(const RowLogpTensors& a, const RowLogpTensors& b) {
  return {at::cat({a.sum, b.sum}), at::cat({a.mean, b.mean}), at::cat({a.count, b.count})};
}

}  // namespace

Trainer::Trainer(std::shared_ptr<Model> policy, std::shared_ptr<Model> reference, const TrainerOptions& options)
    : impl_(std::make_unique<TrainerImpl>(std::move(policy), std::move(reference), options)) {}
Trainer::~Trainer() = default;

StepResult Trainer::micro_step(const RowBatch& batch, int64_t n_pairs, double scale, const std::optional<PairLogps>& reference) {
  return step(batch, n_pairs, scale, reference, /*backward=*/true);
}

StepResult Trainer::eval_step(const RowBatch& batch, int64_t n_pairs, const std::optional<PairLogps>& reference) {
  return step(batch, n_pairs, 1.0, reference, /*backward=*/false);
}

StepResult Trainer::step(const RowBatch& batch, int64_t n_pairs, double scale, const std::optional<PairLogps>& reference,
                         bool backward) {
  auto& s = *impl_;
  auto& pm = s.policy->impl();
  const auto& loss = s.options.loss;
  const int64_t groups = loss_row_groups(loss.name);
  if (n_pairs <= 0 || batch.rows != n_pairs * groups)
    throw std::invalid_argument("micro-step: loss " + loss.name + " takes " + std::to_string(groups) + " rows per pair, so " + std::to_string(n_pairs) + " pairs need " + std::to_string(n_pairs * groups) + " rows; the batch has " + std::to_string(batch.rows));
  auto t = batch_tensors(batch, pm.config.vocab_size, pm.device);

  at::AutoGradMode grad(backward);
  ForwardOptions fwd;
  fwd.activation_checkpointing = s.options.activation_checkpointing && backward;
  LogpOptions lp;
  lp.chunk_tokens = s.options.chunk_tokens;
  lp.naive = s.options.naive_logprobs;
  // Response rows and rationale rows go through the policy as two batches, each cut to its
  // own longest row (rows are independent: the result is the same as one padded batch).
  const int64_t response_rows = n_pairs * std::min<int64_t>(groups, 2);
  auto rows = forward_logps(pm, rows_trimmed(t, 0, response_rows, pm.device), fwd, lp);
  if (groups >= 3) rows = concat(rows, forward_logps(pm, rows_trimmed(t, response_rows, n_pairs, pm.device), fwd, lp));
  PairTensors policy;
  policy.chosen = slice(rows, 0, n_pairs);
  if (groups >= 2) policy.rejected = slice(rows, 1, n_pairs);
  if (groups >= 3) policy.rationale = slice(rows, 2, n_pairs);

  PairTensors ref;
  const bool needs_ref = loss_needs_reference(loss.name);
  if (needs_ref) {
    if (reference) {
      ref.chosen = from_vectors(reference->chosen, n_pairs, pm.device, "chosen");
      if (!reference->rejected.sum.empty() || groups >= 2) ref.rejected = from_vectors(reference->rejected, n_pairs, pm.device, "rejected");
    } else if (s.reference) {
      // The reference runs on chosen and rejected rows only, never on rationale rows.
      torch::NoGradGuard no_grad;
      auto& rm = s.reference->impl();
      auto rr = forward_logps(rm, rows_trimmed(t, 0, response_rows, rm.device), {}, lp);
      auto to_policy = [&](const LogpTensors& x) {
        return LogpTensors{x.sum.to(pm.device), x.mean.to(pm.device), x.count.to(pm.device)};
      };
      ref.chosen = to_policy(slice(rr, 0, n_pairs));
      if (groups >= 2) ref.rejected = to_policy(slice(rr, 1, n_pairs));
    } else {
      throw std::invalid_argument("micro-step: loss " + loss.name + " needs a reference model or precomputed reference log-probs");
    }
  }

  auto out = compute_loss(loss, policy, needs_ref ? &ref : nullptr);
  StepResult result;
  result.loss = item(out.loss);
  result.finite = std::isfinite(result.loss);
  result.n_pairs = n_pairs;
  result.tokens = t.attention_mask.sum().item<int64_t>();
  for (auto& [k, v] : out.metrics) result.metrics[k] = item(v);
  if (backward && result.finite) (out.loss * scale).backward();
  return result;
}

OptimizerStepResult Trainer::optimizer_step(double lr, double max_grad_norm) {
  auto& s = *impl_;
  if (!(lr >= 0) || !std::isfinite(lr)) throw std::invalid_argument("optimizer step: lr must be a finite number >= 0");
  std::vector<at::Tensor> params;
  for (auto& [name, t] : s.policy->impl().params)
    if (t.grad().defined()) params.push_back(t);
  const double limit = max_grad_norm > 0 ? max_grad_norm : std::numeric_limits<double>::infinity();
  const double norm = params.empty() ? 0.0 : torch::nn::utils::clip_grad_norm_(params, limit);
  // A non-finite norm would poison every weight: report it and leave the weights alone.
  if (std::isfinite(norm)) {
    for (auto& group : s.optimizer->param_groups()) group.options().set_lr(lr);
    s.optimizer->step();
  }
  s.optimizer->zero_grad(true);
  return {norm};
}

std::vector<double> Trainer::grad_snapshot(const std::vector<std::string>& names) const {
  std::vector<double> out;
  for (const auto& name : names) {
    const auto& p = impl_->policy->impl().param(name);
    auto g = p.grad().defined() ? p.grad().detach().to(at::kDouble).cpu().contiguous() : at::zeros({p.numel()}, at::kDouble);
    out.insert(out.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return out;
}

// torch::save writes the optimizer's param groups and per-parameter state (AdamW's moments
// and step; RMSprop's square averages) in LibTorch's archive format.
void Trainer::save_state(const std::string& path) const {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    torch::save(*impl_->optimizer, tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename the optimizer state into place");
  }
}

void Trainer::load_state(const std::string& path) {
  try {
    torch::load(*impl_->optimizer, path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": not an optimizer state this trainer can load (" + e.what_without_backtrace() + ")");
  }
}

}  // namespace rpo
