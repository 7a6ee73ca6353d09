#!/usr/bin/env bash
# Builds gaft with clang, AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage instrumentation
# into a second build folder ($GAFT_SANITIZE_DIR, default ./build-sanitize; CUDA off), then runs the CPU test
# suite there. The same folder holds the libFuzzer binaries that scripts/fuzz.sh runs. Not part of CI (a cold
# build takes about 30 minutes on 2 cores and the instrumented suite 10 to 15); it must pass.
#   ./scripts/sanitize.sh                          # every test but the demo-base recipe
#   ./scripts/sanitize.sh -R Hostile               # extra arguments go to ctest
#   ./scripts/sanitize.sh --build-only [TARGET...] # only build (scripts/fuzz.sh uses this)
# LibTorch and the system libraries are not instrumented: ASan's container-overflow check, which needs every
# library that touches a std::vector to be instrumented, is off; leaks of LibTorch's global state at exit are
# not reported (detect_leaks=0). Everything else (heap/stack overflows, use after free, UB) aborts the test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
"$here/setup.sh"
command -v clang++ >/dev/null || { echo "sanitize.sh: clang++ not found (Debian: apt-get install clang)" >&2; exit 1; }
dir="${GAFT_SANITIZE_DIR:-$GAFT_ROOT/build-sanitize}"
sanitizers="-fsanitize=address,undefined"
if [ ! -f "$dir/build.ninja" ]; then
  prefix=()
  if [ -n "$(gaft_torch_cmake_dir)" ]; then prefix=(-DTorch_DIR="$(gaft_torch_cmake_dir)"); fi
  mkdir -p "$dir"
  cmake -S "$GAFT_ROOT" -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DGAFT_CUDA=OFF -DGAFT_FUZZ=ON \
    -DCMAKE_CXX_FLAGS="$sanitizers,fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
    -DCMAKE_EXE_LINKER_FLAGS="$sanitizers" -DCMAKE_SHARED_LINKER_FLAGS="$sanitizers" "${prefix[@]}" \
    >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
fi
if [ "${1:-}" = "--build-only" ]; then
  shift
  targets=()
  if [ $# -gt 0 ]; then targets=(--target "$@"); fi
  exec cmake --build "$dir" -j "${GAFT_JOBS:-$(nproc)}" "${targets[@]}"
fi
cmake --build "$dir" -j "${GAFT_JOBS:-$(nproc)}"
cd "$dir"
export ASAN_OPTIONS="detect_container_overflow=0:detect_leaks=0:abort_on_error=1:protect_shadow_gap=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export GAFT_BIN="$dir/gaft"
if [ $# -eq 0 ]; then set -- -E DemoBase; fi
exec ctest --output-on-failure -j "${GAFT_TEST_JOBS:-2}" "$@"
