// Where and in what precision gaft computes: the configured device resolved against this machine, and the
// dtype spellings of configs and checkpoints. Shared by gaft train and gaft eval.
#pragma once

#include <ATen/ATen.h>

#include "gaft/config.h"
#include "gaft/model_config.h"

namespace gaft {

// cuda when configured (UsageError if no CUDA device is usable) or when auto and a GPU is visible; else cpu.
at::Device resolve_device(Device configured);

// The CPU computes bf16 matmuls natively (AVX512-BF16 or AMX); without, they are emulated, far below fp32.
bool cpu_has_native_bf16();

// float32, bfloat16 or float16; kAuto gives float32.
at::ScalarType to_scalar(DType d);

// config.json's torch_dtype: bfloat16, float16, else float32 (also when absent).
at::ScalarType stored_dtype(const ModelConfig& c);

}  // namespace gaft
