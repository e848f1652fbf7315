// Model::load / Model::save / Model::save_safetensors: safetensors files <-> the parameters.
// Reading goes through SafetensorsReader (model/sharded_io.h): only each tensor's byte range is
// read, straight into the parameter when it is a CPU tensor of the file's dtype, otherwise
// converted through one bounded buffer; no file is ever held whole. Saving goes through
// AtomicFileWriter: a full disk is an error naming the file, and the previous file stays.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <map>
#include <set>
#include <stdexcept>

#include "model/file_write.h"
#include "model/model_impl.h"
#include "model/sharded_io.h"

namespace rpo {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Reads every tensor of `tensors` into the parameter of `targets` it names; each at most once.
void load_into(const std::vector<std::pair<std::string, at::Tensor>>& targets, const std::vector<TensorSpec>& tensors,
               const char* missing_what) {
  std::map<std::string, at::Tensor> by_name(targets.begin(), targets.end());
  std::set<std::string> seen;
  SafetensorsReader reader;
  torch::NoGradGuard no_grad;
  for (const auto& spec : tensors) {
    const std::string where = spec.file + ": tensor \"" + spec.name + "\"";
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) throw std::invalid_argument(where + " is not a " + (std::string(missing_what) == "adapter" ? "LoRA adapter tensor" : "parameter") + " of this model");
    if (!seen.insert(spec.name).second) throw std::invalid_argument(where + " is given twice");
    auto& param = it->second;
    if (param.sizes() != at::IntArrayRef(spec.shape))
      throw std::invalid_argument(where + " has shape " + shape_str(spec.shape) + ", the model expects " + shape_str(param.sizes()));
    reader.read(spec, 0, param.numel(), param);
  }
  std::string missing;
  for (auto& [name, p] : targets)
    if (!seen.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  if (!missing.empty()) throw std::invalid_argument(std::string(missing_what) + " is missing tensors: " + missing);
}

}  // namespace

void Model::load(const std::vector<TensorSpec>& tensors) { load_into(impl_->params, tensors, "checkpoint"); }

// A PEFT adapter's tensors (adapter_model.safetensors) into this model's adapters: the same
// checks (shape, byte range, each tensor once, none missing), by PEFT's key names.
void Model::load_adapters(const std::vector<TensorSpec>& tensors) {
  if (!impl_->lora) throw std::invalid_argument("load_adapters: this model has no LoRA adapters (add_lora first)");
  load_into(impl_->lora->params, tensors, "adapter");
}

void Model::save(const std::string& path, const std::string& header, const std::vector<std::string>& names) const {
  auto& m = *impl_;
  AtomicFileWriter out(path);
  const uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(header.data(), n);
  for (const auto& name : names) {
    auto host = m.param(name).detach().to(at::kCPU).contiguous();
    out.write(host.data_ptr(), static_cast<size_t>(host.numel() * host.element_size()));
  }
  out.commit();
}

void Model::save_safetensors(const std::string& dir, uint64_t max_shard_bytes) const {
  auto& m = *impl_;
  std::vector<TensorMeta> metas;
  for (const auto& [name, p] : m.params) metas.push_back({name, p.scalar_type(), p.sizes().vec()});
  write_safetensors(dir, plan_safetensors(metas, max_shard_bytes), [&m](const TensorMeta& t) { return m.param(t.name); });
}

}  // namespace rpo
