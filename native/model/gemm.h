// The engine's matrix products: every Linear layer (forward and backward) and the log-prob
// head go through here.
//
// On the CPU in float32, ATen hands GEMMs to MKL, and MKL runs its AVX2 kernels on AMD CPUs
// even where they have AVX-512 (mkl_blas_def_sgemm_kernel_0_zen on this project's Zen 5 CI
// machine), while oneDNN, linked into the same LibTorch, dispatches on the CPU's features: there
// it is ~2.2x faster on the model's shapes. Which one runs is decided once per process
// (RPO_CPU_GEMM=auto | onednn | aten, default auto: oneDNN where it passes a correctness probe and
// is faster on a timed probe, else ATen's). bf16 / fp16 and CUDA tensors always take ATen's
// path (there ATen already picks oneDNN or cuBLAS).
//
// oneDNN JIT-compiles a kernel for each new shape (~10 ms), and a batch padded to its longest
// row brings a new token count with nearly every step: so the token dimension of a oneDNN
// product is rounded up to one of 16 sizes per octave (zero rows, at most 1/16 more work), which
// bounds the kernels a run compiles, and products too small to repay a kernel stay on ATen.
// That is why the functions below say which operand dimension counts tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace rpo {

// a [m, k] @ b [k, n] -> [m, n], m counting tokens. a and b may be transposed views of
// contiguous tensors.
at::Tensor product(const at::Tensor& a, const at::Tensor& b);
// a [t, m]^T @ b [t, n] -> [m, n], summed over t tokens: a weight's gradient. a and b are
// token-major (rows are tokens), as activations and their gradients are.
at::Tensor product_over_tokens(const at::Tensor& a, const at::Tensor& b);
// c += a [t, m]^T @ b [t, n] (c contiguous, [m, n], the product's dtype).
void add_product_over_tokens_(at::Tensor& c, const at::Tensor& a, const at::Tensor& b);
// x [..., in] @ w [out, in]^T (+ bias [out]), with autograd: Linear's forward.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

// "onednn" or "aten": what fp32 CPU products use in this process (decided at the first call).
std::string cpu_gemm_backend();
// Fixes the process's backend ("auto", "onednn" or "aten"; onednn where it is not usable:
// aten) and returns the one now in use. A run sets the one its config recorded before any product.
std::string set_cpu_gemm_backend(const std::string& name);
// Whether fp32 CPU products of at most 16 rows use skinny_gemm.h's kernels (AVX-512, RPO_CPU_SKINNY != 0).
bool cpu_few_row_kernel();

// The token count a oneDNN product is padded to (exposed for its test).
int64_t padded_token_count(int64_t tokens);

}  // namespace rpo
