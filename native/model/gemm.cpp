#include "model/gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "model/skinny_gemm.h"

// Exported by libtorch_cpu (ATen/native/mkldnn/Matmul.cpp); pip wheels do not ship the header.
// result = beta * result + alpha * mat1 @ mat2, for 2-D contiguous or transposed operands; fp32
// is accepted on x86 CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT, and throws elsewhere.
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta,
                             float alpha);
}  // namespace at::native

namespace rpo {

namespace {

enum class Backend { kAten, kOnednn };

// Whether oneDNN computes fp32 products here, and computes them as ATen does (a fixed product
// compared against ATen's). mkldnn_matmul takes fp32 on x86 CPUs with AVX-512 (BW, VL, DQ) or
// AVX-NE-CONVERT and throws elsewhere, so this is a property of the CPU and the library: the same
// answer on every call, whatever else the machine is doing. Probed once per process.
bool onednn_usable() {
  static std::once_flag once;
  static bool usable = false;
  std::call_once(once, [] {
    if (!at::hasMKLDNN() || !at::globalContext().userEnabledMkldnn()) return;
    try {
      at::NoGradGuard no_grad;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
      auto a = at::empty({96, 160}, at::kFloat).uniform_(-1, 1, gen);
      auto b = at::empty({200, 160}, at::kFloat).uniform_(-1, 1, gen);
      auto want_c = at::mm(a, b.t());
      auto c = at::empty({96, 200}, at::kFloat);
      at::native::mkldnn_matmul(a, b.t(), c, 0.0f, 1.0f);
      usable = at::allclose(c, want_c, 1e-4, 1e-4);
    } catch (const std::exception&) {
      usable = false;
    }
  });
  return usable;
}

// oneDNN wherever it is usable, ATen's elsewhere. Not a timed race: a timing taken at start
// depends on the machine's load at that moment (a busy machine chose ATen, a quiet one oneDNN),
// so a run's speed and bits, and a resumed run's, would depend on it. Where oneDNN is usable
// (AVX-512) it was the faster on the machines measured: AMD's, where MKL runs AVX2 kernels, and
// a Sapphire Rapids Xeon. A name nothing usable backs (onednn without AVX-512) means ATen's.
Backend backend_named(const std::string& name) {
  if (name == "aten") return Backend::kAten;
  if (name == "onednn" || name == "auto") return onednn_usable() ? Backend::kOnednn : Backend::kAten;
  throw std::invalid_argument("cpu gemm backend '" + name + "': expected auto, onednn or aten");
}

// RPO_CPU_GEMM (auto by default) picks the process's backend, until set_cpu_gemm_backend (a
// run's recorded choice) replaces it. Token counts are bucketed (padded_token_count) so the
// kernels oneDNN compiles per shape stay few.
Backend choose_backend() {
  const char* env = std::getenv("RPO_CPU_GEMM");
  const std::string want = env && *env ? env : "auto";
  try {
    return backend_named(want);
  } catch (const std::invalid_argument&) {
    return backend_named("auto");
  }
}

// -1 until chosen; read by every product, so an atomic rather than a lock.
std::atomic<int> chosen_backend{-1};

Backend backend() {
  int v = chosen_backend.load(std::memory_order_acquire);
  if (v < 0) {
    int unset = -1;
    chosen_backend.compare_exchange_strong(unset, static_cast<int>(choose_backend()), std::memory_order_acq_rel);
    v = chosen_backend.load(std::memory_order_acquire);
  }
  return static_cast<Backend>(v);
}

// Below this many multiply-adds a product takes ATen's path: oneDNN's per-call setup (and, for a
// new shape, its kernel compile) outweighs what its faster kernel saves.
constexpr int64_t kMinOnednnMacs = int64_t(1) << 21;

bool use_onednn(const at::Tensor& a, const at::Tensor& b, int64_t m, int64_t k, int64_t n) {
  return a.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
         a.dim() == 2 && b.dim() == 2 && m * k * n >= kMinOnednnMacs && backend() == Backend::kOnednn;
}

// Contiguous, or a transposed view of a contiguous matrix: what oneDNN reads without a copy.
at::Tensor plain(const at::Tensor& t) {
  if (t.is_contiguous() || (t.stride(0) == 1 && t.stride(1) == t.size(0))) return t;
  return t.contiguous();
}

// t [rows, cols] with zero rows appended up to `rows` (t itself, made plain, when it has them).
at::Tensor pad_rows(const at::Tensor& t, int64_t rows) {
  if (t.size(0) == rows) return plain(t);
  auto out = at::empty({rows, t.size(1)}, t.options());
  out.narrow(0, 0, t.size(0)).copy_(t);
  out.narrow(0, t.size(0), rows - t.size(0)).zero_();
  return out;
}

// The few-row kernels (skinny_gemm.h) for a [m, k] @ b [k, n] with m <= 16, fp32 on the CPU, a's
// rows unit-stride and b a transposed view of a row-major [n, k] weight: a decode step's products.
// RPO_CPU_SKINNY=0 turns them off (read at each call, so tests and benchmarks can compare).
bool use_skinny(const at::Tensor& a, const at::Tensor& b) {
  if (!(a.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.dim() == 2 &&
        b.dim() == 2 && b.device().is_cpu()))
    return false;
  const int64_t m = a.size(0), k = a.size(1);
  if (m < 1 || m > kSkinnyMaxRows || k < 1 || b.size(1) < 1) return false;
  if (a.stride(1) != 1 || b.stride(0) != 1 || b.stride(1) < k) return false;
  return cpu_few_row_kernel();
}

at::Tensor skinny_mm(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  auto y = at::empty({m, n}, a.options());
  const float* x = a.const_data_ptr<float>();
  const float* w = b.const_data_ptr<float>();
  float* out = y.mutable_data_ptr<float>();
  const int64_t ldx = m == 1 ? k : a.stride(0), ldw = b.stride(1);
  skinny_gemm(x, m, ldx, w, ldw, k, n, out, n, at::get_num_threads());
  return y;
}

at::Tensor mm_impl(const at::Tensor& a, const at::Tensor& b) {
  if (use_skinny(a, b)) return skinny_mm(a, b);
  if (!use_onednn(a, b, a.size(0), a.size(1), b.size(1))) return at::mm(a, b);
  const int64_t m = a.size(0), mp = padded_token_count(m);
  auto c = at::empty({mp, b.size(1)}, a.options());
  at::native::mkldnn_matmul(pad_rows(a, mp), plain(b), c, 0.0f, 1.0f);
  // The first m rows of a contiguous matrix are contiguous: no copy back.
  return mp == m ? c : c.narrow(0, 0, m);
}

// a [t, m]^T @ b [t, n]; zero rows appended to both add nothing to the sum.
void mm_over_tokens(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float beta) {
  const int64_t tp = padded_token_count(a.size(0));
  at::native::mkldnn_matmul(pad_rows(a, tp).t(), pad_rows(b, tp), c, beta, 1.0f);
}

// x @ w^T with oneDNN products in forward and backward; saves what at::linear saves (x and w).
struct OnednnLinear : torch::autograd::Function<OnednnLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    auto y = mm_impl(x.reshape({-1, x.size(-1)}), w.t());
    ctx->save_for_backward({x, w});
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1];
    auto g = grads[0].reshape({-1, w.size(0)});
    at::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) gx = mm_impl(g, w).view(x.sizes());
    if (ctx->needs_input_grad(1)) gw = product_over_tokens(g, x.reshape({-1, x.size(-1)}));
    return {gx, gw};
  }
};

}  // namespace

