#include "model/skinny_gemm.h"

// GCC 12 reports the _mm512_undefined_ps() inside its own shuffle intrinsics as "may be used
// uninitialized" (or "is used uninitialized") once they are inlined: a false positive in the compiler's header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

// Only the functions marked with this are compiled for AVX-512; everything else in this file (and
// every header it includes) stays baseline x86-64, so no AVX-512 code can leak into an inline
// function the linker might pick for another translation unit.
#define RPO_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

namespace rpo {

namespace {

// Why the weight is touched before it is multiplied: when the multiply-adds read the weight
// straight from memory, every loaded vector feeds M fused multiply-adds that wait in the FP
// scheduler for their data; with 8 rows the scheduler fills after ~20 cache lines in flight, and
// the core streams ~9 GB/s instead of the ~30 GB/s plain loads reach (measured on Zen 5; software
// prefetches interleaved with the arithmetic made it slower still). A pass of plain loads over a
// block (nothing waits on them but their retirement) brings it into L2 at streaming speed, and
// the arithmetic then runs from L2 at ~40 GB/s: ~35 GB/s overall with two cores, against 15.
constexpr int64_t kBlockBytes = 96 * 1024;

void touch(const float* p, int64_t floats) {
  const char* c = reinterpret_cast<const char*>(p);
  const int64_t bytes = floats * static_cast<int64_t>(sizeof(float));
  for (int64_t off = 0; off < bytes; off += 64) (void)*reinterpret_cast<const volatile char*>(c + off);
  if (bytes > 0) (void)*reinterpret_cast<const volatile char*>(c + bytes - 1);
}

// The rows [n0, n1) of w, each row `k` floats, rows `ldw` apart.
void touch_rows(const float* w, int64_t ldw, int64_t k, int64_t n0, int64_t n1) {
  if (n1 <= n0) return;
  if (ldw == k) return touch(w + n0 * ldw, (n1 - n0) * k);
  for (int64_t n = n0; n < n1; ++n) touch(w + n * ldw, k);
}

// The sums of eight vectors' 16 lanes, as one 8-lane vector: a tree of shuffles and adds (three
// levels of pairs, then within 128-bit lanes), ~20 instructions where eight separate horizontal
// sums take ~70.
RPO_AVX512 inline __m256 reduce8(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6,
                                 __m512 a7) {
  const __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
  const __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
  const __m512 t45 = _mm512_add_ps(_mm512_shuffle_f32x4(a4, a5, 0x44), _mm512_shuffle_f32x4(a4, a5, 0xEE));
  const __m512 t67 = _mm512_add_ps(_mm512_shuffle_f32x4(a6, a7, 0x44), _mm512_shuffle_f32x4(a6, a7, 0xEE));
  // 128-bit lane i of u0 holds four partial sums of a_i, of u1 four of a_{4+i}.
  const __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, 0x88), _mm512_shuffle_f32x4(t01, t23, 0xDD));
  const __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(t45, t67, 0x88), _mm512_shuffle_f32x4(t45, t67, 0xDD));
  // Lane i: [a_i, a_i, a_{4+i}, a_{4+i}] partial pairs, then whole sums in elements 0 and 2.
  const __m512 v = _mm512_add_ps(_mm512_shuffle_ps(u0, u1, 0x88), _mm512_shuffle_ps(u0, u1, 0xDD));
  const __m512 s = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, 0xB1));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps256(_mm512_permutexvar_ps(order, s));
}

// acc[r][m] += a[r] * xs[m, k : k + 16] for every m and r.
template <int M, int R>
RPO_AVX512 __attribute__((always_inline)) inline void multiply_add(const float* xs, int64_t kp, int64_t k,
                                                                  const __m512 (&a)[R], __m512 (&acc)[R][M]) {
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m) {
    __m512 xv = _mm512_loadu_ps(xs + m * kp + k);
    // Keep x in a register for all R rows: folded into each multiply-add as a memory operand, it
    // costs R loads where one will do, and loads, not arithmetic, then set the pace.
    asm("" : "+v"(xv));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r][m] = _mm512_fmadd_ps(a[r], xv, acc[r][m]);
  }
}

