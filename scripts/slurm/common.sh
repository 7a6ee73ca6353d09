# shellcheck shell=bash
# Shared by the sbatch files in this folder (sourced, not run). Sets the environment the ranks need and
# defines gaft_srun, which starts the job step, forwards Slurm's warning signal to it, and requeues the
# job when gaft stopped early with a checkpoint (exit 75).
#
# Knobs (environment):
#   GAFT_ROOT      the gaft checkout (default: the folder sbatch was called from)
#   GAFT_BIN       the gaft executable (default: $GAFT_ROOT/build/gaft)
#   GAFT_DRY_RUN=1 every rank prints its resolved rank, world size, master address and device instead of
#                  training (gaft train --dry-run); nothing is requeued
#   GAFT_IMAGE     run gaft from a container image built from scripts/container/: a .sif file through
#                  Apptainer (apptainer exec --nv, binding GAFT_ROOT and the Hugging Face cache), anything
#                  else as an image name through Slurm's pyxis plugin (srun --container-image). GAFT_BIN then
#                  defaults to the image's gaft.
#   GAFT_SRUN, GAFT_SCONTROL, GAFT_APPTAINER   replacements for srun, scontrol and apptainer (tests use fakes)

GAFT_ROOT=${GAFT_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}
if [ -n "${GAFT_IMAGE:-}" ]; then
  GAFT_BIN=${GAFT_BIN:-gaft}
else
  GAFT_BIN=${GAFT_BIN:-$GAFT_ROOT/build/gaft}
fi
APPTAINER=${GAFT_APPTAINER:-apptainer}
SRUN=${GAFT_SRUN:-srun}
SCONTROL=${GAFT_SCONTROL:-scontrol}
cd "$GAFT_ROOT" || exit 1

# gaft derives every rank, the world size and rank 0's host from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
# and SLURM_JOB_NODELIST by itself; the store port is 15000 + SLURM_JOB_ID % 20000 unless MASTER_PORT is set.
# export MASTER_PORT=29500

# Threads per rank: the CPUs Slurm gave the task.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}

# NCCL (GPU jobs). The defaults usually work; on clusters they are the first things to set.
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}                   # INFO shows the chosen transport (IB, sockets)
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}  # a dead peer ends the job
# export NCCL_SOCKET_IFNAME=ib0       # interface for NCCL's bootstrap (see `ip addr`); excludes docker0, lo
# export NCCL_IB_HCA=mlx5             # InfiniBand adapters to use
# export NCCL_IB_DISABLE=1            # no InfiniBand: TCP only
# export NCCL_P2P_DISABLE=1           # GPUs without working peer-to-peer (some PCIe / VM setups)
# export GLOO_SOCKET_IFNAME=ib0       # the same for Gloo (CPU runs, and the TCP store)

# Output folder per job (kept on requeue: the job id does not change); a later run.output_dir=... given
# to the script wins.
gaft_output_dir() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    echo "runs/${SLURM_JOB_NAME:-gaft}-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    echo "runs/${SLURM_JOB_NAME:-gaft}-${SLURM_JOB_ID:-local}"
  fi
}

# gaft_srun [srun options --] gaft-arguments...: one job step; returns gaft's status.
gaft_srun() {
  local opts=()
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
  fi
  local dry=()
  [ "${GAFT_DRY_RUN:-0}" = 1 ] && [ "$1" = train ] && dry=(--dry-run)
  # A container: the checkout (configs, data, runs/) and the Hugging Face cache are visible inside at the same
  # paths, and the step starts in GAFT_ROOT.
  local wrap=()
  if [ -n "${GAFT_IMAGE:-}" ]; then
    local hf_cache=${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}}
    if [[ "$GAFT_IMAGE" == *.sif ]]; then
      wrap=("$APPTAINER" exec --nv --bind "$GAFT_ROOT" --pwd "$GAFT_ROOT")
      [ -d "$hf_cache" ] && wrap+=(--bind "$hf_cache")
      wrap+=("$GAFT_IMAGE")
    else
      local mounts="$GAFT_ROOT:$GAFT_ROOT"
      [ -d "$hf_cache" ] && mounts+=",$hf_cache:$hf_cache"
      opts+=("--container-image=$GAFT_IMAGE" "--container-mounts=$mounts" "--container-workdir=$GAFT_ROOT")
    fi
  fi
  echo "[gaft-slurm] job ${SLURM_JOB_ID:-?} on ${SLURM_JOB_NODELIST:-?}: $SRUN ${opts[*]} ${wrap[*]} $GAFT_BIN $* ${dry[*]}"
  # The step runs in the background so that this shell can catch the signal sbatch --signal=B:USR1@T
  # sends it, and pass it on to every task; gaft then checkpoints after its current step and exits 75.
  "$SRUN" --kill-on-bad-exit=1 "${opts[@]}" "${wrap[@]}" "$GAFT_BIN" "$@" "${dry[@]}" &
  local step=$!
  trap 'echo "[gaft-slurm] signal: asking gaft to checkpoint and stop"; kill -USR1 $step 2>/dev/null' USR1 TERM
  local rc=0
  wait $step || rc=$?
  while kill -0 $step 2>/dev/null; do  # wait returns early when the trap ran: wait for the step itself
    rc=0
    wait $step || rc=$?
  done
  trap - USR1 TERM
  if [ "$rc" = 75 ] && [ "${GAFT_DRY_RUN:-0}" != 1 ]; then
    echo "[gaft-slurm] gaft stopped with a checkpoint: requeueing job ${SLURM_JOB_ID}; it resumes by itself"
    "$SCONTROL" requeue "${SLURM_JOB_ID}"
  fi
  return "$rc"
}
