#!/usr/bin/env bash
# Installs the Python peers of tools/ (transformers, TRL, PEFT, ...: tools/requirements.txt, pinned) into gaft's
# torch venv, so that the benchmark commands of docs/benchmarks.md run as written on a fresh clone:
#   ./scripts/setup.sh && ./scripts/setup_tools.sh
# Prints the python to run the tools with.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/env.sh"
if [ ! -x "$GAFT_VENV/bin/python" ]; then
  echo "setup_tools: no torch venv at $GAFT_VENV; run ./scripts/setup.sh first" >&2
  exit 1
fi
"$GAFT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$GAFT_ROOT/tools/requirements.txt" \
  "torch==$GAFT_TORCH_VERSION"
echo "setup_tools: tools/requirements.txt installed; run the tools with $GAFT_VENV/bin/python"
