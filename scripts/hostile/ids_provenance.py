#!/usr/bin/env python3
"""Hostile clients (issue 12, item 5): shadowing an event by reusing its
id, probing other users' ids, forging the server's own events. Standard
library only.

    scripts/hostile/ids_provenance.py [--evlog PATH]

Starts `PATH serve` (default $EVLOG, else target/debug/evlog) on 127.0.0.1 over a fresh
temporary storage directory with keys for an admin, users alice and bob
and a service, and prints, for each attack, what the server answered and
what an admin reading the log sees:

1. shadow: the service appends an event with id X, then another "forged"
   one with the same id X (once right away, once after the index caught
   up); what `GET /events/X` shows an admin.
2. race: 8 requests with one new id at the same moment, 10 times: how many
   are stored.
3. probe: alice asks for bob's event by id and for an id that does not
   exist, then appends an event with each id: can she tell them apart?
4. forge: the service appends a `system_start` as the user `evlog`, and
   one as another user: answers, and the `appended_by` of the stored
   events next to the server's own `system_start`.
5. cost: 1,000 single-event appends one after another on one keep-alive
   connection, without and with client ids (the duplicate check runs only
   for the latter): mean time per request.

Bounded: loopback only, a few dozen requests, the server stopped at the end.
"""

import json
import threading
import time
import uuid

from evlog_server import Server, args, deploy, version


def post(srv, key, body):
    status, data = srv.request("POST", "/events", key, body)
    try:
        code = json.loads(data).get("error", {}).get("code", "")
    except ValueError:
        code = ""
    return f"{status} {code}".strip()


def main():
    a = args(__doc__)
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog, keys=[("admin", "root"), ("user", "alice"), ("user", "bob"),
                               ("service", "ingest")]) as srv:
        admin, alice, bob, svc = (srv.keys[u] for u in ("root", "alice", "bob", "ingest"))
        # 1. shadow
        for when in ("right away", "after the index caught up"):
            x = str(uuid.uuid4())
            first = post(srv, svc, deploy("dev", "the original", id=x))
            if when != "right away":
                srv.caught_up(settle=0.6)
            second = post(srv, svc, deploy("dev", "the forgery", id=x))
            srv.caught_up(settle=0.6)
            status, data = srv.request("GET", f"/events/{x}", admin)
            shown = json.loads(data).get("action_description", "?") if status == 200 else status
            print(f"shadow ({when}): first {first}, same id again {second}; GET /events/X shows: {shown!r}")

        # 2. race
        stored = []
        for _ in range(10):
            x = str(uuid.uuid4())
            results = []
            barrier = threading.Barrier(8)

            def racer(i, x=x, results=results, barrier=barrier):
                barrier.wait()
                results.append(post(srv, svc, deploy("dev", f"racer {i}", id=x)))

            threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            stored.append(sum(1 for r in results if r.startswith("201")))
        print(f"race: 8 requests with one id, 10 rounds: stored per id {stored}")

        # 3. probe
        status, data = srv.request("POST", "/events", bob, deploy("bob", "bob's own"))
        bobs = json.loads(data)["id"]
        srv.caught_up(settle=0.6)
        made_up = str(uuid.uuid4())
        s1, d1 = srv.request("GET", f"/events/{bobs}", alice)
        s2, d2 = srv.request("GET", f"/events/{made_up}", alice)
        same = d1.replace(bobs.encode(), b"ID") == d2.replace(made_up.encode(), b"ID")
        print(f"probe: alice asks for bob's id: {s1} {d1.decode()}")
        print(f"       alice asks for a made-up id: {s2} {d2.decode()}")
        print(f"       indistinguishable: {s1 == s2 and same}")
        # ... and by appending with the id: taken (409) or free (201)?
        e1, e2 = deploy("alice", "alice's"), deploy("alice", "alice's")
        e1["id"], e2["id"] = bobs, made_up
        a1, b1 = srv.request("POST", "/events", alice, e1)
        a2, b2 = srv.request("POST", "/events", alice, e2)
        same = b1.replace(bobs.encode(), b"ID") == b2.replace(made_up.encode(), b"ID")
        print(f"       alice appends with bob's id: {a1} {b1.decode()}")
        print(f"       alice appends with a made-up id: {a2} {b2.decode()}")
        print(f"       indistinguishable: {a1 == a2 and same}")

        # 4. forge
        f1 = post(srv, svc, deploy("evlog", "evlog serve started on 127.0.0.1:8080", event_type="system_start"))
        f2 = post(srv, svc, deploy("ops", "evlog serve started on 127.0.0.1:8080", event_type="system_start"))
        srv.caught_up(settle=0.6)
        status, data = srv.request(
            "GET", "/events?event_type=system_start&start=2000-01-01T00:00:00Z", admin)
        rows = [(e["user_id"], e.get("appended_by", "(absent)"), e["action_description"])
                for e in json.loads(data)["events"]]
        print(f"forge: service as user evlog: {f1}; as user ops: {f2}")
        for user, by, desc in rows:
            print(f"       system_start user_id={user} appended_by={by}: {desc}")

        # 5. cost
        c = srv.conn()
        for label, with_id in (("without ids", False), ("with client ids", True),
                               ("without ids", False), ("with client ids", True)):
            t = time.time()
            for i in range(1000):
                e = deploy("dev", f"cost {i}")
                if with_id:
                    e["id"] = str(uuid.uuid4())
                c.request("POST", "/events", body=json.dumps(e),
                          headers={"X-API-Key": svc, "Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                assert r.status == 201, r.status
            ms = (time.time() - t) * 1000 / 1000
            print(f"cost: 1,000 sequential appends {label}: {ms:.2f} ms per request")
        c.close()


if __name__ == "__main__":
    main()
