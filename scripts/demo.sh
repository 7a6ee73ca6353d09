#!/usr/bin/env bash
# The README's first command: the main job on an embedded default, on the CPU, with nothing downloaded
# but packages. Until gaft's training and evaluation land, it runs the most complete real job the code
# can do: install and build, report the runtime, validate every example configuration and write the
# resolved one into a run directory, run a checkpoint through the model code, and run the custom ops (gate + fused weighted log-likelihood) on a
# small problem against their plain ATen references.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/env.sh"
"$here/setup.sh"
"$here/build.sh" >/dev/null
gaft="$GAFT_BUILD_DIR/gaft"
out="${GAFT_DEMO_DIR:-$GAFT_ROOT/runs/demo}"
mkdir -p "$out"

echo "== gaft info"
"$gaft" info

echo "== example configurations"
for cfg in "$GAFT_ROOT"/configs/*.yaml; do
  "$gaft" config check -q "$cfg" && echo "$(basename "$cfg"): valid"
done
"$gaft" config check "$GAFT_ROOT/configs/gaft.yaml" run.output_dir="$out" >"$out/config.yaml"
echo "resolved configs/gaft.yaml written to $out/config.yaml"

echo "== a broken configuration is rejected with every problem and its line (exit 2)"
set +e
"$gaft" config check "$GAFT_ROOT/tests/data/configs/several_errors.yaml"
code=$?
set -e
[ "$code" -eq 2 ] || { echo "demo: expected exit code 2, got $code" >&2; exit 1; }

echo "== a Qwen3-architecture checkpoint (tiny, random weights, committed test fixture): logits of 4 tokens"
"$gaft" logits --model "$GAFT_ROOT/tests/data/model/qwen3" --ids "1 5 9 2" --out "$out/logits.safetensors"
echo "wrote $out/logits.safetensors"

if [ -x "$GAFT_BUILD_DIR/bench_ops" ]; then
  echo "== the fused weighted log-likelihood against the materialising reference (small CPU problem)"
  "$GAFT_BUILD_DIR/bench_ops" --tokens 1024 --hidden 256 --vocab 8192 --dtype fp32 --repeats 3 --zero-fraction 0.3
fi
echo "demo: done"