int64_t padded_token_count(int64_t tokens) {
  if (tokens <= 64) return tokens;
  // 16 sizes per octave: a multiple of 1/16 of the largest power of two not above `tokens`.
  int64_t octave = 1;
  while (octave * 2 <= tokens) octave *= 2;
  const int64_t step = octave / 16;
  return (tokens + step - 1) / step * step;
}

at::Tensor product(const at::Tensor& a, const at::Tensor& b) { return mm_impl(a, b); }

at::Tensor product_over_tokens(const at::Tensor& a, const at::Tensor& b) {
  if (!use_onednn(a, b, a.size(1), a.size(0), b.size(1))) return at::mm(a.t(), b);
  auto c = at::empty({a.size(1), b.size(1)}, a.options());
  mm_over_tokens(a, b, c, 0.0f);
  return c;
}

void add_product_over_tokens_(at::Tensor& c, const at::Tensor& a, const at::Tensor& b) {
  if (use_onednn(a, b, a.size(1), a.size(0), b.size(1)) && c.is_contiguous()) {
    mm_over_tokens(a, b, c, 1.0f);
  } else {
    c.addmm_(a.t(), b);
  }
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  // Inference with few rows (a decode step): the few-row kernel, no autograd node.
  const bool needs_grad = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() ||
                                                         (bias.defined() && bias.requires_grad()));
  if (!needs_grad && x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1)) {
    auto x2 = x.reshape({-1, x.size(-1)});
    if (use_skinny(x2, w.t())) {
      auto shape = x.sizes().vec();
      shape.back() = w.size(0);
      auto y = skinny_mm(x2, w.t()).view(shape);
      return bias.defined() ? y + bias : y;
    }
  }
  if (!(x.device().is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
        backend() == Backend::kOnednn))
    return at::linear(x, w, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
  auto y = OnednnLinear::apply(x, w);
  return bias.defined() ? y + bias : y;
}

std::string cpu_gemm_backend() { return backend() == Backend::kOnednn ? "onednn" : "aten"; }

std::string set_cpu_gemm_backend(const std::string& name) {
  chosen_backend.store(static_cast<int>(name == "auto" ? choose_backend() : backend_named(name)), std::memory_order_release);
  return cpu_gemm_backend();
}

bool cpu_few_row_kernel() {
  const char* env = std::getenv("RPO_CPU_SKINNY");
  return skinny_gemm_supported() && !(env && std::strcmp(env, "0") == 0);
}

}  // namespace rpo
