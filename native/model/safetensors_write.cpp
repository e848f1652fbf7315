// plan_safetensors / write_safetensors (model/sharded_io.h): the layout transformers writes,
// computed from names, dtypes and shapes, then filled tensor by tensor from a producer.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "model/file_write.h"
#include "model/model_impl.h"
#include "model/sharded_io.h"

namespace rpo {

namespace fs = std::filesystem;

int64_t TensorMeta::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

uint64_t TensorMeta::nbytes() const { return static_cast<uint64_t>(numel()) * c10::elementSize(dtype); }

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void append_hex4(std::string& out, unsigned v) {
  static const char* digits = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xf];
}

// A JSON string literal. ascii=false: serde_json's escaping (safetensors' headers: UTF-8 kept);
// ascii=true: Python's json.dumps with ensure_ascii (the index file), every code point outside
// ' '..'~' as \uXXXX (surrogate pairs above the BMP).
std::string json_string(const std::string& s, bool ascii) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: append_hex4(out, c);
      }
      ++i;
    } else if (!ascii || c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
    } else if (c == 0x7f) {
      append_hex4(out, c);
      ++i;
    } else {
      // One UTF-8 sequence (names come from the model's registration or a validated header).
      const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      if (i + len > s.size()) throw std::invalid_argument("tensor name " + s + " is not valid UTF-8");
      unsigned cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0f : 0x1f);
      for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        append_hex4(out, 0xd800 + (cp >> 10));
        append_hex4(out, 0xdc00 + (cp & 0x3ff));
      } else {
        append_hex4(out, cp);
      }
      i += len;
    }
  }
  return out + "\"";
}

// safetensors writes a file's tensors sorted by dtype, the later members of its Dtype enum
// first, then by name: BOOL < U8 < I8 < I16 < F16 < BF16 < I32 < F32 < F64 < I64 (the ones an
// rpo checkpoint can hold, in the enum's order).
int dtype_rank(at::ScalarType t) {
  switch (t) {
    case at::kBool: return 0;
    case at::kByte: return 1;
    case at::kChar: return 2;
    case at::kShort: return 3;
    case at::kHalf: return 4;
    case at::kBFloat16: return 5;
    case at::kInt: return 6;
    case at::kFloat: return 7;
    case at::kDouble: return 8;
    case at::kLong: return 9;
    default: throw std::invalid_argument("no safetensors dtype for " + std::string(c10::toString(t)));
  }
}

std::string build_header(std::vector<TensorMeta>& tensors, const std::map<std::string, std::string>& metadata, uint64_t& data_bytes) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorMeta& a, const TensorMeta& b) {
    const int ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      json += (first ? "" : ",") + json_string(k, false) + ":" + json_string(v, false);
      first = false;
    }
    json += "}";
  }
  uint64_t cursor = 0;
  for (const auto& t : tensors) {
    if (json.size() > 1) json += ",";
    json += json_string(t.name, false) + ":{\"dtype\":\"" + safetensors_dtype(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) json += (i ? "," : "") + std::to_string(t.shape[i]);
    const uint64_t end = cursor + t.nbytes();
    json += "],\"data_offsets\":[" + std::to_string(cursor) + "," + std::to_string(end) + "]}";
    cursor = end;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  data_bytes = cursor;
  return json;
}

std::string shard_name(const std::string& stem, size_t i, size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", i + 1, n);
  return stem + buf + ".safetensors";
}

// "<stem>-ddddd-of-ddddd.safetensors": a shard of some layout with this stem.
bool is_shard_name(const std::string& name, const std::string& stem) {
  const std::string tail = "-00000-of-00000.safetensors";
  if (name.size() != stem.size() + tail.size() || name.compare(0, stem.size(), stem) != 0) return false;
  for (size_t i = 0; i < tail.size(); ++i) {
    const char c = name[stem.size() + i];
    if (tail[i] == '0' ? !std::isdigit(static_cast<unsigned char>(c)) : c != tail[i]) return false;
  }
  return true;
}

