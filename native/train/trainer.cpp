// The train step: one micro-batch forward + loss + backward, and the optimizer step.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>

#include "loss/logprobs.h"
#include "loss/loss_spec.h"
#include "loss/losses.h"
#include "model/model_impl.h"
#include "parallel/zero3_units.h"
#include "train/split_backward.h"
#include "train/trainer_impl.h"

namespace rpo {

TrainerImpl::TrainerImpl(std::shared_ptr<Model> p, std::shared_ptr<Model> r, const TrainerOptions& o)
    : policy(std::move(p)), reference(std::move(r)), options(o) {
  if (!policy) throw std::invalid_argument("trainer: a policy model is required");
  loss_row_groups(options.loss);  // throws on an unknown loss name or a rationale it cannot take
  if (reference && reference->config().vocab_size != policy->config().vocab_size)
    throw std::invalid_argument("trainer: the reference model's vocabulary differs from the policy's");
  if (options.chunk_tokens <= 0) throw std::invalid_argument("trainer: chunkTokens must be positive");
  optimizer = std::make_unique<TrainOptimizer>(policy->impl(), options);
  if (loss_spec(options.loss.name).value_head) ppo = make_ppo_state(*this);
}

namespace {

LogpTensors slice(const RowLogpTensors& r, int64_t group, int64_t n) {
  return {r.sum.narrow(0, group * n, n), r.mean.narrow(0, group * n, n), r.count.narrow(0, group * n, n)};
}

// Host vectors to device tensors: one [3, n] float buffer (pinned on CUDA), one copy.
LogpTensors from_vectors(const RowLogps& r, int64_t n, const at::Device& device, const char* what) {
  if (static_cast<int64_t>(r.sum.size()) != n || static_cast<int64_t>(r.mean.size()) != n)
    throw std::invalid_argument(std::string("micro-step: reference ") + what + " log-probs need sum and mean for " + std::to_string(n) + " pairs");
  if (!r.count.empty() && static_cast<int64_t>(r.count.size()) != n)
    throw std::invalid_argument(std::string("micro-step: reference ") + what + " log-probs need a count for each of " + std::to_string(n) + " pairs (or none)");
  auto host = at::empty({3, n}, at::TensorOptions().dtype(at::kFloat).pinned_memory(device.is_cuda()));
  float* h = host.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    h[i] = static_cast<float>(r.sum[i]);
    h[n + i] = static_cast<float>(r.mean[i]);
    h[2 * n + i] = r.count.empty() ? 1.0f : static_cast<float>(r.count[i]);  // absent counts are 1
  }
  auto d = device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
  return {d[0], d[1], d[2]};
}

// The model's final hidden states, then the head: the fused one on the host-built label
// positions, or the naive full-logits reference.
RowLogpTensors forward_logps(ModelImpl& m, const BatchTensors& t, ForwardOptions fwd, const LogpOptions& lp) {
  fwd.right_padded = t.right_padded;
  fwd.packed = t.packed;
  auto run = [&] {
    auto hidden = m.lm->hidden_states(t.input_ids, t.attention_mask, fwd);
    if (lp.naive && !t.packed) return row_logprobs(hidden, m.lm->output_weight(), t.input_ids, t.loss_mask, lp);
    return row_logprobs(hidden, m.lm->output_weight(), t.labels, lp);
  };
  if (!m.lm->param_units) return run();
  // ZeRO-3: the embeddings, final norm and head gathered around the forward (parallel/zero3.cpp).
  auto out = m.lm->param_units->model([&] {
    auto r = run();
    return std::vector<at::Tensor>{r.sum, r.mean, r.count};
  });
  return {out[0], out[1], out[2]};
}

// Rows [begin, begin + rows) of a micro-batch as the model's input: packed (padding_free; a
// batch with padding before a real token stays padded), else padded to their longest row.
BatchTensors row_tensors(const TrainerImpl& s, const RowBatch& batch, const ModelImpl& m, int64_t begin, int64_t rows) {
  if (s.options.padding_free)
    if (auto packed = packed_batch_tensors(batch, m.config.vocab_size, m.device, begin, rows)) return std::move(*packed);
  return batch_tensors(batch, m.config.vocab_size, m.device, begin, rows, /*trim=*/true);
}

// An unpaired batch's kinds (RowBatch::desirable, one per example) as a bool tensor on the device.
void unpaired_kinds(const RowBatch& batch, int64_t n, const at::Device& device, PairTensors& policy) {
  if (static_cast<int64_t>(batch.desirable.size()) != n)
    throw std::invalid_argument("micro-step: the batch has " + std::to_string(batch.desirable.size()) + " desirable flags for " + std::to_string(n) + " examples");
  auto host = at::empty({n}, at::TensorOptions().dtype(at::kBool));
  for (int64_t i = 0; i < n; ++i) {
    host.data_ptr<bool>()[i] = batch.desirable[i] != 0;
    policy.n_desirable += batch.desirable[i] != 0 ? 1 : 0;
  }
  policy.desirable = host.to(device);
}

// LoRA dropout's masks for a micro-step come from a generator seeded by (seed, the micro-batch's
// token ids): a resumed run, seeing the same batches, draws the same masks without any state to
// save; activation checkpointing restores the generator for each block's recompute.
void lora_dropout_seed(TrainerImpl& s, const RowBatch& batch, ForwardOptions& fwd) {
  auto& st = *s.policy->impl().lora;
  if (st.options.dropout <= 0) return;
  uint64_t h = 0xcbf29ce484222325ull ^ s.options.seed;
  for (int32_t id : batch.input_ids) h = (h ^ static_cast<uint32_t>(id)) * 0x100000001b3ull;
  for (uint8_t a : batch.attention_mask) h = (h ^ a) * 0x100000001b3ull;
  {
    std::lock_guard<std::mutex> lock(st.dropout_gen.mutex());
    st.dropout_gen.set_current_seed(h);
  }
  fwd.preserve_rng = {st.dropout_gen};
}

// Marks a LoRA policy's forward as a training one (dropout on) for a scope.
struct LoraTraining {
  explicit LoraTraining(LoraState* s) : s_(s) {
    if (s_) s_->training = true;
  }
  ~LoraTraining() {
    if (s_) s_->training = false;
  }
  LoraState* s_;
};

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
  if (s.ppo) return ppo_step(s, batch, n_pairs, scale, backward);  // token-level: train/ppo_step.cpp
  auto& pm = s.policy->impl();
  const auto& loss = s.options.loss;
  const int64_t groups = loss_row_groups(loss);
  if (n_pairs <= 0 || batch.rows != n_pairs * groups)
    throw std::invalid_argument("micro-step: loss " + loss.name + " takes " + std::to_string(groups) + " rows per pair, so " + std::to_string(n_pairs) + " pairs need " + std::to_string(n_pairs * groups) + " rows; the batch has " + std::to_string(batch.rows));
  LogpOptions lp;
  lp.chunk_tokens = s.options.chunk_tokens;
  lp.naive = s.options.naive_logprobs;
  // Response rows and rationale rows go through the model as two batches, each packed without
  // padding (padding_free, model/packed.h) or cut to its own longest row on the host (rows are
  // independent: the result is the same as one padded batch). Nothing below waits for the device until the one copy of the loss and metrics.
  const int64_t response_rows = n_pairs * std::min<int64_t>(groups, 2);

