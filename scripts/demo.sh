#!/usr/bin/env bash
# The README's first command: gaft's main job on an embedded default, on the CPU, with nothing downloaded
# but packages. It builds a small world of its own (tools/make_world.cpp), starts from the base policy the
# project pre-trained on that world (committed in data/demo_base; scripts/make_demo_base.sh reproduces it),
# trains two scorer heads on it with `gaft train`, fine-tunes the policy on data of which a share is adversarial
# with plain SFT, with gaft and with the baselines a practitioner tries first (filter, SFT + KL, mixing),
# evaluates every model with `gaft eval` (plain, under a jailbreak wrapper, and with a harmful answer
# prefilled), and ends with the results table (docs/results.md explains it). Harm is judged by the world's own
# ground truth (the harmful payloads' content), beside the trained head that gaft optimised.
#
#   ./scripts/demo.sh          the reduced run: the 10%-harmful setting, one seed, SFT, gaft, gaft with recovery
#                              rollouts and the three baselines (about 13 minutes on 2 cores after the build)
#   ./scripts/demo.sh --full   every setting (clean, 10%, 30% harmful, unsafe start) x every method (SFT, gaft,
#                              gaft with a fixed gate, gaft with recovery rollouts, filter, SFT + KL, mixing) x 3
#                              seeds; also rewrites docs/results.md and docs/plots/
#   ./scripts/demo.sh --sweep  adds the sweep of gaft's knobs (tools/sweep.py: lambda, K, delta, the gate's tau
#                              and temperature, the recovery share, lambda and target weight) on the 10%
#                              setting, seed 11, to the page
#
# Stages are cached in $GAFT_DEMO_DIR (default runs/demo): a stage whose command and inputs are unchanged is
# not run again. Remove the directory to start afresh. Independent stages run $GAFT_DEMO_JOBS at a time
# (default 2), each on one thread, so the figures do not depend on the number of jobs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
full=0
sweep=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --sweep) sweep=1 ;;
    *) echo "usage: scripts/demo.sh [--full] [--sweep]" >&2; exit 2 ;;
  esac
done
"$here/setup.sh"
"$here/build.sh" >/dev/null
gaft="$GAFT_BUILD_DIR/gaft"
exp="$GAFT_ROOT/configs/experiments"
work="${GAFT_DEMO_DIR:-$GAFT_ROOT/runs/demo}"
jobs="${GAFT_DEMO_JOBS:-2}"
mkdir -p "$work/logs"
cd "$work"
export OMP_NUM_THREADS=1
started=$(date +%s)

