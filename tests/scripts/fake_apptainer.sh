#!/bin/bash
# A stand-in for apptainer in tests: `exec [--nv] [--bind DIR]... [--pwd DIR] IMAGE COMMAND...` prints what
# it was given (one line per task, prefixed "fake-apptainer") and runs COMMAND on the host from DIR.
[ "$1" = exec ] || { echo "fake-apptainer: expected exec, got $1" >&2; exit 2; }
shift
binds=() pwd_dir=.
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --nv) shift ;;
    --bind) binds+=("$2"); shift 2 ;;
    --pwd) pwd_dir=$2; shift 2 ;;
    *) echo "fake-apptainer: unknown option $1" >&2; exit 2 ;;
  esac
done
image=$1
shift
echo "fake-apptainer image=$image binds=${binds[*]} pwd=$pwd_dir"
cd "$pwd_dir" && exec "$@"
