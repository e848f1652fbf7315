#include "model/file_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace rpo {

std::string io_error_message(int err, const std::string& verb, const std::string& path) {
  // strerror's "No space left on device" starts a sentence; ours continues one.
  std::string cause = err == ENOSPC ? "no space left on device" : std::strerror(err);
  return cause + " " + verb + " " + path;
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(errno, "creating");
}

AtomicFileWriter::~AtomicFileWriter() { discard(); }

// tmp_ is cleared once the file is renamed into place (or removed): then there is nothing to undo.
void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

void AtomicFileWriter::fail(int err, const char* verb) {
  const std::string message = io_error_message(err, verb, path_);
  discard();
  throw std::runtime_error(message);
}

void AtomicFileWriter::write(const void* data, size_t n) {
  if (fd_ < 0) throw std::logic_error("AtomicFileWriter: write after commit or failure (" + path_ + ")");
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd_, p, n);
    if (put < 0 && errno == EINTR) continue;
    // write(2) returns 0 only for n == 0; treat it as a full device rather than spin.
    if (put <= 0) fail(put < 0 ? errno : ENOSPC, "writing");
    p += put, n -= static_cast<size_t>(put);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFileWriter: commit twice or after a failure (" + path_ + ")");
  if (::fsync(fd_) != 0) fail(errno, "writing");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(errno, "writing");
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(errno, "renaming into place");
  tmp_.clear();  // committed: nothing to remove
}

}  // namespace rpo
