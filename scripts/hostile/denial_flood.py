#!/usr/bin/env python3
"""Issue 12, item 7: requests without a key, or refused ones of a
key-holder, flood the log with their denials and push out the denials that
matter.

1. Volume: N keyless GET /events from 127.0.0.1 (pipelined on 4 keep-alive
   connections); counts the auth_failure events stored for them and the
   bytes they added to the day file.
2. Starvation: the same flood while the script holds the writers' lock
   (flock on <storage>/evlog.lock, as a slow or stalled disk would), then
   one request of a user key for another user's events (a real denial);
   the lock is released and the script checks whether that denial was
   stored.
3. Keyed volume: N GET /events of a service key (each a 403: a service
   reads nothing), as in 1.
4. Keyed starvation: as in 2, the flood of 3 with the writers' lock held,
   then another user key's denial.
At the end (after --summary-wait), each flood's denials stored one by one
and counted in summaries.
Bounded: one server on 127.0.0.1, N requests per phase (default 20,000).

    scripts/hostile/denial_flood.py [--evlog target/debug/evlog] [--requests 20000]
"""

import fcntl
import os
import socket
import threading
import time

from evlog_server import Server, args, version


def flood(port, n, conns=4, key=None):
    """n GET /events (keyless, or with `key`), pipelined 100 at a time;
    returns the answers seen."""
    answered = [0] * conns
    header = f"X-API-Key: {key}\r\n".encode() if key else b""

    def one(i):
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        req = b"GET /events HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
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


def accounted(events):
    """(stored one by one, counted in summaries, summary events) of `events`."""
    one_by_one = sum(1 for e in events if not (e.get("metadata") or {}).get("summary"))
    counted = sum((e.get("metadata") or {}).get("suppressed", 0) for e in events)
    return one_by_one, counted, len(events) - one_by_one


def metric(s, name):
    _, text = s.request("GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def with_lock(s, f):
    """f() while the script holds the writers' lock."""
    lock = open(os.path.join(s.storage, "evlog.lock"), "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        f()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def main():
    a = args(__doc__, requests=(int, 20_000, "requests per phase"),
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
        one_by_one, counted, _ = accounted([e for e in stored[known:] if e.get("user_id") == "anonymous"])
        print(f"volume: {answered} keyless requests in {took:.1f} s -> {one_by_one} auth_failure "
              f"events stored one by one ({counted} counted in summaries so far), "
              f"day file +{day_bytes(s) - before} bytes")

        def starve():
            flood(s.port, a.requests)
            status, _ = s.request("GET", "/events?user_id=bob", alice)
            assert status == 403, status

        with_lock(s, starve)
        time.sleep(3)
        kept = any(e.get("user_id") == "alice" and (e.get("metadata") or {}).get("code") == "forbidden"
                   for e in denials(s))
        print(f"starvation: {a.requests} keyless requests with the writers' lock held, then a user "
              f"key's denial -> that denial {'stored' if kept else 'LOST'}; "
              f"evlog_events_dropped_total {metric(s, 'evlog_events_dropped_total')}, "
              f"evlog_auth_failures_suppressed_total {metric(s, 'evlog_auth_failures_suppressed_total')}")

        # 3. and 4.: a key-holder (a service key, which reads nothing).
        service = s.add_key("service", "ingest", wait=False)
        bob = s.add_key("user", "bob")  # once loaded, the service key is too
        service_id = s.key_id("ingest")

        def of_service(events):
            return [e for e in events if (e.get("metadata") or {}).get("key_id") == service_id]

        before = day_bytes(s)
        t = time.time()
        answered = flood(s.port, a.requests, key=service)
        took = time.time() - t
        time.sleep(2)
        one_by_one, counted, _ = accounted(of_service(denials(s)))
        print(f"keyed volume: {answered} GET /events of a service key (403) in {took:.1f} s -> "
              f"{one_by_one} auth_failure events stored one by one ({counted} counted in summaries "
              f"so far), day file +{day_bytes(s) - before} bytes")

        dropped = metric(s, "evlog_events_dropped_total")

        def starve_keyed():
            flood(s.port, a.requests, key=service)
            status, _ = s.request("GET", "/events?user_id=alice", bob)
            assert status == 403, status

        with_lock(s, starve_keyed)
        time.sleep(3)
        kept = any(e.get("user_id") == "bob" and (e.get("metadata") or {}).get("code") == "forbidden"
                   for e in denials(s))
        print(f"keyed starvation: {a.requests} of the service key's 403s with the writers' lock "
              f"held, then another user key's denial -> that denial {'stored' if kept else 'LOST'}; "
              f"evlog_events_dropped_total +{metric(s, 'evlog_events_dropped_total') - dropped}")

        time.sleep(a.summary_wait)
        stored = denials(s)
        for what, events in (("keyless", [e for e in stored if e.get("user_id") == "anonymous"]),
                             ("service key", of_service(stored))):
            one_by_one, counted, summaries = accounted(events)
            print(f"accounting after {a.summary_wait:.0f} s: {2 * a.requests} {what} requests -> "
                  f"{one_by_one} stored one by one + {counted} counted in "
                  f"{summaries} summary event(s) = {one_by_one + counted}")


if __name__ == "__main__":
    main()
