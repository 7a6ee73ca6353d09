#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test through ctest.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/env.sh"
start=$(date +%s)
"$here/setup.sh"
t_setup=$(date +%s)
"$here/build.sh"
t_build=$(date +%s)
echo "test.sh: setup $((t_setup - start)) s, build $((t_build - t_setup)) s; running the tests"
cd "$GAFT_BUILD_DIR"
# ctest's summary ("100% tests passed, 0 tests failed out of N") is the last line CI reads.
exec ctest --output-on-failure -j "${GAFT_TEST_JOBS:-2}" "$@"
