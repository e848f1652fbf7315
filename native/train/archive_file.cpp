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

}  // namespace rpo
