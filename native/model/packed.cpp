#include "model/packed.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/model_impl.h"

namespace rpo {

std::optional<BatchTensors> packed_batch_tensors(const RowBatch& b, int64_t vocab_size, const at::Device& device,
                                                 int64_t row_begin, int64_t rows) {
  check_row_batch(b, vocab_size);
  if (rows < 0) rows = b.rows - row_begin;
  if (row_begin < 0 || rows <= 0 || row_begin + rows > b.rows) throw std::invalid_argument("batch: row range out of bounds");
  const int64_t S = b.seq_len;
  // Each row's real tokens; a row with padding before a real token is not packed (its padded
  // positions and labels would mean something else).
  std::vector<int64_t> lengths(static_cast<size_t>(rows), 0);
  int64_t T = 0, M = 0, longest = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>((row_begin + r) * S);
    int64_t n = 0;
    for (int64_t t = 0; t < S; ++t) {
      if (b.attention_mask[base + t] == 0) continue;
      if (n != t) return std::nullopt;
      ++n;
      if (t >= 1 && !b.loss_mask.empty() && b.loss_mask[base + t] != 0) ++M;
    }
    lengths[static_cast<size_t>(r)] = n;
    T += n;
    longest = std::max(longest, n);
  }
  if (T == 0) return std::nullopt;
  // One int64 buffer, one copy: ids, positions, padded index [T each], label source, label, row
  // [M each], per-row label counts [rows], cu_seqlens [rows + 1].
  const int64_t total = 3 * T + 3 * M + rows + rows + 1;
  auto host = at::empty({total}, at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
  int64_t* h = host.data_ptr<int64_t>();
  int64_t *ids = h, *pos = h + T, *pad = h + 2 * T, *src = h + 3 * T, *lab = src + M, *row = lab + M, *cnt = row + M,
          *cu = cnt + rows;
  int64_t k = 0, off = 0;
  cu[0] = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>((row_begin + r) * S);
    const int64_t n = lengths[static_cast<size_t>(r)];
    int64_t c = 0;
    for (int64_t t = 0; t < n; ++t) {
      ids[off + t] = b.input_ids[base + t];
      pos[off + t] = t;
      pad[off + t] = r * longest + t;
      if (t >= 1 && !b.loss_mask.empty() && b.loss_mask[base + t] != 0) {
        src[k] = off + t - 1;  // the row's previous token predicts token t
        lab[k] = b.input_ids[base + t];
        row[k] = r;
        ++k, ++c;
      }
    }
    cnt[r] = c;
    off += n;
    cu[r + 1] = off;
  }
  auto d = device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
  auto packed = std::make_shared<PackedRows>();
  packed->position_ids = d.narrow(0, T, T).view({1, T});
  packed->padded_index = d.narrow(0, 2 * T, T);
  packed->cu_seqlens = d.narrow(0, 3 * T + 3 * M + rows, rows + 1).to(at::kInt);
  packed->lengths = std::move(lengths);
  packed->max_length = longest;
  BatchTensors out;
  out.input_ids = d.narrow(0, 0, T).view({1, T});
  out.labels.source = d.narrow(0, 3 * T, M);
  out.labels.label = d.narrow(0, 3 * T + M, M);
  out.labels.row = d.narrow(0, 3 * T + 2 * M, M);
  out.labels.count = d.narrow(0, 3 * T + 3 * M, rows).to(at::kFloat);
  out.right_padded = true;
  out.packed = std::move(packed);
  return out;
}

