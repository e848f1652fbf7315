// Generation's decode step as CUDA graphs (native/model/generate.cpp): on CUDA, each step shape
// (rows, columns) is run eagerly once (the warm-up: cuBLAS handles, the allocator's blocks), captured
// the second time it comes, and replayed from then on. A step reads and writes only tensors that
// outlive the graphs (the slot state and the KV cache), so a replay is the eager step without the
// host's launch cost. Graphs are built where CUDA's runtime headers were complete at build time
// (RPO_WITH_CUDA_GRAPHS, CMakeLists.txt); RPO_CUDA_GRAPHS=0 keeps the eager step (the tests'
// reference). On the CPU this is a plain call of the step.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace rpo {

// This build can run the decode step as a CUDA graph.
bool cuda_graphs_built();

class DecodeGraphs {
 public:
  // Enabled on a CUDA device when built with graphs and RPO_CUDA_GRAPHS is not "0". While it
  // lives, the current CUDA stream is a side stream of its own (a capture needs a non-default
  // stream; prefills and steps stay ordered on it), joined back at its end.
  explicit DecodeGraphs(const c10::Device& device);
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  bool enabled() const;
  // Runs `step` (one decode step of `rows` slots reading `columns` cache columns): eagerly when
  // disabled or at a shape's first use, by capturing it at its second, by replaying after.
  void run(int64_t rows, int64_t columns, const std::function<void()>& step);
  // The shape a step of `rows` running slots needing `columns` columns runs at: exact on the CPU;
  // on CUDA rounded up to a power of two (at most `slots` / `capacity`), so that a call captures a
  // few graphs, not one per step. Graphs on or off, the same shapes: the eager step is then the
  // graphs' exact reference (bf16 included), not one with other kernels' rounding.
  std::pair<int64_t, int64_t> bucket(int64_t rows, int64_t columns, int64_t slots, int64_t capacity) const;
  int64_t replays() const { return replays_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool cuda_ = false;
  int64_t replays_ = 0;
};

}  // namespace rpo
