// The optimizer step under each precision (optimizer.h); the state files are in
// optimizer_state.cpp.
//
// AdamW is one call of ATen's fused kernel (at::_fused_adamw_: CPU and CUDA kernels, fp32 math
// inside for bf16 tensors) over every parameter with a gradient, instead of torch::optim::AdamW's
// loop of ~10 ops per parameter. Its update is torch.optim.AdamW's (fused=True):
//   w -= lr * weight_decay * w;  m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// bf16-mixed runs it on the fp32 masters with fp32 copies of the gradients, a bucket of tensors
// at a time (the fp32 gradient copies would otherwise add 4 bytes per parameter at the step),
// then rounds the masters into the bf16 weights. bf16-sr computes the same update in fp32 a
// chunk at a time and rounds weights and moments back to bf16 stochastically.
#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>

#include "model/model_impl.h"

namespace rpo {

namespace {

// bf16-mixed: fp32 gradient copies made per fused call (elements): a call runs once 512 MiB of
// them are gathered, so the step's extra memory stays under 512 MiB plus the largest tensor,
// whatever the model (a 7B model takes ~50 calls for its ~290 tensors).
constexpr int64_t kMixedBucket = int64_t{1} << 27;
// bf16-sr: elements updated at once (its fp32 temporaries are ~7 x 4 bytes per element).
constexpr int64_t kSrChunk = int64_t{1} << 24;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

PrecisionChoice resolve_precision(const std::string& requested, at::ScalarType dtype) {
  if (requested.empty()) {
    if (dtype == at::kFloat) return {Precision::kFp32, "fp32"};
    if (dtype == at::kBFloat16) return {Precision::kPure, "bf16-pure"};
    if (dtype == at::kHalf) return {Precision::kPure, "fp16-pure"};
    throw std::invalid_argument("trainer: cannot train a " + dtype_name(dtype) + " policy");
  }
  struct Known {
    const char* name;
    Precision mode;
    at::ScalarType dtype;
  };
  static const Known known[] = {{"fp32", Precision::kFp32, at::kFloat},
                                {"bf16-pure", Precision::kPure, at::kBFloat16},
                                {"bf16-mixed", Precision::kMixed, at::kBFloat16},
                                {"bf16-sr", Precision::kSr, at::kBFloat16}};
  for (const auto& k : known) {
    if (requested != k.name) continue;
    if (dtype != k.dtype)
      throw std::invalid_argument("trainer: precision " + requested + " trains a " + dtype_name(k.dtype) + " policy; this policy is " +
                                  dtype_name(dtype) + " (load it with dtype " + dtype_name(k.dtype) + ")");
    return {k.mode, k.name};
  }
  throw std::invalid_argument("trainer: unknown precision \"" + requested + "\" (fp32, bf16-pure, bf16-mixed or bf16-sr)");
}

at::Tensor stochastic_round_bf16(const at::Tensor& x, at::Generator& gen) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.is_contiguous(), "stochastic_round_bf16: needs a contiguous float32 tensor");
  // The float's bits as int32: adding r in [0, 2^16) to the bit pattern moves the magnitude up by
  // r / 2^16 of a bf16 step (sign-magnitude: also for negative values), and clearing the low 16
  // bits truncates toward zero, so it rounds away from zero with probability equal to the
  // fraction of the step x lies past its lower-magnitude neighbour. Inf stays inf; the result is
  // exactly representable in bf16, so the final cast does not round.
  auto noise = at::empty(x.sizes(), x.options().dtype(at::kInt));
  noise.random_(0, int64_t{1} << 16, gen);
  auto bits = x.view(at::kInt).add(noise);
  bits.bitwise_and_(static_cast<int32_t>(0xFFFF0000u));
  return bits.view(at::kFloat).to(at::kBFloat16);
}

std::vector<float> stochastic_round_bf16(const std::vector<float>& values, uint64_t seed) {
  auto gen = at::globalContext().defaultGenerator(at::Device(at::kCPU)).clone();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(splitmix64(seed));
  }
  auto x = at::tensor(values, at::kFloat);
  auto r = stochastic_round_bf16(x, gen).to(at::kFloat).contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

