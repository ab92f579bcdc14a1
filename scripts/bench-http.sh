#!/usr/bin/env bash
# HTTP server benchmarks against their targets (issue 4, item 7), in one run.
#
#   scripts/bench-http.sh [CARGO_TARGET_DIR]      (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds `evlog` (release) and installs `wrk` with apt-get if it is missing.
# 2. Creates a fresh storage directory on disk, an admin key with
#    `evlog keys add`, starts `evlog --durability fsync serve` on 127.0.0.1
#    (tail indexer in-process, as in production) and checks `GET /health`.
# 3. Phases, in this order, all against the same server and storage:
#    single  single-event `POST /events` (one JSON object per request),
#            64 connections: requests/s, latency p50/p99;
#    batch   `POST /events` with JSON arrays of 1,000 events: events/s;
#    rss     appends batches of 1,000 until the store holds
#            EVLOG_BENCH_RSS_EVENTS events, waits until `/health` shows the
#            index caught up, then reads VmRSS/VmHWM from /proc/PID/status;
#    query   `GET /events` filter queries (date+event_type, date+user_id,
#            all-time user_id, date+status, date+level, time windows, ...;
#            varied per request) while another client appends 1,000
#            events/s (batches of 10 every 10 ms): latency p50/p99.
#    The query phase runs last so that it searches the full store.
# 4. Prints a summary with PASS/FAIL per target, the CPU each server thread
#    group used per phase, and the share of the machine other processes used.
#
# The load generator is wrk (HTTP/1.1 keep-alive, closed loop) with Lua
# scripts written into the temporary directory; an event is a ~350-byte
# api_request-like object (type, user of 1,000, description, status, level,
# 5-key metadata, request id, source IP, duration), varied per request.
# wrk and the server share the machine's cores.
#
# Environment:
#   EVLOG_BENCH_DIR           where data goes (default /tmp; not tmpfs); ~10 GB at full size
#   EVLOG_BENCH_SECS          seconds per timed phase (30)
#   EVLOG_BENCH_THREADS       wrk threads (2)
#   EVLOG_BENCH_CONNS         connections, single-event phase (64)
#   EVLOG_BENCH_BATCH_CONNS   connections, batch and rss phases (8)
#   EVLOG_BENCH_QUERY_CONNS   connections, query phase (2)
#   EVLOG_BENCH_APPEND_RATE   events/s appended during the query phase (1000)
#   EVLOG_BENCH_RSS_EVENTS    events in the store before RSS is read (10000000)
#   EVLOG_BENCH_INDEX_WAIT    longest wait for the index to catch up, s (3600)
#   EVLOG_BENCH_ONLY          phases to run (single,batch,rss,query)
# Quick check (about 30 s): EVLOG_BENCH_SECS=3 EVLOG_BENCH_RSS_EVENTS=200000 scripts/bench-http.sh
#
# The server is stopped and the temporary directory removed on every exit,
# also on failure or Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=${EVLOG_BENCH_DIR:-/tmp}
secs=${EVLOG_BENCH_SECS:-30}
threads=${EVLOG_BENCH_THREADS:-2}
conns=${EVLOG_BENCH_CONNS:-64}
batch_conns=${EVLOG_BENCH_BATCH_CONNS:-8}
query_conns=${EVLOG_BENCH_QUERY_CONNS:-2}
append_rate=${EVLOG_BENCH_APPEND_RATE:-1000}
rss_events=${EVLOG_BENCH_RSS_EVENTS:-10000000}
index_wait=${EVLOG_BENCH_INDEX_WAIT:-3600}
only=${EVLOG_BENCH_ONLY:-single,batch,rss,query}
batch_size=1000

mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-http.XXXXXX")
server_pid=
appender_pid=
sampler_pid=
cleanup() {
  local status=$?
  if [ -n "$appender_pid" ]; then kill "$appender_pid" 2>/dev/null || true; fi
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 120); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings from the environment or an evlog.toml must not change what is measured.
unset EVLOG_STORAGE_PATH EVLOG_DURABILITY EVLOG_CONFIG EVLOG_USER_ID_HASH_KEY EVLOG_ADDR EVLOG_KEYS_FILE EVLOG_LOG

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
CARGO_TARGET_DIR=$target nice -n 19 cargo build --release --locked
bin=$target/release/evlog
if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }
done

