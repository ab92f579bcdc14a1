#!/usr/bin/env bash
# Compression of a ~1 GB day file by evlog's rotation against `gzip -6`, on
# the same file in the same run (issue 5: >= 1.5x gzip's throughput with
# output <= 1.05x gzip's size).
#
#   scripts/bench-rotate.sh [CARGO_TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
#
# 1. Builds `evlog` (release) and the `compress_day` example.
# 2. Generates realistic NDJSON events (api_request events with metadata,
#    like scripts/bench-append.sh) and imports them with
#    `evlog append --stdin`, so the day file has a valid hash chain; renames
#    it to an old day.
# 3. R times (default 3), alternating: `gzip -6 -c FILE > out.gz` and
#    `compress_day FILE out.gz` (evlog's compressor: parallel gzip members,
#    fsync included; its read-back check is timed separately); medians.
# 4. Checks evlog's output with `gzip -t` and `zcat | cmp`.
# 5. Times one whole `evlog rotate --no-index --compress-after 0`
#    (compress, fsync, read back, rename, remove).
#
# Environment: EVLOG_BENCH_DIR (default /tmp; not tmpfs), EVLOG_BENCH_BYTES
# (target size of the day file, default 1073741824), EVLOG_BENCH_REPS.
# The input is in the page cache for both tools.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$repo/target}}
case $target in /*) ;; *) target=$repo/$target ;; esac
want_bytes=${EVLOG_BENCH_BYTES:-1073741824}
reps=${EVLOG_BENCH_REPS:-3}
base=${EVLOG_BENCH_DIR:-/tmp}

mkdir -p "$base"
if [ "$(stat -f -c %T "$base")" = tmpfs ]; then
  echo "error: $base is tmpfs; set EVLOG_BENCH_DIR to a directory on disk" >&2
  exit 2
fi
work=$(mktemp -d "$base/evlog-bench-rotate.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
unset EVLOG_STORAGE_PATH EVLOG_DURABILITY EVLOG_CONFIG EVLOG_USER_ID_HASH_KEY \
  EVLOG_COMPRESS_AFTER EVLOG_DELETE_AFTER EVLOG_MAX_TOTAL_SIZE EVLOG_ROTATE_AT

echo "== build (CARGO_TARGET_DIR=$target)"
cd "$repo"
CARGO_TARGET_DIR=$target cargo build --release --locked --bin evlog --example compress_day
evlog_bin=$target/release/evlog
compress_bin=$target/release/examples/compress_day

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "gzip:   $(gzip --version | head -1)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "== generate ~$want_bytes bytes of events (stored with ~170 bytes of id, seq and hash each)"
storage=$work/store
events=$(( want_bytes / 500 ))
python3 - "$events" <<'EOF' | "$evlog_bin" --storage "$storage" --durability none append --stdin > /dev/null
import sys
n = int(sys.argv[1])
methods = ["GET", "GET", "POST", "PUT"]
paths = ["/v1/things", "/v1/things/8812", "/v1/orders", "/v1/orders/551/items",
         "/v1/users/me", "/v1/search", "/v1/invoices/2026-11", "/v1/health"]
regions = ["eu-west-1", "us-east-1", "ap-south-1"]
tmpl = ('{"timestamp":"2026-11-23T%02d:%02d:%02d.%06dZ","event_type":"api_request",'
        '"user_id":"user-%d","action_description":"%s %s","status":"%s","level":"%s",'
        '"metadata":{"method":"%s","path":"%s","status_code":%d,"response_bytes":%d,'
        '"region":"%s"},"request_id":"req-%016x","source_ip":"10.%d.%d.%d",'
        '"duration_ms":%s}\n')
mask = (1 << 64) - 1
out = sys.stdout
chunk = []
for i in range(n):
    m, p = methods[i % 4], paths[i % 8]
    ok = i % 50 != 0
    s = i * 86400 // n
    chunk.append(tmpl % (
        s // 3600, s // 60 % 60, s % 60, (i * 7919) % 1000000, i % 10000, m, p,
        "success" if ok else "failure", "info" if ok else "error", m, p,
        200 if ok else 503, 512 + i % 4096, regions[i % 3],
        (i * 0x9e3779b97f4a7c15) & mask, (i >> 16) & 255, (i >> 8) & 255, i & 255,
        repr((i % 997) * 0.25 + 1.5)))
    if len(chunk) == 65536:
        out.write("".join(chunk))
        chunk = []
out.write("".join(chunk))
EOF
day_file=$(ls "$storage"/events_*.jsonl | head -1)
file=$storage/events_2000-01-01.jsonl
mv "$day_file" "$file"
bytes=$(stat -c %s "$file")
lines=$(wc -l < "$file")
echo "$bytes bytes, $lines events ($(( bytes / lines )) bytes each)"
cat "$file" > /dev/null   # into the page cache for both tools
sync

gzip_times=(); evlog_times=(); check_times=()
gzip_bytes=0; evlog_bytes=0
for rep in $(seq 1 "$reps"); do
  echo "== round $rep/$reps"
  t0=$(now); gzip -6 -c "$file" > "$work/gzip.gz"; t1=$(now)
  gzip_times+=("$(secs "$t0" "$t1")"); gzip_bytes=$(stat -c %s "$work/gzip.gz")
  echo "gzip -6   ${gzip_times[-1]} s  $gzip_bytes bytes"
  rm -f "$work/gzip.gz"
  out=$("$compress_bin" "$file" "$work/evlog.gz")
  echo "evlog     $out"
  evlog_times+=("$(sed -E 's/.*compress_seconds=([0-9.]+).*/\1/' <<<"$out")")
  check_times+=("$(sed -E 's/.*check_seconds=([0-9.]+).*/\1/' <<<"$out")")
  evlog_bytes=$(stat -c %s "$work/evlog.gz")
  if [ "$rep" -lt "$reps" ]; then rm -f "$work/evlog.gz"; fi
