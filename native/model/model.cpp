// Model: construction, random initialization, forward entry points.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>

#include "loss/logprobs.h"
#include "model/gemm.h"
#include "model/gpt_neox.h"
#include "model/llama.h"
#include "model/model_impl.h"

namespace rpo {

at::ScalarType dtype_from_name(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16") return at::kHalf;
  throw std::invalid_argument("unsupported dtype \"" + name + "\": use float32, bfloat16 or float16");
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return std::string(c10::toString(t));
  }
}

at::ScalarType dtype_from_safetensors(const std::string& code) {
  if (code == "F32") return at::kFloat;
  if (code == "BF16") return at::kBFloat16;
  if (code == "F16") return at::kHalf;
  if (code == "F64") return at::kDouble;
  throw std::invalid_argument("tensor dtype " + code + " is not a floating dtype the model can load (F32, BF16, F16, F64)");
}

std::string safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kBFloat16: return "BF16";
    case at::kHalf: return "F16";
    case at::kDouble: return "F64";
    // Optimizer state: step counts, generator states.
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: throw std::invalid_argument("no safetensors dtype for " + std::string(c10::toString(t)));
  }
}

static void check_config(const ModelConfig& c) {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw std::invalid_argument(std::string("model config: ") + name + " must be positive");
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_key_value_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  if (c.head_dim % 2) throw std::invalid_argument("model config: head_dim must be even (rotary embeddings)");
  if (c.num_attention_heads % c.num_key_value_heads)
    throw std::invalid_argument("model config: num_attention_heads must be a multiple of num_key_value_heads");
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" &&
      c.architecture != "Qwen2ForCausalLM" && c.architecture != "GPTNeoXForCausalLM")
    throw std::invalid_argument("model config: unsupported architecture \"" + c.architecture + "\"");
  if (c.architecture == "GPTNeoXForCausalLM") {
    const int64_t rotary = neox_rotary_ndims(c);
    if (rotary <= 0 || rotary % 2 || rotary > c.head_dim)
      throw std::invalid_argument("model config: rotary_pct " + std::to_string(c.rotary_pct) + " of head_dim " +
                                  std::to_string(c.head_dim) + " gives " + std::to_string(rotary) +
                                  " rotary dims; they must be even and in (0, head_dim]");
    if (c.num_key_value_heads != c.num_attention_heads)
      throw std::invalid_argument("model config: GPTNeoX has one key/value head per attention head");
  }
}

// HF's _init_weights: normal(0, initializer_range) for linear and embedding weights, zero
// biases, unit norms. Drawn on the CPU in fp32 from one seeded generator, in parameter order,
// so a seed gives the same model on every device and dtype; one tensor's fp32 draw at a time.
static void init_weights(ModelImpl& m, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : m.params) {
    const bool is_norm = name.size() > 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm) p.fill_(1.0);
    else if (is_bias) p.zero_();
    else p.copy_(at::empty(p.sizes(), at::kFloat).normal_(0.0, m.config.initializer_range, gen));
  }
}

ModelImpl::ModelImpl(const ModelConfig& cfg, const InitOptions& options)
    : config(cfg), dtype(dtype_from_name(options.dtype)), device(options.device) {
  check_config(cfg);
  if (device.is_cuda() && !at::hasCUDA()) throw std::invalid_argument("device " + options.device + ": this LibTorch has no CUDA");
  // Every parameter is allocated once, in its dtype on its device, and not written here.
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  if (cfg.architecture == "GPTNeoXForCausalLM") lm = GPTNeoXForCausalLM(cfg, opts).ptr();
  else lm = CausalLM(cfg, opts).ptr();
  for (auto& item : lm->named_parameters()) params.emplace_back(item.key(), item.value());
  if (options.init) init_weights(*this, options.seed);
}

const at::Tensor& ModelImpl::param(const std::string& name) const {
  for (auto& [n, p] : params)
    if (n == name) return p;
  if (lora)
    for (auto& [n, p] : lora->params)
      if (n == name) return p;
  throw std::invalid_argument("no parameter named \"" + name + "\"");
}