data=$work/data
out=$work/results
: >"$out"
cd "$work" # no ./evlog.toml here

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
echo "disk:   $(df -hT "$work" | awk 'NR==2 {print $1 ", " $2 ", " $3 ", mounted on " $7}')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk:    $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $threads threads"
echo "phases: $only; $secs s each; connections: single $conns, batch $batch_conns, query $query_conns; append rate during queries $append_rate events/s; rss at $rss_events events"

# ---------------------------------------------------------------- helpers

# Machine-wide busy and total jiffies, from /proc/stat.
cpu_jiffies() { awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }
# CPU jiffies of a process (own) and of this shell with its reaped children.
proc_jiffies() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
self_jiffies() { awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' /proc/$$/stat; }
# Per-thread CPU of the server: "tid comm jiffies" lines.
thread_snapshot() {
  local t comm stat rest
  for t in /proc/"$server_pid"/task/*; do
    { read -r comm <"$t/comm" && stat=$(<"$t/stat"); } 2>/dev/null || continue
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${t##*/} ${comm// /_} $((${12} + ${13}))"
  done
}
load_begin() {
  read -r m_busy0 m_total0 < <(cpu_jiffies)
  s_j0=$(proc_jiffies "$server_pid")
  self_j0=$(self_jiffies)
  thread_snapshot >"$work/threads.0"
  t_begin=$(date +%s.%N)
}
# Prints the server's CPU, its busiest thread groups and the others' share;
# records "LOAD phase=NN" for the summary.
load_end() {
  local phase=$1 m_busy1 m_total1 s_j1 self_j1
  read -r m_busy1 m_total1 < <(cpu_jiffies)
  s_j1=$(proc_jiffies "$server_pid")
  self_j1=$(self_jiffies)
  thread_snapshot >"$work/threads.1"
  awk -v mb=$((m_busy1 - m_busy0)) -v mt=$((m_total1 - m_total0)) \
    -v sj=$((s_j1 - s_j0)) -v me=$((self_j1 - self_j0)) -v phase="$phase" \
    -v wall="$(calc "$(date +%s.%N) - $t_begin")" -v hz="$(getconf CLK_TCK)" '
    FNR == NR { before[$1] = $3; next }
    {
      d = $3 - ($1 in before ? before[$1] : 0); g = $2
      sub(/-?[0-9]+$/, "", g); if (g == "") g = $2
      cpu[g] += d; n[g]++
    }
    END {
      other = mt > 0 ? (mb - sj - me) / mt * 100 : 0; if (other < 0) other = 0
      printf "cpu: server %.0f%% of one core (%.2f of %d cores busy overall), load generator and script %.0f%%, other processes %.0f%% of the machine\n", \
        sj / hz / wall * 100, mb / hz / wall, mt / hz / wall + 0.5, me / hz / wall * 100, other
      line = "server threads (% of one core):"
      k = 0
      while (k < 8) {
        best = ""; bv = -1
        for (g in cpu) if (cpu[g] > bv) { bv = cpu[g]; best = g }
        if (best == "" || bv <= 0) break
        line = line sprintf(" %s x%d %.0f%%;", best, n[best], bv / hz / wall * 100)
        delete cpu[best]; k++
      }
      print line
      printf "LOAD %s=%.0f\n", phase, other
    }' "$work/threads.0" "$work/threads.1" | tee -a "$out"
}
calc() { awk "BEGIN { print ($*) }"; }
get() { awk -F= -v k="RESULT $1" '$1 == k {print $2}' "$out" | tail -1; }
health() { curl -fsS --max-time 30 "$url/health"; }
health_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
appended() { curl -fsS --max-time 30 "$url/metrics" | awk '$1 == "evlog_events_appended_total" {printf "%d\n", $2}'; }
server_alive() {
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "error: the server exited; its log:" >&2
    tail -30 "$work/server.log" >&2
    exit 1
  fi
}
# Every 0.5 s, the largest RssAnon and RssFile (KiB) of the server so far,
# into $work/rss.max: VmHWM alone does not tell heap from mapped files.
rss_sampler() {
  local a f ma=0 mf=0
  while kill -0 "$server_pid" 2>/dev/null; do
    read -r a f < <(awk '$1 == "RssAnon:" {a = $2} $1 == "RssFile:" {f = $2} END {print a + 0, f + 0}' "/proc/$server_pid/status" 2>/dev/null || echo "0 0")
    if [ "$a" -gt "$ma" ]; then ma=$a; fi
    if [ "$f" -gt "$mf" ]; then mf=$f; fi
    echo "$ma $mf" >"$work/rss.max"
    sleep 0.5
  done
}
# Waits until /health shows no lag and at least $1 documents; prints the seconds waited.
wait_indexed() {
  local want=$1 start now h lag docs
  start=$(date +%s.%N)
  while :; do
    server_alive
    h=$(health)
    lag=$(health_field lag_events <<<"$h")
    docs=$(health_field documents <<<"$h")
    if [ "${lag:-1}" = 0 ] && [ "${docs:-0}" -ge "$want" ]; then break; fi
    now=$(date +%s.%N)
    if [ "$(calc "$now - $start > $index_wait")" = 1 ]; then
      echo "error: the index did not catch up within ${index_wait}s: $h" >&2
      exit 1
    fi
    # /health counts the lagging events by reading the day file past the
    # index checkpoint: with a long backlog each call reads gigabytes, so ask
    # seldom then.
    if [ "${lag:-0}" -gt 100000 ]; then sleep 2; else sleep 0.5; fi
  done
  calc "$(date +%s.%N) - $start"
}
# After a POST phase: the index lag the burst left (the indexer runs at a
# lower CPU priority than appends) and how long the index took to catch up.
index_catch_up() {
  local lag
  lag=$(health | health_field lag_events)
  echo "RESULT $1_lag_at_end=${lag:-?}" | tee -a "$out"
  echo "RESULT $1_catch_up_s=$(printf '%.1f' "$(wait_indexed 0)")" | tee -a "$out"
}
# Runs wrk; its Lua done() prints "RESULT <prefix>_<name>=<value>" lines.
run_wrk() {
  local script=$1 c=$2 d=$3 prefix=$4
  shift 4
  wrk -t"$threads" -c"$c" -d"$d"s --timeout 30s --latency -s "$work/$script" "$url" -- "$key" "$prefix" "$@" |
    tee -a "$out"
}
phase_on() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- Lua scripts

# The event generator (one JSON object, ~350 bytes), shared by the POST
# scripts, followed by the shared setup()/done() hooks (scripts/lib/).
cat - "$repo/scripts/lib/wrk-report.lua" >"$work/gen.lua" <<'LUA'
local types = {"api_request", "api_request", "api_request", "api_request", "api_request",
  "api_request", "commit", "push", "auth_login", "auth_failure", "api_error", "file_change"}
local paths = {"/api/v1/orders", "/api/v1/users", "/api/v1/invoices", "/api/v1/search", "/api/v1/cart"}
local methods = {"GET", "GET", "GET", "POST", "PUT", "DELETE"}
local regions = {"eu-west-1", "us-east-1", "ap-south-1"}
function make_event(tid, n)
  local t = types[math.random(#types)]
  local status, level = "success", "info"
  local r = math.random(100)
  if t == "auth_failure" then status, level = "failure", "security"
  elseif t == "api_error" then status, level = "failure", "error"
  elseif r <= 5 then status, level = "failure", "warning"
  elseif r <= 7 then status = "pending" end
  local m = methods[math.random(#methods)]
  local p = paths[math.random(#paths)] .. "/" .. math.random(1, 99999)
  return string.format('{"event_type":"%s","user_id":"user%04d","action_description":"%s %s returned %d",'
    .. '"status":"%s","level":"%s","metadata":{"method":"%s","path":"%s","region":"%s","client":"web",'
    .. '"version":"2.4.%d"},"request_id":"req-%d-%08d","source_ip":"10.%d.%d.%d","duration_ms":%.1f}',
    t, math.random(0, 999), m, p, status == "success" and 200 or 500, status, level, m, p,
    regions[math.random(#regions)], math.random(0, 9), tid, n,
    math.random(0, 255), math.random(0, 255), math.random(1, 254), math.random() * 250)
end
LUA

# Single events: 2,000 different requests per thread, cycled.
# Script arguments: key, result prefix, then per script.
cat "$work/gen.lua" - >"$work/single.lua" <<'LUA'
local reqs, i = {}, 0
function init(args)
  prefix, per_request = args[2], 1
  math.randomseed(tid * 7919)
  local h = {["Content-Type"] = "application/json", ["X-API-Key"] = args[1]}
  for n = 1, 2000 do
    reqs[n] = wrk.format("POST", "/events", h, make_event(tid, n))
  end
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA

# Batches: JSON arrays of N (3rd argument) events, 8 different bodies per
# thread, cycled; the 4th argument varies the bodies between runs.
cat "$work/gen.lua" - >"$work/batch.lua" <<'LUA'
local reqs, i = {}, 0
function init(args)
  local size = tonumber(args[3])
  prefix, per_request = args[2], size
  math.randomseed(tid * 104729 + tonumber(args[4]))
  local h = {["Content-Type"] = "application/json", ["X-API-Key"] = args[1]}
  for b = 1, 8 do
    local ev = {}
    for n = 1, size do ev[n] = make_event(tid, ((tonumber(args[4]) * 8) + b - 1) * size + n) end
    reqs[b] = wrk.format("POST", "/events", h, "[" .. table.concat(ev, ",") .. "]")
  end
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA

# Filter queries: the paths come from a file (3rd argument), one per line;
# each thread starts at another place.
cat "$work/gen.lua" - >"$work/query.lua" <<'LUA'
local reqs, i = {}, 0
function init(args)
  prefix, per_request = args[2], 1
  math.randomseed(tid * 31337)
  local h = {["X-API-Key"] = args[1]}
  for line in io.lines(args[3]) do
    reqs[#reqs + 1] = wrk.format("GET", line, h)
  end
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA

# The steady appender of the query phase: batches of rate/100 events every 10 ms.
cat >"$work/appender.py" <<'PY'
import http.client, json, random, sys, time
host, port, key, rate, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
per = max(1, rate // 100)
random.seed(42)
types = ["api_request"] * 6 + ["commit", "push", "auth_login", "auth_failure", "api_error", "file_change"]
def event(n):
    t = random.choice(types)
    status, level = ("failure", "error") if t == "api_error" else ("failure", "security") if t == "auth_failure" else ("success", "info")
    return {"event_type": t, "user_id": "user%04d" % random.randrange(1000),
            "action_description": "GET /api/v1/orders/%d returned 200" % random.randrange(99999),
            "status": status, "level": level,
            "metadata": {"method": "GET", "path": "/api/v1/orders", "region": "eu-west-1", "client": "live", "version": "2.4.1"},
            "request_id": "live-%08d" % n, "source_ip": "10.9.8.7", "duration_ms": round(random.random() * 250, 1)}
conn = http.client.HTTPConnection(host, port, timeout=30)
hdr = {"Content-Type": "application/json", "X-API-Key": key}
sent = bad = n = 0
lat = []
start = time.monotonic()
tick = start
while tick - start < secs:
    body = json.dumps([event(n + j) for j in range(per)])
    n += per
    t0 = time.monotonic()
    conn.request("POST", "/events", body, hdr)
    r = conn.getresponse(); r.read()
    lat.append(time.monotonic() - t0)
    if r.status == 201: sent += per
    else: bad += 1
    tick += 0.01
    d = tick - time.monotonic()
    if d > 0: time.sleep(d)
el = time.monotonic() - start
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
print("RESULT live_events=%d" % sent)
print("RESULT live_events_per_s=%.0f" % (sent / el))
print("RESULT live_bad=%d" % bad)
print("RESULT live_p50=%.2f" % pct(0.50))
print("RESULT live_p99=%.2f" % pct(0.99))
PY

# ---------------------------------------------------------------- server

echo "== server"
key=$("$bin" --storage "$data" keys add --role admin --user bench --label "scripts/bench-http.sh")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$bin" --storage "$data" --durability fsync serve --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  server_alive
  if health >/dev/null 2>&1; then break; fi
  sleep 0.2
done
echo "health: $(health)"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-API-Key: $key" "$url/events?limit=1")
[ "$status" = 200 ] || { echo "error: GET /events with the bench key: $status" >&2; exit 1; }
echo "server: pid $server_pid on $url, storage $data, durability fsync"
wait_indexed 0 >/dev/null # the server's own first events

# ---------------------------------------------------------------- phases

if phase_on single; then
  echo "== single: POST /events, one event per request, $conns connections, ${secs}s"
  load_begin
  run_wrk single.lua "$conns" "$secs" single
  load_end single
  index_catch_up single
fi

if phase_on batch; then
  echo "== batch: POST /events, JSON arrays of $batch_size events, $batch_conns connections, ${secs}s"
  load_begin
  run_wrk batch.lua "$batch_conns" "$secs" batch "$batch_size" 0
  load_end batch
  index_catch_up batch
fi

if phase_on rss; then
  echo "== rss: append batches of $batch_size until $rss_events events are stored, wait for the index"
  fill_start=$(date +%s.%N)
  rss_sampler &
  sampler_pid=$!
  load_begin
  have=$(appended)
  have0=$have
  round=0
  rate=${EVLOG_BENCH_FILL_RATE:-$(get batch_events_per_s)}
  rate=${rate:-100000}
  while [ "$have" -lt "$rss_events" ]; do
    server_alive
    round=$((round + 1))
    left=$((rss_events - have))
    d=$(((left + rate - 1) / rate))
    [ "$d" -ge 1 ] || d=1
    [ "$d" -le 60 ] || d=60
    run_wrk batch.lua "$batch_conns" "$d" "fill$round" "$batch_size" "$round" >"$work/fill.out"
    have=$(appended)
    r=$(awk -F= '/_events_per_s=/ {print $2}' "$work/fill.out")
    if [ -n "$r" ] && [ "$r" -gt 0 ]; then rate=$r; fi
    echo "  fill round $round: ${d}s at $r events/s; $have appended"
  done
  append_secs=$(calc "$(date +%s.%N) - $fill_start")
  fill_rate=$(calc "int(($(appended) - ${have0}) / $append_secs)")
  wait_secs=$(wait_indexed "$rss_events")
  total_secs=$(calc "$(date +%s.%N) - $fill_start")
  load_end rss
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=
  read -r peak_anon peak_file <"$work/rss.max"
  h=$(health)
  docs=$(health_field documents <<<"$h")
  echo "health: $h"
  status_file=/proc/$server_pid/status
  kib() { awk -v k="$1:" '$1 == k {print $2}' "$status_file"; }
  mib() { echo $(($(kib "$1") / 1024)); }
  {
    echo "RESULT rss_docs=$docs"
    echo "RESULT rss_fill_rate=$fill_rate"
    printf 'RESULT rss_append_s=%.0f\nRESULT rss_wait_s=%.0f\nRESULT rss_total_s=%.0f\n' "$append_secs" "$wait_secs" "$total_secs"
    echo "RESULT rss_vmrss_mib=$(mib VmRSS)"
    echo "RESULT rss_vmhwm_mib=$(mib VmHWM)"
    echo "RESULT rss_anon_mib=$(mib RssAnon)"
    echo "RESULT rss_file_mib=$(mib RssFile)"
    echo "RESULT rss_peak_anon_mib=$((peak_anon / 1024))"
    echo "RESULT rss_peak_file_mib=$((peak_file / 1024))"
    echo "RESULT rss_threads=$(awk '$1 == "Threads:" {print $2}' "$status_file")"
    echo "RESULT rss_store_mib=$(du -sm "$data" | cut -f1)"
    echo "RESULT rss_index_mib=$(du -sm "$data/index" 2>/dev/null | cut -f1)"
  } | tee -a "$out"
fi

if phase_on query; then
  echo "== query: GET /events filters, $query_conns connections, ${secs}s, while $append_rate events/s are appended"
  wait_indexed 0 >/dev/null
  today=$(date -u +%F)
  from=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
  from1=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
  to=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
  python3 - "$today" "$from" "$from1" "$to" >"$work/queries.txt" <<'PY'
import random, sys
today, start10, start60, end = sys.argv[1:5]
random.seed(7)
types = ["api_request", "commit", "push", "auth_login", "auth_failure", "api_error", "file_change"]
u = lambda: "user%04d" % random.randrange(1000)
qs = []
for _ in range(40):
    k = random.randrange(10)
    if k == 0: q = "date=%s&event_type=%s" % (today, random.choice(types))
    elif k == 1: q = "date=%s&user_id=%s" % (today, u())
    elif k == 2: q = "user_id=%s&start=2020-01-01T00:00:00Z" % u()
    elif k == 3: q = "date=%s&status=failure" % today
    elif k == 4: q = "date=%s&level=%s" % (today, random.choice(["error", "security", "warning"]))
    elif k == 5: q = "start=%s&end=%s&event_type=%s" % (start10, end, random.choice(types))
    elif k == 6: q = "start=%s&end=%s" % (start60, end)
    elif k == 7: q = "date=%s&event_type=commit&event_type=push&user_id=%s" % (today, u())
    elif k == 8: q = "user_id=%s&status=failure&start=2020-01-01T00:00:00Z" % u()
    else: q = "date=%s&event_type=api_error&limit=20" % today
    qs.append("/events?" + q)
print("\n".join(qs))
PY
  bad=0
  while read -r q; do
    c=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-API-Key: $key" "$url$q")
    if [ "$c" != 200 ]; then echo "error: $c for GET $q" >&2; bad=1; fi
  done <"$work/queries.txt"
  [ "$bad" = 0 ] || exit 1
  echo "queries: $(wc -l <"$work/queries.txt") different paths, e.g. $(sed -n 1p "$work/queries.txt")"
  load_begin
  python3 "$work/appender.py" 127.0.0.1 "$port" "$key" "$append_rate" "$((secs + 4))" >"$work/live.out" &
  appender_pid=$!
  sleep 2
  run_wrk query.lua "$query_conns" "$secs" query "$work/queries.txt"
  wait "$appender_pid"
  appender_pid=
  tee -a "$out" <"$work/live.out"
  load_end query
  echo "per query kind, each path 10 times in a row, one client, no appends (ms):"
  python3 - "$port" "$key" "$work/queries.txt" <<'PY' | tee -a "$out"
import http.client, json, sys, time, urllib.parse
port, key, paths = int(sys.argv[1]), sys.argv[2], open(sys.argv[3]).read().split()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
kinds = {}
for p in paths:
    names = [k for k, _ in urllib.parse.parse_qsl(p.split("?", 1)[1])]
    kind = "+".join(dict.fromkeys(n for n in names if n != "limit"))
    for _ in range(10):
        t0 = time.monotonic()
        conn.request("GET", p, headers={"X-API-Key": key})
        r = conn.getresponse(); body = r.read()
        ms = (time.monotonic() - t0) * 1000
        k = kinds.setdefault(kind, {"ms": [], "total": []})
        k["ms"].append(ms)
        k["total"].append(json.loads(body).get("total", 0) if r.status == 200 else -1)
for kind, k in sorted(kinds.items(), key=lambda kv: -max(kv[1]["ms"])):
    ms = sorted(k["ms"])
    print("  %-40s n=%-4d p50 %7.2f  max %7.2f  matches %d..%d" % (kind, len(ms), ms[len(ms) // 2], ms[-1], min(k["total"]), max(k["total"])))
PY
fi

# ---------------------------------------------------------------- summary

server_alive
echo
echo "== summary"
pf() { if [ "$(calc "$1")" = 1 ]; then echo PASS; else echo FAIL; fi; }
noisy() { local l; l=$(awk -F= -v k="LOAD $1" '$1 == k {print $2}' "$out"); if [ "${l:-0}" -gt 10 ]; then echo "NOISY ${l}%"; else echo "${l:-?}%"; fi; }
{
  printf '%-62s %-12s %-52s %-6s %s\n' target goal measured result "other load"
  if [ -n "$(get single_req_per_s)" ]; then
    r=$(get single_req_per_s)
    ok=$([ "$(get single_bad)" = 0 ] && pf "$r >= 30000" || echo FAIL)
    printf '%-62s %-12s %-52s %-6s %s\n' "single-event POST /events, $conns conns, fsync" ">= 30,000/s" \
      "$r req/s, p50 $(get single_p50) ms, p99 $(get single_p99) ms" "$ok" "$(noisy single)"
  fi
  if [ -n "$(get batch_events_per_s)" ]; then
    r=$(get batch_events_per_s)
    ok=$([ "$(get batch_bad)" = 0 ] && pf "$r >= 300000" || echo FAIL)
    printf '%-62s %-12s %-52s %-6s %s\n' "POST /events, batches of $batch_size, $batch_conns conns, fsync" ">= 300,000/s" \
      "$r events/s ($(get batch_req_per_s) req/s, p99 $(get batch_p99) ms)" "$ok" "$(noisy batch)"
  fi
  if [ -n "$(get query_p99)" ]; then
    p=$(get query_p99)
    ok=$([ "$(get query_bad)" = 0 ] && [ "$(get live_bad)" = 0 ] && pf "$p <= 20" || echo FAIL)
    printf '%-62s %-12s %-52s %-6s %s\n' "GET /events filters, $query_conns conns, $(get live_events_per_s) events/s appended" "p99 <= 20 ms" \
      "p99 $p ms (p50 $(get query_p50), p99.9 $(get query_p99_9); $(get query_req_per_s) q/s)" "$ok" "$(noisy query)"
  fi
  if [ -n "$(get rss_vmrss_mib)" ]; then
    printf '%-62s %-12s %-52s %-6s %s\n' "server RSS after $(get rss_docs) events indexed" "(report)" \
      "VmRSS $(get rss_vmrss_mib) MiB, VmHWM $(get rss_vmhwm_mib) MiB" "-" "$(noisy rss)"
  fi
} | tee "$work/summary"
echo
for p in single batch query; do
  e=$(get "${p}_errors")
  if [ -n "$e" ]; then echo "$p errors: $e (of $(get "${p}_requests") requests)"; fi
done
for p in single batch; do
  if [ -n "$(get "${p}_lag_at_end")" ]; then
    echo "$p: index lag at the end of the phase $(get "${p}_lag_at_end") events, caught up $(get "${p}_catch_up_s") s later"
  fi
done
if [ -n "$(get single_p99)" ]; then
  echo "single latency ms: p50 $(get single_p50), p90 $(get single_p90), p99 $(get single_p99), p99.9 $(get single_p99_9), max $(get single_max)"
fi
if [ -n "$(get rss_vmrss_mib)" ]; then
  echo "rss: $(get rss_docs) documents; appends took $(get rss_append_s) s ($(get rss_fill_rate) events/s), then the index caught up $(get rss_wait_s) s later ($(get rss_total_s) s in all);" \
    "RssAnon $(get rss_anon_mib) MiB, RssFile $(get rss_file_mib) MiB, $(get rss_threads) threads" \
    "(largest sampled during the phase: RssAnon $(get rss_peak_anon_mib) MiB, RssFile $(get rss_peak_file_mib) MiB); storage $(get rss_store_mib) MiB (index $(get rss_index_mib) MiB)"
fi
if [ -n "$(get live_events)" ]; then
  echo "live appender: $(get live_events) events at $(get live_events_per_s) events/s, ack p50 $(get live_p50) ms, p99 $(get live_p99) ms, $(get live_bad) failed requests"
fi
if grep -q NOISY "$work/summary"; then
  echo "NOISY: other processes used more than 10% of the machine during a phase; rerun when it is idle."
fi
echo "appended in all: $(appended) events"
