// The seed's ValueHead (value_head.h) and its file beside the HF weights.
#include "model/value_head.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

#include "model/file_write.h"

namespace rpo {

const char* const kValueHeadFile = "value_head.safetensors";

ValueHeadImpl::ValueHeadImpl(int64_t h) {
  l0 = register_module("summary_0", torch::nn::Linear(h, h));
  l3 = register_module("summary_3", torch::nn::Linear(h, h));
  l6 = register_module("summary_6", torch::nn::Linear(h, 1));
}

at::Tensor ValueHeadImpl::forward(const at::Tensor& hidden, bool train, at::Generator* gen) {
  // at::dropout's arithmetic (x * bernoulli(1 - p) / (1 - p)), with a generator of our own.
  auto drop = [&](const at::Tensor& x) {
    if (!train) return x;
    if (!gen) return at::dropout(x, kDropout, true);
    // bernoulli_ takes the generator's lock itself.
    return x * at::empty_like(x).bernoulli_(1.0 - kDropout, *gen).div_(1.0 - kDropout);
  };
  at::Tensor x = hidden.detach().to(at::kFloat);
  x = at::relu(drop(l0->forward(x)));
  x = at::relu(drop(l3->forward(x)));
  return l6->forward(x).squeeze(-1);
}

std::vector<std::pair<std::string, at::Tensor>> ValueHeadImpl::named() const {
  return {{"summary.0.weight", l0->weight}, {"summary.0.bias", l0->bias}, {"summary.3.weight", l3->weight},
          {"summary.3.bias", l3->bias},     {"summary.6.weight", l6->weight}, {"summary.6.bias", l6->bias}};
}

namespace {

// The header without JSON's insignificant whitespace (spaces, tabs and newlines outside strings),
// so the entries can be matched in the compact form save_value_head writes: any writer's spacing
// (Python's json.dumps puts a space after ':' and ',') reads the same. TypeScript has already
// parsed and checked the header as JSON (lib/model/value_head.ts) before the engine reads it.
std::string without_json_whitespace(const std::string& header) {
  std::string out;
  out.reserve(header.size());
  bool in_string = false;
  for (size_t i = 0; i < header.size(); ++i) {
    const char c = header[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < header.size()) out += header[++i];
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
      out += c;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out += c;
    }
  }
  return out;
}

std::string shape_json(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

void save_value_head(const ValueHeadImpl& head, const std::string& dir) {
  const auto tensors = head.named();
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * 4;
    header += (i ? "," : "") + std::string("\"") + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape_json(t) +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';  // safetensors pads its header with spaces
  AtomicFileWriter out(dir + "/" + kValueHeadFile);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((header.size() >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(header.data(), header.size());
  for (const auto& [name, t] : tensors) {
    const at::Tensor host = t.detach().to(at::kCPU, at::kFloat).contiguous();
    out.write(host.data_ptr(), static_cast<size_t>(host.numel()) * 4);
  }
  out.commit();
}

// Reads back what save_value_head writes: each tensor's entry found by its name in the header,
// its dtype, shape and byte range checked before its bytes are copied.
void load_value_head(ValueHeadImpl& head, const std::string& dir) {
  const std::string path = dir + "/" + kValueHeadFile;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (a ppo checkpoint keeps its value head there)");
  unsigned char len[8];
  if (!in.read(reinterpret_cast<char*>(len), 8)) throw std::runtime_error(path + ": too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (n > (1u << 20)) throw std::runtime_error(path + ": header of " + std::to_string(n) + " bytes is not a value head's");
  std::string raw_header(n, '\0');
  if (!in.read(raw_header.data(), static_cast<std::streamsize>(n))) throw std::runtime_error(path + ": short header");
  const std::string header = without_json_whitespace(raw_header);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : head.named()) {
    const std::string where = path + ": tensor \"" + name + "\"";
    // A tensor's entry is its name as a key ("name":{...}), not the name as a string elsewhere.
    const size_t at_name = header.find("\"" + name + "\":{");
    if (at_name == std::string::npos) throw std::runtime_error(where + " is missing");
    const size_t end = header.find('}', at_name);
    const std::string entry = header.substr(at_name, end - at_name);
    if (entry.find("\"dtype\":\"F32\"") == std::string::npos) throw std::runtime_error(where + " is not F32");
    if (entry.find("\"shape\":" + shape_json(t)) == std::string::npos)
      throw std::runtime_error(where + ": shape differs from the model's " + shape_json(t));
    const size_t off = entry.find("\"data_offsets\":[");
    if (off == std::string::npos) throw std::runtime_error(where + " has no data_offsets");
    uint64_t a = 0, b = 0;
    if (std::sscanf(entry.c_str() + off, "\"data_offsets\":[%lu,%lu]", &a, &b) != 2 || b < a || b > data.size() ||
        b - a != static_cast<uint64_t>(t.numel()) * 4)
      throw std::runtime_error(where + ": bad byte range");
    const at::Tensor src = at::from_blob(data.data() + a, t.sizes(), at::TensorOptions().dtype(at::kFloat));
    t.detach().copy_(src);
  }
}

}  // namespace rpo
