#!/usr/bin/env python3
"""Stalled exports: one user key opens many `/events/export` connections and
never reads them; does everyone else still get answers?

    scripts/hostile/stalled_exports.py [--evlog target/debug/evlog]
        [--connections 600] [--events 20000] [--settle 3] [--read-after S]
        [--limits "max_streams_per_key = 1000"]

Starts its own `evlog serve` on 127.0.0.1 over a fresh directory, seeds
EVENTS events of alice (an export of them, about 9 MB, does not fit in a
stalled socket's buffers), adds user keys alice and bob, then opens
CONNECTIONS export requests with alice's key and reads only their status
lines. After SETTLE seconds (default 3) it measures, while they stay open:
the server's threads and memory, `/health`, and bob's `GET /events` (one
alone, then 16 at once), each with a 15 s timeout ("no answer" past it).
With --read-after S, it then waits S seconds and reads one of the admitted
exports to its end: whole, or cut because the server gave up on it
(`write_timeout_ms`). LIMITS are `[server.limits]` lines for the server's
config file (a server before issue 12 refuses the new keys). Standard
library only; bounded (about a minute); everything on loopback.
"""

import collections
import resource
import statistics
import threading
import time

from evlog_server import Server, args, drain, version


def timed(srv, key, path, timeout=15):
    """(status, seconds) of one GET; status 0 if no answer within `timeout`."""
    start = time.time()
    status, _ = srv.request("GET", path, key, timeout=timeout)
    return status, time.time() - start


def fmt(status, secs):
    return f"{status} in {secs * 1000:.0f} ms" if status else f"no answer in {secs:.0f} s"


def main():
    a = args(__doc__,
             connections=(int, 600, "export connections of alice, never read"),
             events=(int, 20000, "events of alice seeded"),
             settle=(float, 3, "seconds between opening the exports and measuring"),
             read_after=(float, None,
                         "then, this many seconds later, read one admitted export to its end"),
             limits=(str, "",
                     '[server.limits] lines, e.g. "max_streams_per_key = 1000" (lifts the cap)'))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.connections + 1024), hard))

    print(f"evlog: {version(a.evlog)}" + (f"; limits: {a.limits}" if a.limits else ""))
    with Server(a.evlog, limits=a.limits, durability="none") as srv:
        alice = srv.add_key("user", "alice")
        bob = srv.add_key("user", "bob")
        srv.seed("alice", a.events)
        srv.seed("bob", 10)
        before = {
            "threads": srv.threads(),
            "rss": srv.mib("VmRSS"),
            "health": timed(srv, None, "/health"),
            "query": timed(srv, bob, "/events"),
        }
        print(f"before: {before['threads']} threads, {before['rss']:.0f} MiB RSS; "
              f"/health {fmt(*before['health'])}; bob GET /events {fmt(*before['query'])}")

        socks, statuses, retry_after = [], collections.Counter(), set()
        statuses_in_order = []
        start = time.time()
        for _ in range(a.connections):
            s, status, head = srv.open_raw(
                "/events/export?start=1970-01-01T00:00:00Z", alice)
            statuses[status] += 1
            statuses_in_order.append(status)
            for line in head.split("\r\n"):
                if line.lower().startswith("retry-after:"):
                    retry_after.add(line.split(":", 1)[1].strip())
            socks.append(s)
        opened = time.time() - start
        time.sleep(a.settle)
        print(f"{a.connections} export connections of alice opened in {opened:.1f} s, never read, "
              f"measured {a.settle:g} s later: "
              + ", ".join(f"{n} x {st}" for st, n in sorted(statuses.items()))
              + (f" (Retry-After: {', '.join(sorted(retry_after))})" if retry_after else ""))
        health = timed(srv, None, "/health")
        query = timed(srv, bob, "/events")
        results = []

        def one():
            results.append(timed(srv, bob, "/events"))
        threads = [threading.Thread(target=one) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answered = [secs for status, secs in results if status == 200]
        print(f"while stalled: {srv.threads()} threads, {srv.mib('VmRSS'):.0f} MiB RSS; "
              f"/health {fmt(*health)}; bob GET /events {fmt(*query)}")
        if answered:
            print(f"16 concurrent bob GET /events: {len(answered)} answered 200, "
                  f"median {statistics.median(answered) * 1000:.0f} ms, max {max(answered) * 1000:.0f} ms")
        else:
            print("16 concurrent bob GET /events: none answered within 15 s")
        if a.read_after is not None:
            admitted = [s for s, st in zip(socks, statuses_in_order) if st == 200]
            time.sleep(a.read_after)
            body, closed, complete = drain(admitted[0], timeout=30)
            rows = body.count(b'"action_description"')
            state = "whole" if complete else ("cut: the server had closed it" if closed else "neither")
            print(f"one export read {a.read_after:g} s after that: {state}, {rows} of {a.events} events")
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
