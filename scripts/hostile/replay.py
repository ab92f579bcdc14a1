#!/usr/bin/env python3
"""Issue 12, item 4: a user key replays its whole stream with
`Last-Event-ID: 0` (a reconnect loop costs the server as much).

Appends N events of user alice (every fourth event is bob's, N/3 more),
then, with alice's user key: GET /events/stream with Last-Event-ID: 0 until
N events arrived (or --timeout seconds passed), and GET /events/export of
the same events. Prints both times. Checks that no event of bob's reached
alice's stream. Bounded: one server on 127.0.0.1, --timeout per replay.

    scripts/hostile/replay.py [--evlog target/release/evlog] [--events 60000] [--timeout 600]
"""

import time

from evlog_server import Server, args, version


def replay(s, key, n, timeout):
    """(seconds, events received, foreign events) of a replay from seq 0."""
    c = s.conn(timeout=timeout)
    t = time.time()
    c.request("GET", "/events/stream", headers={"X-API-Key": key, "Last-Event-ID": "0"})
    r = c.getresponse()
    assert r.status == 200, r.status
    got = foreign = 0
    deadline = t + timeout
    while got < n and time.time() < deadline:
        line = r.fp.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            got += 1
            foreign += b'"user_id":"alice"' not in line
    c.close()
    return time.time() - t, got, foreign


def main():
    a = args(__doc__, events=(int, 60_000, "events of alice"),
             timeout=(float, 600.0, "seconds allowed per replay"))
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog, durability="none") as s:
        alice = s.add_key("user", "alice")
        total = a.events + a.events // 3
        events = [{"event_type": "commit", "status": "success",
                   "user_id": "bob" if i % 4 == 3 else "alice",
                   "action_description": f"event {i}"} for i in range(total)]
        t = time.time()
        s.append(events)
        s.caught_up()
        print(f"stored and indexed {total} events ({a.events} of alice) in {time.time() - t:.1f} s")
        t = time.time()
        exported = s.export("start=1970-01-01T00:00:00Z", key=alice)
        export_s = time.time() - t
        assert len(exported) == a.events, len(exported)
        replay_s, got, foreign = replay(s, alice, a.events, a.timeout)
        print(f"export of {len(exported)} events:           {export_s:.2f} s")
        done = "" if got == a.events else f" (stopped at the {a.timeout:.0f} s bound)"
        print(f"replay (Last-Event-ID: 0), {got} events: {replay_s:.2f} s{done}")
        print(f"replay / export: {replay_s / export_s:.1f}x; events of another user received: {foreign}")
        if foreign:
            raise SystemExit("FAIL: another user's event reached the stream")


if __name__ == "__main__":
    main()
