#!/usr/bin/env bash
# Installs what gaft needs to build, idempotently and quietly when everything is already there:
#   - Debian packages (compiler tool chain, sentencepiece, yaml-cpp, CLI11, spdlog, GoogleTest, PCRE2, ...)
#   - LibTorch from the PyPI `torch` wheel, pinned in scripts/versions.env, installed into a virtual
#     environment under $GAFT_DEPS (default ~/.cache/gaft), outside the repository, so that every clone
#     and CI reuse it.
# Users who bring their own LibTorch 2.x skip the wheel with GAFT_SKIP_TORCH=1 and pass
# -DCMAKE_PREFIX_PATH=/path/to/libtorch to CMake.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  python3 python3-venv
  libsentencepiece-dev sentencepiece
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libpcre2-dev libcsv-dev libgloo-dev libssl-dev
  libboost-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${GAFT_SKIP_TORCH:-0}" != "1" ]; then
  stamp="$GAFT_VENV/.gaft-torch-ok"
  if [ ! -f "$stamp" ]; then
    echo "setup: installing torch==$GAFT_TORCH_VERSION (LibTorch, CUDA $GAFT_TORCH_CUDA) into $GAFT_VENV"
    mkdir -p "$GAFT_DEPS"
    [ -x "$GAFT_VENV/bin/python" ] || /usr/bin/python3 -m venv "$GAFT_VENV"
    "$GAFT_VENV/bin/pip" install -q --disable-pip-version-check "torch==$GAFT_TORCH_VERSION"
    got=$("$GAFT_VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0], torch.version.cuda)' 2>/dev/null)
    if [ "$got" != "$GAFT_TORCH_VERSION $GAFT_TORCH_CUDA" ]; then
      echo "setup: expected torch $GAFT_TORCH_VERSION with CUDA $GAFT_TORCH_CUDA, got '$got'" >&2
      exit 1
    fi
    touch "$stamp"
  fi
  [ -n "$(gaft_torch_cmake_dir)" ] || { echo "setup: no TorchConfig.cmake under $GAFT_VENV" >&2; exit 1; }
fi
