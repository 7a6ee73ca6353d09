#!/usr/bin/env bash
# The README's first command: gaft's main job on an embedded default, on the CPU, with nothing downloaded
# but packages. It builds a small world of its own (tools/make_world.cpp), pre-trains a ~1M-parameter policy
# and two scorer heads on it with `gaft train`, fine-tunes the policy with plain SFT and with gaft on data of
# which a share is adversarial, evaluates every model with `gaft eval` (plain, under a jailbreak wrapper, and
# with a harmful answer prefilled), and ends with the results table (docs/results.md explains it).
#
#   ./scripts/demo.sh          the reduced run: the 10%-harmful setting, SFT vs gaft (about 10 minutes on 2 cores
#                              after the build)
#   ./scripts/demo.sh --full   every setting (clean, 10%, 30% harmful, unsafe start) with the fixed-gate ablation;
#                              also rewrites docs/results.md
#
# Stages are cached in $GAFT_DEMO_DIR (default runs/demo): a stage whose command and inputs are unchanged is
# not run again. Remove the directory to start afresh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
full=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    *) echo "usage: scripts/demo.sh [--full]" >&2; exit 2 ;;
  esac
done
"$here/setup.sh"
"$here/build.sh" >/dev/null
gaft="$GAFT_BUILD_DIR/gaft"
exp="$GAFT_ROOT/configs/experiments"
work="${GAFT_DEMO_DIR:-$GAFT_ROOT/runs/demo}"
mkdir -p "$work/logs"
cd "$work"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
started=$(date +%s)

# stage NAME OUT COMMAND...: runs COMMAND (output to logs/NAME.log) unless the same command already succeeded
# with the same binaries and configs. A stage's key is the hash of its command line, the gaft binaries and
# library and every experiment config. OUT (or -) is the folder the stage writes: when it was started under
# another key, it is removed first, so that `gaft train` resumes only a checkpoint of this very stage (an
# interrupted demo continues where it stopped; a changed binary or config starts over).
key_base=$(cat "$gaft" "$GAFT_BUILD_DIR"/libgaft_core.* "$GAFT_BUILD_DIR/make_world" "$exp"/*.yaml 2>/dev/null |
           sha256sum | cut -c1-16)
stage() {
  local name=$1 out=$2; shift 2
  local key; key=$(printf '%s\n' "$key_base" "$@" | sha256sum | cut -c1-16)
  if [ -f "logs/$name.done" ] && [ "$(cat "logs/$name.done")" = "$key" ]; then
    echo "[demo] $name: cached"
    return
  fi
  rm -f "logs/$name.done"
  if [ "$out" != - ] && [ "$(cat "logs/$name.started" 2>/dev/null)" != "$key" ]; then rm -rf "$out"; fi
  echo "$key" >"logs/$name.started"
  local t0; t0=$(date +%s)
  printf '[demo] %-28s' "$name ..."
  if ! "$@" >"logs/$name.log" 2>&1; then
    echo " FAILED (log: $work/logs/$name.log)"; tail -n 20 "logs/$name.log" >&2; exit 1
  fi
  echo "$key" >"logs/$name.done"
  echo " $(( $(date +%s) - t0 )) s"
}

stage world - "$GAFT_BUILD_DIR/make_world" --out . --seed 7
stage pretrain base "$gaft" train --config "$exp/pretrain.yaml"
[ "$full" = 1 ] && stage pretrain_unsafe base_unsafe "$gaft" train --config "$exp/pretrain.yaml" data.train=data/pretrain_unsafe.jsonl \
  run.output_dir=base_unsafe
stage scorer_safety scorers/safety "$gaft" train --config "$exp/scorer_safety.yaml"
stage scorer_fact scorers/fact "$gaft" train --config "$exp/scorer_fact.yaml"

# Settings: name, fine-tuning data, starting policy.
settings=("h10 data/finetune_h10.jsonl base/model")
[ "$full" = 1 ] && settings=("clean data/finetune_clean.jsonl base/model" "${settings[@]}"
                             "h30 data/finetune_h30.jsonl base/model" "unsafe data/finetune_h10.jsonl base_unsafe/model")
for s in "${settings[@]}"; do
  read -r name data start <<<"$s"
  common=(data.train="$data" model.path="$start")
  stage "$name-sft" "ft/$name/sft" "$gaft" train --config "$exp/sft.yaml" "${common[@]}" run.output_dir="ft/$name/sft"
  stage "$name-gaft" "ft/$name/gaft" "$gaft" train --config "$exp/gaft.yaml" "${common[@]}" run.output_dir="ft/$name/gaft"
  models=(--model "base=$start" --model "sft=ft/$name/sft/model" --model "gaft=ft/$name/gaft/model")
  if [ "$full" = 1 ]; then
    stage "$name-gaft_fixed" "ft/$name/gaft_fixed" "$gaft" train --config "$exp/gaft_fixed.yaml" "${common[@]}" run.output_dir="ft/$name/gaft_fixed"
    models+=(--model "gaft_fixed=ft/$name/gaft_fixed/model")
  fi
  stage "$name-eval" "eval/$name" "$gaft" eval --config "$exp/eval.yaml" "${models[@]}" run.output_dir="eval/$name"
done

stage results - python3 "$GAFT_ROOT/tools/demo_results.py" --work . --out results.md
[ "$full" = 1 ] && cp results.md "$GAFT_ROOT/docs/results.md" && cp -r plots "$GAFT_ROOT/docs/"
echo "[demo] done in $(( $(date +%s) - started )) s; results: $work/results.md"
echo
sed -n '/^## Results/,/^## Plots/p' results.md | sed '$d'
