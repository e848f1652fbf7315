// Model::load / Model::save: raw byte ranges of safetensors files. The header was parsed and
// validated in TS (lib/model/safetensors.ts); here every range is checked against the file
// once more before a byte is read, so a file that changed underneath cannot cause an
// out-of-bounds read. Saving goes through AtomicFileWriter: a full disk is an error naming
// the file, and the previous file stays as it was.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "model/file_write.h"
#include "model/model_impl.h"

namespace rpo {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct File {
  int fd = -1;
  std::string path;
  explicit File(const std::string& p, int flags, mode_t mode = 0) : path(p) {
    fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error(p + ": " + std::strerror(errno));
  }
  ~File() {
    if (fd >= 0) ::close(fd);
  }
  uint64_t size() const {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    return static_cast<uint64_t>(st.st_size);
  }
  void read_at(void* dst, uint64_t n, uint64_t offset, const std::string& what) const {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw std::runtime_error(path + ": tensor \"" + what + "\": short read (" + (got < 0 ? std::strerror(errno) : "end of file") + ")");
      p += got, n -= static_cast<uint64_t>(got), offset += static_cast<uint64_t>(got);
    }
  }
};

}  // namespace

// Bytes are read straight into the parameter when it is a CPU tensor of the file's dtype (one
// copy, page cache -> weights, the common case: a bf16 checkpoint into a bf16 model); otherwise
// through one bounded buffer (pinned for CUDA), converted chunk by chunk into the parameter's
// dtype and device. No file is ever held whole. pread rather than mmap: a file truncated while it
// loads is then a "short read" error naming it, where a mapping would kill the process (SIGBUS).
namespace {

// Reads every tensor of `tensors` into the parameter of `targets` it names; each at most once.
void load_into(const std::vector<std::pair<std::string, at::Tensor>>& targets, const std::vector<TensorSpec>& tensors,
               const char* missing_what) {
  constexpr uint64_t kChunkBytes = 16ull << 20;
  std::map<std::string, at::Tensor> by_name(targets.begin(), targets.end());
  std::set<std::string> seen;
  std::map<std::string, std::unique_ptr<File>> files;
  std::map<std::string, uint64_t> sizes;
  at::Tensor bounce;  // uint8, allocated at the first tensor that needs it
  torch::NoGradGuard no_grad;
  for (const auto& spec : tensors) {
    const std::string where = spec.file + ": tensor \"" + spec.name + "\"";
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) throw std::invalid_argument(where + " is not a " + (std::string(missing_what) == "adapter" ? "LoRA adapter tensor" : "parameter") + " of this model");
    if (!seen.insert(spec.name).second) throw std::invalid_argument(where + " is given twice");
    auto& param = it->second;
    if (param.sizes() != at::IntArrayRef(spec.shape))
      throw std::invalid_argument(where + " has shape " + shape_str(spec.shape) + ", the model expects " + shape_str(param.sizes()));
    const auto dtype = dtype_from_safetensors(spec.dtype);
    const uint64_t elem = c10::elementSize(dtype);
    const uint64_t nbytes = static_cast<uint64_t>(param.numel()) * elem;
    if (spec.end < spec.begin || spec.end - spec.begin != nbytes)
      throw std::invalid_argument(where + ": byte range [" + std::to_string(spec.begin) + ", " + std::to_string(spec.end) + ") does not hold " + std::to_string(nbytes) + " bytes");
    auto& f = files[spec.file];
    if (!f) {
      f = std::make_unique<File>(spec.file, O_RDONLY);
      sizes[spec.file] = f->size();
    }
    if (spec.end > sizes[spec.file]) throw std::invalid_argument(where + ": byte range ends past the end of the file");
    if (param.device().is_cpu() && param.scalar_type() == dtype && param.is_contiguous()) {
      f->read_at(param.data_ptr(), nbytes, spec.begin, spec.name);
      continue;
    }
    if (!bounce.defined()) {
      bounce = at::empty({static_cast<int64_t>(std::min<uint64_t>(kChunkBytes, std::max<uint64_t>(nbytes, elem)))},
                         at::TensorOptions().dtype(at::kByte).pinned_memory(param.device().is_cuda()));
    } else if (static_cast<uint64_t>(bounce.numel()) < std::min<uint64_t>(kChunkBytes, nbytes)) {
      bounce = at::Tensor();  // free the smaller one first
      bounce = at::empty({static_cast<int64_t>(std::min<uint64_t>(kChunkBytes, nbytes))},
                         at::TensorOptions().dtype(at::kByte).pinned_memory(param.device().is_cuda()));
    }
    const uint64_t per_chunk = std::max<uint64_t>(1, static_cast<uint64_t>(bounce.numel()) / elem);
    auto flat = param.view({-1});
    for (uint64_t e0 = 0; e0 < static_cast<uint64_t>(param.numel()); e0 += per_chunk) {
      const uint64_t n = std::min<uint64_t>(per_chunk, static_cast<uint64_t>(param.numel()) - e0);
      f->read_at(bounce.data_ptr(), n * elem, spec.begin + e0 * elem, spec.name);
      auto src = at::from_blob(bounce.data_ptr(), {static_cast<int64_t>(n)}, at::TensorOptions().dtype(dtype));
      flat.narrow(0, static_cast<int64_t>(e0), static_cast<int64_t>(n)).copy_(src);  // blocking: the buffer is reused
    }
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

}  // namespace rpo
