// LayerCache::append: generation's per-layer keys and values in their slots (causal_lm.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

#include "model/causal_lm.h"

namespace rpo {

std::pair<at::Tensor, at::Tensor> LayerCache::append(const at::Tensor& k, const at::Tensor& v) {
  if (!forward) throw std::logic_error("LayerCache::append: a cached forward needs ForwardOptions::slots");
  const auto& f = *forward;
  if (!key_buffer_.defined()) {
    // Zeros, not empty: a slot's columns past its length are read (masked) by decode steps, and
    // masked garbage could be NaN, which a zero attention weight does not cancel (0 * NaN).
    const std::vector<int64_t> shape{slots, k.size(1), capacity, k.size(3)};
    key_buffer_ = at::zeros(shape, k.options());
    value_buffer_ = at::zeros(shape, v.options());
  }
  // [rows, kv_heads, T, d] -> [rows * T, kv_heads, d], the shape of buffer[slot, :, column].
  auto flat = [](const at::Tensor& t) { return t.transpose(1, 2).reshape({-1, t.size(1), t.size(3)}); };
  key_buffer_.index_put_({f.write_slot, at::indexing::Slice(), f.write_column}, flat(k));
  value_buffer_.index_put_({f.write_slot, at::indexing::Slice(), f.write_column}, flat(v));
  if (f.read_slots == 0) return {k, v};
  return {key_buffer_.narrow(0, 0, f.read_slots).narrow(2, 0, f.read_columns),
          value_buffer_.narrow(0, 0, f.read_slots).narrow(2, 0, f.read_columns)};
}

void LayerCache::move_slots(const at::Tensor& src, const at::Tensor& dst, int64_t columns) {
  if (!key_buffer_.defined()) return;  // nothing cached yet
  for (auto* buffer : {&key_buffer_, &value_buffer_}) {
    auto head = buffer->narrow(2, 0, std::min(columns, capacity));
    // index_select copies first: a destination may be another pair's source.
    head.index_copy_(0, dst, head.index_select(0, src));
  }
}

}  // namespace rpo
