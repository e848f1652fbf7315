// loss=ppo's step (ppo_step.h).
#include "train/ppo_step.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/utils.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>

#include <cmath>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "loss/logprobs.h"
#include "loss/loss_spec.h"
#include "loss/ppo.h"
#include "model/model_impl.h"
#include "train/trainer_impl.h"

namespace rpo {

namespace {

struct TokenPass {
  at::Tensor logps;   // [rows, T-1] fp32: log p(token t+1 | ..t)
  at::Tensor hidden;  // [rows, T, H]
};

// `packed`: the same rows packed (padding_free), run through the model without padding and laid
// out as `t`'s padded rows after it (zeros at padding, which the masks leave out of every sum).
TokenPass token_pass(ModelImpl& m, const BatchTensors& t, const std::optional<BatchTensors>& packed, ForwardOptions fwd,
                     int64_t chunk) {
  fwd.right_padded = t.right_padded;
  TokenPass out;
  if (packed) {
    fwd.packed = packed->packed;
    out.hidden = unpack_rows(m.lm->hidden_states(packed->input_ids, at::Tensor(), fwd), *packed->packed);
  } else {
    out.hidden = m.lm->hidden_states(t.input_ids, t.attention_mask, fwd);
  }
  const int64_t rows = out.hidden.size(0), T = out.hidden.size(1), H = out.hidden.size(2);
  const at::Tensor h = out.hidden.narrow(1, 0, T - 1).reshape({rows * (T - 1), H});
  const at::Tensor labels = t.input_ids.narrow(1, 1, T - 1).reshape({-1}).to(at::kLong);
  out.logps = token_logprobs_fused(h, m.lm->output_weight(), labels, chunk).view({rows, T - 1});
  return out;
}

// A micro-batch's rows packed for `m` when the run is padding-free (and the rows allow it).
std::optional<BatchTensors> packed_rows(const TrainerImpl& s, const RowBatch& batch, const ModelImpl& m, int64_t n) {
  if (!s.options.padding_free) return std::nullopt;
  return packed_batch_tensors(batch, m.config.vocab_size, m.device, 0, n);
}

// The micro-batch's identity and its dropout seed: FNV-1a over (seed, tokens, mask, kinds).
uint64_t batch_key(uint64_t seed, const RowBatch& batch) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (int32_t id : batch.input_ids) h = (h ^ static_cast<uint32_t>(id)) * 0x100000001b3ull;
  for (uint8_t a : batch.attention_mask) h = (h ^ a) * 0x100000001b3ull;
  for (uint8_t d : batch.desirable) h = (h ^ d) * 0x100000001b3ull;
  return h;
}

void check_rows(const RowBatch& batch, int64_t n) {
  if (batch.rows != n) throw std::invalid_argument("micro-step: loss ppo takes 1 row per example; " + std::to_string(n) + " examples, " + std::to_string(batch.rows) + " rows");
  if (static_cast<int64_t>(batch.desirable.size()) != n)
    throw std::invalid_argument("micro-step: loss ppo needs each example's kind: " + std::to_string(batch.desirable.size()) + " flags for " + std::to_string(n) + " examples");
}

// The gradient-free pass (ppo_step.h); dropout on when training, as the seed's policy.train().
PpoPrepared prepare(TrainerImpl& s, const RowBatch& batch, int64_t n, bool train) {
  auto& pm = s.policy->impl();
  const LossConfig& cfg = s.options.loss;
  check_rows(batch, n);
  const int64_t chunk = s.options.chunk_tokens;
  // The seed's scores: +1 for a desirable example, -1 otherwise, on its last token.
  at::Tensor scores = at::empty({n}, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i) scores.data_ptr<float>()[i] = batch.desirable[i] != 0 ? 1.0f : -1.0f;
  scores = scores.to(pm.device);
  const BatchTensors bt = batch_tensors(batch, pm.config.vocab_size, pm.device, 0, n, true);
  const int64_t T = bt.input_ids.size(1);
  if (T < 2) throw std::invalid_argument("micro-step: loss ppo needs rows of at least 2 tokens");

  PpoPrepared out;
  out.key = batch_key(s.options.seed, batch);
  out.masks = bt.loss_mask.narrow(1, 1, T - 1).to(at::kFloat);
  torch::NoGradGuard no_grad;
  auto& rm = s.reference->impl();
  out.ref_logps = token_pass(rm, batch_tensors(batch, rm.config.vocab_size, rm.device, 0, n, true), packed_rows(s, batch, rm, n), {}, chunk)
                      .logps.to(pm.device);
  const TokenPass first = token_pass(pm, bt, packed_rows(s, batch, pm, n), {}, chunk);
  PpoState& p = *s.ppo;
  {
    std::lock_guard<std::mutex> lock(p.dropout_gen.mutex());
    p.dropout_gen.set_current_seed(out.key);
  }
  out.old_values = p.head->forward(first.hidden, train, &p.dropout_gen).narrow(1, 0, T - 1);
  out.targets = ppo_gae(out.old_values, scores, out.masks, cfg.gamma, cfg.lam);
  return out;
}

void check_ppo_trainer(const TrainerImpl& s) {
  check_loss_params(s.options.loss);
  if (!s.ppo) throw std::logic_error("ppo step: the trainer has no value head");
  if (!s.reference) throw std::invalid_argument("loss 'ppo' needs a reference model (its log-probs are read per token; none precomputed)");
}

// Whitens the prepared micro-batches' advantages over all of them together (and, data
// parallel, with the other ranks' micro-batches of the optimizer step: `sum_over_ranks`).
void whiten(std::deque<PpoPrepared>& prepared, const std::function<at::Tensor(const at::Tensor&)>& sum_over_ranks = nullptr) {
  std::vector<PpoTargets*> targets;
  std::vector<at::Tensor> masks;
  for (auto& p : prepared) {
    targets.push_back(&p.targets);
    masks.push_back(p.masks);
  }
  whiten_advantages(targets, masks, sum_over_ranks);
}

}  // namespace

