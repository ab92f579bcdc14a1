#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for a given
# time, and prints executions, corpus size and crashes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 600 s, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes -Z flags
# to rustc: on a stable toolchain this script sets RUSTC_BOOTSTRAP=1. No
# sanitizer (the code under test is safe Rust apart from a memory map), so
# executions are not slowed by ASan; overflow checks and debug assertions are
# on. The corpus grows in fuzz/corpus/<target> (seeded from fuzz/seeds/),
# crashes land in fuzz/artifacts/<target>/. Set FUZZ_JOBS to run that many
# libFuzzer processes per target (default 1), FUZZ_TARGET_DIR for the build.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(event_json ingest_body query_string day_file_plain day_file_gz)
fi
jobs="${FUZZ_JOBS:-1}"
target_dir="${FUZZ_TARGET_DIR:-target}"
export RUSTC_BOOTSTRAP=1

cargo fuzz build --sanitizer none --target-dir "$target_dir" >&2

printf '%-16s %8s %14s %10s %8s %s\n' target seconds execs execs/s corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  before=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  started=$(date +%s)
  set +e
  parallel=()
  if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi
  cargo fuzz run --sanitizer none --target-dir "$target_dir" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 \
    "${parallel[@]}" >"$log" 2>&1
  code=$?
  set -e
  # libFuzzer stops at the first crash: report the time it really ran
  # (including the build, if any, when it stopped early).
  ran=$(( $(date +%s) - started ))
  if [ "$ran" -gt "$secs" ]; then ran=$secs; fi
  execs=$({ grep -h 'stat::number_of_executed_units' "$log" fuzz-*.log 2>/dev/null || true; } | awk '{s+=$2} END {print s+0}')
  rate=$(( execs / (ran > 0 ? ran : 1) ))
  corpus=$(find "corpus/$t" -type f | wc -l)
  after=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  crashes=$(( after - before ))
  printf '%-16s %8s %14s %10s %8s %s\n' "$t" "$ran" "$execs" "$rate" "$corpus" "$crashes"
  if [ "$crashes" -gt 0 ] || [ "$code" -ne 0 ]; then
    echo "  $t: exit $code; see fuzz/$log and fuzz/artifacts/$t/" >&2
    grep -h -m5 -E 'panicked|ERROR|SUMMARY' "$log" fuzz-*.log 2>/dev/null | sed 's/^/    /' >&2 || true
    find "artifacts/$t" -type f -newermt "@$started" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | sed 's/^/    reproduce: cargo fuzz run --sanitizer none '"$t"' /' >&2 || true
  fi
  rm -f fuzz-*.log
done
