// Process-wide engine facts and settings.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

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
#include "model/cpu_allocator.h"
#include "model/decode_graph.h"

namespace rpo {

int max_num_threads() {
  // hardware_concurrency() may be 0 ("unknown"): still allow a few threads.
  return 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {

// The count setNumThreads asked for; 0 = not set (the engine thread then applies the default).
std::atomic<int> wanted_threads{0};

// The one thread every engine call runs on. OpenMP's team size is per calling thread (the
// nthreads ICV) and libgomp keeps one worker team per thread that opens parallel regions, so
// calls spread over libuv's worker pool would start one team each (4 teams of N - 1 workers)
// and a setNumThreads after the first call would miss the threads that already ran. glibc also
// gives each thread its own malloc arena: a step's freed activations sat cached in the arena of
// whichever libuv thread ran it while the next step, on another thread, grew a new one (the
// ~100M benchmark's peak RSS crept from 2.8 to 6.0 GiB over 4 steps; 3.5 GiB flat on one
// thread). Here: one team, one arena, one place the thread count is applied.
class EngineThread {
 public:
  static EngineThread& get() {
    // Never destroyed: the thread sleeps on its queue until the process exits.
    static EngineThread* engine = new EngineThread();
    return *engine;
  }

  void run(const std::function<void()>& job) {
    if (std::this_thread::get_id() == id_) return job();  // already on it
    std::packaged_task<void()> task([&job] {
      // Between calls the process holds its live tensors only: what the call's allocator kept
      // for reuse (model/cpu_allocator.h) is unmapped before the caller resumes, error or not.
      struct Release {
        ~Release() { release_cached_cpu_blocks(); }
      } release;
      job();
    });
    auto done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    done.get();  // rethrows the job's exception
  }

 private:
  EngineThread() : thread_([this] { loop(); }) {
    install_cpu_allocator();
    id_ = thread_.get_id();
    thread_.detach();
  }

  void loop() {
    pthread_setname_np(pthread_self(), "rpo-engine");  // OpenMP workers it starts inherit the name
    int applied = 0;
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      int want = wanted_threads.load();
      if (want <= 0) want = default_num_threads();
      if (want != applied) {
        at::set_num_threads(want);  // this thread's OpenMP and MKL thread counts
        applied = want;
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
  std::thread thread_;
  std::thread::id id_;
};

}  // namespace

void run_on_engine_thread(const std::function<void()>& job) { EngineThread::get().run(job); }

int default_num_threads() {
  // Physical cores (cpuinfo), or OMP_NUM_THREADS / MKL_NUM_THREADS when set: LibTorch's own
  // default. Hyper-threads share a core's FMA units, so a GEMM-bound step gains nothing from them.
  static const int n = std::clamp(at::intraop_default_num_threads(), 1, max_num_threads());
  return n;
}

void set_num_threads(int n) {
  const int max = max_num_threads();
  if (n < 1 || n > max)
    throw std::invalid_argument("threads: " + std::to_string(n) + " is not a thread count from 1 to " + std::to_string(max) +
                                " (4 x the " + std::to_string(max / 4) + " hardware threads)");
  wanted_threads.store(n);  // the engine thread applies it before its next job
  at::set_num_threads(n);
}

int get_num_threads() {
  const int want = wanted_threads.load();
  return want > 0 ? want : default_num_threads();
}

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
  info.graphs = cuda_graphs_built();
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
