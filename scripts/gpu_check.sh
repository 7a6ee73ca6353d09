#!/usr/bin/env bash
# GPU check of the custom ops (kernels/*.cu): on a machine with an NVIDIA GPU, builds gaft with CUDA into
# build-gpu/, runs the CUDA parity tests (tests/ops/cuda_*_test.cpp), then times both ops against their
# references with CUDA events and prints a table next to the device's measured copy bandwidth and bf16
# matmul rate (tools/bench_ops.cpp --device cuda). Without a GPU it says so and exits 0.
# Budget: under 8 minutes on one GPU, build included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU here (nvidia-smi absent or failing); nothing to check."
  exit 0
fi
nvidia-smi -L

# Compile for this GPU only (LibTorch's CMake would otherwise list architectures nvcc 13 rejects).
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' ')
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$cap}"
echo "gpu_check: compute capability $cap, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"

start=$(date +%s)
./scripts/setup.sh
GAFT_BUILD_DIR=build-gpu ./scripts/build.sh -DGAFT_CUDA=ON "-DTORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
echo "gpu_check: built in $(( $(date +%s) - start )) s"

echo "== CUDA parity tests"
./build-gpu/tests/test_ops --gtest_filter='Cuda*' --gtest_brief=1

echo "== Timings (median of CUDA-event runs)"
./build-gpu/bench_ops --device cuda --iters 20 --tokens 8192 --hidden 4096 --vocab 128256
echo "gpu_check: done in $(( $(date +%s) - start )) s"
