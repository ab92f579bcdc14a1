#!/usr/bin/env bash
# Storage faults against a real `evlog serve` (issue 6, item 2). Needs root
# (mounts a small tmpfs); everything stays on 127.0.0.1 and under a
# temporary directory, unmounted on exit.
#
#   sudo scripts/faults.sh [CARGO_TARGET_DIR]
#
# Scenarios (each prints PASS or FAIL with its figures):
#   enospc     a 4 MiB tmpfs filled by appends until the server answers 507
#              insufficient_storage; a filler file removed; appends answer
#              201 again; every acknowledged event stored once, no torn
#              line, `evlog verify` passes.
#   fsync      EVLOG_FAULTS=fsync_fail=3 (failpoint: the first three
#              fdatasyncs fail with EIO; no file system fails fsync on
#              demand): 503 storage_failed, then 201; no event whose append
#              failed is stored, every acknowledged one is.
#   readonly   the tmpfs remounted read-only with no evlog running: `evlog
#              append` and `evlog serve` fail with a read-only message (exit
#              2), `evlog cat` and `verify` still read; remounted read-write,
#              appends work. Then an attempt to remount read-only under a
#              running server (the kernel refuses while files are open for
#              writing: recorded as is).
#   index      the index directory deleted under a running server: queries
#              recover with every event, /health counts the rebuild.
# The clock stepping back is covered by tests/it/faults.rs only (this
# script does not touch the system clock).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
if [ "$(id -u)" != 0 ]; then echo "faults.sh needs root (tmpfs mounts)" >&2; exit 2; fi
unset EVLOG_STORAGE_PATH EVLOG_CONFIG EVLOG_KEYS_FILE EVLOG_ADDR EVLOG_FAULTS EVLOG_DURABILITY

(cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release --locked --bin evlog)
evlog=$target/release/evlog

