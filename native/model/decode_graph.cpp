// DecodeGraphs (decode_graph.h). The CUDA part compiles only with RPO_WITH_CUDA_GRAPHS, which
// CMakeLists.txt sets for this file alone (with CUDA's runtime headers on its include path).
#include "model/decode_graph.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#ifdef RPO_WITH_CUDA_GRAPHS
#include <c10/core/Event.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace rpo {

namespace {

int64_t next_power_of_two(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

#ifdef RPO_WITH_CUDA_GRAPHS

namespace {

bool graphs_wanted() {
  const char* env = std::getenv("RPO_CUDA_GRAPHS");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

}  // namespace

bool cuda_graphs_built() { return true; }

struct DecodeGraphs::Impl {
  explicit Impl(const c10::Device& device)
      : caller(c10::cuda::getCurrentCUDAStream(device.index())),
        stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())) {
    // The side stream starts after what the caller queued (the weights, the inputs).
    // (c10::Event, not at::cuda::CUDAEvent, whose header needs CUDA's fp16 headers.)
    c10::Event ready(c10::DeviceType::CUDA);
    ready.record(caller);
    ready.block(stream);
    guard.emplace(stream);
  }
  ~Impl() {
    graphs.clear();
    guard.reset();
    // The caller's stream goes on after the last step (the cache's memory is freed after).
    c10::Event done(c10::DeviceType::CUDA);
    done.record(stream);
    done.block(caller);
  }
  c10::cuda::CUDAStream caller, stream;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  // Per shape: seen once (warmed up), or its graph. One memory pool for all: a step's
  // intermediates die within it, and the graphs replay one at a time on one stream.
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<at::cuda::CUDAGraph>> graphs;
  at::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
};

DecodeGraphs::DecodeGraphs(const c10::Device& device) : cuda_(device.is_cuda()) {
  if (cuda_ && graphs_wanted()) impl_ = std::make_unique<Impl>(device);
}

void DecodeGraphs::run(int64_t rows, int64_t columns, const std::function<void()>& step) {
  if (!impl_) return step();
  const auto key = std::make_pair(rows, columns);
  auto it = impl_->graphs.find(key);
  if (it == impl_->graphs.end()) {
    impl_->graphs.emplace(key, nullptr);  // the warm-up
    return step();
  }
  if (!it->second) {
    // The capture records the step without running it; the replay below runs it.
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    graph->capture_begin(impl_->pool);
    step();
    graph->capture_end();
    it->second = std::move(graph);
  }
  it->second->replay();
  ++replays_;
}

#else

bool cuda_graphs_built() { return false; }

struct DecodeGraphs::Impl {};

DecodeGraphs::DecodeGraphs(const c10::Device& device) : cuda_(device.is_cuda()) {}

void DecodeGraphs::run(int64_t, int64_t, const std::function<void()>& step) { step(); }

#endif

DecodeGraphs::~DecodeGraphs() = default;

bool DecodeGraphs::enabled() const { return impl_ != nullptr; }

std::pair<int64_t, int64_t> DecodeGraphs::bucket(int64_t rows, int64_t columns, int64_t slots, int64_t capacity) const {
  if (!cuda_) return {rows, columns};
  // Columns from 64 up: fewer shapes for short answers, and a few masked columns cost little.
  return {std::min(next_power_of_two(rows), slots), std::min(std::max<int64_t>(next_power_of_two(columns), 64), capacity)};
}

}  // namespace rpo
