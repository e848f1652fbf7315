// What a ProcessGroup holds, shared by the collectives (process_group.cpp) and the gradient
// buckets (grad_sync.cpp).
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "parallel/dist.h"

#ifdef RPO_WITH_GLOO
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#endif

namespace rpo {

class ProcessGroupImpl {
 public:
  DistOptions options;
#ifdef RPO_WITH_GLOO
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  // Waits for `work`; a failure (a dead peer, the timeout) becomes an error naming this rank.
  void run(c10::intrusive_ptr<c10d::Work> work, const char* what) const;
  std::runtime_error collective_error(const char* what, const std::string& detail) const;
  std::string missing_ranks() const;
  // The device collectives run on: the tensor itself for Gloo, this rank's GPU for NCCL.
  at::Tensor to_comm(const at::Tensor& t) const;
#endif
};

}  // namespace rpo
