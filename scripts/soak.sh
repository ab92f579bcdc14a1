#!/usr/bin/env bash
# Soak test (issue 6, item 1): mixed HTTP load on one `evlog serve`, the
# server SIGKILLed and restarted every couple of minutes, the index directory
# deleted while it runs, rotation with small thresholds; at the end every
# acknowledged event must be in the files and in the index exactly once and
# `evlog verify` must pass.
#
#   scripts/soak.sh [CARGO_TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds `evlog` and the `seed_days` example (release). The time limit
#    below starts after the build.
# 2. A fresh storage directory: SOAK_SEED_DAYS past days of
#    SOAK_SEED_PER_DAY events each (examples/seed_days.rs: the library with a
#    manual clock, chained in order), so that rotation has old days to
#    compress and delete; an admin key (`evlog keys add`).
# 3. `evlog --durability fsync serve` on 127.0.0.1 (a free port), with
#    EVLOG_COMPRESS_AFTER / EVLOG_DELETE_AFTER / EVLOG_MAX_TOTAL_SIZE set for
#    rotation; scripts/soak-load.py drives single and batch appends
#    (JSON and NDJSON), queries, stats, types, health, two SSE clients
#    (resuming with Last-Event-ID) and POST /admin/rotate every 20 s (a 404
#    means rotation is not in this build: recorded, the soak goes on). Every
#    acknowledged id is written to a file.
# 4. Every SOAK_KILL_EVERY seconds the server is killed with SIGKILL (the
#    second time SIGTERM) and restarted on the same storage and port;
#    halfway between the first SOAK_INDEX_DELETIONS kills, `rm -rf
#    <storage>/index` under the running server (the indexer rebuilds it).
# 5. After SOAK_SECS: load stopped, server stopped with SIGTERM; a last
#    server start, wait until /health shows no lag, /events/export of all
#    time for the index; stopped again; `evlog verify`; `evlog cat` for the
#    files.
#    Prints a summary: acknowledged, kills survived, index deletions, lost,
#    duplicated (files, index), phantoms in the index, seeded days deleted
#    by retention (accounted for, not lost), verify result, duration.
#    Exit 0 only if lost = 0, duplicated = 0, the index matches the files
#    and verify passes.
#
# Environment (defaults):
#   SOAK_SECS=600 (at most 720: with the checks the run stays under 15 min)
#   SOAK_KILL_EVERY=120  SOAK_INDEX_DELETIONS=3
#   SOAK_SEED_DAYS=12  SOAK_SEED_PER_DAY=400
#   SOAK_COMPRESS_AFTER=3d  SOAK_DELETE_AFTER=8d  SOAK_MAX_TOTAL_SIZE=1GiB
#   SOAK_DIR=/tmp (where the storage goes; removed at the end unless SOAK_KEEP=1 or failure)
# Quick check: SOAK_SECS=60 SOAK_KILL_EVERY=20 scripts/soak.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
secs=${SOAK_SECS:-600}
if [ "$secs" -gt 720 ]; then secs=720; fi
kill_every=${SOAK_KILL_EVERY:-120}
deletions=${SOAK_INDEX_DELETIONS:-3}
seed_days=${SOAK_SEED_DAYS:-12}
seed_per_day=${SOAK_SEED_PER_DAY:-400}
export EVLOG_COMPRESS_AFTER=${SOAK_COMPRESS_AFTER:-3d}
export EVLOG_DELETE_AFTER=${SOAK_DELETE_AFTER:-8d}
export EVLOG_MAX_TOTAL_SIZE=${SOAK_MAX_TOTAL_SIZE:-1GiB}
unset EVLOG_STORAGE_PATH EVLOG_CONFIG EVLOG_KEYS_FILE EVLOG_ADDR EVLOG_FAULTS EVLOG_DURABILITY

echo "== build (release)"
(cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release --locked --bin evlog --example seed_days)
evlog=$target/release/evlog
seed=$target/release/examples/seed_days