// R weight rows from w0 (ldw apart) against the M padded rows of xs (kp apart): y[m, n + r] for
// m < rows. kv full vectors of 16, then `tail` more floats under a mask.
template <int M, int R>
RPO_AVX512 void rows_product(const float* xs, int64_t kp, const float* w0, int64_t ldw, int64_t kv, int tail, float* y,
                             int64_t ldy, int64_t rows, int64_t n) {
  __m512 acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t i = 0; i < kv; ++i) {
    __m512 a[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) a[r] = _mm512_loadu_ps(w0 + r * ldw + i * 16);
    multiply_add<M, R>(xs, kp, i * 16, a, acc);
  }
  if (tail > 0) {
    const __mmask16 mask = static_cast<__mmask16>((1u << tail) - 1);
    __m512 a[R];
    for (int r = 0; r < R; ++r) a[r] = _mm512_maskz_loadu_ps(mask, w0 + r * ldw + kv * 16);
    multiply_add<M, R>(xs, kp, kv * 16, a, acc);  // xs is zero past k
  }
  for (int r = 0; r < R; ++r) {
    for (int g = 0; g < M; g += 8) {
      alignas(32) float sums[8];
      const __m512 z = _mm512_setzero_ps();
      if constexpr (M == 4) {
        _mm256_store_ps(sums, reduce8(acc[r][0], acc[r][1], acc[r][2], acc[r][3], z, z, z, z));
      } else {
        _mm256_store_ps(sums, reduce8(acc[r][g], acc[r][g + 1], acc[r][g + 2], acc[r][g + 3], acc[r][g + 4],
                                      acc[r][g + 5], acc[r][g + 6], acc[r][g + 7]));
      }
      for (int m = 0; m < 8 && g + m < rows; ++m) y[(g + m) * ldy + n + r] = sums[m];
    }
  }
}

// Columns [n0, n1), block by block: touch a block, multiply it, touch the next.
template <int M, int R>
void columns(const float* xs, int64_t kp, const float* w, int64_t ldw, int64_t k, float* y, int64_t ldy, int64_t rows,
             int64_t n0, int64_t n1) {
  const int64_t kv = k / 16;
  const int tail = static_cast<int>(k % 16);
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(float));
  const int64_t block = std::max<int64_t>(R, kBlockBytes / row_bytes / R * R);
  touch_rows(w, ldw, k, n0, std::min(n1, n0 + block));
  for (int64_t b = n0; b < n1; b += block) {
    const int64_t e = std::min(n1, b + block);
    int64_t n = b;
    for (; n + R <= e; n += R) rows_product<M, R>(xs, kp, w + n * ldw, ldw, kv, tail, y, ldy, rows, n);
    for (; n < e; ++n) rows_product<M, 1>(xs, kp, w + n * ldw, ldw, kv, tail, y, ldy, rows, n);
    touch_rows(w, ldw, k, e, std::min(n1, e + block));
  }
}

}  // namespace

bool skinny_gemm_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return supported;
}

namespace {

// Columns [n_begin, n_end) of the product, on the calling thread.
void product_columns(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t ldw, int64_t k, float* y,
                     int64_t ldy, int64_t n_begin, int64_t n_end) {
  // x padded to 4, 8 or 16 rows of a multiple of 16 floats, zeros elsewhere: the kernels then
  // need no row or length cases, and a padded row costs arithmetic the memory-bound loop has to
  // spare. Each calling thread pads its own copy (at most 16 rows of k floats).
  const int mp = rows <= 4 ? 4 : rows <= 8 ? 8 : 16;
  const int64_t kp = (k + 15) / 16 * 16;
  thread_local std::vector<float> xs;
  xs.assign(static_cast<size_t>(mp * kp), 0.0f);
  for (int64_t m = 0; m < rows; ++m) std::memcpy(xs.data() + m * kp, x + m * ldx, static_cast<size_t>(k) * sizeof(float));
  switch (mp) {
    case 4: return columns<4, 4>(xs.data(), kp, w, ldw, k, y, ldy, rows, n_begin, n_end);
    case 8: return columns<8, 3>(xs.data(), kp, w, ldw, k, y, ldy, rows, n_begin, n_end);
    default: return columns<16, 1>(xs.data(), kp, w, ldw, k, y, ldy, rows, n_begin, n_end);
  }
}

}  // namespace

void skinny_gemm(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t ldw, int64_t k, int64_t n, float* y,
                 int64_t ldy, int threads) {
  // At least 16 columns a thread; each element is the same fixed-order sum whatever the split.
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / 16)));
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int p = 0; p < parts; ++p) product_columns(x, rows, ldx, w, ldw, k, y, ldy, n * p / parts, n * (p + 1) / parts);
}

}  // namespace rpo
