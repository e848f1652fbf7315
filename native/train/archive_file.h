// LibTorch archives (optimizer.pt, value_head_optimizer.pt) to and from files.
//
// Writing without LibTorch's own file writer: its stream writer
// reports a failed write by throwing from a destructor, which aborts the process (a full disk
// killed a whole run). The archive is streamed through a callback into AtomicFileWriter instead,
// which checks every write: the first failure is kept, the rest of the archive dropped, and the
// failure rethrown (naming the file) once LibTorch is done; on success the file appears whole
// (temp file + rename).
#pragma once

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <optional>
#include <string>

namespace rpo {

void write_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);

// Reading back: the value or tensor stored under `key`, or nothing (nullopt, an undefined tensor)
// when the archive has none, so the caller can name what is missing.
std::optional<c10::IValue> read_value(torch::serialize::InputArchive& archive, const std::string& key);
at::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key);

}  // namespace rpo
