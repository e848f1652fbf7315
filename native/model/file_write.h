// Writing a user's file so that nothing they own is lost: the bytes go to a temp file next to
// the target, are fsynced, and only then renamed over it. Any I/O failure (a full disk, a
// quota, EIO) is a std::runtime_error naming the target and the cause, and the temp file is
// removed: the old file, if any, stays intact and no partial file is left behind.
//
// Every write is a checked POSIX call. Library writers that report errors from destructors
// (torch::save's PyTorchStreamWriter does) would abort the process on ENOSPC instead.
#pragma once

#include <cstddef>
#include <string>

namespace rpo {

// "no space left on device writing /x/optimizer.pt", or "<strerror> <verb> <path>" for other
// errno values: the wording the JS side uses too, so a full disk reads the same from either.
std::string io_error_message(int err, const std::string& verb, const std::string& path);

class AtomicFileWriter {
 public:
  // Opens `<path>.tmp-<pid>` for writing (created, truncated).
  explicit AtomicFileWriter(std::string path);
  // Without commit() (an exception unwound past it): closes and removes the temp file.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  // fsync, close (both can report a full disk on some file systems), rename into place.
  void commit();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(int err, const char* verb);
  void discard() noexcept;

  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace rpo
