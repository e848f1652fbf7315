// Products with few rows on x86 CPUs with AVX-512: y [rows, n] = x [rows, k] @ w [n, k]^T for
// rows <= kSkinnyMaxRows, fp32. This is a decode step's every Linear layer and its LM head (one row
// per sequence in the batch), where each weight is read once from memory and used for only a few
// multiply-adds: the product is bound by memory bandwidth, and GEMM libraries tuned for
// compute-bound shapes leave much of it unused (MKL's and oneDNN's reach 9-15 GB/s on the
// project's 2-core Zen 5 machine, where plain loads stream 35-43 GB/s).
//
// Two things get closer to the bandwidth (skinny_gemm.cpp says why each one):
// - the weight rows are cut into blocks of ~96 KiB that are first touched (one load per cache line,
//   nothing computed) and then multiplied from the core's L2;
// - the inner loop keeps each x vector in a register for several weight rows and reduces the
//   accumulators with a shuffle tree.
//
// Each output element is the same sum in the same order whatever the row count, the thread count
// or the split of columns between threads: a batch's rows do not change each other's numbers.
// No torch here: this file compiles with AVX-512 enabled per function (target attributes).
#pragma once

#include <cstdint>

namespace rpo {

constexpr int64_t kSkinnyMaxRows = 16;

// Whether this CPU runs the kernels (AVX-512 F and DQ), decided once.
bool skinny_gemm_supported();

// y [rows, n] (row stride ldy) = x [rows, k] (row stride ldx) @ w [n, k]^T (row stride ldw), rows in
// [1, kSkinnyMaxRows], the columns cut into one contiguous range per thread (at most `threads`,
// on the OpenMP team ATen uses). Requires skinny_gemm_supported().
void skinny_gemm(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t ldw, int64_t k, int64_t n, float* y,
                 int64_t ldy, int threads);

}  // namespace rpo
