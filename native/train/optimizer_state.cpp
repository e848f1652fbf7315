// Trainer::save_state / load_state: the optimizer's state in LibTorch's archive format (a zip
// torch::serialize reads), format "rpo-optimizer-state-2":
//
//   rpo/format      "rpo-optimizer-state-2"
//   rpo/optimizer   "AdamW (fused)" | "AdamW (stochastic rounding)" | "AdamW (torch::optim)" | "RMSprop (torch::optim)"
//   rpo/precision   fp32 | bf16-pure | fp16-pure | bf16-mixed | bf16-sr
//   rpo/count       the model's parameter count
//   AdamW (fused, stochastic rounding), per parameter i that has state:
//     state/i/name, state/i/step, state/i/exp_avg, state/i/exp_avg_sq, state/i/master (bf16-mixed)
//   torch::optim: torch_optimizer (what torch::save(optimizer) holds), master/i (bf16-mixed)
//   bf16-sr: sr/seed, sr/steps, sr/generator (the generator's state), sr/device
//
// With the master weights and the generator's state in the file, a resumed run continues with
// exactly the weights of an uninterrupted one in every precision. A state saved under another
// precision or optimizer is refused, naming both.
//
// Saving never hands a file to LibTorch: its stream writer reports a failed write by throwing
// from a destructor, which aborts the process (a full disk killed a whole run). The archive is
// streamed through a callback into AtomicFileWriter instead, which checks every write and
// turns a failure into an ordinary exception naming the file.
//
// Loading reads and checks everything before it changes anything: a state from another model
// fails here, naming the file and the parameter, instead of at the first optimizer step with
// neither, and the live optimizer is left as it was.
#include <ATen/ATen.h>

#include <filesystem>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "model/model_impl.h"
#include "train/archive_file.h"
#include "train/optimizer.h"
#include "train/trainer_impl.h"
#include "train/value_head_state.h"

namespace rpo {

namespace {

constexpr const char* kFormat = "rpo-optimizer-state-2";

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::runtime_error unreadable(const std::string& path, const std::string& why) {
  return std::runtime_error(path + ": not an optimizer state this trainer can load (" + why + ")");
}

// How many parameters a torch::optim archive's param groups list (LibTorch checks the count too,
// but its message names neither the file nor the numbers).
int64_t saved_param_count(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive groups;
  archive.read("param_groups", groups);
  at::Tensor n_groups;
  groups.read("param_groups/size", n_groups);
  int64_t total = 0;
  for (int64_t g = 0; g < n_groups.item<int64_t>(); ++g) {
    torch::serialize::InputArchive group;
    groups.read("param_groups/" + std::to_string(g), group);
    at::Tensor n;
    group.read("params/size", n);
    total += n.item<int64_t>();
  }
  return total;
}

// A state tensor of one parameter in a torch::optim optimizer: its name, and how to put it back
// after moving it to the parameter's device.
struct StateTensor {
  const char* name;
  at::Tensor value;
  std::function<void(at::Tensor)> set;
};

std::vector<StateTensor> state_tensors(torch::optim::OptimizerParamState& state) {
  if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(&state)) {
    return {{"exp_avg", a->exp_avg(), [a](at::Tensor t) { a->exp_avg(std::move(t)); }},
            {"exp_avg_sq", a->exp_avg_sq(), [a](at::Tensor t) { a->exp_avg_sq(std::move(t)); }},
            {"max_exp_avg_sq", a->max_exp_avg_sq(), [a](at::Tensor t) { a->max_exp_avg_sq(std::move(t)); }}};
  }
  if (auto* r = dynamic_cast<torch::optim::RMSpropParamState*>(&state)) {
    return {{"square_avg", r->square_avg(), [r](at::Tensor t) { r->square_avg(std::move(t)); }},
            {"momentum_buffer", r->momentum_buffer(), [r](at::Tensor t) { r->momentum_buffer(std::move(t)); }},
            {"grad_avg", r->grad_avg(), [r](at::Tensor t) { r->grad_avg(std::move(t)); }}};
  }
  return {};
}

// Checks against the model, naming the file and the parameter: "<path>: optimizer state does not
// match the model: parameter "<name>" (i of n): <what>: expected ... but found ...".
struct Checker {
  const std::string& path;
  const std::vector<std::string>& names;