namespace {

// LoRA: the adapters and their moments are fp32 whatever the base's dtype, so fp32 (or unset) is
// the only precision; a bf16 one would be a request about the base, which does not train.
const std::string& checked_precision(const ModelImpl& model, const TrainerOptions& options) {
  if (model.lora && !options.precision.empty() && options.precision != "fp32")
    throw std::invalid_argument("trainer: LoRA adapters train in fp32 (precision fp32, or unset), not " + options.precision +
                                "; the frozen base keeps the dtype it was loaded in");
  return options.precision;
}

}  // namespace

TrainOptimizer::TrainOptimizer(ModelImpl& model, const TrainerOptions& options)
    : precision_(resolve_precision(checked_precision(model, options), model.trainable_dtype())),
      optimizer_(options.optimizer),
      weight_decay_option_(options.weight_decay),
      seed_(options.seed) {
  for (auto& [name, t] : model.trainable()) {  // with LoRA: the adapters only
    names_.push_back(name);
    params_.push_back(t);
  }
  adam_.resize(params_.size());
  if (optimizer_ == "AdamW") {
    if (options.weight_decay >= 0) weight_decay_ = options.weight_decay;
    kind_ = precision_.mode == Precision::kSr ? Kind::kSrAdamW : options.fused_adamw ? Kind::kFusedAdamW : Kind::kTorch;
    if (precision_.mode == Precision::kSr && !options.fused_adamw)
      throw std::invalid_argument("trainer: precision bf16-sr has its own AdamW update (no unfused variant)");
  } else if (optimizer_ == "RMSprop") {
    if (precision_.mode == Precision::kSr)
      throw std::invalid_argument("trainer: precision bf16-sr supports AdamW only (RMSprop: use bf16-mixed, fp32 or bf16-pure)");
    kind_ = Kind::kTorch;
  } else {
    throw std::invalid_argument("trainer: unknown optimizer \"" + optimizer_ + "\" (AdamW or RMSprop)");
  }
  if (kind_ == Kind::kTorch) {
    if (precision_.mode == Precision::kMixed) {
      at::NoGradGuard no_grad;
      for (auto& p : params_) masters_.push_back(p.detach().to(at::kFloat, false, /*copy=*/true));
    }
    torch_ = make_torch(precision_.mode == Precision::kMixed ? masters_ : params_);
  }
  if (precision_.mode == Precision::kSr) {
    gen_ = at::globalContext().defaultGenerator(model.device).clone();
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_current_seed(splitmix64(seed_));
  }
}

TrainOptimizer::~TrainOptimizer() = default;

std::unique_ptr<torch::optim::Optimizer> TrainOptimizer::make_torch(const std::vector<at::Tensor>& targets) const {
  // lr is set at every step; betas, eps and the other options are torch's defaults.
  if (optimizer_ == "AdamW") {
    torch::optim::AdamWOptions opts(1e-3);
    opts.weight_decay(weight_decay_);
    return std::make_unique<torch::optim::AdamW>(targets, opts);
  }
  torch::optim::RMSpropOptions opts(1e-3);
  if (weight_decay_option_ >= 0) opts.weight_decay(weight_decay_option_);
  return std::make_unique<torch::optim::RMSprop>(targets, opts);
}

std::string TrainOptimizer::kind_name() const {
  switch (kind_) {
    case Kind::kFusedAdamW: return "AdamW (fused)";
    case Kind::kSrAdamW: return "AdamW (stochastic rounding)";
    case Kind::kTorch: return optimizer_ == "AdamW" ? "AdamW (torch::optim)" : "RMSprop (torch::optim)";
  }
  return "";
}

AdamParamState& TrainOptimizer::adam_state(size_t i) {
  auto& st = adam_[i];
  if (st.defined()) return st;
  const auto& p = params_[i];
  if (precision_.mode == Precision::kMixed) {
    st.master = p.detach().to(at::kFloat, false, /*copy=*/true).contiguous();
    st.exp_avg = at::zeros_like(st.master);
    st.exp_avg_sq = at::zeros_like(st.master);
  } else {
    st.exp_avg = at::zeros_like(p, at::MemoryFormat::Contiguous);
    st.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Contiguous);
  }
  if (kind_ == Kind::kFusedAdamW) st.step_t = at::zeros({}, p.options().dtype(at::kFloat));
  return st;
}

