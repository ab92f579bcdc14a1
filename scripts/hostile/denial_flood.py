#!/usr/bin/env python3
"""Issue 12, item 7: requests without a key flood the log with their denials
and push out the denials that matter.

1. Volume: N keyless GET /events from 127.0.0.1 (pipelined on 4 keep-alive
   connections); counts the auth_failure events stored for them and the
   bytes they added to the day file.
2. Starvation: the same flood while the script holds the writers' lock
   (flock on <storage>/evlog.lock, as a slow or stalled disk would), then
   one request of a user key for another user's events (a real denial);
   the lock is released and the script checks whether that denial was
   stored.
Bounded: one server on 127.0.0.1, N requests per phase (default 20,000).

    scripts/hostile/denial_flood.py [--evlog target/debug/evlog] [--requests 20000]
"""

import fcntl
import os
import socket
import threading
import time

from evlog_server import Server, args, version


def flood(port, n, conns=4):
    """n keyless requests, pipelined 100 at a time; returns the answers seen."""
    answered = [0] * conns

    def one(i):
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        req = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
        sent = 0
        carry = b""
        per = n // conns
        while sent < per:
            burst = min(100, per - sent)
            s.sendall(req * burst)
            sent += burst
            while answered[i] < sent:
                data = s.recv(65536)
                if not data:
                    raise SystemExit("the server closed a connection")
                carry += data
                answered[i] += carry.count(b"HTTP/1.1 ")
                carry = carry[-8:]
        s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(answered)


def day_bytes(s):
    return sum(os.path.getsize(os.path.join(s.storage, f)) for f in os.listdir(s.storage)
               if f.startswith("events_") and f.endswith(".jsonl"))


def denials(s):
    s.caught_up()
    return s.export("event_type=auth_failure&start=1970-01-01T00:00:00Z")


def main():
    a = args(__doc__, requests=(int, 20_000, "keyless requests per phase"),
             summary_wait=(float, 65.0, "seconds to wait for the summaries at the end"))
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog) as s:
        alice = s.add_key("user", "alice")
        before = day_bytes(s)
        known = len(denials(s))
        t = time.time()
        answered = flood(s.port, a.requests)
        took = time.time() - t
        time.sleep(2)
        stored = denials(s)
        flood_events = [e for e in stored[known:] if e.get("user_id") == "anonymous"]
        one_by_one = sum(1 for e in flood_events if not (e.get("metadata") or {}).get("summary"))
        counted = sum((e.get("metadata") or {}).get("suppressed", 0) for e in flood_events)
        print(f"volume: {answered} keyless requests in {took:.1f} s -> {one_by_one} auth_failure "
              f"events stored one by one ({counted} counted in summaries so far), "
              f"day file +{day_bytes(s) - before} bytes")

        lock = open(os.path.join(s.storage, "evlog.lock"), "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            flood(s.port, a.requests)
            status, _ = s.request("GET", "/events?user_id=bob", alice)
            assert status == 403, status
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        time.sleep(3)
        kept = any(e.get("user_id") == "alice" and (e.get("metadata") or {}).get("code") == "forbidden"
                   for e in denials(s))
        _, metrics = s.request("GET", "/metrics")
        dropped = [l for l in metrics.decode().splitlines()
                   if l.startswith(("evlog_events_dropped_total", "evlog_auth_failures_suppressed_total"))]
        print(f"starvation: {a.requests} keyless requests with the writers' lock held, then a user "
              f"key's denial -> that denial {'stored' if kept else 'LOST'}; {'; '.join(dropped)}")
        time.sleep(a.summary_wait)
        flood_events = [e for e in denials(s) if e.get("user_id") == "anonymous"]
        one_by_one = sum(1 for e in flood_events if not (e.get("metadata") or {}).get("summary"))
        counted = sum((e.get("metadata") or {}).get("suppressed", 0) for e in flood_events)
        print(f"accounting after {a.summary_wait:.0f} s: {2 * a.requests} keyless requests -> "
              f"{one_by_one} stored one by one + {counted} counted in "
              f"{len(flood_events) - one_by_one} summary event(s) = {one_by_one + counted}")


if __name__ == "__main__":
    main()