# stage NAME OUT COMMAND...: runs COMMAND (output to logs/NAME.log) unless the same command already succeeded
# with the same binaries, configs and base policy. A stage's key is the hash of its command line, the gaft
# binaries and library, every experiment config and the committed base. OUT (or -) is the folder the stage
# writes: when it was started under another key, it is removed first, so that `gaft train` resumes only a
# checkpoint of this very stage (an interrupted demo continues where it stopped; a changed binary or config
# starts over).
key_base=$(cat "$gaft" "$GAFT_BUILD_DIR"/libgaft_core.* "$GAFT_BUILD_DIR/make_world" "$exp"/*.yaml \
               "$GAFT_ROOT"/data/demo_base/* 2>/dev/null | sha256sum | cut -c1-16)
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
  if ! "$@" >"logs/$name.log" 2>&1; then
    echo "[demo] $name FAILED (log: $work/logs/$name.log)"; tail -n 20 "logs/$name.log" >&2; return 1
  fi
  echo "$key" >"logs/$name.done"
  printf '[demo] %-34s %4d s\n' "$name" "$(( $(date +%s) - t0 ))"
}

# Stages queued with `later` run $jobs at a time; `settle` waits for them and fails if any failed.
queued=()
later() {
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  queued+=("$1")
  stage "$@" &
}
settle() {
  wait || true
  local failed=0
  for name in "${queued[@]}"; do [ -f "logs/$name.done" ] || { echo "[demo] $name did not finish" >&2; failed=1; }; done
  queued=()
  [ "$failed" = 0 ] || exit 1
}

stage world - "$GAFT_BUILD_DIR/make_world" --out . --seed 7
# The base policy: the committed one (its tokenizer is the world's; make_world's init/ is what it started from).
mkdir -p base
ln -sfn "$GAFT_ROOT/data/demo_base" base/model

# Settings: name, fine-tuning data, starting policy.
settings=("h10 data/finetune_h10.jsonl base/model")
methods=(sft gaft gaft_recovery filter sft_kl mix)
seeds=(11)
if [ "$full" = 1 ]; then
  settings=("clean data/finetune_clean.jsonl base/model" "${settings[@]}"
            "h30 data/finetune_h30.jsonl base/model" "unsafe data/finetune_h10.jsonl base_unsafe/model")
  methods=(sft gaft gaft_fixed gaft_recovery filter sft_kl mix)
  seeds=(11 12 13)
fi
# fine_tune WHICH METHOD...: queues every seed's run of these methods in the settings that start from the base
# (WHICH = base) or from the unsafe start (WHICH = unsafe).
fine_tune() {
  local which=$1; shift
  for method in "$@"; do
    [[ " ${methods[*]} " == *" $method "* ]] || continue
    for s in "${settings[@]}"; do
      read -r name data start <<<"$s"
      [ "$which" = base ] && [ "$start" != base/model ] && continue
      [ "$which" = unsafe ] && [ "$start" = base/model ] && continue
      for seed in "${seeds[@]}"; do
        out="ft/$name/$method/s$seed"
        later "$name-$method-s$seed" "$out" "$gaft" train --config "$exp/$method.yaml" data.train="$data" \
          model.path="$start" run.seed="$seed" run.output_dir="$out"
      done
    done
  done
}
# First the scorer heads (the factuality head is the longest stage), the unsafe start, and beside them the runs
# that need neither; then the rest, the expensive runs first so that the cheap ones fill the gaps at the end.
later scorer_fact scorers/fact "$gaft" train --config "$exp/scorer_fact.yaml"
later scorer_safety scorers/safety "$gaft" train --config "$exp/scorer_safety.yaml"
[ "$full" = 1 ] && later unsafe base_unsafe "$gaft" train --config "$exp/unsafe.yaml"
fine_tune base sft sft_kl mix
settle
fine_tune base gaft gaft_fixed gaft_recovery
fine_tune unsafe gaft gaft_fixed gaft_recovery
fine_tune base filter
fine_tune unsafe filter sft sft_kl mix
settle

for s in "${settings[@]}"; do
  read -r name data start <<<"$s"
  models=(--model "base=$start")
  for method in "${methods[@]}"; do
    for seed in "${seeds[@]}"; do models+=(--model "$method-s$seed=ft/$name/$method/s$seed/model"); done
  done
  later "$name-eval" "eval/$name" "$gaft" eval --config "$exp/eval.yaml" "${models[@]}" run.output_dir="eval/$name"
done
settle

# The sweep: one knob at a time around configs/experiments/gaft_recovery.yaml, in the 10% setting, seed 11.
if [ "$sweep" = 1 ]; then
  stage sweep sweep python3 "$GAFT_ROOT/tools/sweep.py" --gaft "$gaft" --config "$exp/gaft_recovery.yaml" \
    --eval-config "$exp/eval.yaml" --work . --out sweep --jobs "$jobs" \
    --title "The 10%-harmful setting, seed 11, from configs/experiments/gaft_recovery.yaml." \
    --knob objective.lambda=0.5,1,2 --knob rollout.num_samples=4,8 --knob abstention.delta=0.3,0.5,0.7 \
    --knob gate.tau=2,3,4 --knob gate.temperature=0.5,1,2 --knob recovery.share=0,0.5 \
    --knob recovery.lambda=1,4,16 --knob recovery.target_weight=0,0.25,1
fi

# The results page is made afresh every time (a second); the full run's page carries the hand-written reading of
# the last full run (docs/results_notes.md).
notes=()
[ "$full" = 1 ] && [ -f "$GAFT_ROOT/docs/results_notes.md" ] && notes=(--notes "$GAFT_ROOT/docs/results_notes.md")
python3 "$GAFT_ROOT/tools/demo_results.py" --work . --out results.md "${notes[@]}"
if [ "$full" = 1 ]; then
  cp results.md "$GAFT_ROOT/docs/results.md"
  rm -rf "$GAFT_ROOT/docs/plots" && cp -r plots "$GAFT_ROOT/docs/"
fi
echo "[demo] done in $(( $(date +%s) - started )) s; results: $work/results.md"
echo
sed -n '/^## Results/,/^## /p' results.md | sed '$d'
