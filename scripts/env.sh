# Sourced by the other scripts: where the dependencies live. Outside the repository, so that every
# clone (and CI) finds the same LibTorch again without downloading it twice.
_gaft_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$_gaft_here/versions.env"
GAFT_ROOT="$(cd "$_gaft_here/.." && pwd)"
GAFT_DEPS="${GAFT_DEPS:-$HOME/.cache/gaft}"
GAFT_VENV="$GAFT_DEPS/torch-$GAFT_TORCH_VERSION"
GAFT_BUILD_DIR="${GAFT_BUILD_DIR:-$GAFT_ROOT/build}"
export GAFT_ROOT GAFT_DEPS GAFT_VENV GAFT_BUILD_DIR
export CCACHE_DIR="${CCACHE_DIR:-$GAFT_DEPS/ccache}"
gaft_torch_cmake_dir() {
  local sp
  sp=$(ls -d "$GAFT_VENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n1)
  [ -n "$sp" ] && echo "$sp/share/cmake/Torch"
}
