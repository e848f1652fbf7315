// The value head's optimizer state file (value_head_state.h).
#include "train/value_head_state.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "train/archive_file.h"
#include "train/ppo_step.h"

namespace rpo {

const char* const kValueHeadOptimizerFile = "value_head_optimizer.pt";

namespace {

constexpr const char* kFormat = "rpo-value-head-optimizer-state-1";

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// The optimizer's kind as the file records it; the head's optimizer is torch::optim's AdamW or
// RMSprop (make_ppo_state).
std::string kind_of(const torch::optim::Optimizer& o) {
  if (dynamic_cast<const torch::optim::AdamW*>(&o)) return "AdamW";
  if (dynamic_cast<const torch::optim::RMSprop*>(&o)) return "RMSprop";
  throw std::logic_error("value head: an optimizer other than AdamW or RMSprop");
}

// A parameter state's tensors by name, and which of them an existing state must have.
struct Slot {
  const char* name;
  bool required;
};
std::vector<Slot> slots(const std::string& kind) {
  if (kind == "AdamW") return {{"exp_avg", true}, {"exp_avg_sq", true}, {"max_exp_avg_sq", false}};
  return {{"square_avg", true}, {"momentum_buffer", false}, {"grad_avg", false}};
}

at::Tensor get_slot(torch::optim::OptimizerParamState& st, const std::string& name) {
  if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(&st)) {
    if (name == "exp_avg") return a->exp_avg();
    if (name == "exp_avg_sq") return a->exp_avg_sq();
    return a->max_exp_avg_sq();
  }
  auto& r = dynamic_cast<torch::optim::RMSpropParamState&>(st);
  if (name == "square_avg") return r.square_avg();
  if (name == "momentum_buffer") return r.momentum_buffer();
  return r.grad_avg();
}

std::unique_ptr<torch::optim::OptimizerParamState> make_state(const std::string& kind, int64_t step,
                                                              const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  if (kind == "AdamW") {
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step);
    for (const auto& [name, t] : tensors) {
      if (name == "exp_avg") st->exp_avg(t);
      else if (name == "exp_avg_sq") st->exp_avg_sq(t);
      else st->max_exp_avg_sq(t);
    }
    return st;
  }
  auto st = std::make_unique<torch::optim::RMSpropParamState>();
  st->step(step);
  for (const auto& [name, t] : tensors) {
    if (name == "square_avg") st->square_avg(t);
    else if (name == "momentum_buffer") st->momentum_buffer(t);
    else st->grad_avg(t);
  }
  return st;
}

}  // namespace

void save_value_head_optimizer(const PpoState& p, const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kValueHeadOptimizerFile).string();
  const auto kind = kind_of(*p.optimizer);
  const auto params = p.head->named();
  torch::serialize::OutputArchive a;
  a.write("rpo/format", c10::IValue(std::string(kFormat)));
  a.write("rpo/optimizer", c10::IValue(kind));
  a.write("rpo/count", c10::IValue(static_cast<int64_t>(params.size())));
  auto& states = p.optimizer->state();
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = states.find(params[i].second.unsafeGetTensorImpl());
    if (it == states.end()) continue;  // no update touched it yet
    const std::string k = "state/" + std::to_string(i) + "/";
    a.write(k + "name", c10::IValue(params[i].first));
    const int64_t step = kind == "AdamW" ? static_cast<torch::optim::AdamWParamState&>(*it->second).step()
                                         : static_cast<torch::optim::RMSpropParamState&>(*it->second).step();
    a.write(k + "step", c10::IValue(step));
    for (const auto& s : slots(kind)) {
      const at::Tensor t = get_slot(*it->second, s.name);
      if (t.defined()) a.write(k + s.name, t, /*is_buffer=*/true);
    }
  }
  write_archive_atomically(a, path);  // as optimizer.pt: LibTorch never sees a failed write
}

std::function<void()> stage_value_head_optimizer(PpoState& p, const std::string& dir, std::string& warning) {
  const std::string path = (std::filesystem::path(dir) / kValueHeadOptimizerFile).string();
  if (!std::filesystem::exists(path)) {
    warning = path + " is missing (a checkpoint written before rpo saved the value head's optimizer state): the value head's " +
              kind_of(*p.optimizer) + " state restarts from zero, so this run is not the uninterrupted one";
    return [] {};
  }
  const auto kind = kind_of(*p.optimizer);
  const auto params = p.head->named();
  torch::serialize::InputArchive a;
  try {
    a.load_from(path, params.front().second.device());
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": not a value head optimizer state (" + e.what_without_backtrace() + ")");
  }
  auto fail = [&](const std::string& why) { return std::invalid_argument(path + ": " + why); };
  auto format = read_value(a, "rpo/format");
  if (!format || !format->isString() || format->toStringRef() != kFormat)
    throw fail(std::string("not a value head optimizer state (no rpo/format ") + kFormat + ")");
  auto saved_kind = read_value(a, "rpo/optimizer");
  if (!saved_kind || !saved_kind->isString()) throw fail("no rpo/optimizer");
  if (saved_kind->toStringRef() != kind)
    throw fail("the value head's optimizer state is " + saved_kind->toStringRef() + "'s, this trainer uses " + kind);
  auto count = read_value(a, "rpo/count");
  if (!count || !count->isInt()) throw fail("no rpo/count");
  if (count->toInt() != static_cast<int64_t>(params.size()))
    throw fail("it holds state for " + std::to_string(count->toInt()) + " value head parameters, the head has " + std::to_string(params.size()));

  // Every parameter's state read and checked before anything changes.
  std::vector<std::pair<void*, std::unique_ptr<torch::optim::OptimizerParamState>>> staged;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [pname, param] = params[i];
    const std::string k = "state/" + std::to_string(i) + "/";
    const std::string who = "value head parameter \"" + pname + "\" (" + std::to_string(i + 1) + " of " + std::to_string(params.size()) + "): ";
    auto name = read_value(a, k + "name");
    if (!name) continue;  // no update touched it before the save
    if (!name->isString() || name->toStringRef() != pname)
      throw fail(who + "the file holds the state of \"" + (name->isString() ? name->toStringRef() : "?") + "\" there");
    auto step = read_value(a, k + "step");
    if (!step || !step->isInt()) throw fail(who + "step: missing from the file");
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& s : slots(kind)) {
      at::Tensor t = read_tensor(a, k + s.name);
      if (!t.defined()) {
        if (s.required) throw fail(who + s.name + ": missing from the file");
        continue;
      }
      if (t.sizes() != param.sizes())
        throw fail(who + s.name + ": expected shape " + shape_str(param.sizes()) + " but found " + shape_str(t.sizes()));
      if (t.scalar_type() != at::kFloat)
        throw fail(who + s.name + ": expected dtype Float but found " + std::string(c10::toString(t.scalar_type())));
      tensors.emplace_back(s.name, t.to(param.device()).contiguous());
    }
    staged.emplace_back(param.unsafeGetTensorImpl(), make_state(kind, step->toInt(), tensors));
  }
  auto shared = std::make_shared<decltype(staged)>(std::move(staged));
  return [&p, shared] {
    auto& states = p.optimizer->state();
    states.clear();
    for (auto& [key, st] : *shared) states[key] = std::move(st);
  };
}

}  // namespace rpo
