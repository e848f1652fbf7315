// Writing a LibTorch archive to a file without LibTorch's own file writer: its stream writer
// reports a failed write by throwing from a destructor, which aborts the process (a full disk
// killed a whole run). The archive is streamed through a callback into AtomicFileWriter instead,
// which checks every write: the first failure is kept, the rest of the archive dropped, and the
// failure rethrown (naming the file) once LibTorch is done; on success the file appears whole
// (temp file + rename).
#pragma once

#include <torch/serialize/output-archive.h>

#include <string>

namespace rpo {

void write_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);

}  // namespace rpo
