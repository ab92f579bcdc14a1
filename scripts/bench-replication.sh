#!/usr/bin/env bash
# Replication through NATS JetStream (issue 16): events/s from an edge's
# append to a follower's durable copy, against publishing the same bytes
# with async-nats from a bare program, in the same run (target >= 0.5x);
# and the replication lag at 20,000 events/s (target p99 <= 1 s).
#
#   scripts/bench-replication.sh [CARGO_TARGET_DIR]   (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds the `replication` bench (release).
# 2. Starts one `nats-server -js` on a free loopback port, its store in a
#    temporary directory on disk (Debian: apt-get install -y nats-server).
# 3. Runs benches/replication.rs against it (an edge store and an indexed
#    follower store in one process, the publisher and the follower as in
#    `evlog serve --replicate-to` / `--follow`); see that file for what each
#    phase times.
#
# Environment: EVLOG_BENCH_DIR (default /tmp; not tmpfs), EVLOG_BENCH_EVENTS
# (default 200000), EVLOG_BENCH_WINDOW (bare acknowledgements in flight,
# default 1024), EVLOG_BENCH_RATE (default 20000), EVLOG_BENCH_SECONDS
# (default 20).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=${EVLOG_BENCH_DIR:-/tmp}
export EVLOG_BENCH_DIR=$base

nats=$(command -v nats-server || true)
[ -n "$nats" ] || { [ -x /usr/sbin/nats-server ] && nats=/usr/sbin/nats-server; }
if [ -z "$nats" ]; then
  echo "error: nats-server not found; install it: apt-get install -y nats-server" >&2
  exit 2
fi
mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-repl.XXXXXX")
nats_pid=
cleanup() {
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
bin=$(CARGO_TARGET_DIR=$target cargo bench --locked --bench replication --no-run --message-format=json |
  python3 -c 'import json, sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable")][-1])')

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$nats" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" 2> "$work/nats.log" &
nats_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "nats:   $("$nats" --version)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"

"$bin" --nats "nats://127.0.0.1:$port"