namespace {

// RPO_PACKED_ATTENTION=rows (read at each call) runs the per-row path on CUDA too, so a test can
// compare the varlen kernels with it in one process.
bool per_row_forced() {
  const char* env = std::getenv("RPO_PACKED_ATTENTION");
  return env != nullptr && std::strcmp(env, "rows") == 0;
}

// One SDPA call per row (measured on the CPU against one call with a block-diagonal mask over the
// whole sequence: 3x faster at 8 rows x 60 tokens, 7x at 16 rows of 2626 tokens, fwd + bwd; the
// mask's cost grows with the square of the micro-batch's tokens, the rows' with their own).
// split_with_sizes, not narrow: its backward writes each row's gradient into one buffer.
at::Tensor per_row_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::vector<int64_t>& lengths, int64_t window, double scale) {
  const bool gqa = q.size(1) != k.size(1);
  auto qs = q.split_with_sizes(lengths, 2), ks = k.split_with_sizes(lengths, 2), vs = v.split_with_sizes(lengths, 2);
  std::vector<at::Tensor> outs;
  outs.reserve(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t L = lengths[i];
    if (L == 0) {
      outs.push_back(qs[i]);
      continue;
    }
    if (window > 0 && window < L) {
      auto opts = at::TensorOptions().dtype(at::kLong).device(q.device());
      auto qp = at::arange(L, opts).view({L, 1}), kp = at::arange(L, opts).view({1, L});
      auto mask = (kp <= qp).logical_and(qp - kp < window).view({1, 1, L, L});
      outs.push_back(at::scaled_dot_product_attention(qs[i], ks[i], vs[i], mask, 0.0, false, scale, gqa));
    } else {
      outs.push_back(at::scaled_dot_product_attention(qs[i], ks[i], vs[i], std::nullopt, 0.0, /*is_causal=*/L > 1, scale, gqa));
    }
  }
  return at::cat(outs, 2);
}

}  // namespace

at::Tensor packed_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedRows& rows,
                            int64_t window, double scale) {
  const bool windowed = window > 0 && window < rows.max_length;
  if (q.is_cuda() && !per_row_forced()) {
    const int64_t d = q.size(3);
    const bool half = q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16;
    if (half && d % 8 == 0 && d <= 256) {
      // Flash, varlen: [T, heads, d] with grouped K/V heads in the kernel. A query sees keys
      // (q - window, q]: the local window (window - 1, 0), as transformers' flash path passes;
      // without a window, causal. torch.nn.attention.varlen calls the op the same way.
      auto flat = [](const at::Tensor& x) { return x.squeeze(0).transpose(0, 1); };
      auto r = at::_flash_attention_forward(flat(q), flat(k), flat(v), rows.cu_seqlens, rows.cu_seqlens, rows.max_length,
                                            rows.max_length, 0.0, /*is_causal=*/!windowed, /*return_debug_mask=*/false, scale,
                                            windowed ? window - 1 : -1, windowed ? 0 : -1);
      return std::get<0>(r).transpose(0, 1).unsqueeze(0);
    }
    if (!windowed) {
      // Memory-efficient, varlen (fp32 too): [1, T, heads, d]; it takes equal head counts only.
      const int64_t n_rep = q.size(1) / k.size(1);
      auto kk = n_rep > 1 ? k.repeat_interleave(n_rep, 1) : k, vv = n_rep > 1 ? v.repeat_interleave(n_rep, 1) : v;
      auto r = at::_efficient_attention_forward(q.transpose(1, 2), kk.transpose(1, 2), vv.transpose(1, 2), std::nullopt,
                                                rows.cu_seqlens, rows.cu_seqlens, rows.max_length, rows.max_length, 0.0,
                                                /*custom_mask_type=*/1 /* causal from the top left */,
                                                /*compute_log_sumexp=*/at::GradMode::is_enabled(), scale);
      return std::get<0>(r).transpose(1, 2);
    }
  }
  return per_row_attention(q, k, v, rows.lengths, windowed ? window : 0, scale);
}

at::Tensor unpack_rows(const at::Tensor& hidden, const PackedRows& rows) {
  const int64_t n = static_cast<int64_t>(rows.lengths.size()), H = hidden.size(-1);
  auto out = at::zeros({n * rows.max_length, H}, hidden.options());
  return out.index_copy(0, rows.padded_index, hidden.reshape({-1, H})).view({n, rows.max_length, H});
}

}  // namespace rpo