int64_t real_tokens(const RowBatch& b) {
  int64_t n = 0;
  for (uint8_t a : b.attention_mask) n += a != 0;
  return n;
}

void check_row_batch(const RowBatch& b, int64_t vocab_size) {
  if (b.rows <= 0 || b.seq_len <= 0) throw std::invalid_argument("batch: rows and seqLen must be positive");
  const auto n = static_cast<size_t>(b.rows * b.seq_len);
  if (b.input_ids.size() != n) throw std::invalid_argument("batch: inputIds has " + std::to_string(b.input_ids.size()) + " entries, rows x seqLen = " + std::to_string(n));
  if (b.attention_mask.size() != n) throw std::invalid_argument("batch: attentionMask has " + std::to_string(b.attention_mask.size()) + " entries, rows x seqLen = " + std::to_string(n));
  if (!b.loss_mask.empty() && b.loss_mask.size() != n) throw std::invalid_argument("batch: lossMask has " + std::to_string(b.loss_mask.size()) + " entries, rows x seqLen = " + std::to_string(n));
  for (size_t i = 0; i < n; ++i) {
    if (b.input_ids[i] < 0 || b.input_ids[i] >= vocab_size)
      throw std::invalid_argument("batch: inputIds[row " + std::to_string(i / b.seq_len) + ", position " + std::to_string(i % b.seq_len) + "] = " + std::to_string(b.input_ids[i]) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  }
}

BatchTensors batch_tensors(const RowBatch& b, int64_t vocab_size, const at::Device& device, int64_t row_begin,
                           int64_t rows, bool trim) {
  check_row_batch(b, vocab_size);
  if (rows < 0) rows = b.rows - row_begin;
  if (row_begin < 0 || rows <= 0 || row_begin + rows > b.rows) throw std::invalid_argument("batch: row range out of bounds");
  const int64_t S = b.seq_len;
  auto att_at = [&](int64_t r, int64_t t) { return b.attention_mask[(row_begin + r) * S + t] != 0; };
  auto loss_at = [&](int64_t r, int64_t t) { return !b.loss_mask.empty() && b.loss_mask[(row_begin + r) * S + t] != 0; };
  // Columns: up to the last real token of any row (at least 1) when trimming.
  int64_t T = S;
  if (trim) {
    T = 1;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = S - 1; t >= T; --t)
        if (att_at(r, t)) {
          T = t + 1;
          break;
        }
  }
  bool right_padded = true;
  int64_t M = 0;
  for (int64_t r = 0; r < rows; ++r) {
    bool seen_pad = false;
    for (int64_t t = 0; t < T; ++t) {
      if (!att_at(r, t)) seen_pad = true;
      else if (seen_pad) right_padded = false;
      if (t >= 1 && loss_at(r, t)) ++M;
    }
  }
  // One int64 buffer: ids, attention, loss mask [rows * T each], then the label positions
  // (source, label, row [M each]) and the per-row label counts [rows].
  const int64_t RT = rows * T;
  const int64_t total = 3 * RT + 3 * M + rows;
  auto host = at::empty({total}, at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
  int64_t* h = host.data_ptr<int64_t>();
  int64_t *src = h + 3 * RT, *lab = src + M, *row = lab + M, *cnt = row + M;
  int64_t k = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t c = 0;
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = static_cast<size_t>((row_begin + r) * S + t);
      h[r * T + t] = b.input_ids[i];
      h[RT + r * T + t] = att_at(r, t) ? 1 : 0;
      h[2 * RT + r * T + t] = loss_at(r, t) ? 1 : 0;
      if (t >= 1 && loss_at(r, t)) {
        src[k] = r * T + t - 1;  // the hidden state that predicts token t
        lab[k] = b.input_ids[i];
        row[k] = r;
        ++k, ++c;
      }
    }
    cnt[r] = c;
  }
  auto d = device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
  BatchTensors out;
  out.input_ids = d.narrow(0, 0, RT).view({rows, T});
  out.attention_mask = d.narrow(0, RT, RT).view({rows, T});
  out.loss_mask = d.narrow(0, 2 * RT, RT).view({rows, T});
  out.labels.source = d.narrow(0, 3 * RT, M);
  out.labels.label = d.narrow(0, 3 * RT + M, M);
  out.labels.row = d.narrow(0, 3 * RT + 2 * M, M);
  out.labels.count = d.narrow(0, 3 * RT + 3 * M, rows).to(at::kFloat);
  out.right_padded = right_padded;
  return out;
}

