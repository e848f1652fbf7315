// What the CUDA runtime reports about the machine, for `rpo info` (runtime.cpp's cuda_info()).
// Here rather than in runtime.cpp because it needs the CUDA runtime's headers, which only a
// toolkit (nvcc) brings; LibTorch alone reports the device count and the runtime version.
#include <cuda_runtime_api.h>

#include "kernels/fused_logprob.h"

namespace rpo::kernels {

RuntimeReport cuda_runtime_report() {
  RuntimeReport r;
  if (cudaRuntimeGetVersion(&r.runtime_version) != cudaSuccess) r.runtime_version = 0;
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the error, report none
    count = 0;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    r.devices.push_back({i, p.name, p.major, p.minor, static_cast<int64_t>(p.totalGlobalMem), p.multiProcessorCount});
  }
  return r;
}

}  // namespace rpo::kernels
