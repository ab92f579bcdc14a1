#!/usr/bin/env bash
# Web console timings in headless Chromium with 10M events indexed
# (issue 13, item 12), in one run.
#
#   scripts/bench-console.sh [CARGO_TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds the release binary and the `console` and `index` benches.
# 2. Builds the store: the index bench's query store (10,000,000 realistic
#    events over the 20 days before today, indexed by the real indexer),
#    through `cargo bench --bench index -- --only queries --query-store DIR`
#    with no query kinds selected — the same generator and fill as
#    BENCHMARKS.md's query figures. With EVLOG_BENCH_QUERY_STORE=DIR an
#    existing store there (with an index) is reused, else built there and kept.
# 3. Runs benches/console.rs: `evlog serve` (release) on the store, chromedriver
#    and headless Chromium; the first view's transferred bytes (Resource
#    Timing), navigation → first page of events painted, and filter change →
#    results painted (the console's User Timing measures), p50/p95.
# 4. Prints a summary with pass/fail per target.
#
# Needs chromium and chromium-driver (`apt-get install -y chromium chromium-driver`).
#
# Environment:
#   EVLOG_BENCH_DIR           where the store goes (default /tmp; not tmpfs); ~6 GB needed
#   EVLOG_BENCH_QUERY_STORE   build or reuse the store here (kept)
#   EVLOG_BENCH_QUERY_EVENTS  store events (10000000)        EVLOG_BENCH_QUERY_DAYS  its days (20)
#   EVLOG_BENCH_NAV_RUNS      navigations of each kind (40)  EVLOG_BENCH_FILTER_RUNS filter changes (120)
#   EVLOG_BENCH_WARMUP        warm-up rounds (5)
# Quick check (a few minutes): EVLOG_BENCH_QUERY_EVENTS=200000 EVLOG_BENCH_NAV_RUNS=5 \
#   EVLOG_BENCH_FILTER_RUNS=24 scripts/bench-console.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=${EVLOG_BENCH_DIR:-/tmp}

for tool in chromium chromedriver; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found: apt-get install -y chromium chromium-driver" >&2
    exit 2
  fi
done
mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-console.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings from the environment or an evlog.toml must not change what is measured.
unset EVLOG_STORAGE_PATH EVLOG_DURABILITY EVLOG_CONFIG EVLOG_USER_ID_HASH_KEY EVLOG_ADDR EVLOG_KEYS_FILE
# No rotation while measuring.
export EVLOG_ROTATE_AT=off

store=${EVLOG_BENCH_QUERY_STORE:-$work/store}

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
CARGO_TARGET_DIR=$target nice -n 10 cargo build --release --locked --bin evlog
CARGO_TARGET_DIR=$target nice -n 10 cargo bench --locked --bench console --bench index --no-run

echo "== machine"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:   $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src console 2>/dev/null || echo ' (src/ or console/ modified)')"
echo "cpu:      $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "memory:   $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
echo "chromium: $(chromium --version 2>/dev/null | head -1)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -d "$store/index" ]; then
  echo "== store: reusing $store"
else
  echo "== store: building ${EVLOG_BENCH_QUERY_EVENTS:-10000000} events in $store (benches/index/)"
  mkdir -p "$(dirname "$store")"
  CARGO_TARGET_DIR=$target cargo bench --locked --bench index -- \
    --only queries --query-store "$store" --kinds no-query-kind --dir "$work" |
    grep -E '^(queries|        (generated|indexed|reusing|page cache))' || true
  [ -d "$store/index" ] || { echo "error: the store was not built" >&2; exit 1; }
fi

echo "== console (benches/console.rs)"
CARGO_TARGET_DIR=$target cargo bench --locked --bench console -- \
  --evlog "$target/release/evlog" --store "$store" | tee "$work/console.out"

echo
echo "== summary"
awk -F'|' '
BEGIN { printf "%-52s %-12s %-12s %s\n", "target", "measured", "goal", "result"; n = 0 }
$1 == "TARGET" { printf "%-52s %-12s %-12s %s\n", $2, $3, $4, $5; n++; if ($5 == "PASS") pass++ }
END { printf "\n%d of %d targets pass\n", pass, n }' "$work/console.out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
