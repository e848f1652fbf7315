#include "train/archive_file.h"

#include <exception>

#include "model/file_write.h"

namespace rpo {

void write_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  AtomicFileWriter out(path);
  std::exception_ptr failure;
  archive.save_to([&](const void* data, size_t n) -> size_t {
    if (!failure) {
      try {
        out.write(data, n);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    return n;
  });
  if (failure) std::rethrow_exception(failure);
  out.commit();
}

std::optional<c10::IValue> read_value(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  if (!archive.try_read(key, v)) return std::nullopt;
  return v;
}

at::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key) {
  at::Tensor t;
  if (!archive.try_read(key, t, /*is_buffer=*/true)) return {};
  return t;
}

}  // namespace rpo
