// The fused log-prob head on CUDA: one block per row of a chunk's logits, one pass over the
// row. See fused_logprob.h for the contract; loss/logprobs.cpp dispatches here when the
// tensors are on a CUDA device and the kernels were built (RPO_WITH_CUDA_KERNELS).
//
// Both kernels are bound by memory: the forward reads each logit once (2 bytes in bf16) and
// does one exp per logit; the backward reads and writes each once. The LibTorch path they
// replace made an fp32 copy of the chunk and read it three times (max, sum of exp, gather).
#include "kernels/fused_logprob.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <cstdint>

namespace rpo::kernels {

namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 512;

// A running log-sum-exp: the largest value seen and the sum of exp(x - max).
struct Lse {
  float m;
  float s;
};

__device__ __forceinline__ void lse_add(Lse& a, float x) {
  if (x > a.m) {
    // Rescale the old sum to the new max (exp(-inf) = 0 handles the empty start).
    a.s = a.s * expf(a.m - x) + 1.0f;
    a.m = x;
  } else if (a.m != -INFINITY) {
    a.s += expf(x - a.m);
  }
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ __forceinline__ Lse warp_merge(Lse v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    Lse o{__shfl_xor_sync(0xffffffffu, v.m, offset), __shfl_xor_sync(0xffffffffu, v.s, offset)};
    v = lse_merge(v, o);
  }
  return v;
}

// The whole block's merge; every thread gets the result.
__device__ __forceinline__ Lse block_merge(Lse v) {
  __shared__ float sm[kMaxThreads / kWarp], ss[kMaxThreads / kWarp];
  __shared__ Lse result;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = (blockDim.x + kWarp - 1) / kWarp;
  v = warp_merge(v);
  if (lane == 0) {
    sm[warp] = v.m;
    ss[warp] = v.s;
  }
  __syncthreads();
  if (warp == 0) {
    Lse w = lane < warps ? Lse{sm[lane], ss[lane]} : Lse{-INFINITY, 0.0f};
    w = warp_merge(w);
    if (lane == 0) result = w;
  }
  __syncthreads();
  return result;
}

// VEC elements loaded as one 16-byte access (VEC == 1: plain scalar loads).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename scalar_t, int VEC>
__global__ void __launch_bounds__(kMaxThreads)
    logprob_forward_kernel(const scalar_t* __restrict__ logits, int64_t row_stride, const int64_t* __restrict__ labels,
                           float* __restrict__ logp, float* __restrict__ lse_out, int64_t V) {
  const int64_t row = blockIdx.x;
  const scalar_t* x = logits + row * row_stride;
  Lse acc{-INFINITY, 0.0f};
  const auto* xv = reinterpret_cast<const Pack<scalar_t, VEC>*>(x);
  const int64_t packs = V / VEC;
  for (int64_t i = threadIdx.x; i < packs; i += blockDim.x) {
    const Pack<scalar_t, VEC> p = xv[i];
    float vals[VEC];
    float pm = -INFINITY;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      vals[k] = static_cast<float>(p.v[k]);
      pm = fmaxf(pm, vals[k]);
    }
    // One rescale per pack rather than per element.
    if (pm > acc.m) {
      acc.s *= expf(acc.m - pm);
      acc.m = pm;
    }
    if (acc.m != -INFINITY) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) acc.s += expf(vals[k] - acc.m);
    }
  }
  for (int64_t v = packs * VEC + threadIdx.x; v < V; v += blockDim.x) lse_add(acc, static_cast<float>(x[v]));
  acc = block_merge(acc);
  if (threadIdx.x == 0) {
    const float lse = acc.m + logf(acc.s);
    const int64_t label = labels[row];
    lse_out[row] = lse;
    logp[row] = (label >= 0 && label < V) ? static_cast<float>(x[label]) - lse : NAN;
  }
}

