#!/usr/bin/env bash
# Makes the demo's base policy from scratch, the way the committed one (data/demo_base) was made: the demo world
# of seed 7 (tools/make_world.cpp: its data, its SentencePiece tokenizer and a random initial Llama), then
# `gaft train --config configs/experiments/pretrain.yaml` from that random start on the raw corpus (8000 steps
# of 32 examples) and `gaft train --config configs/experiments/align.yaml` from the raw model on the aligned
# answers (1500 steps); both on 2 threads, about 21 minutes on 2 cores.
#
#   scripts/make_demo_base.sh OUT            the base is written to OUT (a Hugging Face folder)
#   scripts/make_demo_base.sh --install      ... to data/demo_base, replacing the committed one
#
# The world's work directory is OUT.work (kept: the training log and metrics are there). The test
# DemoBase.RecipeReproducesTheCommittedBase (tests/cli/demo_base_test.cpp) runs this and compares.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
[ $# -eq 1 ] || { echo "usage: scripts/make_demo_base.sh OUT | --install" >&2; exit 2; }
out="$1"
[ "$out" = --install ] && out="$GAFT_ROOT/data/demo_base"
gaft="${GAFT_BIN:-$GAFT_BUILD_DIR/gaft}"
make_world="${GAFT_MAKE_WORLD:-$GAFT_BUILD_DIR/make_world}"
work="$out.work"
rm -rf "$work"
mkdir -p "$work"
"$make_world" --out "$work" --seed 7 >"$work/make_world.log" 2>&1
(cd "$work" && OMP_NUM_THREADS=2 "$gaft" train --config "$GAFT_ROOT/configs/experiments/pretrain.yaml" >pretrain.log 2>&1 &&
  OMP_NUM_THREADS=2 "$gaft" train --config "$GAFT_ROOT/configs/experiments/align.yaml" >align.log 2>&1)
rm -rf "$out.tmp"
cp -r "$work/base/model" "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "make_demo_base: $out (training logs and metrics in $work/raw and $work/base)"