void Trainer::ppo_prepare(const std::vector<RowBatch>& batches) {
  auto& s = *impl_;
  if (!s.ppo) throw std::invalid_argument("ppoPrepare: loss '" + s.options.loss.name + "' has no value head (only ppo)");
  check_ppo_trainer(s);
  std::deque<PpoPrepared> prepared;
  for (const auto& b : batches) prepared.push_back(prepare(s, b, b.rows, /*train=*/true));
  // Data parallel, every rank takes part in the sums, also one with no micro-batch.
  if (!prepared.empty() || s.ppo->sum_over_ranks) whiten(prepared, s.ppo->sum_over_ranks);
  s.ppo->prepared = std::move(prepared);
}

std::unique_ptr<PpoState> make_ppo_state(const TrainerImpl& s) {
  auto& pm = s.policy->impl();
  auto p = std::make_unique<PpoState>();
  // PyTorch's default Linear init (the seed's), drawn from the run's seed so runs repeat.
  torch::manual_seed(s.options.seed);
  p->head = ValueHead(pm.config.hidden_size);
  p->head->to(pm.device, at::kFloat);  // fp32 always, as the seed's
  p->dropout_gen = at::globalContext().defaultGenerator(pm.device).clone();
  const bool rms = s.options.optimizer == "RMSprop";
  const double wd = s.options.weight_decay >= 0 ? s.options.weight_decay : (rms ? 0.0 : 0.01);
  if (rms)
    p->optimizer = std::make_unique<torch::optim::RMSprop>(p->head->parameters(), torch::optim::RMSpropOptions(1e-3).weight_decay(wd));
  else
    p->optimizer = std::make_unique<torch::optim::AdamW>(p->head->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(wd));
  return p;
}

void ppo_optimizer_step(PpoState& p, double lr) {
  auto params = p.head->parameters();
  const double norm = torch::nn::utils::clip_grad_norm_(params, PpoState::kValueHeadMaxGradNorm);
  if (std::isfinite(norm)) {
    for (auto& g : p.optimizer->param_groups()) g.options().set_lr(lr);
    p.optimizer->step();
  }
  p.optimizer->zero_grad(/*set_to_none=*/true);
  p.prepared.clear();
}

void Trainer::load_value_head(const std::string& dir) {
  if (!impl_->ppo) throw std::invalid_argument("loadValueHead: loss '" + impl_->options.loss.name + "' has no value head (only ppo)");
  rpo::load_value_head(*impl_->ppo->head, dir);
}

