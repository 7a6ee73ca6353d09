#!/usr/bin/env bash
# Runs the libFuzzer harnesses of tests/fuzz/targets.h under ASan + UBSan (issue 21), built by
# scripts/sanitize.sh into its folder ($GAFT_SANITIZE_DIR, default ./build-sanitize).
#   ./scripts/fuzz.sh                      # every harness, 600 s each (or 1,000,000 executions, if sooner)
#   ./scripts/fuzz.sh 60                   # 60 s each
#   ./scripts/fuzz.sh 600 eval_file        # some harnesses only
# Each harness starts from its committed corpus (tests/fuzz/corpus/<harness>, tools/make_fuzz_corpus.py) and
# grows a working corpus in <build>/fuzz/work/<harness>; a finding (crash-*, timeout-*, oom-*, leak-*) lands in
# <build>/fuzz/findings/<harness>/ and makes the script exit 1. Harnesses run $GAFT_FUZZ_JOBS at a time (default:
# the number of cores). The last lines print one row per harness (executions, speed, coverage, peak memory);
# docs/reliability.md keeps the figures of the last full run. Replay a finding with
#   build-sanitize/fuzz/fuzz_<harness> <file>
# and, once fixed, add the file to the committed corpus as a bad-* (refused) or ok-* (accepted) input.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
seconds="${1:-600}"
shift || true
harnesses=("$@")
dir="${GAFT_SANITIZE_DIR:-$GAFT_ROOT/build-sanitize}"
out="$dir/fuzz"
if [ ${#harnesses[@]} -eq 0 ]; then
  "$here/sanitize.sh" --build-only fuzz  # every harness tests/CMakeLists.txt lists
  for b in "$out"/fuzz_*; do harnesses+=("${b##*/fuzz_}"); done
else
  "$here/sanitize.sh" --build-only "${harnesses[@]/#/fuzz_}"
fi
export ASAN_OPTIONS="detect_container_overflow=0:protect_shadow_gap=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
mkdir -p "$out/logs"

run_one() {
  local h="$1"
  mkdir -p "$out/work/$h" "$out/findings/$h"
  # -timeout: an input taking longer is a hang; -rss_limit_mb / -malloc_limit_mb: more memory is a finding
  "$out/fuzz_$h" "$out/work/$h" "$GAFT_ROOT/tests/fuzz/corpus/$h" -dict="$GAFT_ROOT/tests/fuzz/formats.dict" \
    -max_total_time="$seconds" -runs=1000000 -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
    -max_len=65536 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$out/findings/$h/" \
    >"$out/logs/$h.log" 2>&1
}

jobs_max="${GAFT_FUZZ_JOBS:-$(nproc)}"
status=0
pids=()
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  echo "fuzz: $h (${seconds} s or 1,000,000 runs)"
  run_one "$h" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
set +e  # the summary below reads logs that may lack a figure

printf '\n%-16s %10s %8s %9s %6s %7s %8s %s\n' harness executions seconds exec/s cov features rss_mb findings
for h in "${harnesses[@]}"; do
  log="$out/logs/$h.log"
  stat() { grep -o "stat::$1: *[0-9]*" "$log" | tail -n1 | grep -o '[0-9]*$' || echo "?"; }
  runs=$(stat number_of_executed_units)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n1 | awk '{print $5}')
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
  findings=$(find "$out/findings/$h" -type f | wc -l)
  printf '%-16s %10s %8s %9s %6s %7s %8s %s\n' "$h" "$runs" "${secs:-?}" "$(stat average_exec_per_sec)" \
    "${cov:-?}" "${ft:-?}" "$(stat peak_rss_mb)" "$findings"
  if [ "$findings" -gt 0 ]; then status=1; fi
done
exit "$status"
