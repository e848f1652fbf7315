// Process-wide engine facts and settings.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#ifdef RPO_WITH_CUDA
#include <ATen/detail/CUDAHooksInterface.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)
#include <ATen/DeviceAccelerator.h>
#include <c10/core/CachingDeviceAllocator.h>
#define RPO_HAS_DEVICE_ALLOCATOR_STATS 1
#endif
#endif
#ifdef RPO_WITH_CUDA_KERNELS
#include "kernels/fused_logprob.h"
#endif

#include "api.h"

namespace rpo {

void set_num_threads(int n) {
  if (n <= 0) throw std::invalid_argument("threads: the count must be positive");
  at::set_num_threads(n);
}

int get_num_threads() { return at::get_num_threads(); }

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
}

bool cuda_available() { return at::hasCUDA() && at::getNumGPUs() > 0; }

int cuda_device_count() { return at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0; }

namespace {

// CUDA's version encoding (1000 * major + 10 * minor) as "major.minor".
[[maybe_unused]] std::string cuda_version_string(long v) {
  if (v <= 0) return "";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

[[maybe_unused]] void check_device(int device) {
  if (!cuda_available()) throw std::runtime_error("CUDA memory stats: no CUDA device is available");
  if (device < 0 || device >= cuda_device_count())
    throw std::invalid_argument("CUDA memory stats: no device " + std::to_string(device) + " (" +
                                std::to_string(cuda_device_count()) + " present)");
}

}  // namespace

CudaInfo cuda_info() {
  CudaInfo info;
#ifdef RPO_WITH_CUDA
  // The real CUDA hooks are registered when libtorch_cuda is loaded, GPU or not.
  const auto& hooks = at::detail::getCUDAHooks();
  info.built = hooks.hasCUDART();
#ifdef RPO_WITH_CUDA_KERNELS
  info.kernels = true;
#endif
  if (!info.built) return info;
  info.available = cuda_available();
  try {
    info.runtime_version = cuda_version_string(hooks.versionCUDART());
  } catch (const std::exception&) {
  }
  info.tf32 = info.available && at::globalContext().allowTF32CuBLAS();
#ifdef RPO_WITH_CUDA_KERNELS
  auto report = kernels::cuda_runtime_report();
  if (report.runtime_version > 0) info.runtime_version = cuda_version_string(report.runtime_version);
  info.driver_version = cuda_version_string(report.driver_version);
  for (const auto& d : report.devices)
    info.devices.push_back({d.index, d.name, d.major, d.minor, d.total_memory, d.multiprocessors});
#else
  for (int i = 0; i < cuda_device_count(); ++i) {
    CudaDeviceInfo d;
    d.index = i;
#ifdef RPO_HAS_DEVICE_ALLOCATOR_STATS
    try {
      d.total_memory = static_cast<int64_t>(at::accelerator::getMemoryInfo(static_cast<c10::DeviceIndex>(i)).second);
    } catch (const std::exception&) {
    }
#endif
    info.devices.push_back(d);
  }
#endif
#endif
  return info;
}

CudaMemoryStats cuda_memory_stats(int device) {
#ifdef RPO_HAS_DEVICE_ALLOCATOR_STATS
  check_device(device);
  const auto idx = static_cast<c10::DeviceIndex>(device);
  auto* alloc = at::getDeviceAllocator(at::kCUDA);
  const auto s = alloc->getDeviceStats(idx);
  constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  CudaMemoryStats out;
  out.allocated = s.allocated_bytes[all].current;
  out.reserved = s.reserved_bytes[all].current;
  out.peak_allocated = s.allocated_bytes[all].peak;
  out.peak_reserved = s.reserved_bytes[all].peak;
  const auto [free, total] = alloc->getMemoryInfo(idx);
  out.free = static_cast<int64_t>(free);
  out.total = static_cast<int64_t>(total);
  return out;
#else
  (void)device;
  throw std::runtime_error("CUDA memory stats need a CUDA LibTorch >= 2.10");
#endif
}

void cuda_reset_peak_memory(int device) {
#ifdef RPO_HAS_DEVICE_ALLOCATOR_STATS
  check_device(device);
  at::getDeviceAllocator(at::kCUDA)->resetPeakStats(static_cast<c10::DeviceIndex>(device));
#else
  (void)device;
  throw std::runtime_error("CUDA memory stats need a CUDA LibTorch >= 2.10");
#endif
}

void set_allow_tf32(bool allow) {
#ifdef RPO_WITH_CUDA
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
#else
  (void)allow;  // no CUDA: nothing uses TF32
#endif
}

bool allow_tf32() {
#ifdef RPO_WITH_CUDA
  return at::globalContext().allowTF32CuBLAS();
#else
  return false;
#endif
}

void init_cuda_defaults() {
#ifdef RPO_WITH_CUDA
  // Only where a GPU is present, so that nothing changes for CPU runs.
  if (!cuda_available()) return;
  const char* env = std::getenv("RPO_ALLOW_TF32");
  set_allow_tf32(env == nullptr || std::strcmp(env, "0") != 0);
#endif
}

}  // namespace rpo