// ---------------------------------------------------------------- Model handle

Model::Model(std::unique_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<Model> Model::create(const ModelConfig& config, const InitOptions& options) {
  return std::shared_ptr<Model>(new Model(std::make_unique<ModelImpl>(config, options)));
}

const ModelConfig& Model::config() const { return impl_->config; }
std::string Model::dtype() const { return dtype_name(impl_->dtype); }
std::string Model::device() const { return impl_->device.str(); }

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : impl_->params) n += p.numel();
  return n;
}

std::vector<ParamInfo> Model::params() const {
  std::vector<ParamInfo> out;
  for (auto& [name, p] : impl_->params) {
    out.push_back({name, safetensors_dtype(p.scalar_type()), p.sizes().vec(), static_cast<uint64_t>(p.numel() * p.element_size())});
  }
  return out;
}

void Model::add_lora(const LoraOptions& options) {
  auto& m = *impl_;
  if (m.lora) throw std::invalid_argument("lora: this model already has adapters");
  m.lora = attach_lora(*m.lm, options, m.device);
}

bool Model::has_lora() const { return impl_->lora != nullptr; }

std::vector<ParamInfo> Model::adapter_params() const {
  std::vector<ParamInfo> out;
  if (!impl_->lora) return out;
  for (auto& [name, p] : impl_->lora->params)
    out.push_back({name, safetensors_dtype(p.scalar_type()), p.sizes().vec(), static_cast<uint64_t>(p.numel() * p.element_size())});
  return out;
}

void Model::merge_lora() {
  auto& m = *impl_;
  if (!m.lora) throw std::invalid_argument("merge: this model has no LoRA adapters");
  rpo::merge_lora(*m.lm, *m.lora);
  m.lora.reset();
}

std::vector<float> Model::logits(const RowBatch& batch) const {
  torch::NoGradGuard no_grad;
  auto& m = *impl_;
  auto t = batch_tensors(batch, m.config.vocab_size, m.device);
  ForwardOptions fwd;
  fwd.right_padded = t.right_padded;
  auto hidden = m.lm->hidden_states(t.input_ids, t.attention_mask, fwd);
  // Through gemm.h, as generate's head: a few tokens take the decode kernel.
  auto flat = product(hidden.reshape({-1, hidden.size(-1)}), m.lm->output_weight().t());
  auto logits = flat.to(at::kFloat).cpu().contiguous();
  return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
}

RowLogps Model::logprobs(const RowBatch& batch, const LogpOptions& options) const {
  torch::NoGradGuard no_grad;
  auto& m = *impl_;
  auto t = batch_tensors(batch, m.config.vocab_size, m.device);
  ForwardOptions fwd;
  fwd.right_padded = t.right_padded;
  AdaptersOff off(options.adapters ? nullptr : m.lora.get());
  auto hidden = m.lm->hidden_states(t.input_ids, t.attention_mask, fwd);
  auto r = options.naive ? row_logprobs(hidden, m.lm->output_weight(), t.input_ids, t.loss_mask, options)
                         : row_logprobs(hidden, m.lm->output_weight(), t.labels, options);
  // One device-to-host copy: sum, mean, count.
  auto host = at::stack({r.sum, r.mean, r.count}).to(at::kDouble).cpu().contiguous();
  const double* d = host.data_ptr<double>();
  const auto rows = static_cast<size_t>(r.sum.numel());
  RowLogps out{std::vector<double>(d, d + rows), std::vector<double>(d + rows, d + 2 * rows), {}};
  for (size_t i = 0; i < rows; ++i) out.count.push_back(static_cast<int64_t>(d[2 * rows + i]));
  return out;
}

}  // namespace rpo