  // The reference first: its activations are gone before the policy's exist (a lower peak).
  PairTensors ref;
  const bool needs_ref = loss_needs_reference(loss);
  if (needs_ref) {
    if (reference) {
      ref.chosen = from_vectors(reference->chosen, n_pairs, pm.device, "chosen");
      if (!reference->rejected.sum.empty() || groups >= 2) ref.rejected = from_vectors(reference->rejected, n_pairs, pm.device, "rejected");
    } else if (s.reference) {
      // The reference runs on chosen and rejected rows only, never on rationale rows.
      torch::NoGradGuard no_grad;
      auto& rm = s.reference->impl();
      auto rr = forward_logps(rm, row_tensors(s, batch, rm, 0, response_rows), {}, lp);
      auto to_policy = [&](const LogpTensors& x) {
        return LogpTensors{x.sum.to(pm.device), x.mean.to(pm.device), x.count.to(pm.device)};
      };
      ref.chosen = to_policy(slice(rr, 0, n_pairs));
      if (groups >= 2) ref.rejected = to_policy(slice(rr, 1, n_pairs));
    } else if (pm.lora) {
      // LoRA: the reference is the policy's base with its adapters off (no second model).
      torch::NoGradGuard no_grad;
      AdaptersOff off(pm.lora.get());
      auto rr = forward_logps(pm, row_tensors(s, batch, pm, 0, response_rows), {}, lp);
      ref.chosen = slice(rr, 0, n_pairs);
      if (groups >= 2) ref.rejected = slice(rr, 1, n_pairs);
    } else {
      throw std::invalid_argument("micro-step: loss " + loss.name + " needs a reference model or precomputed reference log-probs");
    }
  }

