#!/usr/bin/env bash
# Configures and builds gaft into $GAFT_BUILD_DIR (default ./build); the binary lands at build/gaft.
# Extra arguments go to CMake's configure step, e.g. -DGAFT_CUDA=OFF.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
prefix=()
if [ -n "$(gaft_torch_cmake_dir)" ]; then prefix=(-DTorch_DIR="$(gaft_torch_cmake_dir)"); fi
mkdir -p "$GAFT_BUILD_DIR"
if [ ! -f "$GAFT_BUILD_DIR/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$GAFT_ROOT" -B "$GAFT_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${GAFT_BUILD_TYPE:-Release}" \
    "${prefix[@]}" "$@" >"$GAFT_BUILD_DIR/configure.log" 2>&1 || { cat "$GAFT_BUILD_DIR/configure.log"; exit 1; }
fi
cmake --build "$GAFT_BUILD_DIR" -j "${GAFT_JOBS:-$(nproc)}"
