// The fused log-prob head's CUDA kernels (native/kernels/fused_logprob.cu), behind a plain C++
// interface: this header needs ATen's Tensor and nothing from CUDA, so engine files compiled by
// the host compiler include it as is. The definitions exist only when CMake found nvcc and
// built the kernels; callers guard every use with RPO_WITH_CUDA_KERNELS.
//
// The kernels take one chunk of logits that cuBLAS computed (at::matmul of the chunk's hidden
// rows with the output weight) and make one pass over each row:
//   forward:  lse[i]  = log sum_v exp(logits[i, v])            (online max / sum, fp32)
//             logp[i] = logits[i, labels[i]] - lse[i]
//   backward: dlogits[i, v] = g[i] * (onehot(labels[i])[v] - exp(logits[i, v] - lse[i]))
//             in the logits' dtype, computed in fp32
// which is what the chunked LibTorch path in loss/logprobs.cpp computes with a copy of the
// chunk in fp32, a logsumexp and a gather (the reference these kernels are tested against).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rpo::kernels {

// logits: [n, V] on a CUDA device, float32 / bfloat16 / float16, rows contiguous (stride(1)
// == 1; any row stride). labels: [n] int64 on the same device, each in [0, V) (a label outside
// gives logp = NaN rather than a read out of bounds). logp, lse: [n] float32 on the same device,
// written. Runs on the current CUDA stream of that device.
void fused_logprob_forward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& logp,
                           const at::Tensor& lse);

// lse: [n] float32 from the forward; grad: [n] float32 (d loss / d logp); dlogits: [n, V] of
// the logits' dtype, contiguous, written (it may be the logits tensor itself: each element is
// read once, then overwritten by the same thread).
void fused_logprob_backward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& lse,
                            const at::Tensor& grad, const at::Tensor& dlogits);

// What the CUDA runtime says about the machine (native/kernels/device_info.cu): the runtime
// and driver versions (CUDA's encoding, 1000 * major + 10 * minor) and each device.
struct DeviceProps {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int64_t total_memory = 0;  // bytes
  int multiprocessors = 0;
};
struct RuntimeReport {
  int runtime_version = 0;
  int driver_version = 0;  // 0: no driver
  std::vector<DeviceProps> devices;
};
RuntimeReport cuda_runtime_report();

}  // namespace rpo::kernels
