#!/usr/bin/env bash
# evlog side by side with PostgreSQL and SQLite (issue 14, item 5): the same
# workload, same run, same disk, and one table of ratios.
#
#   scripts/bench-peers.sh [CARGO_TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds `evlog` and the `peers` bench (release); installs Debian's
#    `postgresql` and `wrk` with apt-get when missing (SQLite is rusqlite's
#    bundled build, FTS5 compiled in).
# 2. Creates a private PostgreSQL cluster (initdb) under the work directory,
#    on the same disk as evlog's data, and starts it on 127.0.0.1 on a free
#    port: fsync=on, synchronous_commit=on, shared_buffers 1GB, work_mem
#    64MB, maintenance_work_mem 1GB, max_wal_size 1GB (bounds the WAL on disk), random_page_cost 1.1.
#    The table: a column per event field, jsonb metadata, B-tree indexes on
#    time, (user, time), (type, time), request id, and a GIN index on a
#    stored tsvector of description, comments, files and metadata as text
#    (see benches/peers/pg.rs). SQLite: the same table and indexes, WAL,
#    synchronous=FULL, an FTS5 table kept by a trigger (benches/peers/sqlite.rs).
# 3. Phases (EVLOG_BENCH_ONLY, default all):
#    appends  64 clients append one event each at a time, each acknowledged
#             only when durable, 30 s per system: evlog's library (64 threads,
#             EventLog::append, fsync, indexer in-process) and SQLite (64
#             threads sharing one writer connection, autocommit INSERT)
#             in-process; PostgreSQL (64 connections over TCP, autocommit
#             INSERT) — benches/peers.
#    http     the same over HTTP: `evlog serve --durability fsync` (indexer
#             in-process) and wrk, 64 connections, one event per POST /events,
#             the same generated events (the pairing for PostgreSQL's wire
#             protocol; the library is the pairing for SQLite).
#    bulk     1,000,000 events: `evlog append --stdin` (durable when it
#             exits), then `evlog stats` (catches the index up: searchable);
#             PostgreSQL: one COPY into the indexed table; SQLite: one
#             transaction of inserts into the indexed table (durable and
#             searchable at commit) — benches/peers.
#    queries  10,000,000 events over 20 days, generated and indexed as
#             scripts/bench-index.sh does; the same records loaded into each
#             peer; the index bench's 15 filter, full-text and stats kinds
#             (plus "stats one day") on each system, warm cache, 50 runs
#             each (stop early after 300 s per kind); totals, first pages and
#             statistics of the first 4 runs compared across the systems
#             (MISMATCH lines; the script fails on one) — benches/peers.
# 4. Prints one table of ratios, every ratio written so that > 1 means
#    evlog is ahead: evlog ÷ peer for throughput, peer ÷ evlog for times.
#
# Environment:
#   EVLOG_BENCH_DIR           where data goes (default /tmp; not tmpfs). At full size the
#                             query phase peaks at ~10 GB: evlog's store (6.5 GB; its index is
#                             dropped once evlog is measured), then one peer at a time
#   EVLOG_BENCH_SECS          seconds per append run (30)
#   EVLOG_BENCH_THREADS       clients of the append phases (64)
#   EVLOG_BENCH_EVENTS        events of the bulk load (1000000)
#   EVLOG_BENCH_QUERY_EVENTS  events of the query store (10000000)
#   EVLOG_BENCH_QUERY_DAYS    its days (20)
#   EVLOG_BENCH_RUNS          runs per query kind and system (50)
#   EVLOG_BENCH_MAX_SECS      stop a kind early after this long (300)
#   EVLOG_BENCH_KINDS         only the query kinds whose name contains one of these (a,b)
#   EVLOG_BENCH_ONLY          phases (appends,http,bulk,queries)
# Quick check (about 3 min plus the build): EVLOG_BENCH_SECS=3 EVLOG_BENCH_EVENTS=20000 \
#   EVLOG_BENCH_QUERY_EVENTS=100000 EVLOG_BENCH_QUERY_DAYS=5 EVLOG_BENCH_RUNS=10 scripts/bench-peers.sh
#
# As root, PostgreSQL runs as the `postgres` user (the Debian package creates
# it). The server, the cluster and the work directory are stopped and removed
# on every exit, also on failure or Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=${EVLOG_BENCH_DIR:-/tmp}
secs=${EVLOG_BENCH_SECS:-30}
threads=${EVLOG_BENCH_THREADS:-64}
bulk_events=${EVLOG_BENCH_EVENTS:-1000000}
query_events=${EVLOG_BENCH_QUERY_EVENTS:-10000000}
query_days=${EVLOG_BENCH_QUERY_DAYS:-20}
runs=${EVLOG_BENCH_RUNS:-50}
max_secs=${EVLOG_BENCH_MAX_SECS:-300}
only=${EVLOG_BENCH_ONLY:-appends,http,bulk,queries}
kinds=${EVLOG_BENCH_KINDS:-}

mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-peers.XXXXXX")
chmod 755 "$work"
server_pid=
pg_data=
as_pg=()
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings from the environment or an evlog.toml must not change what is measured.
unset EVLOG_STORAGE_PATH EVLOG_DURABILITY EVLOG_CONFIG EVLOG_USER_ID_HASH_KEY EVLOG_ADDR EVLOG_KEYS_FILE EVLOG_LOG
for v in EVENTS SECS THREADS QUERY_EVENTS QUERY_DAYS RUNS MAX_SECS KINDS ONLY; do unset "EVLOG_BENCH_$v"; done

phase_on() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
calc() { awk "BEGIN { print ($*) }"; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
apt_install() {
  echo "== installing $*"
  local sudo_=
  [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq "$@" >/dev/null
}

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
CARGO_TARGET_DIR=$target nice -n 19 cargo build --release --locked
# The bench binary is run directly: no cargo (and no lock on the target
# directory) while measuring.
peers_bin=$(CARGO_TARGET_DIR=$target nice -n 19 cargo bench --locked --bench peers --no-run --message-format=json |
  python3 -c 'import json, sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable")][-1])')
bin=$target/release/evlog
peers() { "$peers_bin" --dir "$work" "$@"; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_install postgresql; fi
if ! command -v wrk >/dev/null; then apt_install wrk; fi
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

out=$work/results
: >"$out"
cd "$work" # no ./evlog.toml here

echo "== machine"
echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:     $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src benches 2>/dev/null || echo ' (src/ or benches/ modified)')"
echo "cpu:        $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "memory:     $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
echo "disk:       $(df -hT "$work" | awk 'NR==2 {print $1 ", " $2 ", " $3 ", mounted on " $7 ", " $5 " avail"}')"
echo "load:       $(cut -d' ' -f1-3 /proc/loadavg)"
echo "postgresql: $("$pg_bin/postgres" --version)"
echo "wrk:        $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "phases:     $only; $threads clients x ${secs}s; bulk $bulk_events events; queries on $query_events events over $query_days days, $runs runs per kind"
echo "RESULT load_start=$(cut -d' ' -f1 /proc/loadavg)" >>"$out"

# ---------------------------------------------------------------- PostgreSQL

echo "== postgresql: a private cluster in $work/pg"
mkdir -p "$work/pg"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$work/pg"
  as_pg=(runuser -u postgres --)
fi
pg_data=$work/pg/data
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_data" -U bench --auth=trust --no-locale -E UTF8 >"$work/pg/initdb.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/server.log" -w -t 120 \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$work/pg \
      -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
      -c max_connections=200 -c shared_buffers=1GB -c work_mem=64MB \
      -c maintenance_work_mem=1GB -c max_wal_size=1GB -c checkpoint_timeout=30min \
      -c effective_cache_size=12GB -c random_page_cost=1.1 -c timezone=UTC" start >/dev/null
pg_conn="host=127.0.0.1 port=$pg_port user=bench dbname=postgres"
echo "cluster: 127.0.0.1:$pg_port, data $pg_data"

# ---------------------------------------------------------------- phases

if phase_on appends; then
  echo "== appends: $threads in-process / TCP clients, one durable append at a time, ${secs}s per system"
  peers --only appends --threads "$threads" --secs "$secs" --pg "$pg_conn" | tee -a "$out"
fi

if phase_on http; then
  echo "== http: evlog serve (fsync, indexer in-process), wrk, $threads connections, one event per POST, ${secs}s"
  peers --only gen --events 20000 --out "$work/http.ndjson" >/dev/null
  cat - "$repo/scripts/lib/wrk-report.lua" >"$work/peers.lua" <<'LUA'
-- Single appends of the events of a file (3rd argument; one JSON object a
-- line), thread t of n (4th argument) taking every n-th line, cycled.
local reqs, i = {}, 0
function init(args)
  prefix, per_request = args[2], 1
  local h = {["Content-Type"] = "application/json", ["X-API-Key"] = args[1]}
  local n, k = tonumber(args[4]), 0
  for line in io.lines(args[3]) do
    if k % n == tid - 1 then reqs[#reqs + 1] = wrk.format("POST", "/events", h, line) end
    k = k + 1
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
  data=$work/http-store
  key=$("$bin" --storage "$data" keys add --role admin --user bench --label "scripts/bench-peers.sh")
  port=$(free_port)
  "$bin" --storage "$data" --durability fsync serve --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if curl -fsS --max-time 5 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
  wrk -t2 -c"$threads" -d"$secs"s --timeout 30s --latency -s "$work/peers.lua" "http://127.0.0.1:$port" -- \
    "$key" http "$work/http.ndjson" 2 | tee -a "$out"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
  rm -rf "$data"
fi

if phase_on bulk; then
  echo "== bulk: $bulk_events events"
  peers --only gen --events "$bulk_events" --out "$work/bulk.ndjson" >/dev/null
  data=$work/bulk-store
  echo "evlog: load $(cut -d' ' -f1-3 /proc/loadavg)"
  t0=$(now)
  "$bin" --storage "$data" --durability fsync append --stdin <"$work/bulk.ndjson" >"$work/bulk.ids"
  t1=$(now)
  total=$("$bin" --storage "$data" stats --start 2000-01-01T00:00:00Z --format json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])')
  t2=$(now)
  ids=$(wc -l <"$work/bulk.ids")
  if [ "$ids" != "$bulk_events" ] || [ "$total" != "$bulk_events" ]; then
    echo "error: evlog acknowledged $ids and counts $total of $bulk_events events" >&2
    exit 1
  fi
  durable=$(calc "$t1 - $t0")
  searchable=$(calc "$t2 - $t0")
  printf 'evlog      append --stdin (fsync): durable after %.1f s = %.0f events/s; searchable (evlog stats caught the index up) after %.1f s\n' \
    "$durable" "$(calc "$bulk_events / $durable")" "$searchable"
  printf 'RESULT bulk_evlog_durable_s=%.2f\nRESULT bulk_evlog_searchable_s=%.2f\n' "$durable" "$searchable" >>"$out"
  rm -rf "$data" "$work/bulk.ids"
  peers --only bulk --systems pg,sqlite --input "$work/bulk.ndjson" --pg "$pg_conn" | tee -a "$out"
  rm -f "$work/bulk.ndjson"
fi

if phase_on queries; then
  echo "== queries: $query_events events over $query_days days"
  peers --only queries --query-events "$query_events" --query-days "$query_days" --runs "$runs" \
    --max-secs "$max_secs" ${kinds:+--kinds "$kinds"} --pg "$pg_conn" | tee -a "$out"
fi
echo "RESULT load_end=$(cut -d' ' -f1 /proc/loadavg)" >>"$out"

# ---------------------------------------------------------------- summary

echo
echo "== summary (every ratio > 1 means evlog is ahead)"
python3 - "$out" <<'PY'
import re, sys
r = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\w+)=(.*)", line.strip())
    if m:
        r[m.group(1)] = m.group(2)
def f(k):
    v = r.get(k)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
def ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "-"
rows = []
def row(name, ev, pg, sq, r_pg, r_sq):
    rows.append((name, ev, pg, sq, r_pg, r_sq))
hl, lib, p, s = f("http_events_per_s"), f("append_evlog_lib_events_per_s"), f("append_pg_events_per_s"), f("append_sqlite_events_per_s")
if hl or lib:
    ev = "HTTP %s, library %s" % ("%.0f" % hl if hl else "-", "%.0f" % lib if lib else "-")
    row("durable single appends, 64 clients (events/s; evlog HTTP ÷ PG, library ÷ SQLite)", ev,
        "%.0f" % p if p else "-", "%.0f" % s if s else "-", ratio(hl, p), ratio(lib, s))
    hp, lp, pp, sp = f("http_p99"), f("append_evlog_lib_p99_ms"), f("append_pg_p99_ms"), f("append_sqlite_p99_ms")
    row("  ack latency p99 (ms; PG ÷ evlog HTTP, SQLite ÷ library)", "HTTP %s, library %s" % (hp, lp),
        pp, sp, ratio(pp, hp), ratio(sp, lp))
d, sr, bp, bs = f("bulk_evlog_durable_s"), f("bulk_evlog_searchable_s"), f("bulk_pg_s"), f("bulk_sqlite_s")
if d:
    row("bulk load, durable (s; peer ÷ evlog)", "%.1f" % d, bp, bs, ratio(bp, d), ratio(bs, d))
    row("bulk load, searchable (s; peer ÷ evlog)", "%.1f" % sr, bp, bs, ratio(bp, sr), ratio(bs, sr))
kinds = []
for k in r:
    m = re.match(r"q_evlog_(\w+)_p50_ms$", k)
    if m:
        kinds.append(m.group(1))
for k in kinds:
    for q in ("p50", "p99"):
        e, pg_, sq_ = f("q_evlog_%s_%s_ms" % (k, q)), f("q_pg_%s_%s_ms" % (k, q)), f("q_sqlite_%s_%s_ms" % (k, q))
        row("%s %s (ms)" % (k, q), e, pg_, sq_, ratio(pg_, e), ratio(sq_, e))
print("| workload | evlog | PostgreSQL | SQLite | vs PostgreSQL | vs SQLite |")
print("|---|---|---|---|---|---|")
for name, ev, pg_, sq_, a, b in rows:
    print("| %s | %s | %s | %s | %s | %s |" % (name, ev, pg_ if pg_ is not None else "-", sq_ if sq_ is not None else "-", a, b))
behind = [(n, a, b) for n, _, _, _, a, b in rows if any(x != "-" and float(x[:-1]) < 1 for x in (a, b))]
print("\nrows where evlog is behind a peer: %d of %d" % (len(behind), len(rows)))
for n, a, b in behind:
    print("  %s: vs PostgreSQL %s, vs SQLite %s" % (n, a, b))
print("load average: %s at the start, %s at the end" % (r.get("load_start"), r.get("load_end")))
if r.get("verify_mismatches") not in (None, "0"):
    print("MISMATCHES: %s answers differ between the systems (see the MISMATCH lines above)" % r["verify_mismatches"])
    sys.exit(1)
if r.get("verify_checked"):
    print("answers compared across the systems: %s, all equal" % r["verify_checked"])
PY
