// Model::load / Model::save: raw byte ranges of safetensors files. The header was parsed and
// validated in TS (lib/model/safetensors.ts); here every range is checked against the file
// once more before a byte is read, so a file that changed underneath cannot cause an
// out-of-bounds read.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

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
  void write_all(const void* src, uint64_t n) const {
    auto* p = static_cast<const char*>(src);
    while (n > 0) {
      ssize_t put = ::write(fd, p, n);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
      p += put, n -= static_cast<uint64_t>(put);
    }
  }
};

}  // namespace

void Model::load(const std::vector<TensorSpec>& tensors) {
  auto& m = *impl_;
  std::map<std::string, at::Tensor> by_name(m.params.begin(), m.params.end());
  std::set<std::string> seen;
  std::map<std::string, std::unique_ptr<File>> files;
  torch::NoGradGuard no_grad;
  for (const auto& spec : tensors) {
    const std::string where = spec.file + ": tensor \"" + spec.name + "\"";
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) throw std::invalid_argument(where + " is not a parameter of this model");
    if (!seen.insert(spec.name).second) throw std::invalid_argument(where + " is given twice");
    auto& param = it->second;
    if (param.sizes() != at::IntArrayRef(spec.shape))
      throw std::invalid_argument(where + " has shape " + shape_str(spec.shape) + ", the model expects " + shape_str(param.sizes()));
    const auto dtype = dtype_from_safetensors(spec.dtype);
    const uint64_t nbytes = static_cast<uint64_t>(param.numel()) * c10::elementSize(dtype);
    if (spec.end < spec.begin || spec.end - spec.begin != nbytes)
      throw std::invalid_argument(where + ": byte range [" + std::to_string(spec.begin) + ", " + std::to_string(spec.end) + ") does not hold " + std::to_string(nbytes) + " bytes");
    auto& f = files[spec.file];
    if (!f) f = std::make_unique<File>(spec.file, O_RDONLY);
    if (spec.end > f->size()) throw std::invalid_argument(where + ": byte range ends past the end of the file");
    auto host = at::empty(spec.shape, at::TensorOptions().dtype(dtype));
    f->read_at(host.data_ptr(), nbytes, spec.begin, spec.name);
    param.copy_(host);
  }
  std::string missing;
  for (auto& [name, p] : m.params)
    if (!seen.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  if (!missing.empty()) throw std::invalid_argument("checkpoint is missing tensors: " + missing);
}

void Model::save(const std::string& path, const std::string& header, const std::vector<std::string>& names) const {
  auto& m = *impl_;
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    File f(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const uint64_t n = header.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    f.write_all(len, 8);
    f.write_all(header.data(), n);
    for (const auto& name : names) {
      auto host = m.param(name).detach().to(at::kCPU).contiguous();
      f.write_all(host.data_ptr(), static_cast<uint64_t>(host.numel() * host.element_size()));
    }
    if (::fsync(f.fd) != 0) throw std::runtime_error(tmp + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": rename failed: " + why);
  }
}

}  // namespace rpo
