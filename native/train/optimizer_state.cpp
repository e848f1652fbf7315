// Trainer::save_state / load_state: the optimizer's state, format "rpo-optimizer-state-3": a
// LibTorch archive (a zip torch::serialize reads, optimizer.pt) with the scalars, and AdamW's
// tensors beside it in safetensors files that no process has to hold at once:
//
//   rpo/format      "rpo-optimizer-state-3"
//   rpo/optimizer   "AdamW (fused)" | "AdamW (stochastic rounding)" | "AdamW (torch::optim)" | "RMSprop (torch::optim)"
//   rpo/precision   fp32 | bf16-pure | fp16-pure | bf16-mixed | bf16-sr
//   rpo/count       the model's parameter count
//   AdamW (fused, stochastic rounding):
//     rpo/max_shard_bytes   the cap the safetensors files were split by
//     per parameter i that has state: state/i/name, state/i/step, state/i/shape, state/i/dtype
//     (the moments' safetensors dtype); the tensors `<name>.exp_avg`, `<name>.exp_avg_sq`,
//     `<name>.master` (bf16-mixed) in optimizer.safetensors, or optimizer-0000k-of-0000n.safetensors
//     + optimizer.safetensors.index.json, laid out as transformers lays out a model
//     (model/sharded_io.h) and streamed tensor by tensor
//   torch::optim: torch_optimizer (what torch::save(optimizer) holds), master/i (bf16-mixed)
//   bf16-sr: sr/seed, sr/steps, sr/generator (the generator's state), sr/device
//
// The safetensors layout is a function of the archive's names, shapes and dtypes and the cap, so
// the engine finds every tensor without parsing a header: it plans the layout again and checks
// that each file starts with exactly the planned header. Format 2 (the moments inside the archive)
// is still read.
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

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "model/model_impl.h"
#include "model/sharded_io.h"
#include "train/archive_file.h"
#include "train/optimizer.h"
#include "train/trainer_impl.h"
#include "train/value_head_state.h"