  std::string who(size_t i) const {
    return path + ": optimizer state does not match the model: parameter \"" + names[i] + "\" (" + std::to_string(i + 1) + " of " +
           std::to_string(names.size()) + "): ";
  }
  // `t` must have `like`'s shape and `dtype`; returns it on `like`'s device.
  at::Tensor tensor(size_t i, const char* what, const at::Tensor& t, const at::Tensor& like, at::ScalarType dtype) const {
    if (!t.defined()) throw std::invalid_argument(who(i) + what + ": missing from the file");
    if (t.sizes() != like.sizes())
      throw std::invalid_argument(who(i) + what + ": expected shape " + shape_str(like.sizes()) + " but found " + shape_str(t.sizes()));
    if (t.scalar_type() != dtype)
      throw std::invalid_argument(who(i) + what + ": expected dtype " + std::string(c10::toString(dtype)) + " but found " +
                                  c10::toString(t.scalar_type()));
    return t.device() == like.device() ? t.contiguous() : t.to(like.device()).contiguous();
  }
};

std::string read_string(torch::serialize::InputArchive& a, const std::string& path, const std::string& key) {
  auto v = read_value(a, key);
  if (!v || !v->isString()) throw unreadable(path, "no " + key);
  return v->toStringRef();
}

int64_t read_int(torch::serialize::InputArchive& a, const std::string& path, const std::string& key) {
  auto v = read_value(a, key);
  if (!v || !v->isInt()) throw unreadable(path, "no " + key);
  return v->toInt();
}

}  // namespace

void TrainOptimizer::save(torch::serialize::OutputArchive& a) const {
  const bool mixed = precision_.mode == Precision::kMixed;
  a.write("rpo/format", c10::IValue(std::string(kFormat)));
  a.write("rpo/optimizer", c10::IValue(kind_name()));
  a.write("rpo/precision", c10::IValue(precision_.name));
  a.write("rpo/count", c10::IValue(static_cast<int64_t>(params_.size())));
  if (kind_ == Kind::kTorch) {
    torch::serialize::OutputArchive nested(a.compilation_unit());
    torch_->save(nested);
    a.write("torch_optimizer", nested);
    if (mixed)
      for (size_t i = 0; i < masters_.size(); ++i) a.write("master/" + std::to_string(i), masters_[i], /*is_buffer=*/true);
  } else {
    for (size_t i = 0; i < adam_.size(); ++i) {
      const auto& st = adam_[i];
      if (!st.defined()) continue;  // no update touched it yet
      const std::string k = "state/" + std::to_string(i) + "/";
      a.write(k + "name", c10::IValue(names_[i]));
      a.write(k + "step", c10::IValue(st.step));
      a.write(k + "exp_avg", st.exp_avg, /*is_buffer=*/true);
      a.write(k + "exp_avg_sq", st.exp_avg_sq, /*is_buffer=*/true);
      if (mixed) a.write(k + "master", st.master, /*is_buffer=*/true);
    }
  }
  if (precision_.mode == Precision::kSr) {
    a.write("sr/seed", c10::IValue(static_cast<int64_t>(seed_)));
    a.write("sr/steps", c10::IValue(sr_steps_));
    a.write("sr/device", c10::IValue(params_.empty() ? std::string("cpu") : c10::DeviceTypeName(params_[0].device().type(), true)));
    auto& gen = const_cast<at::Generator&>(gen_);
    std::lock_guard<std::mutex> lock(gen.mutex());
    a.write("sr/generator", gen.get_state(), /*is_buffer=*/true);
  }
}

