#!/usr/bin/env bash
# Index throughput, index lag and query latency against their targets
# (issue 3, item 7), in one run.
#
#   scripts/bench-index.sh [CARGO_TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds the `index` bench (release).
# 2. Runs benches/index/, which
#    a. generates 1,000,000 realistic events over 3 day files and indexes them
#       with `Indexer::open` + `sync`, and with a minimal bulk tantivy indexer
#       of the same documents (with and without JSON parsing), 3 rounds;
#    b. appends 50,000 events/s for 60 s (Durability::Batch) with an
#       in-process indexer and measures the append-to-searchable lag of a
#       probe every 50 ms, and the process's RSS;
#    c. generates 10,000,000 events over 20 days, and after each batch the
#       resolutions (event_resolved) of 1% of its warning+ events (about
#       0.1% of the events), indexes them (real run loop, merges included)
#       and times 15 query kinds and the 10 of issue 15 (resolved=false|true,
#       tenant), >= 200 runs each.
# 3. Prints a summary with pass/fail per target.
#
# Environment (each also a bench option, see benches/index/main.rs):
#   EVLOG_BENCH_DIR           where data goes (default /tmp; not tmpfs); ~10 GB needed at full size
#   EVLOG_BENCH_EVENTS        throughput events (1000000)     EVLOG_BENCH_DAYS        their days (3)
#   EVLOG_BENCH_REPS          throughput rounds (3)
#   EVLOG_BENCH_LAG_RATE      events/s (50000)                EVLOG_BENCH_LAG_SECS    seconds (60)
#   EVLOG_BENCH_QUERY_EVENTS  query store events (10000000)   EVLOG_BENCH_QUERY_DAYS  its days (20)
#   EVLOG_BENCH_RUNS          runs per query kind (200)       EVLOG_BENCH_ONLY        throughput,lag,queries
#   EVLOG_BENCH_TIMEOUT       stop the bench after this long (default 3h; `timeout` syntax)
# Quick check (about 1 min): EVLOG_BENCH_EVENTS=100000 EVLOG_BENCH_REPS=1 EVLOG_BENCH_LAG_SECS=5 \
#   EVLOG_BENCH_QUERY_EVENTS=100000 EVLOG_BENCH_QUERY_DAYS=5 scripts/bench-index.sh
#
# The temporary directory is always removed, also on failure or Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=${EVLOG_BENCH_DIR:-/tmp}
limit=${EVLOG_BENCH_TIMEOUT:-3h}

mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-index.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings from the environment or an evlog.toml must not change what is measured.
unset EVLOG_STORAGE_PATH EVLOG_DURABILITY EVLOG_CONFIG EVLOG_USER_ID_HASH_KEY

# `timeout` durations (90, 90s, 15m, 3h, 1d) in seconds.
timeout_secs() {
  local n=${1%[smhd]}
  case $1 in
    *m) echo $((n * 60)) ;; *h) echo $((n * 3600)) ;; *d) echo $((n * 86400)) ;; *) echo "$n" ;;
  esac
}

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
CARGO_TARGET_DIR=$target nice -n 10 cargo bench --locked --bench index --no-run

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
echo "disk:   $(df -hT "$work" | awk 'NR==2 {print $1 ", " $2 ", " $3 ", mounted on " $7}')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
for v in EVENTS DAYS REPS LAG_RATE LAG_SECS QUERY_EVENTS QUERY_DAYS RUNS ONLY; do
  eval "val=\${EVLOG_BENCH_$v:-}"
  if [ -n "$val" ]; then echo "EVLOG_BENCH_$v=$val"; fi
done

# One process per phase, so that each phase's RSS and heap start fresh.
only=${EVLOG_BENCH_ONLY:-throughput,lag,queries}
unset EVLOG_BENCH_ONLY
: >"$work/index.out"
deadline=$(($(date +%s) + $(timeout_secs "$limit")))
for phase in throughput lag queries; do
  case ",$only," in *",$phase,"*) ;; *) continue ;; esac
  left=$((deadline - $(date +%s)))
  echo "== $phase (benches/index/ --only $phase; ${left}s left of $limit)"
  status=0
  if [ "$left" -gt 0 ]; then
    CARGO_TARGET_DIR=$target timeout --kill-after=30s "$left" \
      cargo bench --locked --bench index -- --dir "$work" --only "$phase" |
      tee -a "$work/index.out" || status=$?
  else
    status=124
  fi
  if [ "$status" -ne 0 ]; then
    echo "error: the $phase phase failed or timed out (exit $status); no summary" >&2
    exit 1
  fi
  rm -rf "${work:?}"/evlog-ix*
done

get() { awk -F= -v k="RESULT $1" '$1 == k {print $2}' "$work/index.out"; }
echo
echo "== summary"
awk -F'|' '
BEGIN { printf "%-58s %-36s %-12s %-7s %s\n", "target", "measured", "goal", "result", "other load"; n = 0 }
$1 == "TARGET" {
  printf "%-58s %-36s %-12s %-7s %s\n", $2, $3, $4, $5, $6
  n++; if ($5 == "PASS") pass++; if ($6 ~ /NOISY/) noisy++
}
END {
  printf "\n%d of %d targets pass\n", pass, n
  if (noisy) print "NOISY: other processes used more than 10% of the machine during a phase; rerun when it is idle."
}' "$work/index.out"
tp=$(get tp_evlog_docs_per_s)
if [ -n "$tp" ]; then
  echo "throughput: evlog $tp docs/s, ceiling $(get tp_ceiling_docs_per_s) docs/s, ceiling without JSON parsing $(get tp_ceiling_noparse_docs_per_s) docs/s ($(get tp_events) events, $(get tp_line_bytes) bytes/line)"
fi
if [ -n "$(get lag_p99_ms)" ]; then
  echo "lag: $(get lag_rate) events/s appended, $(get lag_probes) probes, p50 $(get lag_p50_ms) ms, max $(get lag_max_ms) ms; RSS max $(get lag_rss_max_mib) MiB (anon $(get lag_rss_anon_max_mib) MiB; +$(get lag_rss_growth_mib) MiB after the indexer started)"
fi
if [ -n "$(get q_index_s)" ]; then
  echo "query store: $(get q_resolutions) resolutions, generated in $(get q_gen_s) s, indexed in $(get q_index_s) s, merges $(get q_merge_s) s, $(get q_segments) segments"
fi