double TrainOptimizer::clip_fp32(const std::vector<size_t>& with_grad, double max_grad_norm, at::Tensor& coef) const {
  // The norm of the fp32 view of the bf16 gradients (bf16 -> fp32 is exact: an fp32-accumulated
  // norm of the bf16 values is the fp32 view's), and the clip coefficient torch's
  // clip_grad_norm_ would use, applied later to the fp32 copies (never rounded to bf16).
  std::vector<at::Tensor> norms;
  norms.reserve(with_grad.size());
  for (size_t i : with_grad) norms.push_back(at::linalg_vector_norm(params_[i].grad(), 2, std::nullopt, false, at::kFloat));
  auto total = norms.size() == 1 ? norms[0] : at::linalg_vector_norm(at::stack(norms), 2);
  const double norm = total.item<double>();
  if (max_grad_norm > 0 && std::isfinite(norm)) {
    auto c = at::clamp_max(max_grad_norm / (total + 1e-6), 1.0);
    if (c.item<double>() < 1.0) coef = c;
  }
  return norm;
}

double TrainOptimizer::clip_sharded(const std::vector<size_t>& with_grad, double max_grad_norm, at::Tensor& coef) const {
  // ZeRO-2: each held gradient's norm exactly as the unsharded paths compute it, at its
  // parameter's index (x + 0 = x: the sum over ranks is exact; bf16 norms are exact in float32),
  // then the total and the coefficient of clip_fp32 or of torch's clip_grad_norm_ from them.
  const bool fp32_view = precision_.mode == Precision::kMixed || precision_.mode == Precision::kSr;
  const auto norm_dtype = fp32_view ? at::kFloat : params_[0].scalar_type();
  auto local = at::zeros({static_cast<int64_t>(params_.size())}, params_[0].options().dtype(at::kFloat));
  for (size_t i : with_grad) {
    const auto& g = params_[i].grad();
    local.select(0, static_cast<int64_t>(i)).copy_(fp32_view ? at::linalg_vector_norm(g, 2, std::nullopt, false, at::kFloat) : g.norm(2));
  }
  const auto norms = sum_norms_(local).to(norm_dtype);
  if (fp32_view) {
    auto total = at::linalg_vector_norm(norms, 2);
    const double norm = total.item<double>();
    if (max_grad_norm > 0 && std::isfinite(norm)) {
      auto c = at::clamp_max(max_grad_norm / (total + 1e-6), 1.0);
      if (c.item<double>() < 1.0) coef = c;
    }
    return norm;
  }
  auto total = norms.norm(2);
  const double max_norm = max_grad_norm > 0 ? max_grad_norm : std::numeric_limits<double>::infinity();
  auto clip_coef = max_norm / (total + 1e-6);
  auto clamped = at::clamp(clip_coef, std::nullopt, 1.0);
  for (size_t i : with_grad) params_[i].grad().mul_(clamped);
  return total.item<double>();
}

double TrainOptimizer::step(double lr, double max_grad_norm) {
  at::NoGradGuard no_grad;
  if (sharded_step_) return sharded_step_(lr, max_grad_norm);
  std::vector<size_t> with_grad;
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].grad().defined()) with_grad.push_back(i);
  double norm = 0.0;
  // ZeRO-2: every rank joins the norms' sum, with gradients or not.
  if (!with_grad.empty() || (sum_norms_ && !params_.empty())) {
    at::Tensor coef;  // undefined: no clipping needed
    if (sum_norms_) {
      norm = clip_sharded(with_grad, max_grad_norm, coef);
    } else if (precision_.mode == Precision::kMixed || precision_.mode == Precision::kSr) {
      norm = clip_fp32(with_grad, max_grad_norm, coef);
    } else {
      // fp32 and pure: torch's clip on the gradients as they are (today's and the seed's).
      std::vector<at::Tensor> ps;
      for (size_t i : with_grad) ps.push_back(params_[i]);
      norm = torch::nn::utils::clip_grad_norm_(ps, max_grad_norm > 0 ? max_grad_norm : std::numeric_limits<double>::infinity());
    }
    // ZeRO-1: the norm and the clip cover every gradient; only this rank's share is updated.
    if (!owned_.empty())
      with_grad.erase(std::remove_if(with_grad.begin(), with_grad.end(), [&](size_t i) { return !owned_[i]; }), with_grad.end());
    // A non-finite norm would poison every weight: report it and leave the weights alone.
    if (std::isfinite(norm) && !with_grad.empty()) {
      switch (kind_) {
        case Kind::kFusedAdamW: step_fused(with_grad, lr, coef); break;
        case Kind::kSrAdamW: step_sr(with_grad, lr, coef); break;
        case Kind::kTorch: step_torch(with_grad, lr, coef); break;
      }
    }
  }
  for (auto& p : params_) p.mutable_grad().reset();
  return norm;
}