template <typename scalar_t, int VEC>
__global__ void __launch_bounds__(kMaxThreads)
    logprob_backward_kernel(const scalar_t* logits, int64_t row_stride, const int64_t* __restrict__ labels,
                            const float* __restrict__ lse, const float* __restrict__ grad, scalar_t* dlogits,
                            int64_t d_row_stride, int64_t V) {
  // logits and dlogits may be the same memory: every element is read, then written, by one thread.
  const int64_t row = blockIdx.x;
  const scalar_t* x = logits + row * row_stride;
  scalar_t* d = dlogits + row * d_row_stride;
  const float l = lse[row], g = grad[row];
  const int64_t label = labels[row];
  const auto* xv = reinterpret_cast<const Pack<scalar_t, VEC>*>(x);
  auto* dv = reinterpret_cast<Pack<scalar_t, VEC>*>(d);
  const int64_t packs = V / VEC;
  for (int64_t i = threadIdx.x; i < packs; i += blockDim.x) {
    const Pack<scalar_t, VEC> p = xv[i];
    Pack<scalar_t, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const int64_t v = i * VEC + k;
      float r = -g * expf(static_cast<float>(p.v[k]) - l);
      if (v == label) r += g;
      out.v[k] = static_cast<scalar_t>(r);
    }
    dv[i] = out;
  }
  for (int64_t v = packs * VEC + threadIdx.x; v < V; v += blockDim.x) {
    float r = -g * expf(static_cast<float>(x[v]) - l);
    if (v == label) r += g;
    d[v] = static_cast<scalar_t>(r);
  }
}

int threads_for(int64_t per_row) {
  // Enough threads that each has a few packs to stream; at most kMaxThreads.
  int t = kWarp;
  while (t < kMaxThreads && t * 4 < per_row) t *= 2;
  return t;
}

template <typename scalar_t>
constexpr int vec_width() {
  return 16 / static_cast<int>(sizeof(scalar_t));
}

bool vectorizable(const at::Tensor& t, int vec) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(0) % vec == 0;
}

void check_common(const at::Tensor& logits, const at::Tensor& labels, const char* what) {
  TORCH_CHECK(logits.is_cuda(), what, ": logits must be on a CUDA device");
  TORCH_CHECK(logits.dim() == 2, what, ": logits must be [n, vocab]");
  TORCH_CHECK(logits.size(0) == 0 || logits.stride(1) == 1, what, ": logits rows must be contiguous");
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16 || logits.scalar_type() == at::kHalf,
              what, ": logits must be float32, bfloat16 or float16, not ", logits.scalar_type());
  TORCH_CHECK(labels.device() == logits.device() && labels.scalar_type() == at::kLong && labels.dim() == 1 &&
                  labels.size(0) == logits.size(0) && labels.is_contiguous(),
              what, ": labels must be a contiguous int64 [n] on the logits' device");
}

void check_f32_vector(const at::Tensor& t, const at::Tensor& logits, const char* what, const char* name) {
  TORCH_CHECK(t.device() == logits.device() && t.scalar_type() == at::kFloat && t.dim() == 1 &&
                  t.size(0) == logits.size(0) && t.is_contiguous(),
              what, ": ", name, " must be a contiguous float32 [n] on the logits' device");
}