done

echo "== check evlog's output with the standard tools"
gzip -t "$work/evlog.gz"
zcat "$work/evlog.gz" | cmp - "$file"
echo "gzip -t ok; zcat output identical to the day file"
rm -f "$work/evlog.gz"

echo "== one whole rotation: evlog rotate --no-index --compress-after 0 --delete-after off"
t0=$(now)
"$evlog_bin" --storage "$storage" rotate --no-index --compress-after 0 --delete-after off
t1=$(now)
rotate_s=$(secs "$t0" "$t1")
"$evlog_bin" --storage "$storage" verify

g=$(median "${gzip_times[@]}"); e=$(median "${evlog_times[@]}"); c=$(median "${check_times[@]}")
echo
echo "== summary (medians of $reps; $bytes bytes in)"
awk -v b="$bytes" -v g="$g" -v e="$e" -v c="$c" -v r="$rotate_s" -v gb="$gzip_bytes" -v eb="$evlog_bytes" 'BEGIN {
  mb = b / 1e6
  printf "gzip -6:          %7.2f s  %7.1f MB/s  %d bytes (%.3f of input)\n", g, mb / g, gb, gb / b
  printf "evlog compress:   %7.2f s  %7.1f MB/s  %d bytes (%.3f of input)\n", e, mb / e, eb, eb / b
  printf "evlog read-back:  %7.2f s  %7.1f MB/s  (decompress, compare, hash chain)\n", c, mb / c
  printf "evlog rotate:     %7.2f s  %7.1f MB/s  (whole rotation of the file)\n", r, mb / r
  tp = g / e; sz = eb / gb
  printf "throughput ratio: %.2fx gzip (target >= 1.5): %s\n", tp, (tp >= 1.5 ? "PASS" : "FAIL")
  printf "size ratio:       %.3fx gzip (target <= 1.05): %s\n", sz, (sz <= 1.05 ? "PASS" : "FAIL")
}'
