#include "loss/logprobs.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "model/gemm.h"

#ifdef RPO_WITH_CUDA_KERNELS
#include <cstdlib>
#include <cstring>

#include "kernels/fused_logprob.h"
#endif

namespace rpo {

namespace {

#ifdef RPO_WITH_CUDA_KERNELS
// CUDA tensors go through the fused kernels (kernels/fused_logprob.cu): one pass per row over
// the chunk's logits in their own dtype, no fp32 copy. RPO_CUDA_LOGPROB_KERNEL=0 selects the
// chunked LibTorch path below instead; it is read at every call, so a test can compare the
// two in one process. CPU tensors never take this branch.
bool use_cuda_kernel(const at::Tensor& t) {
  if (!t.is_cuda()) return false;
  const char* env = std::getenv("RPO_CUDA_LOGPROB_KERNEL");
  return env == nullptr || std::strcmp(env, "0") != 0;
}
#endif

struct FusedLogProb : torch::autograd::Function<FusedLogProb> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, int64_t chunk) {
    const int64_t M = hidden.size(0);
    auto out = at::empty({M}, hidden.options().dtype(at::kFloat));
    auto lse = at::empty({M}, hidden.options().dtype(at::kFloat));
#ifdef RPO_WITH_CUDA_KERNELS
    const bool kernel = use_cuda_kernel(hidden);
    ctx->saved_data["kernel"] = kernel;
    const auto labels_long = kernel ? labels.to(at::kLong).contiguous() : at::Tensor();
#endif
    for (int64_t start = 0; start < M; start += chunk) {
      const int64_t n = std::min(chunk, M - start);
#ifdef RPO_WITH_CUDA_KERNELS
      if (kernel) {
        auto logits = at::matmul(hidden.narrow(0, start, n), weight.t());
        kernels::fused_logprob_forward(logits, labels_long.narrow(0, start, n), out.narrow(0, start, n),
                                       lse.narrow(0, start, n));
        continue;
      }
#endif
      // log-sum-exp as at::logsumexp computes it (shift by the row max, an infinite max
      // shifted by 0), worked in place on the chunk's logits: one [n, V] buffer per chunk.
      auto logits = product(hidden.narrow(0, start, n), weight.t()).to(at::kFloat);
      auto picked = logits.gather(1, labels.narrow(0, start, n).unsqueeze(1)).squeeze(1);
      auto shift = logits.amax({1}, /*keepdim=*/true);
      shift.masked_fill_(shift.abs() == std::numeric_limits<float>::infinity(), 0);
      auto chunk_lse = logits.sub_(shift).exp_().sum({1}).log_().add_(shift.squeeze(1));
      lse.narrow(0, start, n).copy_(chunk_lse);
      out.narrow(0, start, n).copy_(picked - chunk_lse);
    }
    ctx->save_for_backward({hidden, weight, labels, lse});
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  // d logp_i / d logits_i = onehot(label_i) - softmax(logits_i), recomputed chunk by chunk.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &labels = saved[2], &lse = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto g = grad_outputs[0].to(at::kFloat);
    const int64_t M = hidden.size(0);
    const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    at::Tensor grad_h = want_h ? at::empty_like(hidden) : at::Tensor();
    // The weight gradient sums over all chunks: accumulate in fp32 whatever the dtype.
    at::Tensor grad_w = want_w ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();
#ifdef RPO_WITH_CUDA_KERNELS
    const bool kernel = ctx->saved_data.count("kernel") && ctx->saved_data["kernel"].toBool();
    const auto labels_long = kernel ? labels.to(at::kLong).contiguous() : at::Tensor();
    const auto g_contig = kernel ? g.contiguous() : at::Tensor();
#endif
    for (int64_t start = 0; start < M; start += chunk) {
      const int64_t n = std::min(chunk, M - start);
      auto h = hidden.narrow(0, start, n);
      at::Tensor d;
#ifdef RPO_WITH_CUDA_KERNELS
      if (kernel) {
        // The recomputed logits are overwritten in place by their gradient.
        auto logits = at::matmul(h, weight.t());
        kernels::fused_logprob_backward(logits, labels_long.narrow(0, start, n), lse.narrow(0, start, n),
                                        g_contig.narrow(0, start, n), logits);
        d = logits.to(hidden.scalar_type());
      }
#endif
      if (!d.defined()) {
        // The recomputed logits become their gradient in place: one [n, V] buffer per chunk.
        auto dlogits = product(h, weight.t()).to(at::kFloat);
        auto gc = g.narrow(0, start, n).unsqueeze(1);
        dlogits.sub_(lse.narrow(0, start, n).unsqueeze(1)).exp_().mul_(gc.neg());
        dlogits.scatter_add_(1, labels.narrow(0, start, n).unsqueeze(1), gc);
        d = dlogits.to(hidden.scalar_type());
      }
      if (want_h) grad_h.narrow(0, start, n).copy_(product(d, weight));
      if (want_w) {
        if (weight.scalar_type() == at::kFloat) add_product_over_tokens_(grad_w, d, h);
        else grad_w.add_(at::matmul(d.t(), h));
      }
    }
    return {grad_h, want_w ? grad_w.to(weight.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_inputs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& input_ids,
                  const at::Tensor& loss_mask) {
  if (hidden.dim() != 3) throw std::invalid_argument("log-probs: hidden states must be [rows, T, hidden]");
  if (input_ids.sizes() != hidden.sizes().slice(0, 2) || loss_mask.sizes() != input_ids.sizes())
    throw std::invalid_argument("log-probs: input_ids and loss_mask must be [rows, T] like the hidden states");
  if (weight.dim() != 2 || weight.size(1) != hidden.size(2))
    throw std::invalid_argument("log-probs: output weight must be [vocab, hidden]");
}

}  // namespace

at::Tensor token_logprobs_fused(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                int64_t chunk_tokens) {
  if (chunk_tokens <= 0) throw std::invalid_argument("log-probs: chunk_tokens must be positive");
  // On the CPU a chunk's fp32 logits are also kept under 64 MiB (but at least 128 rows): they are
  // alive at the step's peak (the forward's end, the backward's start), and a smaller chunk
  // costs the GEMMs nothing measurable at these sizes. 1024 x 32000 would be 131 MB.
  if (hidden.device().is_cpu()) {
    const int64_t budget = std::max<int64_t>(128, (int64_t{64} << 20) / (4 * std::max<int64_t>(1, weight.size(0))));
    chunk_tokens = std::min(chunk_tokens, budget);
  }
  return FusedLogProb::apply(hidden, weight, labels, chunk_tokens);
}

RowLogpTensors row_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const LabelIndex& labels,
                            const LogpOptions& options) {
  if (hidden.dim() != 3) throw std::invalid_argument("log-probs: hidden states must be [rows, T, hidden]");
  if (weight.dim() != 2 || weight.size(1) != hidden.size(2))
    throw std::invalid_argument("log-probs: output weight must be [vocab, hidden]");
  // Rows from the label counts: packed rows (model/packed.h) are one [1, T] sequence, and the
  // label positions index it as they index a padded batch's [rows * T] positions.
  const int64_t rows = labels.count.size(0);
  at::Tensor tok;
  if (options.naive) {
    // The reference: every position's full logits, then the label positions' entries.
    auto logits = at::matmul(hidden.reshape({-1, hidden.size(2)}), weight.t()).to(at::kFloat);
    tok = at::log_softmax(logits, -1).index_select(0, labels.source).gather(1, labels.label.unsqueeze(1)).squeeze(1);
  } else {
    auto h = hidden.reshape({-1, hidden.size(2)}).index_select(0, labels.source);
    tok = token_logprobs_fused(h, weight, labels.label, options.chunk_tokens);
  }
  auto sum = at::zeros({rows}, hidden.options().dtype(at::kFloat)).index_add(0, labels.row, tok);
  return {sum, sum / labels.count.clamp_min(1), labels.count};
}

RowLogpTensors row_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& input_ids,
                            const at::Tensor& loss_mask, const LogpOptions& options) {
  check_inputs(hidden, weight, input_ids, loss_mask);
  const int64_t rows = hidden.size(0), T = hidden.size(1);
  auto ids = input_ids.to(at::kLong);
  // Label token t is predicted by position t - 1: shift once, here, for both paths.
  auto labels = ids.narrow(1, 1, T - 1);
  auto mask = loss_mask.narrow(1, 1, T - 1).to(at::kBool);
  auto fopts = hidden.options().dtype(at::kFloat);
  auto count = mask.sum(1).to(at::kFloat);
  at::Tensor sum;
  if (options.naive) {
    auto logits = at::matmul(hidden.narrow(1, 0, T - 1), weight.t()).to(at::kFloat);
    auto logp = at::log_softmax(logits, -1).gather(2, labels.unsqueeze(-1)).squeeze(-1);
    sum = at::where(mask, logp, at::zeros({}, fopts)).sum(1);
  } else {
    auto flat = mask.flatten().nonzero().squeeze(1);  // indices into [rows * (T - 1)]
    auto row = at::div(flat, T - 1, "floor");
    auto pos = flat - row * (T - 1);  // position of the hidden state that predicts the label
    auto h = hidden.reshape({rows * T, hidden.size(2)}).index_select(0, row * T + pos);
    auto tok = token_logprobs_fused(h, weight, labels.flatten().index_select(0, flat), options.chunk_tokens);
    sum = at::zeros({rows}, fopts).index_add(0, row, tok);
  }
  return {sum, sum / count.clamp_min(1), count};
}

}  // namespace rpo
