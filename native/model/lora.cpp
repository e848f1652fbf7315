#include "model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>

#include "model/gemm.h"
#include "model/llama.h"

namespace rpo {

namespace {

constexpr const char* kPeftPrefix = "base_model.model.";

bool ends_with_module(const std::string& name, const std::string& target) {
  if (name == target) return true;
  return name.size() > target.size() && name.compare(name.size() - target.size(), target.size(), target) == 0 &&
         name[name.size() - target.size() - 1] == '.';
}

bool all_linear(const std::vector<std::string>& targets) {
  return targets.size() == 1 && targets[0] == "all-linear";
}

// The output head is never adapted by "all-linear" (PEFT leaves the output layer out).
bool is_output_head(const std::string& name) { return name == "lm_head" || name == "embed_out"; }

// Dense modules in registration order, with their names.
std::vector<std::pair<std::string, std::shared_ptr<DenseImpl>>> dense_modules(torch::nn::Module& lm) {
  std::vector<std::pair<std::string, std::shared_ptr<DenseImpl>>> out;
  for (const auto& item : lm.named_modules("", /*include_self=*/false)) {
    if (auto d = std::dynamic_pointer_cast<DenseImpl>(item.value())) out.emplace_back(item.key(), d);
  }
  return out;
}

}  // namespace

at::Tensor LoraAdapter::delta(const at::Tensor& x) const {
  auto h = x.to(A.scalar_type());
  const double p = state->options.dropout;
  // Dropout in training forwards only: evaluation, the reference and generation run without it,
  // as PEFT's model.eval() does.
  if (p > 0 && state->training) {
    // bernoulli_ takes the generator's lock itself.
    auto keep = at::empty(h.sizes(), h.options()).bernoulli_(1.0 - p, state->dropout_gen);
    h = h * keep.div_(1.0 - p);
  }
  auto d = linear(linear(h, A, at::Tensor()), B, at::Tensor());
  return d.mul(state->scaling).to(x.scalar_type());
}

std::vector<std::string> lora_module_names(torch::nn::Module& lm, const std::vector<std::string>& targets) {
  if (targets.empty()) throw std::invalid_argument("lora.target_modules: name at least one module (or all-linear)");
  std::vector<std::string> out;
  std::set<std::string> matched;
  for (auto& [name, d] : dense_modules(lm)) {
    if (all_linear(targets)) {
      if (!is_output_head(name)) out.push_back(name);
      continue;
    }
    for (const auto& t : targets) {
      if (ends_with_module(name, t)) {
        out.push_back(name);
        matched.insert(t);
        break;
      }
    }
  }
  if (!all_linear(targets)) {
    std::set<std::string> leaves;
    for (auto& [name, d] : dense_modules(lm)) leaves.insert(name.substr(name.rfind('.') + 1));
    for (const auto& t : targets) {
      if (matched.count(t)) continue;
      std::string known;
      for (const auto& l : leaves) known += (known.empty() ? "" : ", ") + l;
      throw std::invalid_argument("lora.target_modules: \"" + t + "\" matches no linear layer of this model (its linears: " + known + ", or all-linear)");
    }
  }
  if (out.empty()) throw std::invalid_argument("lora.target_modules: no linear layer selected");
  return out;
}

std::shared_ptr<LoraState> attach_lora(torch::nn::Module& lm, const LoraOptions& o, const at::Device& device) {
  if (o.r <= 0) throw std::invalid_argument("lora.r must be a positive integer, got " + std::to_string(o.r));
  if (!(o.dropout >= 0 && o.dropout < 1)) throw std::invalid_argument("lora.dropout must be in [0, 1)");
  if (o.init != "kaiming" && o.init != "gaussian")
    throw std::invalid_argument("lora.init \"" + o.init + "\": use kaiming (PEFT's default) or gaussian");
  auto names = lora_module_names(lm, o.target_modules);
  std::set<std::string> selected(names.begin(), names.end());
  auto state = std::make_shared<LoraState>();
  state->options = o;
  state->scaling = o.rslora ? o.alpha / std::sqrt(static_cast<double>(o.r)) : o.alpha / static_cast<double>(o.r);
  state->dropout_gen = at::globalContext().defaultGenerator(device).clone();
  {
    std::lock_guard<std::mutex> lock(state->dropout_gen.mutex());
    state->dropout_gen.set_current_seed(o.seed);
  }
  torch::NoGradGuard no_grad;
  for (auto& p : lm.parameters()) p.set_requires_grad(false);
  // One CPU generator in module order, fp32 draws: the same adapters on every device and dtype.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const auto fp32 = at::TensorOptions().dtype(at::kFloat).device(device);
  for (auto& [name, d] : dense_modules(lm)) {
    if (!selected.count(name)) continue;
    if (d->lora) throw std::invalid_argument("lora: module " + name + " already has an adapter");
    const int64_t in = d->weight.size(1), out = d->weight.size(0);
    auto a = at::empty({o.r, in}, at::kFloat);
    if (o.init == "kaiming") {
      // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in) = 1 / sqrt(in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      a.uniform_(-bound, bound, gen);
    } else {
      a.normal_(0.0, 1.0 / static_cast<double>(o.r), gen);
    }
    auto adapter = std::make_shared<LoraAdapter>();
    adapter->A = a.to(fp32);
    adapter->B = at::zeros({out, o.r}, fp32);
    adapter->A.set_requires_grad(true);
    adapter->B.set_requires_grad(true);
    adapter->state = state;
    d->lora = adapter;
    state->modules.push_back(name);
    state->params.emplace_back(kPeftPrefix + name + ".lora_A.weight", adapter->A);
    state->params.emplace_back(kPeftPrefix + name + ".lora_B.weight", adapter->B);
  }
  return state;
}

void merge_lora(torch::nn::Module& lm, LoraState& state) {
  torch::NoGradGuard no_grad;
  for (auto& [name, d] : dense_modules(lm)) {
    if (!d->lora) continue;
    auto delta = at::mm(d->lora->B.to(at::kFloat), d->lora->A.to(at::kFloat)).mul_(state.scaling);
    d->weight.copy_(d->weight.to(at::kFloat).add_(delta));
    d->lora.reset();
  }
  for (auto& p : lm.parameters()) p.set_requires_grad(true);
  state.params.clear();
  state.modules.clear();
}

}  // namespace rpo
