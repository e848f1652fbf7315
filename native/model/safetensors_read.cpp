// SafetensorsReader / read_flat_shard (model/sharded_io.h): element ranges of a
// checkpoint's tensors, reading only their bytes. The header was parsed and validated in TS
// (lib/model/safetensors.ts); every byte range is checked against the file once more before a
// byte is read, so a file that changed underneath cannot cause an out-of-bounds read.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

#include "model/model_impl.h"
#include "model/sharded_io.h"

namespace rpo {

namespace {

struct File {
  int fd = -1;
  std::string path;
  uint64_t size = 0;
  explicit File(const std::string& p) : path(p) {
    fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(p + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(p + ": " + std::strerror(err));
    }
    size = static_cast<uint64_t>(st.st_size);
  }
  ~File() {
    if (fd >= 0) ::close(fd);
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

// Conversions go through a buffer of at most this many bytes, however large the tensor.
constexpr uint64_t kChunkBytes = 16ull << 20;

}  // namespace

struct SafetensorsReader::Files {
  std::map<std::string, std::unique_ptr<File>> open;
  File& get(const std::string& path) {
    auto& f = open[path];
    if (!f) f = std::make_unique<File>(path);
    return *f;
  }
};

SafetensorsReader::SafetensorsReader() : files_(std::make_unique<Files>()) {}
SafetensorsReader::~SafetensorsReader() = default;

void SafetensorsReader::read(const TensorSpec& spec, int64_t start, int64_t end, const at::Tensor& out) {
  const std::string where = spec.file + ": tensor \"" + spec.name + "\"";
  at::ScalarType dtype;
  try {
    dtype = dtype_from_safetensors(spec.dtype);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  const uint64_t elem = c10::elementSize(dtype);
  int64_t numel = 1;
  for (auto d : spec.shape) numel *= d;
  if (spec.end < spec.begin || spec.end - spec.begin != static_cast<uint64_t>(numel) * elem)
    throw std::invalid_argument(where + ": byte range [" + std::to_string(spec.begin) + ", " + std::to_string(spec.end) + ") does not hold " +
                                std::to_string(static_cast<uint64_t>(numel) * elem) + " bytes");
  if (start < 0 || end < start || end > numel)
    throw std::invalid_argument(where + ": element range [" + std::to_string(start) + ", " + std::to_string(end) + ") is not within its " +
                                std::to_string(numel) + " elements");
  const int64_t n = end - start;
  if (!out.defined() || out.numel() != n || !out.is_contiguous())
    throw std::invalid_argument(where + ": the destination of elements [" + std::to_string(start) + ", " + std::to_string(end) +
                                ") must be a contiguous tensor of " + std::to_string(n) + " elements");
  auto& f = files_->get(spec.file);
  if (spec.end > f.size) throw std::invalid_argument(where + ": byte range ends past the end of the file");
  const uint64_t offset = spec.begin + static_cast<uint64_t>(start) * elem;
  if (out.device().is_cpu() && out.scalar_type() == dtype) {
    f.read_at(out.data_ptr(), static_cast<uint64_t>(n) * elem, offset, spec.name);  // page cache -> destination, one copy
    return;
  }
  const uint64_t want = std::min<uint64_t>(kChunkBytes, std::max<uint64_t>(static_cast<uint64_t>(n) * elem, elem));
  if (!bounce_.defined() || static_cast<uint64_t>(bounce_.numel()) < want || (out.is_cuda() && !bounce_.is_pinned())) {
    bounce_ = at::Tensor();  // free the smaller one first
    bounce_ = at::empty({static_cast<int64_t>(want)}, at::TensorOptions().dtype(at::kByte).pinned_memory(out.is_cuda()));
  }
  const int64_t per_chunk = std::max<int64_t>(1, bounce_.numel() / static_cast<int64_t>(elem));
  auto flat = out.view({-1});
  for (int64_t e0 = 0; e0 < n; e0 += per_chunk) {
    const int64_t k = std::min<int64_t>(per_chunk, n - e0);
    f.read_at(bounce_.data_ptr(), static_cast<uint64_t>(k) * elem, offset + static_cast<uint64_t>(e0) * elem, spec.name);
    auto src = at::from_blob(bounce_.data_ptr(), {k}, at::TensorOptions().dtype(dtype));
    flat.narrow(0, e0, k).copy_(src);  // blocking: the buffer is reused
  }
}

at::Tensor read_flat_shard(const std::vector<TensorSpec>& specs, const std::vector<TensorRange>& ranges, const at::TensorOptions& options) {
  std::map<std::string, const TensorSpec*> by_name;
  for (const auto& s : specs) by_name[s.name] = &s;
  int64_t total = 0;
  for (const auto& r : ranges) {
    if (!by_name.count(r.name)) throw std::invalid_argument("checkpoint has no tensor \"" + r.name + "\"");
    total += std::max<int64_t>(0, r.end - r.start);
  }
  auto out = at::empty({total}, options);
  SafetensorsReader reader;
  int64_t at_ = 0;
  for (const auto& r : ranges) {
    const int64_t n = std::max<int64_t>(0, r.end - r.start);
    reader.read(*by_name[r.name], r.start, r.end, out.narrow(0, at_, n));
    at_ += n;
  }
  return out;
}

std::vector<float> read_safetensors_ranges(const std::vector<TensorSpec>& specs, const std::vector<TensorRange>& ranges) {
  auto flat = read_flat_shard(specs, ranges, at::TensorOptions().dtype(at::kFloat));
  return std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
}

}  // namespace rpo
