// Checkpoints without a process that holds the whole model: safetensors files written tensor by
// tensor as a producer hands each one over, and read back by element range.
//
// Writing (safetensors_write.cpp): plan_safetensors() lays the tensors out from their names,
// dtypes and shapes alone, exactly as transformers' save_pretrained does (huggingface_hub's
// max_shard_size rule; each file's tensors in safetensors' order; the index as json.dumps(indent=2,
// sort_keys=True) writes it), so every header is known before the first byte of data.
// write_safetensors() then asks the producer for one full tensor at a time and streams it out:
// under ZeRO-3 the producer all-gathers that tensor from the ranks, so no rank ever holds more
// than one whole tensor. Ranks that do not write call produce_in_order() with the same layout,
// so their producers join the same collectives in the same order.
//
// Reading (safetensors_read.cpp): SafetensorsReader copies elements [start, end) of one tensor
// with pread of only those bytes; read_flat_shard() builds a rank's flat shard from per-tensor
// ranges (TensorRange, api.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api.h"  // TensorSpec, TensorRange

namespace rpo {

// A tensor as a checkpoint lists it.
struct TensorMeta {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  int64_t numel() const;
  uint64_t nbytes() const;
};

struct SafetensorsFileLayout {
  std::string file_name;             // model.safetensors or model-0000k-of-0000n.safetensors
  std::string header;                // the JSON header, space-padded to a multiple of 8 bytes
  std::vector<TensorMeta> tensors;   // in data order (the order they are produced and written)
  uint64_t data_bytes = 0;
};

struct SafetensorsLayout {
  std::string stem;  // "model"
  std::vector<SafetensorsFileLayout> files;
  std::string index_name;  // "<stem>.safetensors.index.json"; empty when there is one file
  std::string index_json;  // the index file's text
  // Every tensor's name in the order write_safetensors() asks the producer for them.
  std::vector<std::string> write_order() const;
};

// `tensors` in state-dict order (the model's registration order). A file holds at most
// `max_shard_bytes` of data (a larger tensor gets one of its own); one file is
// "<stem>.safetensors" without an index, several are "<stem>-0000k-of-0000n.safetensors" and
// "<stem>.safetensors.index.json". `metadata` goes into every header's __metadata__.
SafetensorsLayout plan_safetensors(const std::vector<TensorMeta>& tensors, uint64_t max_shard_bytes,
                                   const std::string& stem = "model",
                                   const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Gives the full tensor of that name, on any device; it must have the meta's dtype and shape.
using TensorProducer = std::function<at::Tensor(const TensorMeta&)>;

// Writes the layout's files into `dir`, asking `produce` for each tensor in write_order().
// Every file goes to a temp file first; only when all are written and fsynced are they renamed
// into place, the index last, and then weight files of another layout with the same stem (a
// stale model.safetensors, shards of another count) are removed. A failure before the renames
// (the producer throws, a full disk) leaves `dir` as it was; errors name the file and tensor.
void write_safetensors(const std::string& dir, const SafetensorsLayout& layout, const TensorProducer& produce);

// What a rank that does not write calls: `produce` for each tensor in write_order(), the
// results dropped.
void produce_in_order(const SafetensorsLayout& layout, const TensorProducer& produce);

// Reads element ranges of a checkpoint's tensors (TensorSpec: byte ranges from the validated
// header). Files are opened once and read with pread: only the bytes asked for are read, and a
// file truncated underneath is a "short read" error naming it (a mapping would be SIGBUS).
class SafetensorsReader {
 public:
  SafetensorsReader();
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  // Elements [start, end) of `spec`'s tensor into `out`: contiguous, end - start elements, of
  // any floating dtype on any device (converted from the file's dtype chunk by chunk through one
  // bounded buffer; straight into `out` when it is a CPU tensor of the file's dtype).
  void read(const TensorSpec& spec, int64_t start, int64_t end, const at::Tensor& out);

 private:
  struct Files;
  std::unique_ptr<Files> files_;
  at::Tensor bounce_;
};

// A rank's flat shard: each range of `ranges`, found in `specs` by name, read one after another
// into one flat tensor of `options`.
at::Tensor read_flat_shard(const std::vector<TensorSpec>& specs, const std::vector<TensorRange>& ranges,
                           const at::TensorOptions& options);

}  // namespace rpo