void TrainOptimizer::step_fused(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef) {
  struct Call {
    std::vector<at::Tensor> w, g, m, v, s;
    std::vector<size_t> who;
    int64_t numel = 0;
  };
  const bool mixed = precision_.mode == Precision::kMixed;
  auto run = [&](Call& c) {
    if (c.w.empty()) return;
    at::_foreach_add_(c.s, 1);
    at::_fused_adamw_(c.w, c.g, c.m, c.v, {}, c.s, lr, beta1_, beta2_, weight_decay_, eps_, /*amsgrad=*/false, /*maximize=*/false);
    if (mixed)
      for (size_t k = 0; k < c.who.size(); ++k) params_[c.who[k]].copy_(c.w[k]);  // round to nearest even
    c = Call{};
  };
  // The kernel wants one device and dtype per call: the model's parameters share both, so this
  // is one call (bf16-mixed: one per bucket).
  std::map<std::string, Call> calls;
  for (size_t i : with_grad) {
    auto& st = adam_state(i);
    st.step += 1;
    const auto& p = params_[i];
    auto& c = calls[p.device().str() + "/" + std::string(c10::toString(p.scalar_type()))];
    c.who.push_back(i);
    c.m.push_back(st.exp_avg);
    c.v.push_back(st.exp_avg_sq);
    c.s.push_back(st.step_t);
    if (mixed) {
      auto g = p.grad().to(at::kFloat);
      if (coef.defined()) g.mul_(coef);
      p.mutable_grad().reset();  // the bf16 gradient is not needed any more
      c.w.push_back(st.master);
      c.g.push_back(std::move(g));
      c.numel += p.numel();
      if (c.numel >= kMixedBucket) run(c);
    } else {
      c.w.push_back(p);
      c.g.push_back(p.grad());
    }
  }
  for (auto& [key, c] : calls) run(c);
}

void TrainOptimizer::step_sr(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef) {
  sr_steps_ += 1;
  for (size_t i : with_grad) {
    auto& st = adam_state(i);
    st.step += 1;
    const double bc1 = 1 - std::pow(beta1_, static_cast<double>(st.step));
    const double bc2_sqrt = std::sqrt(1 - std::pow(beta2_, static_cast<double>(st.step)));
    const double step_size = lr / bc1;
    auto& p = params_[i];
    TORCH_CHECK(p.is_contiguous(), "bf16-sr: parameter ", names_[i], " is not contiguous");
    auto pf = p.view({-1}), gf = p.grad().contiguous().view({-1}), mf = st.exp_avg.view({-1}), vf = st.exp_avg_sq.view({-1});
    const int64_t n = pf.numel();
    for (int64_t off = 0; off < n; off += kSrChunk) {
      const int64_t len = std::min(kSrChunk, n - off);
      auto pc = pf.narrow(0, off, len), mc = mf.narrow(0, off, len), vc = vf.narrow(0, off, len);
      auto g = gf.narrow(0, off, len).to(at::kFloat);
      if (coef.defined()) g.mul_(coef);
      auto w = pc.to(at::kFloat), m = mc.to(at::kFloat), v = vc.to(at::kFloat);
      if (weight_decay_ != 0) w.mul_(1 - lr * weight_decay_);
      m.lerp_(g, 1 - beta1_);
      v.mul_(beta2_).addcmul_(g, g, 1 - beta2_);
      auto denom = v.sqrt().div_(bc2_sqrt).add_(eps_);
      w.addcdiv_(m, denom, -step_size);
      pc.copy_(stochastic_round_bf16(w, gen_));
      mc.copy_(stochastic_round_bf16(m, gen_));
      vc.copy_(stochastic_round_bf16(v, gen_));
    }
  }
}

void TrainOptimizer::step_torch(const std::vector<size_t>& with_grad, double lr, const at::Tensor& coef) {
  for (auto& group : torch_->param_groups()) group.options().set_lr(lr);
  if (precision_.mode != Precision::kMixed) {
    torch_->step();
    return;
  }
  for (size_t i : with_grad) {
    auto g = params_[i].grad().to(at::kFloat);
    if (coef.defined()) g.mul_(coef);
    masters_[i].mutable_grad() = g;
  }
  torch_->step();
  for (size_t i : with_grad) {
    params_[i].copy_(masters_[i]);
    masters_[i].mutable_grad().reset();
  }
}

}  // namespace rpo
