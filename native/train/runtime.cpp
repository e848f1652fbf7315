// Process-wide engine facts and settings.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

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

}  // namespace rpo
