#!/usr/bin/env python3
"""Load driver of scripts/soak.sh (standard library only).

    soak-load.py BASE_URL ADMIN_KEY OUT_DIR SECONDS

Threads, all against BASE_URL (127.0.0.1) until SECONDS pass or
OUT_DIR/stop exists:

- single appenders: POST /events with one JSON object;
- batch appenders: POST /events with JSON arrays and NDJSON bodies;
- readers: GET /events, /events/stats, /events/types, /health;
- live streams: GET /events/stream, reconnecting with Last-Event-ID;
- rotation: POST /admin/rotate every ROTATE_EVERY seconds (404: rotation
  not available in this build; recorded and the thread stops).

Every id the server acknowledged (201) is appended to OUT_DIR/acked.txt
(one per line, written before the next request). Requests that fail
because the server is down (killed by the soak script) are retried after a
pause; their events may or may not be stored (never acknowledged). The
counters go to OUT_DIR/load.json at the end.
"""

import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

BASE, KEY, OUT, SECS = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
URL = urllib.parse.urlparse(BASE)
ROTATE_EVERY = float(os.environ.get("SOAK_ROTATE_EVERY", "20"))
DEADLINE = time.time() + SECS
TYPES = ["commit", "push", "api_request", "file_change", "deploy.step", "auth_login"]
STATUSES = ["success", "failure", "pending", "in_progress"]

lock = threading.Lock()
counts = {}
acked_file = open(os.path.join(OUT, "acked.txt"), "a", buffering=1)


def count(key, n=1):
    with lock:
        counts[key] = counts.get(key, 0) + n


def running():
    return time.time() < DEADLINE and not os.path.exists(os.path.join(OUT, "stop"))


def conn():
    return http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)


def request(c, method, path, body=None, ctype="application/json", headers=None):
    h = {"X-API-Key": KEY}
    if body is not None:
        h["Content-Type"] = ctype
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()


def event(tag, i):
    e = {
        "event_type": random.choice(TYPES),
        "user_id": f"user-{random.randrange(50)}",
        "action_description": f"soak {tag} {i} — été ✓",
        "status": random.choice(STATUSES),
        "request_id": f"{tag}-{i}",
    }
    if i % 3 == 0:
        e["metadata"] = {"i": i, "tag": tag, "path": f"src/m{i % 17}.rs"}
    if i % 5 == 0:
        e["duration_ms"] = random.random() * 500
    return e


def record(ids):
    with lock:
        acked_file.write("".join(f"{i}\n" for i in ids))
    count("acked", len(ids))


def appender(tag, batch):
    c = conn()
    i = 0
    while running():
        if batch:
            n = random.randint(20, 200)
            events = [event(tag, i + k) for k in range(n)]
            if i % 2:
                body, ctype = json.dumps(events), "application/json"
            else:
                body = "".join(json.dumps(e) + "\n" for e in events)
                ctype = "application/x-ndjson"
        else:
            n = 1
            body, ctype = json.dumps(event(tag, i)), "application/json"
        i += n
        try:
            status, data = request(c, "POST", "/events", body, ctype)
        except (OSError, http.client.HTTPException):
            count("append_conn_errors")
            c.close()
            time.sleep(0.2)
            c = conn()
            continue
        if status == 201:
            v = json.loads(data)
            record(v["ids"] if "ids" in v else [v["id"]])
            count("append_requests")
        else:
            count(f"append_status_{status}")
            time.sleep(0.1)
        # About 1,000 events/s in all: enough to keep the writer, the
        # indexer and rebuilds busy, little enough to check at the end.
        time.sleep(0.2 if batch else 0.01)


def reader():
    c = conn()
    paths = [
        "/events?limit=50",
        "/events/stats",
        "/events/types",
        "/health",
        "/events?limit=20&event_type=commit&start=1970-01-01T00:00:00Z",
        "/events?q=soak&limit=10",
    ]
    while running():
        p = random.choice(paths)
        try:
            status, _ = request(c, "GET", p)
            count(f"read_status_{status}")
        except (OSError, http.client.HTTPException):
            count("read_conn_errors")
            c.close()
            time.sleep(0.2)
            c = conn()
        time.sleep(0.05)


def streamer(n):
    last = None
    while running():
        try:
            c = conn()
            h = {"X-API-Key": KEY}
            if last is not None:
                h["Last-Event-ID"] = str(last)
            c.request("GET", "/events/stream", headers=h)
            r = c.getresponse()
            if r.status != 200:
                count(f"stream_status_{r.status}")
                r.read()
                time.sleep(0.5)
                continue
            count("stream_connects")
            # Keep-alive comments come every 15 s; silence means a dead peer.
            c.sock.settimeout(20)
            while running():
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"id:"):
                    seq = int(line[3:].strip())
                    if last is not None and seq <= last:
                        count("stream_out_of_order")
                    last = seq
                    count("stream_events")
            c.close()
        except (OSError, http.client.HTTPException, ValueError):
            count("stream_conn_errors")
            time.sleep(0.3)


def rotator():
    while running():
        time.sleep(ROTATE_EVERY)
        # A fresh connection each time: the server closes a keep-alive
        # connection idle for longer than its header timeout.
        c = conn()
        try:
            status, data = request(c, "POST", "/admin/rotate", "{}")
        except (OSError, http.client.HTTPException):
            count("rotate_conn_errors")
            continue
        finally:
            c.close()
        count(f"rotate_status_{status}")
        if status == 404:
            with lock:
                counts["rotation"] = "not available"
            return
        if status == 200:
            with lock:
                counts["rotation"] = "available"
                counts["last_rotate"] = data.decode("utf-8", "replace")[:500]


threads = [threading.Thread(target=appender, args=(f"s{k}", False)) for k in range(2)]
threads += [threading.Thread(target=appender, args=(f"b{k}", True)) for k in range(2)]
threads += [threading.Thread(target=reader) for _ in range(2)]
threads += [threading.Thread(target=streamer, args=(k,)) for k in range(2)]
threads += [threading.Thread(target=rotator)]
for t in threads:
    t.daemon = True
    t.start()
for t in threads:
    t.join()
acked_file.close()
with open(os.path.join(OUT, "load.json"), "w") as f:
    json.dump(counts, f, indent=1, sort_keys=True)
print(json.dumps(counts, sort_keys=True))
