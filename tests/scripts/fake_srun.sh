#!/bin/bash
# A stand-in for srun in tests: starts SLURM_NTASKS copies of the command (or --ntasks=N), each with the
# SLURM_PROCID / SLURM_LOCALID / SLURM_NODEID that srun would give it (block distribution over
# SLURM_NTASKS_PER_NODE tasks per node), and returns the first non-zero status.
ntasks=${SLURM_NTASKS:-1}
while [[ "${1:-}" == -* ]]; do
  case "$1" in
    --ntasks=*) ntasks=${1#--ntasks=} ;;
  esac
  shift
done
per_node=${SLURM_NTASKS_PER_NODE:-$ntasks}
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_NTASKS=$ntasks SLURM_PROCID=$i SLURM_LOCALID=$((i % per_node)) SLURM_NODEID=$((i / per_node)) "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || { s=$?; [ $rc = 0 ] && rc=$s; }; done
exit $rc
