#include "model/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace rpo {

namespace {

constexpr size_t kLarge = size_t{1} << 20;    // smaller requests go to LibTorch's allocator
constexpr size_t kGranule = size_t{64} << 10;  // sizes are rounded up to this, so near shapes share a list
// Blocks kept per size: a layer asks for each of its shapes a few times, and backward frees the
// forward's activations far faster than it reuses them (more kept only held more RSS).
constexpr size_t kPerSize = 4;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator(c10::Allocator* fallback, size_t cap, size_t per_size)
      : fallback_(fallback), cap_(cap), per_size_(per_size) {}

  c10::DataPtr allocate(size_t n) override {
    if (n < kLarge) return fallback_->allocate(n);
    const size_t size = (n + kGranule - 1) / kGranule * kGranule;
    void* p = take(size);
    if (p == nullptr) {
      p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        release_all();  // the kept blocks may be what stands in the way
        p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      }
      TORCH_CHECK_WITH(OutOfMemoryError, p != MAP_FAILED, "CPU out of memory: could not map ", n, " bytes (",
                       std::strerror(errno), ")");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    // A simple data pointer (context == data), as raw_allocate / raw_deallocate require.
    return {p, p, &CachingCpuAllocator::deleter, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleter; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  // Ours (large) go back to the kept lists; anything else came from the fallback's raw_allocate.
  static void deleter(void* ptr) { instance->give_back(ptr); }

  void release_all() {
    std::vector<std::pair<void*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [size, ptrs] : free_)
        for (void* p : ptrs) drop.emplace_back(p, size);
      free_.clear();
      cached_ = 0;
    }
    for (auto& [p, size] : drop) ::munmap(p, size);
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  static CachingCpuAllocator* instance;

 private:
  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return p;
  }

  void give_back(void* ptr) {
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(ptr);
      if (it != live_.end()) {
        size = it->second;
        live_.erase(it);
        auto& list = free_[size];
        if (cached_ + size <= cap_ && list.size() < per_size_) {
          list.push_back(ptr);
          cached_ += size;
          return;
        }
      }
    }
    if (size > 0) ::munmap(ptr, size);
    else if (auto d = fallback_->raw_deleter()) d(ptr);
  }

  c10::Allocator* fallback_;
  const size_t cap_, per_size_;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // kept blocks by size
  std::unordered_map<void*, size_t> live_;                // handed-out blocks' sizes
  size_t cached_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

void install_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Someone who fixed glibc's mmap threshold wants glibc's allocation behaviour exactly (the
    // memory planner's measurements do: every block its own mapping, in RSS only while alive).
    if (std::getenv("MALLOC_MMAP_THRESHOLD_")) return;
    size_t cap_mb = 512;
    if (const char* env = std::getenv("RPO_CPU_CACHE_MB")) cap_mb = static_cast<size_t>(std::strtoull(env, nullptr, 10));
    if (cap_mb == 0) return;
    size_t per_size = kPerSize;
    if (const char* env = std::getenv("RPO_CPU_CACHE_PER_SIZE")) per_size = static_cast<size_t>(std::strtoull(env, nullptr, 10));
    // Never destroyed: tensors freed at exit still call its deleter.
    CachingCpuAllocator::instance = new CachingCpuAllocator(c10::GetCPUAllocator(), cap_mb << 20, per_size);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/100);
  });
}

void release_cached_cpu_blocks() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->release_all();
}

size_t cached_cpu_bytes() { return CachingCpuAllocator::instance ? CachingCpuAllocator::instance->cached() : 0; }

}  // namespace rpo
