#!/bin/bash
# Runs each scripts/slurm/*.sbatch in dry-run mode (GAFT_DRY_RUN=1) with fake Slurm variables and a fake
# srun, and checks what every rank resolved: rank, world size, local rank, master address and port.
# Usage: slurm_dry_run_test.sh GAFT_SOURCE_DIR GAFT_BIN
set -uo pipefail
src=$1
bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME CONDITION-OUTPUT
  if [ "$2" != ok ]; then echo "FAIL $1: $2"; fail=1; else echo "ok   $1"; fi
}
# A config that passes validation; its files are not opened by a dry run.
cat >"$tmp/run.yaml" <<YAML
run: {output_dir: $tmp/out}
model: {path: $tmp/model}
data: {train: $tmp/train.jsonl}
objective: {kind: sft}
train: {batch_size: 2, grad_accum_steps: 4}
YAML
printf 'objective.lambda=0.5 run.name=a\n# comment\n\nobjective.lambda=1.0 run.name=b\n' >"$tmp/sweep.txt"

export GAFT_ROOT=$src GAFT_BIN=$bin GAFT_DRY_RUN=1 GAFT_SRUN=$src/tests/scripts/fake_srun.sh
export SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=$src
unset RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT

# expect_ranks OUTPUT WORLD PER_NODE MASTER: one line per rank, each with its own rank and the shared master.
expect_ranks() {
  local out=$1 world=$2 per_node=$3 master=$4
  for ((r = 0; r < world; r++)); do
    local want="rank=$r world_size=$world local_rank=$((r % per_node)) master=$master source=slurm"
    grep -q "^$want " <<<"$out" || { echo "no line '$want' in: $out"; return; }
  done
  [ "$(grep -c '^rank=' <<<"$out")" = "$world" ] || { echo "expected $world rank lines in: $out"; return; }
  echo ok
}

out=$(SLURM_JOB_NAME=gaft-train SLURM_NTASKS=4 SLURM_NTASKS_PER_NODE=4 SLURM_JOB_NODELIST=gpu07 \
      bash "$src/scripts/slurm/train.sbatch" "$tmp/run.yaml" 2>&1)
check "train.sbatch: 4 ranks on gpu07" "$(expect_ranks "$out" 4 4 gpu07:19242)"
check "train.sbatch: per-job output folder" "$(grep -q 'output_dir=runs/gaft-train-4242$' <<<"$out" && echo ok || echo "$out")"

out=$(SLURM_JOB_NAME=mn SLURM_NTASKS=8 SLURM_NTASKS_PER_NODE=4 SLURM_JOB_NODELIST='gpu[07-08]' \
      bash "$src/scripts/slurm/train-multinode.sbatch" "$tmp/run.yaml" 2>&1)
check "train-multinode.sbatch: 8 ranks, 2 nodes, master gpu07" "$(expect_ranks "$out" 8 4 gpu07:19242)"

out=$(SLURM_JOB_NAME=mn SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=1 SLURM_JOB_NODELIST='n[3,5]' MASTER_PORT=29999 \
      bash "$src/scripts/slurm/train-multinode.sbatch" "$tmp/run.yaml" run.output_dir=mine 2>&1)
check "train-multinode.sbatch: MASTER_PORT and a user's output_dir win" \
  "$( [ "$(expect_ranks "$out" 2 1 n3:29999)" = ok ] && grep -q 'output_dir=mine$' <<<"$out" && echo ok || echo "$out")"

out=$(SLURM_JOB_NAME=sw SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 SLURM_JOB_NODELIST=a1 SLURM_ARRAY_JOB_ID=77 \
      SLURM_ARRAY_TASK_ID=1 bash "$src/scripts/slurm/sweep.sbatch" "$tmp/run.yaml" "$tmp/sweep.txt" 2>&1)
check "sweep.sbatch: array task 1 takes the second list entry" \
  "$( [ "$(expect_ranks "$out" 2 2 a1:19242)" = ok ] && grep -q 'objective.lambda=1.0 run.name=b' <<<"$out" &&
      grep -q 'output_dir=runs/sw-77_1$' <<<"$out" && echo ok || echo "$out")"
out=$(SLURM_JOB_NAME=sw SLURM_NTASKS=1 SLURM_JOB_NODELIST=a1 SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=5 \
      bash "$src/scripts/slurm/sweep.sbatch" "$tmp/run.yaml" "$tmp/sweep.txt" 2>&1)
check "sweep.sbatch: a task beyond the list fails clearly" "$(grep -q 'no line for array task 5' <<<"$out" && echo ok || echo "$out")"

# GAFT_IMAGE: a .sif runs each rank through Apptainer with the checkout bound; an image name goes to pyxis.
out=$(SLURM_JOB_NAME=ct SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 SLURM_JOB_NODELIST=g1 GAFT_IMAGE=/img/gaft.sif \
      GAFT_APPTAINER=$src/tests/scripts/fake_apptainer.sh bash "$src/scripts/slurm/train.sbatch" "$tmp/run.yaml" 2>&1)
check "train.sbatch: GAFT_IMAGE=*.sif runs the ranks in Apptainer" \
  "$( [ "$(expect_ranks "$out" 2 2 g1:19242)" = ok ] && [ "$(grep -c "^fake-apptainer image=/img/gaft.sif binds=$src" <<<"$out")" = 2 ] &&
      grep -q "exec --nv --bind $src --pwd $src" <<<"$out" && echo ok || echo "$out")"
out=$(SLURM_JOB_NAME=ct SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 SLURM_JOB_NODELIST=g1 GAFT_IMAGE=registry.example/gaft:1 \
      bash "$src/scripts/slurm/train.sbatch" "$tmp/run.yaml" 2>&1)
check "train.sbatch: GAFT_IMAGE=name goes to srun --container-image (pyxis)" \
  "$( [ "$(expect_ranks "$out" 2 2 g1:19242)" = ok ] &&
      grep -q -- "--container-image=registry.example/gaft:1 --container-mounts=$src:$src" <<<"$out" &&
      grep -q -- "--container-workdir=$src" <<<"$out" && echo ok || echo "$out")"

cat >"$tmp/eval.yaml" <<YAML
run: {output_dir: $tmp/eval}
models: [{path: $tmp/model}]
scorer: {heads: [{name: safety, path: $tmp/scorer}]}
suites: [{name: s, path: $tmp/s.jsonl}]
YAML
out=$(SLURM_JOB_NAME=ev SLURM_NTASKS=1 SLURM_JOB_NODELIST=g1 bash "$src/scripts/slurm/eval.sbatch" "$tmp/eval.yaml" 2>&1)
check "eval.sbatch: config valid, one task" "$(grep -q "eval --config $tmp/eval.yaml run.output_dir=runs/ev-4242" <<<"$out" && echo ok || echo "$out")"
# A broken config fails the dry run with gaft's message.
echo "objective: {kind: nope}" >"$tmp/bad.yaml"
out=$(SLURM_JOB_NAME=b SLURM_NTASKS=2 SLURM_JOB_NODELIST=g1 bash "$src/scripts/slurm/train.sbatch" "$tmp/bad.yaml" 2>&1)
rc=$?
check "train.sbatch: a bad config fails" "$( [ $rc != 0 ] && grep -q "nope" <<<"$out" && echo ok || echo "rc=$rc $out")"
exit $fail