// Asks for one tensor and checks it against its meta, naming the file and tensor on failure.
at::Tensor produce_checked(const TensorProducer& produce, const TensorMeta& meta, const std::string& where) {
  at::Tensor t;
  try {
    t = produce(meta);
  } catch (const c10::Error& e) {
    throw std::runtime_error(where + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
  if (!t.defined()) throw std::runtime_error(where + ": the producer gave no tensor");
  if (t.scalar_type() != meta.dtype)
    throw std::runtime_error(where + ": the producer gave dtype " + std::string(c10::toString(t.scalar_type())) + ", the layout says " +
                             c10::toString(meta.dtype));
  if (t.sizes() != at::IntArrayRef(meta.shape))
    throw std::runtime_error(where + ": the producer gave shape " + shape_str(t.sizes()) + ", the layout says " + shape_str(meta.shape));
  return t;
}

}  // namespace

std::vector<std::string> SafetensorsLayout::write_order() const {
  std::vector<std::string> out;
  for (const auto& f : files)
    for (const auto& t : f.tensors) out.push_back(t.name);
  return out;
}

SafetensorsLayout plan_safetensors(const std::vector<TensorMeta>& tensors, uint64_t max_shard_bytes, const std::string& stem,
                                   const std::map<std::string, std::string>& metadata) {
  if (max_shard_bytes == 0) throw std::invalid_argument("plan_safetensors: max_shard_bytes must be positive");
  // huggingface_hub's split_state_dict_into_shards: in state-dict order, a tensor larger than
  // the cap becomes a shard of its own at once; otherwise it closes the current shard when it
  // would tip it over the cap, and joins the (new) current shard.
  std::vector<std::vector<TensorMeta>> groups;
  std::vector<TensorMeta> current;
  uint64_t current_bytes = 0, total_bytes = 0;
  int64_t total_numel = 0;
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second)
      throw std::invalid_argument("plan_safetensors: tensor \"" + t.name + "\" is empty, reserved or given twice");
    for (auto d : t.shape)
      if (d < 0) throw std::invalid_argument("plan_safetensors: tensor \"" + t.name + "\" has a negative dimension");
    const uint64_t size = t.nbytes();
    total_bytes += size;
    total_numel += t.numel();
    if (size > max_shard_bytes) {
      groups.push_back({t});
      continue;
    }
    if (current_bytes + size > max_shard_bytes) {
      groups.push_back(std::move(current));
      current = {};
      current_bytes = 0;
    }
    current.push_back(t);
    current_bytes += size;
  }
  if (!current.empty() || groups.empty()) groups.push_back(std::move(current));

  SafetensorsLayout layout;
  layout.stem = stem;
  const size_t n = groups.size();
  for (size_t i = 0; i < n; ++i) {
    SafetensorsFileLayout f;
    f.file_name = n == 1 ? stem + ".safetensors" : shard_name(stem, i, n);
    f.tensors = std::move(groups[i]);
    f.header = build_header(f.tensors, metadata, f.data_bytes);
    layout.files.push_back(std::move(f));
  }
  if (n == 1) return layout;
  // The index as transformers writes it: json.dumps(index, indent=2, sort_keys=True) + "\n".
  std::map<std::string, std::string> weight_map;
  for (const auto& f : layout.files)
    for (const auto& t : f.tensors) weight_map[t.name] = f.file_name;
  std::string j = "{\n  \"metadata\": {\n    \"total_parameters\": " + std::to_string(total_numel) + ",\n    \"total_size\": " +
                  std::to_string(total_bytes) + "\n  },\n  \"weight_map\": {\n";
  size_t k = 0;
  for (const auto& [name, file] : weight_map)
    j += "    " + json_string(name, true) + ": " + json_string(file, true) + (++k < weight_map.size() ? ",\n" : "\n");
  j += "  }\n}\n";
  layout.index_name = stem + ".safetensors.index.json";
  layout.index_json = std::move(j);
  return layout;
}

void write_safetensors(const std::string& dir, const SafetensorsLayout& layout, const TensorProducer& produce) {
  // Every file stays a temp file until all are written: a producer that throws half-way (a rank
  // lost during a gather) or a full disk leaves the directory as it was.
  const fs::path base = dir.empty() ? fs::path(".") : fs::path(dir);  // a bare file name's parent is ""
  std::vector<std::unique_ptr<AtomicFileWriter>> outs;
  for (const auto& f : layout.files) {
    auto out = std::make_unique<AtomicFileWriter>((base / f.file_name).string());
    const uint64_t n = f.header.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    out->write(len, 8);
    out->write(f.header.data(), n);
    for (const auto& meta : f.tensors) {
      const auto host = produce_checked(produce, meta, out->path() + ": tensor \"" + meta.name + "\"").detach().to(at::kCPU).contiguous();
      out->write(host.data_ptr(), static_cast<size_t>(meta.nbytes()));
    }
    outs.push_back(std::move(out));
  }
  if (!layout.index_name.empty()) {
    auto out = std::make_unique<AtomicFileWriter>((base / layout.index_name).string());
    out->write(layout.index_json.data(), layout.index_json.size());
    outs.push_back(std::move(out));
  }
  for (auto& out : outs) out->commit();  // the index last: it names only files already in place

  // A stale layout would be found first (model.safetensors before the index) or left dangling.
  const std::string& stem = layout.stem;
  std::set<std::string> keep;
  for (const auto& f : layout.files) keep.insert(f.file_name);
  if (!layout.index_name.empty()) keep.insert(layout.index_name);
  for (const auto& entry : fs::directory_iterator(base)) {
    const auto name = entry.path().filename().string();
    if (keep.count(name) || !entry.is_regular_file()) continue;
    if (name == stem + ".safetensors" || name == stem + ".safetensors.index.json" || is_shard_name(name, stem)) {
      std::error_code ec;
      fs::remove(entry.path(), ec);  // best effort: the new files are complete either way
    }
  }
}

void write_safetensors_tensors(const std::string& dir, const std::vector<TensorBytes>& tensors, uint64_t max_shard_bytes,
                               const std::string& stem) {
  std::vector<TensorMeta> metas;
  std::map<std::string, const TensorBytes*> by_name;
  for (const auto& t : tensors) {
    metas.push_back({t.name, dtype_from_safetensors(t.dtype), t.shape});
    by_name[t.name] = &t;
  }
  write_safetensors(dir, plan_safetensors(metas, max_shard_bytes, stem), [&by_name](const TensorMeta& meta) {
    const auto& t = *by_name.at(meta.name);
    if (t.data.size() != meta.nbytes())
      throw std::invalid_argument(std::to_string(t.data.size()) + " bytes given, shape " + shape_str(meta.shape) + " of " + t.dtype + " needs " +
                                  std::to_string(meta.nbytes()));
    return at::from_blob(const_cast<uint8_t*>(t.data.data()), meta.shape, at::TensorOptions().dtype(meta.dtype));
  });
}

void produce_in_order(const SafetensorsLayout& layout, const TensorProducer& produce) {
  for (const auto& f : layout.files)
    for (const auto& meta : f.tensors) produce_checked(produce, meta, f.file_name + ": tensor \"" + meta.name + "\"");
}

}  // namespace rpo