StepResult ppo_step(TrainerImpl& s, const RowBatch& batch, int64_t n, double scale, bool backward) {
  auto& pm = s.policy->impl();
  const LossConfig& cfg = s.options.loss;
  check_ppo_trainer(s);
  check_rows(batch, n);
  ValueHeadImpl& head = *s.ppo->head;
  const int64_t chunk = s.options.chunk_tokens;

  // This micro-batch's pass without gradients: prepared with the rest of the optimizer step's
  // (ppo_prepare, whitened over them all), or now, alone.
  PpoPrepared prep;
  auto& queue = s.ppo->prepared;
  if (backward && !queue.empty()) {
    if (queue.front().key != batch_key(s.options.seed, batch))
      throw std::invalid_argument("micro-step: loss ppo: this micro-batch is not the next one ppoPrepare took (" + std::to_string(queue.size()) +
                                  " prepared micro-batches wait; train them in the order they were prepared)");
    prep = std::move(queue.front());
    queue.pop_front();
  } else {
    std::deque<PpoPrepared> one;
    one.push_back(prepare(s, batch, n, backward));
    whiten(one);
    prep = std::move(one.front());
  }
  const BatchTensors bt = batch_tensors(batch, pm.config.vocab_size, pm.device, 0, n, true);
  const int64_t T = bt.input_ids.size(1);
  const at::Tensor& masks = prep.masks;
  const at::Tensor& ref_logps = prep.ref_logps;
  const at::Tensor& old_values = prep.old_values;
  const PpoTargets& targets = prep.targets;
  at::Tensor scores = at::empty({n}, at::TensorOptions().dtype(at::kFloat));
  for (int64_t i = 0; i < n; ++i) scores.data_ptr<float>()[i] = batch.desirable[i] != 0 ? 1.0f : -1.0f;
  scores = scores.to(pm.device);
  // The passes' dropout: another stream from the same micro-batch seed.
  {
    std::lock_guard<std::mutex> lock(s.ppo->dropout_gen.mutex());
    s.ppo->dropout_gen.set_current_seed(prep.key ^ 0x9E3779B97F4A7C15ull);
  }

  bool had_grads = false;
  for (auto& [name, p] : pm.params) had_grads = had_grads || p.grad().defined();
  at::AutoGradMode grad(backward);
  ForwardOptions fwd;
  fwd.activation_checkpointing = s.options.activation_checkpointing && backward;
  const int64_t passes = backward ? cfg.ppo_epochs : 1;
  const std::optional<BatchTensors> packed = packed_rows(s, batch, pm, n);
  std::map<std::string, at::Tensor> sums;
  at::Tensor loss_sum, last_logps;
  for (int64_t e = 0; e < passes; ++e) {
    const TokenPass pass = token_pass(pm, bt, packed, fwd, chunk);
    const at::Tensor values = head.forward(pass.hidden, backward, &s.ppo->dropout_gen).narrow(1, 0, T - 1);
    LossTensors out = ppo_loss(cfg, pass.logps, values, ref_logps, old_values, masks, targets);
    if (backward) (out.loss * scale).backward();
    loss_sum = e == 0 ? out.loss.detach() : loss_sum + out.loss.detach();
    for (auto& [k, v] : out.metrics) sums[k] = e == 0 ? v.detach() : sums[k] + v.detach();
    last_logps = pass.logps.detach();
  }
  // Not the seed's: each kind's mean summed log-ratio to the reference (the last pass), and the
  // desirable minus the undesirable one, so a run shows which way the policy moved.
  {
    const at::Tensor logratio = ((last_logps - ref_logps) * masks).sum(1);
    const at::Tensor d = scores > 0;
    int64_t nd = 0;
    for (int64_t i = 0; i < n; ++i) nd += batch.desirable[i] != 0 ? 1 : 0;
    at::Tensor margin = at::zeros({}, logratio.options());
    if (nd > 0) {
      sums["logratio/desirable"] = logratio.masked_select(d).mean() * static_cast<double>(passes);
      margin = margin + sums["logratio/desirable"];
    }
    if (nd < n) {
      sums["logratio/undesirable"] = logratio.masked_select(d.logical_not()).mean() * static_cast<double>(passes);
      margin = margin - sums["logratio/undesirable"];
    }
    sums["logratio/margin"] = margin;
  }
  // The loss and every metric: means over the passes.
  std::map<std::string, at::Tensor> means;
  for (auto& [k, v] : sums) means[k] = v / static_cast<double>(passes);
  StepResult result = read_step_result(loss_sum / static_cast<double>(passes), means, n, batch);
  if (backward && !result.finite && !had_grads) {
    for (auto& [name, p] : pm.params) p.mutable_grad().reset();
    s.ppo->optimizer->zero_grad(true);
  }
  return result;
}

}  // namespace rpo