work=$(mktemp -d "${SOAK_DIR:-/tmp}/evlog-soak.XXXXXX")
data=$work/data
server_pid=
load_pid=
watchdog_pid=
ok=0
cleanup() {
  local status=$?
  if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; fi
  if [ -n "$watchdog_pid" ]; then
    kill $(pgrep -P "$watchdog_pid") "$watchdog_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ "$ok" = 1 ] && [ "${SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$work"
  else
    echo "storage and logs kept in $work" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The whole soak (after the build) ends within 15 minutes, whatever happens.
(sleep 900; echo "soak: 15 minute limit reached" >&2; kill -TERM $$) &
watchdog_pid=$!

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
started=$(date +%s)

echo "== seed $seed_days past days x $seed_per_day events"
"$seed" "$data" "$seed_days" "$seed_per_day" > "$work/seeded.txt"
key=$("$evlog" --storage "$data" keys add --role admin --user soak)

start_server() {
  "$evlog" --storage "$data" --durability fsync serve --addr "127.0.0.1:$port" \
    >> "$work/server.out" 2>> "$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 600); do
    if curl -sf -o /dev/null "$base/health"; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || { echo "server died at start" >&2; tail -20 "$work/server.log" >&2; return 1; }
    sleep 0.1
  done
  echo "server did not answer /health" >&2
  return 1
}

stop_server() { # signal
  kill "-$1" "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

echo "== serve on $base for ${secs}s (kill every ${kill_every}s, $deletions index deletions)"
start_server
python3 "$repo/scripts/soak-load.py" "$base" "$key" "$work" "$secs" > "$work/load.out" 2>&1 &
load_pid=$!

kills=0
terms=0
index_deletions=0
t0=$(date +%s)
next_kill=$kill_every
next_delete=$((kill_every / 2))
while :; do
  now=$(( $(date +%s) - t0 ))
  if [ "$now" -ge "$secs" ]; then break; fi
  if [ "$now" -ge "$next_delete" ] && [ "$index_deletions" -lt "$deletions" ]; then
    # The indexer may write (or already recreate) files meanwhile: retry.
    for _ in 1 2 3 4 5; do rm -rf "$data/index" 2>/dev/null && break; sleep 0.2; done
    index_deletions=$((index_deletions + 1))
    echo "  t=${now}s index directory deleted ($index_deletions)"
    next_delete=$((next_delete + kill_every))
  fi
  if [ "$now" -ge "$next_kill" ] && [ $((now + 10)) -lt "$secs" ]; then
    if [ $((kills + terms)) = 1 ]; then
      stop_server TERM
      terms=$((terms + 1))
      echo "  t=${now}s server stopped with SIGTERM, restarting"
    else
      stop_server KILL
      kills=$((kills + 1))
      echo "  t=${now}s server SIGKILLed, restarting"
    fi
    start_server
    next_kill=$((next_kill + kill_every))
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "server died by itself" >&2
    tail -30 "$work/server.log" >&2
    exit 1
  fi
  sleep 1
done

touch "$work/stop"
wait "$load_pid" || true
load_pid=
stop_server TERM
load_secs=$(( $(date +%s) - t0 ))

echo "== checks"
# The index: a last start, wait until it has caught up, export everything.
start_server
python3 - "$base" "$key" "$work" <<'EOF'
import http.client, json, sys, time, urllib.parse
base, key, out = sys.argv[1:4]
u = urllib.parse.urlparse(base)
deadline = time.time() + 120
while True:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", "/health")
    h = json.loads(c.getresponse().read())
    if h["index"]["lag_events"] == 0 or time.time() > deadline:
        break
    time.sleep(0.5)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
c.request("GET", "/events/export?format=ndjson&start=1970-01-01T00:00:00Z", headers={"X-API-Key": key})
r = c.getresponse()
assert r.status == 200, r.status
with open(f"{out}/index.txt", "w") as f:
    for line in r:
        if line.strip():
            f.write(json.loads(line)["id"] + "\n")
with open(f"{out}/health.json", "w") as f:
    json.dump(h, f)
EOF
stop_server TERM

# The files, after the last stop (its own system_start/stop events included).
set +e
"$evlog" --storage "$data" verify > "$work/verify.txt" 2>&1
verify_status=$?
set -e
"$evlog" --storage "$data" cat 2>> "$work/cat.err" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(e["id"], e["user_id"], e["timestamp"][:10])
' > "$work/files.txt"
ls "$data" > "$work/ls.txt"
python3 - "$work" "$verify_status" "$kills" "$terms" "$index_deletions" "$load_secs" "$(( $(date +%s) - started ))" <<'EOF'
import collections, json, os, sys
work, verify_status, kills, terms, deletions, load_secs, total_secs = sys.argv[1:8]
acked_list = [l.strip() for l in open(f"{work}/acked.txt") if l.strip()]
acked = set(acked_list)
files = collections.Counter()
users, days = {}, {}
for line in open(f"{work}/files.txt"):
    i, user, day = line.split()
    files[i] += 1
    users[i], days[i] = user, day
index = collections.Counter(l.strip() for l in open(f"{work}/index.txt") if l.strip())
seeded = dict(l.split() for l in open(f"{work}/seeded.txt"))
present_days = {f.split("_")[1].split(".")[0] for f in open(f"{work}/ls.txt").read().split() if f.startswith("events_") and not f.endswith(".torn")}
deleted_days = sorted(d for d in seeded if d not in present_days)
compressed_days = sorted(f.split("_")[1].split(".")[0] for f in open(f"{work}/ls.txt").read().split() if f.startswith("events_") and f.endswith(".jsonl.gz"))
seeded_in_files = collections.Counter(days[i] for i in files if users[i].startswith("seed-"))
seeded_lost = sum(int(n) - seeded_in_files.get(d, 0) for d, n in seeded.items() if d in present_days)
load = json.load(open(f"{work}/load.json")) if os.path.exists(f"{work}/load.json") else {}
lost = [i for i in acked if files[i] == 0]
dup_files = [i for i, n in files.items() if n > 1]
dup_index = [i for i, n in index.items() if n > 1]
# The last server's own stop event is written after the export.
missing_index = [i for i in files if i not in index and users[i] != "evlog"]
phantoms = [i for i in index if i not in files]
unacked = [i for i in files if i not in acked and not users[i].startswith("seed-")]
verify = open(f"{work}/verify.txt").read().strip()
good = (not lost and not dup_files and not dup_index and not missing_index and not phantoms
        and seeded_lost == 0 and verify_status == "0" and len(acked) == len(acked_list))
s = f"""== soak summary
duration:            {load_secs} s of load ({total_secs} s with seeding and checks)
acknowledged:        {len(acked)} events ({len(acked_list) - len(acked)} ids acknowledged twice)
kills survived:      {kills} SIGKILL + {terms} SIGTERM
index deletions:     {deletions} (rebuilt while serving)
lost:                {len(lost)}
duplicated:          {len(dup_files)} in the files, {len(dup_index)} in the index
index vs files:      {len(missing_index)} stored events missing from the index, {len(phantoms)} phantoms
unacknowledged but stored: {len(unacked)} (requests cut by a kill, and the server's own events)
seeded past days:    {len(seeded)} x {next(iter(seeded.values()), 0)}; deleted by retention: {len(deleted_days)} {deleted_days} (accounted for); seeded events lost from kept days: {seeded_lost}
rotation:            {load.get("rotation", "never answered")}; days compressed at the end: {len(compressed_days)} {compressed_days}
stored events:       {sum(files.values())} in files, {sum(index.values())} in the index
load:                {json.dumps({k: v for k, v in load.items() if k not in ("last_rotate",)}, sort_keys=True)}
verify:              {verify} (exit {verify_status})
result:              {"PASS" if good else "FAIL"}"""
print(s)
open(f"{work}/summary.txt", "w").write(s + "\n")
sys.exit(0 if good else 1)
EOF
ok=1