  at::AutoGradMode grad(backward);
  ForwardOptions fwd;
  fwd.activation_checkpointing = s.options.activation_checkpointing && backward;
  if (pm.lora && backward) lora_dropout_seed(s, batch, fwd);
  LoraTraining lora_training(backward ? pm.lora.get() : nullptr);
  auto rows = forward_logps(pm, row_tensors(s, batch, pm, 0, response_rows), fwd, lp);
  // Two forwards, trained: the loss reads leaf copies of their outputs and each forward is
  // backwarded on its own, rationale first, so no gradient set waits (train/split_backward.h).
  std::vector<LeafLogps> split;
  if (groups >= 3) {
    auto rationale = forward_logps(pm, row_tensors(s, batch, pm, response_rows, n_pairs), fwd, lp);
    if (backward && !single_backward_requested()) {
      split = {as_leaves(rationale), as_leaves(rows)};
      rationale = split[0].leaves;
      rows = split[1].leaves;
    }
    rows = concat(rows, rationale);
  }
  PairTensors policy;
  policy.chosen = slice(rows, 0, n_pairs);
  if (groups >= 2) policy.rejected = slice(rows, 1, n_pairs);
  if (groups >= 3) policy.rationale = slice(rows, 2, n_pairs);
  if (!batch.desirable.empty()) unpaired_kinds(batch, n_pairs, pm.device, policy);

  auto out = compute_loss(loss, policy, needs_ref ? &ref : nullptr);
  // Backward before the loss is read: reading it first would make the host wait for the forward
  // to finish on the device before backward could be queued. A non-finite loss is thus found
  // after backward: its gradients are dropped when there were none before this micro-step (one
  // micro-step per optimizer step), else they poison the accumulated ones and the next optimizer
  // step, seeing a non-finite norm, skips its update. The train loop stops on either.
  bool had_grads = false;
  for (auto& [name, p] : pm.trainable()) had_grads = had_grads || p.grad().defined();
  if (backward && split.empty()) (out.loss * scale).backward();
  if (backward && !split.empty()) split_backward(out.loss * scale, split);
  StepResult result = read_step_result(out.loss, out.metrics, n_pairs, batch);
  if (backward && !result.finite && !had_grads)
    for (auto& [name, p] : pm.trainable()) p.mutable_grad().reset();
  return result;
}

StepResult read_step_result(const at::Tensor& loss, const std::map<std::string, at::Tensor>& metrics, int64_t n_pairs,
                            const RowBatch& batch) {
  std::vector<at::Tensor> values{loss.detach().to(at::kDouble).reshape({1})};
  for (auto& [k, v] : metrics) values.push_back(v.detach().to(at::kDouble).reshape({1}));
  auto host = at::cat(values).cpu();
  const double* h = host.data_ptr<double>();
  StepResult result;
  result.loss = h[0];
  result.finite = std::isfinite(result.loss);
  result.n_pairs = n_pairs;
  result.tokens = real_tokens(batch);
  size_t i = 1;
  for (auto& [k, v] : metrics) result.metrics[k] = h[i++];
  return result;
}

OptimizerStepResult Trainer::optimizer_step(double lr, double max_grad_norm) {
  if (!(lr >= 0) || !std::isfinite(lr)) throw std::invalid_argument("optimizer step: lr must be a finite number >= 0");
  // Clip, update (skipped when the norm is not finite), drop the gradients: train/optimizer.cpp.
  auto result = impl_->optimizer->step(lr, max_grad_norm);
  if (impl_->ppo) ppo_optimizer_step(*impl_->ppo, lr);
  return {result};
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

}  // namespace rpo
