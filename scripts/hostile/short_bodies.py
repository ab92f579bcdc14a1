#!/usr/bin/env python3
"""Hostile clients (issue 12, item 3): request bodies that never finish,
and a batch whose first event is refused. Standard library only.

    scripts/hostile/short_bodies.py [--evlog PATH] [--clients N] [--body-mib M]

Starts `PATH serve` (default $EVLOG, else target/debug/evlog) on 127.0.0.1 over a fresh
temporary storage directory with default limits, then:

1. short bodies: N connections (default 40) each declare a body of M MiB
   (default 10, the default max_body_bytes) with one of four service keys
   (so that the total budget binds, not the per-key share) and send all of
   it but the last byte, and hold it. Reports the server's VmRSS before, its
   VmRSS and VmHWM (from /proc/<pid>/status) while they are held, and how
   many were answered at once (503) instead of being read.
2. one key hogs: one service key opens 8 connections declaring 9 MiB
   bodies and sends one byte of each; then another key appends a 5 MiB
   batch and a small event. Reports the answers and the RSS rise.
3. stranger first: a user key posts a 10,000-event array whose first event
   is for another user, followed by 9,999 events of ~0.9 KiB with a bad
   status. Reports the answer and how long it took.

Bounded: loopback only; at most 200 clients and 64 MiB bodies; every
socket has a timeout; the server is stopped at the end (SIGTERM, then
SIGKILL after 10 s).
"""

import json
import socket
import sys
import threading
import time

from evlog_server import Server, args, deploy, version


def short_bodies(srv, clients, body_mib):
    keys = [srv.keys[f"svc{i}"] for i in range(4)]
    for key in keys:
        srv.request("POST", "/events", key, deploy("ops", "warm"))
    time.sleep(1)
    before = srv.mib("VmRSS")
    size = body_mib << 20

    def head(i):
        return (
            f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {keys[i % 4]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
    unit = (json.dumps(deploy("ops", "padding")) + ",").encode()
    payload = (b"[" + unit * (size // len(unit) + 1))[: size - 1]
    socks = [None] * clients
    sent = [0] * clients

    def client(i):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        socks[i] = s
        try:
            s.sendall(head(i))
            view = memoryview(payload)
            for off in range(0, len(payload), 1 << 16):
                s.sendall(view[off:off + (1 << 16)])
                sent[i] += len(view[off:off + (1 << 16)])
        except OSError:
            pass  # answered (503) and closed while still sending

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    time.sleep(1)  # let the server drain the socket buffers
    held_rss = srv.mib("VmRSS")
    peak = srv.mib("VmHWM")
    refused = held = 0
    for s in socks:
        if s is None:
            continue
        s.settimeout(0.5)
        try:
            reply = s.recv(64)
            if reply.startswith(b"HTTP/1.1 503"):
                refused += 1
        except socket.timeout:
            held += 1
        except OSError:
            refused += 1
    elapsed = time.time() - start
    for s in socks:
        if s is not None:
            s.close()
    whole = sum(1 for n in sent if n == size - 1)
    print(f"short bodies: {clients} clients x {body_mib} MiB, one byte short")
    print(f"  server RSS before: {before:.0f} MiB")
    print(f"  while held: RSS {held_rss:.0f} MiB, peak (VmHWM) {peak:.0f} MiB, rise {peak - before:.0f} MiB")
    print(f"  bodies sent whole (but the last byte): {whole}; answered 503 at once: {refused}; "
          f"waiting for their last byte: {held} ({elapsed:.1f} s)")


def hog(evlog):
    with Server(evlog, keys=[("service", "hog"), ("service", "other")]) as srv:
        srv.request("POST", "/events", srv.keys["other"], deploy("ops", "warm"))
        time.sleep(1)
        before = srv.mib("VmRSS")
        size = 9 << 20
        socks = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall((
                f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {srv.keys['hog']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n["
            ).encode())
            socks.append(s)
        time.sleep(0.5)
        refused = 0
        for s in socks:
            s.settimeout(0.3)
            try:
                refused += s.recv(64).startswith(b"HTTP/1.1 503")
            except socket.timeout:
                pass
        big = json.dumps([deploy("ops", f"{i} " + "x" * 1000) for i in range(5000)]).encode()
        st_big, _ = srv.request("POST", "/events", srv.keys["other"], big)
        st_small, _ = srv.request("POST", "/events", srv.keys["other"], deploy("ops", "small"))
        rss = srv.mib("VmRSS")
        for s in socks:
            s.close()
        print("one key hogs: 8 stalled 9 MiB bodies of one key, then another key appends")
        print(f"  hog: {8 - refused} admitted, {refused} answered 503 at once; other key: "
              f"5 MiB batch {st_big}, one event {st_small}; RSS {before:.0f} -> {rss:.0f} MiB")


def stranger_first(evlog):
    with Server(evlog, keys=[("admin", "root"), ("user", "alice")]) as srv:
        bad = [deploy("alice", "x" * 800, status="done") for _ in range(9_999)]
        body = json.dumps([deploy("bob", "not alice")] + bad).encode()
        t = time.time()
        status, data = srv.request("POST", "/events", srv.keys["alice"], body)
        ms = (time.time() - t) * 1000
        err = json.loads(data)["error"]
        first = err.get("events", [{}])[0]
        print(f"stranger first: a user key posts [bob, then 9,999 bad 0.9 KiB events] ({len(body) >> 20} MiB)")
        print(f"  answer {status} {err['code']} in {ms:.0f} ms; {len(err.get('events', []))} event(s) listed, "
              f"first index {first.get('index')} field {first.get('field')}")


def main():
    a = args(__doc__, clients=(int, 40, "connections that stop one byte short"),
             body_mib=(int, 10, "the body size each declares, in MiB"))
    if not 1 <= a.clients <= 200 or not 1 <= a.body_mib <= 64:
        sys.exit("bounded: 1-200 clients, 1-64 MiB bodies")
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog, keys=[("service", f"svc{i}") for i in range(4)]) as srv:
        short_bodies(srv, a.clients, a.body_mib)
    hog(a.evlog)
    stranger_first(a.evlog)


if __name__ == "__main__":
    main()
