// `gaft info`: the build and the machine as LibTorch sees them.
#include "gaft/info.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#if GAFT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace gaft {

nlohmann::json runtime_info() {
  nlohmann::json j;
  j["gaft"] = GAFT_VERSION;
  j["libtorch"] = TORCH_VERSION;
  j["cuda_kernels"] = static_cast<bool>(GAFT_WITH_CUDA);
  j["libtorch_cuda"] = static_cast<bool>(GAFT_TORCH_CUDA);  // LibTorch built with CUDA
  const bool cuda = torch::cuda::is_available();
  j["cuda_available"] = cuda;
  nlohmann::json devices = nlohmann::json::array();
  devices.push_back({{"device", "cpu"}, {"mkldnn", at::hasMKLDNN()}, {"mkl", at::hasMKL()}});
#if GAFT_WITH_CUDA
  if (cuda) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, static_cast<int>(i)) != cudaSuccess) continue;
      devices.push_back({{"device", "cuda:" + std::to_string(i)},
                         {"name", prop.name},
                         {"capability", std::to_string(prop.major) + "." + std::to_string(prop.minor)},
                         {"memory_gib", static_cast<double>(prop.totalGlobalMem) / (1ull << 30)}});
    }
  }
#endif
  j["devices"] = devices;
  j["threads"] = at::get_num_threads();
  j["interop_threads"] = at::get_num_interop_threads();
  j["hardware_threads"] = std::thread::hardware_concurrency();
  return j;
}

}  // namespace gaft