void TrainOptimizer::load(torch::serialize::InputArchive& a, const std::string& path) {
  const bool mixed = precision_.mode == Precision::kMixed;
  auto format = read_value(a, "rpo/format");
  if (!format || !format->isString())
    throw unreadable(path, "it has no rpo format mark: written by an rpo before precision modes, or not by rpo");
  if (format->toStringRef() != kFormat) throw unreadable(path, "format " + format->toStringRef() + "; this rpo reads " + kFormat);
  const auto precision = read_string(a, path, "rpo/precision");
  if (precision != precision_.name)
    throw std::invalid_argument(path + ": the optimizer state was saved under precision " + precision + ", this trainer trains in " +
                                precision_.name + ": resume with the precision the run was saved under" +
                                (precision == "fp16-pure" ? std::string() : " (precision=" + precision + ")"));
  const auto kind = read_string(a, path, "rpo/optimizer");
  if (kind != kind_name())
    throw std::invalid_argument(path + ": the optimizer state is " + kind + "'s, this trainer uses " + kind_name());
  const int64_t saved = read_int(a, path, "rpo/count");
  const auto expected = static_cast<int64_t>(params_.size());
  if (saved != expected)
    throw std::invalid_argument(path + ": optimizer state does not match the model: it holds state for " + std::to_string(saved) +
                                " parameters, the model has " + std::to_string(expected));
  const Checker check{path, names_};

  std::unique_ptr<torch::optim::Optimizer> fresh;
  std::vector<at::Tensor> masters;
  std::vector<AdamParamState> states;
  if (kind_ == Kind::kTorch) {
    // A fresh torch optimizer over the same tensors (the live masters in bf16-mixed: their values
    // are replaced only after every check passed).
    const auto& targets = mixed ? masters_ : params_;
    fresh = make_torch(targets);
    torch::serialize::InputArchive nested;
    if (!a.try_read("torch_optimizer", nested)) throw unreadable(path, "no torch_optimizer");
    const int64_t n = saved_param_count(nested);
    if (n != expected)
      throw std::invalid_argument(path + ": optimizer state does not match the model: it holds state for " + std::to_string(n) +
                                  " parameters, the model has " + std::to_string(expected));
    fresh->load(nested);
    for (size_t i = 0; i < targets.size(); ++i) {
      auto it = fresh->state().find(targets[i].unsafeGetTensorImpl());
      if (it == fresh->state().end()) continue;  // no step touched it yet
      for (auto& s : state_tensors(*it->second)) {
        if (!s.value.defined()) continue;  // e.g. max_exp_avg_sq without amsgrad
        s.set(check.tensor(i, s.name, s.value, targets[i], targets[i].scalar_type()));
      }
    }
    if (mixed)
      for (size_t i = 0; i < params_.size(); ++i)
        masters.push_back(check.tensor(i, "master", read_tensor(a, "master/" + std::to_string(i)), params_[i], at::kFloat));
  } else {
    states.resize(params_.size());
    const at::ScalarType moment_dtype = mixed ? at::kFloat : (params_.empty() ? at::kFloat : params_[0].scalar_type());
    for (size_t i = 0; i < params_.size(); ++i) {
      const std::string k = "state/" + std::to_string(i) + "/";
      auto name = read_value(a, k + "name");
      if (!name) continue;  // no update touched it before the save
      if (!name->isString() || name->toStringRef() != names_[i])
        throw std::invalid_argument(check.who(i) + "the file holds the state of \"" + (name->isString() ? name->toStringRef() : "?") +
                                    "\" there");
      const auto& p = params_[i];
      auto& st = states[i];
      st.step = read_int(a, path, k + "step");
      st.exp_avg = check.tensor(i, "exp_avg", read_tensor(a, k + "exp_avg"), p, moment_dtype);
      st.exp_avg_sq = check.tensor(i, "exp_avg_sq", read_tensor(a, k + "exp_avg_sq"), p, moment_dtype);
      if (mixed) st.master = check.tensor(i, "master", read_tensor(a, k + "master"), p, at::kFloat);
      if (kind_ == Kind::kFusedAdamW) st.step_t = at::full({}, static_cast<double>(st.step), p.options().dtype(at::kFloat));
    }
  }
  uint64_t seed = seed_;
  int64_t sr_steps = 0;
  at::Tensor gen_state;
  bool same_device = false;
  if (precision_.mode == Precision::kSr) {
    seed = static_cast<uint64_t>(read_int(a, path, "sr/seed"));
    sr_steps = read_int(a, path, "sr/steps");
    const auto device = read_string(a, path, "sr/device");
    gen_state = read_tensor(a, "sr/generator");
    if (!gen_state.defined()) throw unreadable(path, "no sr/generator");
    same_device = !params_.empty() && device == c10::DeviceTypeName(params_[0].device().type(), true);
  }

  // Everything matched: replace the live state.
  if (kind_ == Kind::kTorch) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < masters.size(); ++i) masters_[i].copy_(masters[i]);
    torch_ = std::move(fresh);
  } else {
    adam_ = std::move(states);
  }
  if (precision_.mode == Precision::kSr) {
    seed_ = seed;
    sr_steps_ = sr_steps;
    std::lock_guard<std::mutex> lock(gen_.mutex());
    if (same_device) {
      gen_.set_state(gen_state.to(at::kCPU).contiguous());
    } else {
      // Saved on another kind of device (its generator's state means nothing here): a seed from
      // (seed, steps) keeps the rounding reproducible; the run is not bit-identical to one that
      // never moved, which other kernels would prevent anyway.
      gen_.set_current_seed(seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(sr_steps_ + 1)));
    }
  }
}

void Trainer::save_state(const std::string& path) const {
  // loss=ppo: the value head beside the HF weights, in its own file (transformers ignores it),
  // and its optimizer state beside this one (train/value_head_state.h).
  if (impl_->ppo) {
    const auto dir = std::filesystem::path(path).parent_path().string();
    save_value_head(*impl_->ppo->head, dir);
    save_value_head_optimizer(*impl_->ppo, dir);
  }
  torch::serialize::OutputArchive archive;
  impl_->optimizer->save(archive);
  write_archive_atomically(archive, path);  // LibTorch never sees a failed write (see the top of this file)
}

std::vector<std::string> Trainer::load_state(const std::string& path) {
  auto& s = *impl_;
  std::vector<std::string> warnings;
  std::function<void()> head_state;
  if (s.ppo) {
    // The head's optimizer state is read and checked first, put in place last.
    const auto dir = std::filesystem::path(path).parent_path().string();
    std::string warning;
    head_state = stage_value_head_optimizer(*s.ppo, dir, warning);
    if (!warning.empty()) warnings.push_back(warning);
    rpo::load_value_head(*s.ppo->head, dir);
  }
  torch::serialize::InputArchive archive;
  try {
    // Straight onto the policy's device: a state saved on the CPU resumes on CUDA and back.
    archive.load_from(path, s.policy->impl().device);
    s.optimizer->load(archive, path);
  } catch (const c10::Error& e) {
    throw unreadable(path, e.what_without_backtrace());
  }
  if (head_state) head_state();
  return warnings;
}

}  // namespace rpo
