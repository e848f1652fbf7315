// LayerCache::append: generation's per-layer keys and values (causal_lm.h).
#include <ATen/ATen.h>

#include "model/causal_lm.h"

namespace rpo {

std::pair<at::Tensor, at::Tensor> LayerCache::append(const at::Tensor& k, const at::Tensor& v) {
  if (packing) {
    // Scatter the packed tokens into the padded layout; padding slots stay zero (the decode
    // steps' mask never lets a query see them).
    const auto& p = *packing;
    const int64_t length = std::max(capacity, p.padded_length);
    auto shape = [&](const at::Tensor& t) { return std::vector<int64_t>{p.rows, t.size(1), length, t.size(3)}; };
    key_buffer_ = at::zeros(shape(k), k.options());
    value_buffer_ = at::zeros(shape(v), v.options());
    // k [1, kv_heads, total, d] -> [total, kv_heads, d], the shape of buffer[row_index, :, slot_index].
    key_buffer_.index_put_({p.row_index, at::indexing::Slice(), p.slot_index}, k.squeeze(0).transpose(0, 1));
    value_buffer_.index_put_({p.row_index, at::indexing::Slice(), p.slot_index}, v.squeeze(0).transpose(0, 1));
    key = key_buffer_.narrow(2, 0, p.padded_length);
    value = value_buffer_.narrow(2, 0, p.padded_length);
    return {k, v};
  }
  const int64_t past = key.defined() ? key.size(2) : 0;
  const int64_t total = past + k.size(2);
  const bool in_place = total <= capacity && (key_buffer_.defined() || past == 0);
  if (in_place) {
    if (!key_buffer_.defined()) {
      auto shape = k.sizes().vec();
      shape[2] = capacity;
      key_buffer_ = at::empty(shape, k.options());
      value_buffer_ = at::empty(shape, v.options());
    }
    key_buffer_.narrow(2, past, k.size(2)).copy_(k);
    value_buffer_.narrow(2, past, v.size(2)).copy_(v);
    key = key_buffer_.narrow(2, 0, total);
    value = value_buffer_.narrow(2, 0, total);
  } else {
    key = past ? at::cat({key, k}, 2) : k;
    value = past ? at::cat({value, v}, 2) : v;
  }
  return {key, value};
}

}  // namespace rpo
