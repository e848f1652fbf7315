// ProcessGroupNCCL for CUDA ranks: compiled only where the LibTorch has CUDA and nccl.h was found
// (pip's nvidia-nccl wheel beside torch); CMakeLists.txt defines RPO_WITH_NCCL then.
#if defined(RPO_WITH_GLOO) && defined(RPO_WITH_NCCL)
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "parallel/dist.h"

namespace rpo {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const DistOptions& o) {
  // Collectives are queued on this rank's GPU: its communicator is bound to that device.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(o.device_index));
  auto no = c10d::ProcessGroupNCCL::Options::create();
  no->timeout = std::chrono::milliseconds(o.timeout_ms);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, no);
}

}  // namespace rpo
#endif