work=$(mktemp -d /tmp/evlog-faults.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
server_pid=
failures=0
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  umount "$mnt" 2>/dev/null || true
  if [ "$failures" = 0 ] && [ "$status" = 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
  exit "$status"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

result() { # name ok detail
  if [ "$2" = 1 ]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}

serve() { # storage [env...]
  local dir=$1; shift
  env "$@" "$evlog" --storage "$dir" serve --addr "127.0.0.1:$port" >> "$work/server.out" 2>> "$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$base/health" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop() { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; }

# post.py MODE KEY OUT: MODE fill (batches until a 507, then 3 more posts),
# once (one batch, print status and code), until201 (batches until a 201).
# Events carry client ids; acknowledged ids go to OUT.acked, failed to OUT.failed.
cat > "$work/post.py" <<'EOF'
import http.client, json, sys, uuid
base, mode, key, out = sys.argv[1:5]
host, port = base.split("//")[1].split(":")
codes = {}
def post(n):
    ids = [str(uuid.uuid4()) for _ in range(n)]
    body = json.dumps([{"id": i, "event_type": "commit", "user_id": "f", "action_description": "x" * 200,
                        "status": "success"} for i in ids])
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("POST", "/events", body=body, headers={"X-API-Key": key, "Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    code = "201" if r.status == 201 else f'{r.status} {data["error"]["code"]}'
    codes[code] = codes.get(code, 0) + 1
    with open(out + (".acked" if r.status == 201 else ".failed"), "a") as f:
        f.write("".join(i + "\n" for i in ids))
    return r.status
if mode == "fill":
    for _ in range(100000):
        if post(50) == 507:
            break
    for _ in range(3):
        post(50)
elif mode == "until201":
    for _ in range(50):
        if post(20) == 201:
            break
else:
    post(20)
print(json.dumps(codes, sort_keys=True))
EOF

# check.sh STORAGE OUT: acknowledged all stored once, failed none stored,
# no torn line, verify passes. Prints the figures; exit 1 on a problem.
check() {
  local dir=$1 out=$2
  local verify_out
  verify_out=$("$evlog" --storage "$dir" verify 2>&1) || { echo "verify: $verify_out"; return 1; }
  "$evlog" --storage "$dir" cat | python3 -c '
import collections, json, os, sys
out = sys.argv[1]
ids = collections.Counter(json.loads(l)["id"] for l in sys.stdin)
acked = [l.strip() for l in open(out + ".acked")] if os.path.exists(out + ".acked") else []
failed = [l.strip() for l in open(out + ".failed")] if os.path.exists(out + ".failed") else []
lost = sum(1 for i in acked if ids[i] != 1)
stored_failed = sum(1 for i in failed if ids[i])
dups = sum(1 for n in ids.values() if n > 1)
print(f"acked {len(acked)}, failed {len(failed)}, lost {lost}, failed-but-stored {stored_failed}, duplicated {dups}; ", end="")
sys.exit(1 if lost or stored_failed or dups else 0)
' "$out" || return 1
  for f in "$dir"/events_*.jsonl; do
    if [ -s "$f" ] && [ "$(tail -c1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then echo "torn line in $f"; return 1; fi
  done
  if ls "$dir"/*.torn >/dev/null 2>&1; then echo "torn tails moved aside"; return 1; fi
  echo "$verify_out"
}

echo "== enospc"
mount -t tmpfs -o size=4m tmpfs "$mnt"
dir=$mnt/data
key=$("$evlog" --storage "$dir" keys add --role admin --user ops)
dd if=/dev/zero of="$mnt/filler" bs=1M count=1 status=none
serve "$dir"
codes=$(python3 "$work/post.py" "$base" fill "$key" "$work/enospc")
rm "$mnt/filler"
after=$(python3 "$work/post.py" "$base" until201 "$key" "$work/enospc")
stop
if figures=$(check "$dir" "$work/enospc"); then good=1; else good=0; fi
case "$codes" in *"507 insufficient_storage"*) ;; *) good=0 ;; esac
case "$after" in *'"201"'*) ;; *) good=0 ;; esac
result enospc "$good" "while full: $codes; after freeing 1 MiB: $after; $figures"
grep -m1 -o 'append failed.*' "$work/server.log" | cut -c1-200 || true
umount "$mnt"

echo "== fsync"
mount -t tmpfs -o size=64m tmpfs "$mnt"
dir=$mnt/data
key=$("$evlog" --storage "$dir" keys add --role admin --user ops)
serve "$dir" EVLOG_FAULTS=fsync_fail=3
first=$(python3 "$work/post.py" "$base" once "$key" "$work/fsync")
after=$(python3 "$work/post.py" "$base" until201 "$key" "$work/fsync")
python3 "$work/post.py" "$base" once "$key" "$work/fsync" > /dev/null
stop
if figures=$(check "$dir" "$work/fsync"); then good=1; else good=0; fi
case "$first$after" in *"503 storage_failed"*) ;; *) good=0 ;; esac
case "$after" in *'"201"'*) ;; *) good=0 ;; esac
result fsync "$good" "first append: $first; then: $after; $figures"
umount "$mnt"

echo "== readonly"
mount -t tmpfs -o size=64m tmpfs "$mnt"
dir=$mnt/data
"$evlog" --storage "$dir" append --type commit --user ops --desc before > "$work/ro.acked"
mount -o remount,ro "$mnt"
set +e
append_err=$("$evlog" --storage "$dir" append --type commit --user ops --desc during 2>&1 >/dev/null); append_code=$?
serve_err=$(timeout 20 "$evlog" --storage "$dir" serve --addr "127.0.0.1:$port" 2>&1 >/dev/null); serve_code=$?
cat_n=$("$evlog" --storage "$dir" cat | wc -l); cat_code=$?
"$evlog" --storage "$dir" verify > /dev/null 2>&1; verify_code=$?
set -e
mount -o remount,rw "$mnt"
"$evlog" --storage "$dir" append --type commit --user ops --desc after >> "$work/ro.acked"
good=1
[ "$append_code" = 2 ] && [ "$serve_code" = 2 ] && [ "$cat_code" = 0 ] && [ "$verify_code" = 0 ] && [ "$cat_n" = 1 ] || good=0
case "$append_err" in *read-only*) ;; *) good=0 ;; esac
if figures=$(check "$dir" "$work/ro"); then :; else good=0; fi
result readonly "$good" "append exit $append_code: $(echo "$append_err" | head -1 | cut -c1-160); serve exit $serve_code: $(echo "$serve_err" | tail -1 | cut -c1-160); cat/verify exit $cat_code/$verify_code; after remount rw: $figures"
key=$("$evlog" --storage "$dir" keys add --role admin --user ops)
serve "$dir"
if remount=$(mount -o remount,ro "$mnt" 2>&1); then
  during=$(python3 "$work/post.py" "$base" once "$key" "$work/ro2")
  mount -o remount,rw "$mnt"
  after=$(python3 "$work/post.py" "$base" until201 "$key" "$work/ro2")
  stop
  if figures=$(check "$dir" "$work/ro2"); then good=1; else good=0; fi
  case "$during" in *"503 storage_read_only"*) ;; *) good=0 ;; esac
  result readonly-live "$good" "remounted ro under the server: $during; rw again: $after; $figures"
else
  stop
  echo "INFO readonly-live: remount ro refused under a running server: $remount (covered by the failpoint test)"
fi
umount "$mnt"

echo "== index"
dir=$work/index-data
key=$("$evlog" --storage "$dir" keys add --role admin --user ops)
serve "$dir"
python3 "$work/post.py" "$base" until201 "$key" "$work/index" > /dev/null
sleep 2
for _ in 1 2 3 4 5; do rm -rf "$dir/index" 2>/dev/null && break; sleep 0.2; done
python3 "$work/post.py" "$base" until201 "$key" "$work/index" > /dev/null
index=$(python3 - "$base" "$key" <<'EOF'
import http.client, json, sys, time
base, key = sys.argv[1:3]
host, port = base.split("//")[1].split(":")
deadline = time.time() + 60
while True:
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", "/events?user_id=f&start=1970-01-01T00:00:00Z&limit=1", headers={"X-API-Key": key})
    total = json.loads(c.getresponse().read()).get("total")
    c.request("GET", "/health")
    h = json.loads(c.getresponse().read())
    if (total == 40 and h["index"]["rebuilds"] >= 1) or time.time() > deadline:
        print(f'total {total} of 40, rebuilds {h["index"]["rebuilds"]}, lag {h["index"]["lag_events"]}')
        break
    time.sleep(0.2)
EOF
)
stop
case "$index" in "total 40 of 40, rebuilds 1"*) good=1 ;; *) good=0 ;; esac
result index "$good" "after rm -rf index under the server: $index"

echo "== $failures failure(s)"
[ "$failures" = 0 ]
