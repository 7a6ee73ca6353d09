// What this build and this machine offer: LibTorch version, CUDA kernels, devices, threads.
#pragma once

#include <nlohmann/json.hpp>

namespace gaft {

// {"gaft": "0.1.0", "libtorch": "2.11.0", "cuda_kernels": true, "cuda_available": false, ...}
nlohmann::json runtime_info();

}  // namespace gaft
