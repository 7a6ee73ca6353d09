// See gaft/device.h.
#include "gaft/device.h"

#include <ATen/cpu/Utils.h>
#include <torch/cuda.h>

#include "gaft/error.h"

namespace gaft {

at::Device resolve_device(Device configured) {
  const bool cuda = torch::cuda::is_available();
  if (configured == Device::kCuda && !cuda)
    throw UsageError("run.device is cuda but no CUDA device is usable here", "set run.device: cpu (or auto)");
  return (configured == Device::kCuda || (configured == Device::kAuto && cuda)) ? at::Device(at::kCUDA)
                                                                                 : at::Device(at::kCPU);
}

bool cpu_has_native_bf16() {
  const auto caps = at::cpu::get_cpu_capabilities();
  for (const char* key : {"avx512_bf16", "amx_bf16"}) {
    const auto it = caps.find(key);
    if (it != caps.end() && it->second.isBool() && it->second.toBool()) return true;
  }
  return false;
}

at::ScalarType to_scalar(DType d) {
  switch (d) {
    case DType::kBFloat16: return at::kBFloat16;
    case DType::kFloat16: return at::kHalf;
    default: return at::kFloat;
  }
}

at::ScalarType stored_dtype(const ModelConfig& c) {
  const std::string d = c.raw.is_object() && c.raw.contains("torch_dtype") && c.raw["torch_dtype"].is_string()
                            ? c.raw["torch_dtype"].get<std::string>()
                            : "float32";
  return d == "bfloat16" ? at::kBFloat16 : d == "float16" ? at::kHalf : at::kFloat;
}

}  // namespace gaft