template <typename scalar_t>
void launch_forward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& logp, const at::Tensor& lse,
                    cudaStream_t stream) {
  constexpr int VEC = vec_width<scalar_t>();
  const int64_t n = logits.size(0), V = logits.size(1);
  const bool vec = vectorizable(logits, VEC);
  const int threads = threads_for(vec ? V / VEC : V);
  const auto* x = logits.data_ptr<scalar_t>();
  if (vec) {
    logprob_forward_kernel<scalar_t, VEC><<<static_cast<unsigned>(n), threads, 0, stream>>>(
        x, logits.stride(0), labels.data_ptr<int64_t>(), logp.data_ptr<float>(), lse.data_ptr<float>(), V);
  } else {
    logprob_forward_kernel<scalar_t, 1><<<static_cast<unsigned>(n), threads, 0, stream>>>(
        x, logits.stride(0), labels.data_ptr<int64_t>(), logp.data_ptr<float>(), lse.data_ptr<float>(), V);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_backward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& lse, const at::Tensor& grad,
                     const at::Tensor& dlogits, cudaStream_t stream) {
  constexpr int VEC = vec_width<scalar_t>();
  const int64_t n = logits.size(0), V = logits.size(1);
  const bool vec = vectorizable(logits, VEC) && vectorizable(dlogits, VEC);
  const int threads = threads_for(vec ? V / VEC : V);
  const auto* x = logits.data_ptr<scalar_t>();
  auto* d = dlogits.data_ptr<scalar_t>();
  if (vec) {
    logprob_backward_kernel<scalar_t, VEC><<<static_cast<unsigned>(n), threads, 0, stream>>>(
        x, logits.stride(0), labels.data_ptr<int64_t>(), lse.data_ptr<float>(), grad.data_ptr<float>(), d,
        dlogits.stride(0), V);
  } else {
    logprob_backward_kernel<scalar_t, 1><<<static_cast<unsigned>(n), threads, 0, stream>>>(
        x, logits.stride(0), labels.data_ptr<int64_t>(), lse.data_ptr<float>(), grad.data_ptr<float>(), d,
        dlogits.stride(0), V);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void fused_logprob_forward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& logp,
                           const at::Tensor& lse) {
  constexpr const char* what = "fused log-prob forward (CUDA)";
  check_common(logits, labels, what);
  check_f32_vector(logp, logits, what, "logp");
  check_f32_vector(lse, logits, what, "lse");
  const int64_t n = logits.size(0);
  TORCH_CHECK(logits.size(1) > 0, what, ": empty vocabulary");
  if (n == 0) return;
  TORCH_CHECK(n <= INT32_MAX, what, ": too many rows in one chunk");
  const c10::cuda::CUDAGuard guard(logits.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  switch (logits.scalar_type()) {
    case at::kFloat: launch_forward<float>(logits, labels, logp, lse, stream); break;
    case at::kBFloat16: launch_forward<at::BFloat16>(logits, labels, logp, lse, stream); break;
    case at::kHalf: launch_forward<at::Half>(logits, labels, logp, lse, stream); break;
    default: TORCH_CHECK(false, what, ": unsupported dtype ", logits.scalar_type());
  }
}

void fused_logprob_backward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& lse,
                            const at::Tensor& grad, const at::Tensor& dlogits) {
  constexpr const char* what = "fused log-prob backward (CUDA)";
  check_common(logits, labels, what);
  check_f32_vector(lse, logits, what, "lse");
  check_f32_vector(grad, logits, what, "grad");
  TORCH_CHECK(dlogits.device() == logits.device() && dlogits.scalar_type() == logits.scalar_type() &&
                  dlogits.sizes() == logits.sizes() && (dlogits.size(0) == 0 || dlogits.stride(1) == 1),
              what, ": dlogits must be like the logits");
  const int64_t n = logits.size(0);
  if (n == 0) return;
  TORCH_CHECK(n <= INT32_MAX, what, ": too many rows in one chunk");
  const c10::cuda::CUDAGuard guard(logits.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  switch (logits.scalar_type()) {
    case at::kFloat: launch_backward<float>(logits, labels, lse, grad, dlogits, stream); break;
    case at::kBFloat16: launch_backward<at::BFloat16>(logits, labels, lse, grad, dlogits, stream); break;
    case at::kHalf: launch_backward<at::Half>(logits, labels, lse, grad, dlogits, stream); break;
    default: TORCH_CHECK(false, what, ": unsupported dtype ", logits.scalar_type());
  }
}

}  // namespace rpo::kernels