namespace rpo {

namespace {

constexpr const char* kFormat = "rpo-optimizer-state-3";
constexpr const char* kArchiveFormat = "rpo-optimizer-state-2";  // the moments inside the archive: still read
constexpr const char* kStem = "optimizer";

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

// One parameter's AdamW state as format 3's archive lists it.
struct SavedAdam {
  size_t index;
  std::string name;
  int64_t step;
  std::vector<int64_t> shape;
  at::ScalarType dtype;  // the moments'
};

std::vector<TensorMeta> adam_metas(const SavedAdam& s, bool mixed) {
  std::vector<TensorMeta> out{{s.name + ".exp_avg", s.dtype, s.shape}, {s.name + ".exp_avg_sq", s.dtype, s.shape}};
  if (mixed) out.push_back({s.name + ".master", at::kFloat, s.shape});
  return out;
}

// Format 3's per-parameter entries of an archive holding `count` parameters.
std::vector<SavedAdam> read_saved_adam(torch::serialize::InputArchive& a, const std::string& path, int64_t count) {
  std::vector<SavedAdam> out;
  for (int64_t i = 0; i < count; ++i) {
    const std::string k = "state/" + std::to_string(i) + "/";
    auto name = read_value(a, k + "name");
    if (!name) continue;  // no update touched it before the save
    if (!name->isString()) throw unreadable(path, k + "name is not a string");
    auto shape = read_value(a, k + "shape");
    if (!shape || !shape->isIntList()) throw unreadable(path, "no " + k + "shape");
    SavedAdam s{static_cast<size_t>(i), name->toStringRef(), read_int(a, path, k + "step"), shape->toIntVector(), at::kFloat};
    try {
      s.dtype = dtype_from_safetensors(read_string(a, path, k + "dtype"));
    } catch (const std::invalid_argument& e) {
      throw unreadable(path, k + "dtype: " + e.what());
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Where each tensor of `layout` is in the files beside `path`: each file must begin with exactly
// the header the layout plans (the shapes and dtypes the archive gives), or it is another state's.
std::vector<TensorSpec> locate(const SafetensorsLayout& layout, const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path();
  std::vector<TensorSpec> specs;
  for (const auto& f : layout.files) {
    const auto file = (dir / f.file_name).string();
    std::string head(8 + f.header.size(), '\0');
    {
      std::FILE* in = std::fopen(file.c_str(), "rb");
      if (!in) throw std::runtime_error(file + ": " + std::strerror(errno) + " (the tensors of the optimizer state " + path + ")");
      const size_t got = std::fread(head.data(), 1, head.size(), in);
      std::fclose(in);
      std::string planned(8, '\0');
      for (int i = 0; i < 8; ++i) planned[i] = static_cast<char>((f.header.size() >> (8 * i)) & 0xff);
      planned += f.header;
      if (got != head.size() || head != planned)
        throw std::runtime_error(file + ": not the tensors of the optimizer state " + path + " (its header is not the one the state's shapes give)");
    }
    uint64_t at_ = head.size();
    for (const auto& t : f.tensors) {
      TensorSpec spec;
      spec.name = t.name;
      spec.file = file;
      spec.dtype = safetensors_dtype(t.dtype);
      spec.shape = t.shape;
      spec.begin = at_;
      spec.end = at_ + t.nbytes();
      at_ = spec.end;
      specs.push_back(std::move(spec));
    }
  }
  return specs;
}

// Format 3's AdamW tensors: the saved entries, the layout they were written in, their specs.
struct SavedAdamTensors {
  std::vector<SavedAdam> saved;
  std::vector<TensorSpec> specs;
};

SavedAdamTensors locate_saved_adam(torch::serialize::InputArchive& a, const std::string& path, int64_t count, bool mixed) {
  SavedAdamTensors out;
  out.saved = read_saved_adam(a, path, count);
  std::vector<TensorMeta> metas;
  for (const auto& s : out.saved)
    for (auto& m : adam_metas(s, mixed)) metas.push_back(std::move(m));
  const int64_t max = read_int(a, path, "rpo/max_shard_bytes");
  if (max <= 0) throw unreadable(path, "rpo/max_shard_bytes is not positive");
  out.specs = locate(plan_safetensors(metas, static_cast<uint64_t>(max), kStem), path);
  return out;
}

bool is_adam_kind(const std::string& kind) { return kind == "AdamW (fused)" || kind == "AdamW (stochastic rounding)"; }

}  // namespace

std::vector<TensorSpec> optimizer_state_tensors(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, at::kCPU);
    const auto format = read_string(archive, path, "rpo/format");
    if (format != kFormat) throw unreadable(path, "format " + format + "; its tensors are not in safetensors files");
    if (!is_adam_kind(read_string(archive, path, "rpo/optimizer"))) return {};
    const bool mixed = read_string(archive, path, "rpo/precision") == "bf16-mixed";
    return locate_saved_adam(archive, path, read_int(archive, path, "rpo/count"), mixed).specs;
  } catch (const c10::Error& e) {
    throw unreadable(path, e.what_without_backtrace());
  }
}

void TrainOptimizer::save(torch::serialize::OutputArchive& a, const std::string& path, uint64_t max_shard_bytes) const {
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
    // The tensors stream into safetensors files one at a time; the archive keeps the scalars.
    std::vector<TensorMeta> metas;
    std::map<std::string, at::Tensor> by_name;
    for (size_t i = 0; i < adam_.size(); ++i) {
      const auto& st = adam_[i];
      if (!st.defined()) continue;  // no update touched it yet
      const std::string k = "state/" + std::to_string(i) + "/";
      const SavedAdam s{i, names_[i], st.step, st.exp_avg.sizes().vec(), st.exp_avg.scalar_type()};
      a.write(k + "name", c10::IValue(s.name));
      a.write(k + "step", c10::IValue(s.step));
      a.write(k + "shape", c10::IValue(s.shape));
      a.write(k + "dtype", c10::IValue(safetensors_dtype(s.dtype)));
      by_name[s.name + ".exp_avg"] = st.exp_avg;
      by_name[s.name + ".exp_avg_sq"] = st.exp_avg_sq;
      if (mixed) by_name[s.name + ".master"] = st.master;
      for (auto& m : adam_metas(s, mixed)) metas.push_back(std::move(m));
    }
    a.write("rpo/max_shard_bytes", c10::IValue(static_cast<int64_t>(max_shard_bytes)));
    write_safetensors(std::filesystem::path(path).parent_path().string(), plan_safetensors(metas, max_shard_bytes, kStem),
                      [&by_name](const TensorMeta& t) { return by_name.at(t.name); });
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
  const bool in_archive = format->toStringRef() == kArchiveFormat;
  if (!in_archive && format->toStringRef() != kFormat)
    throw unreadable(path, "format " + format->toStringRef() + "; this rpo reads " + kFormat + " and " + kArchiveFormat);
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
  } else if (!in_archive) {
    states.resize(params_.size());
    const at::ScalarType moment_dtype = mixed ? at::kFloat : (params_.empty() ? at::kFloat : params_[0].scalar_type());
    const auto located = locate_saved_adam(a, path, expected, mixed);
    // Every entry is checked against the model before a byte of the tensors is read.
    for (const auto& s : located.saved) {
      const auto i = s.index;
      if (s.name != names_[i]) throw std::invalid_argument(check.who(i) + "the file holds the state of \"" + s.name + "\" there");
      const auto& p = params_[i];
      for (const char* what : {"exp_avg", "exp_avg_sq"}) {
        if (at::IntArrayRef(s.shape) != p.sizes())
          throw std::invalid_argument(check.who(i) + what + ": expected shape " + shape_str(p.sizes()) + " but found " + shape_str(s.shape));
        if (s.dtype != moment_dtype)
          throw std::invalid_argument(check.who(i) + what + ": expected dtype " + std::string(c10::toString(moment_dtype)) + " but found " +
                                      c10::toString(s.dtype));
      }
    }
    std::map<std::string, const TensorSpec*> spec_of;
    for (const auto& t : located.specs) spec_of[t.name] = &t;
    SafetensorsReader reader;
    auto read = [&](const std::string& name, const at::Tensor& like, at::ScalarType dtype) {
      auto out = at::empty(like.sizes(), like.options().dtype(dtype));
      reader.read(*spec_of.at(name), 0, out.numel(), out);
      return out;
    };
    for (const auto& s : located.saved) {
      const auto& p = params_[s.index];
      auto& st = states[s.index];
      st.step = s.step;
      st.exp_avg = read(s.name + ".exp_avg", p, moment_dtype);
      st.exp_avg_sq = read(s.name + ".exp_avg_sq", p, moment_dtype);
      if (mixed) st.master = read(s.name + ".master", p, at::kFloat);
      if (kind_ == Kind::kFusedAdamW) st.step_t = at::full({}, static_cast<double>(st.step), p.options().dtype(at::kFloat));
    }
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

void Trainer::save_state(const std::string& path, uint64_t max_shard_bytes) const {
  // loss=ppo: the value head beside the HF weights, in its own file (transformers ignores it),
  // and its optimizer state beside this one (train/value_head_state.h).
  if (impl_->ppo) {
    const auto dir = std::filesystem::path(path).parent_path().string();
    save_value_head(*impl_->ppo->head, dir);
    save_value_head_optimizer(*impl_->ppo, dir);
  }
  torch::serialize::OutputArchive archive;
  impl_->optimizer->save(archive, path, max_shard_bytes);  // AdamW's tensors are written here, before the archive
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
