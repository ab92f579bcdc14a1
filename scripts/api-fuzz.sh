#!/usr/bin/env bash
# API contract fuzzing (issue 14, item 4): schemathesis against a live
# `evlog serve`, from the server's own OpenAPI document (GET /openapi.json).
#
#   scripts/api-fuzz.sh [MINUTES]     (default 10; at most 14)
#
# 1. Builds `evlog` (release) into $CARGO_TARGET_DIR (else target/), and
#    installs schemathesis and openapi-spec-validator (PyPI, pinned) into a
#    venv under it if they are missing.
# 2. A fresh storage directory in a temp dir, an admin key, a few events;
#    `evlog serve` on 127.0.0.1 (a free port), niced.
# 3. openapi-spec-validator checks the served document against the
#    OpenAPI 3.1 schema.
# 4. schemathesis runs every operation (phases examples, coverage, fuzzing,
#    and stateful through the document's links: an append's id to
#    GET /events/{id}) with the admin key, positive and negative data,
#    until MINUTES are spent, with these checks:
#      not_a_server_error            no 5xx (a client mistake is never the server's fault)
#      status_code_conformance       every status is documented for its operation
#      content_type_conformance      every Content-Type is documented
#      response_headers_conformance  documented headers are there and valid
#      response_schema_conformance   every JSON body matches its schema
#                                    (for errors: the code is one the status lists)
#      negative_data_rejection       what the document forbids is refused (4xx)
#      missing_required_header, unsupported_method, allow_header_conformance,
#      use_after_free, ignored_auth (no key, or a wrong one, is refused)
#    Not checked (and why):
#      positive_data_acceptance      schema-valid input can still be refused by
#                                    rules a schema cannot state (an `end` before
#                                    `start`, a `q` of punctuation alone, a
#                                    timestamp outside 1678-2261, a cursor from
#                                    another query): those answers are 400s the
#                                    document lists
#      ensure_resource_availability  an appended event is searchable within about
#                                    a second (the index commits), so a GET right
#                                    after the POST may be 404, as README says
#      object_level_authorization    needs two keys of different users per
#                                    operation; tests/it/isolation.rs covers it
# 5. Prints schemathesis' summary, the requests it sent (by operation and
#    status class) and what the server counted itself (`/metrics`, by
#    status). Exit 0 only if schemathesis found nothing, the server answered
#    no 5xx and never panicked; on failure the reports (JUnit, NDJSON), the
#    storage and the server log are kept.
#
# Environment (defaults): API_FUZZ_WORKERS=2, API_FUZZ_SEED (random),
#   API_FUZZ_DIR=/tmp (where the work directory goes; removed at the end
#   unless API_FUZZ_KEEP=1 or failure).
# Quick check: scripts/api-fuzz.sh 1
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
minutes=${1:-10}
if [ "$minutes" -gt 14 ]; then minutes=14; fi
secs=$((minutes * 60))
workers=${API_FUZZ_WORKERS:-2}
unset EVLOG_STORAGE_PATH EVLOG_CONFIG EVLOG_KEYS_FILE EVLOG_ADDR EVLOG_FAULTS EVLOG_DURABILITY

echo "== build (release)"
(cd "$repo" && CARGO_TARGET_DIR=$target nice cargo build --release --locked --bin evlog)
evlog=$target/release/evlog

venv=$target/api-fuzz-venv
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1 \
  || ! "$venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "== install schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis==4.32.5' 'openapi-spec-validator==0.7.2'
fi
"$venv/bin/schemathesis" --version

work=$(mktemp -d "${API_FUZZ_DIR:-/tmp}/evlog-api-fuzz.XXXXXX")
data=$work/data
server_pid=
ok=0
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$ok" = 1 ] && [ "${API_FUZZ_KEEP:-0}" != 1 ]; then
    rm -rf "$work"
  else
    echo "reports, storage and server log kept in $work" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
key=$("$evlog" --storage "$data" keys add --role admin --user fuzz)

nice "$evlog" --storage "$data" serve --addr "127.0.0.1:$port" \
  > "$work/server.out" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 1 600); do
  if curl -sf -o /dev/null "$base/health"; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "server died at start" >&2; tail -20 "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

# A few events, so that reads have something to return.
for i in 1 2 3; do
  curl -sf -o /dev/null -X POST "$base/events" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d "{\"event_type\":\"deploy\",\"user_id\":\"dev\",\"action_description\":\"seed $i\",\"status\":\"success\",\"metadata\":{\"n\":$i}}"
done

echo "== validate $base/openapi.json (OpenAPI 3.1)"
curl -sf "$base/openapi.json" -o "$work/openapi.json"
"$venv/bin/python" -c 'import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print("valid")' "$work/openapi.json"

seed_args=()
if [ -n "${API_FUZZ_SEED:-}" ]; then seed_args=(--seed "$API_FUZZ_SEED"); fi

echo "== schemathesis: ${minutes} min, $workers workers, against $base"
started=$(date +%s)
set +e
# The document from a file, so that GET /openapi.json is one of the
# operations tested (schemathesis skips the one it loaded the document from).
(cd "$work" && nice "$venv/bin/schemathesis" run "$work/openapi.json" --url "$base" \
  -H "X-API-Key: $key" \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --exclude-checks positive_data_acceptance,ensure_resource_availability,object_level_authorization \
  --mode all \
  --max-time "$secs" \
  --workers "$workers" \
  --request-timeout 3 \
  --continue-on-failure \
  --suppress-health-check all \
  --report junit,ndjson --report-dir "$work/report" \
  "${seed_args[@]}") 2>&1 | tee "$work/schemathesis.out"
st_status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))

echo "== ${elapsed}s; schemathesis exit $st_status"
# Requests sent, by operation and status class (schemathesis' NDJSON report),
# and what the server counted itself (its /metrics, by status).
curl -sf "$base/metrics" > "$work/metrics.txt" || true
python3 - "$work/report" "$work/metrics.txt" <<'PY'
import collections, glob, json, re, sys
ops = collections.Counter(); classes = collections.Counter(); total = 0
for f in glob.glob(sys.argv[1] + "/*.ndjson"):
    for line in open(f):
        ev = json.loads(line)
        fin = ev.get("ScenarioFinished")
        if not fin:
            continue
        rec = fin["recorder"]
        for i in rec.get("interactions", {}).values():
            total += 1
            ops[rec["label"]] += 1
            status = (i.get("response") or {}).get("status_code")
            classes[f"{status // 100}xx" if status else "no response"] += 1
print(f"requests (schemathesis): {total}; by status: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
for op, n in sorted(ops.items()):
    print(f"  {n:7d}  {op}")
served = collections.Counter()
for line in open(sys.argv[2]):
    m = re.match(r'evlog_http_requests_total\{.*status="(\d)\d\d".*\} (\d+)', line)
    if m:
        served[m.group(1) + "xx"] += int(m.group(2))
print("answered (server /metrics): " + ", ".join(f"{k} {v}" for k, v in sorted(served.items())))
if served.get("5xx"):
    print("the server answered 5xx", file=sys.stderr)
    sys.exit(1)
PY
if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:" >&2
  grep -n "panicked" "$work/server.log" | head >&2
  exit 1
fi
if [ "$st_status" -ne 0 ]; then exit "$st_status"; fi
ok=1
