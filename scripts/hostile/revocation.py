#!/usr/bin/env python3
"""Revocation against open responses: does revoking a key end what it has
open, and does a broken keys file lose a revocation?

    scripts/hostile/revocation.py [--evlog target/debug/evlog] [--events 20000]

Starts its own `evlog serve` on 127.0.0.1 over a fresh directory, seeds
EVENTS events of alice, and then:

1. alice's key opens a live stream and an export that it does not read;
   `evlog keys revoke` revokes the key; an admin appends an event of alice
   at once. Reported: how long after the keys file changed (its mtime) the
   stream ended, whether the event stored after the revocation was sent on
   it, and whether the export was cut or delivered whole (waiting at most
   30 s for each).
2. a second key of alice is revoked by hand in the keys file, with a JSON
   syntax error. Reported: what that key gets now, and how many times the
   server logged the broken file in 5 s.
3. (servers with `keys add --expires`) a key that expires in 4 s opens a
   stream. Reported: how long after its expiry the stream ended.

Standard library only; bounded (about a minute); everything on loopback.
"""

import http.client
import json
import os
import socket
import threading
import time

from evlog_server import Server, args, deploy, drain, version


class Stream:
    """A live stream read line by line by a thread (http.client undoes the
    chunked framing; the end of the body is the end of the stream, whether
    the server then keeps the connection or closes it)."""

    def __init__(self, srv, key):
        self.conn = http.client.HTTPConnection(srv.host, srv.port, timeout=None)
        self.conn.request("GET", "/events/stream", headers={"X-API-Key": key})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        self.lines, self.ended_at = [], None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # AttributeError: closed under the reader by close().
            pass
        self.ended_at = time.time()

    def close(self):
        self.conn.close()

    def data(self):
        out = []
        for line in self.lines:
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
        return out

    def wait_for(self, desc, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(str(d.get("action_description", "")).startswith(desc) for d in self.data()):
                return True
            time.sleep(0.02)
        return False

    def wait_end(self, timeout=30):
        deadline = time.time() + timeout
        while self.ended_at is None and time.time() < deadline:
            time.sleep(0.01)
        return self.ended_at


def main():
    a = args(__doc__, events=(int, 20000, "events of alice seeded"))
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog, durability="none") as srv:
        alice = srv.add_key("user", "alice", "--label", "one")
        alice_id = srv.key_id("alice")
        alice2 = srv.add_key("user", "alice", "--label", "two")
        srv.seed("alice", a.events)

        # 1. Revoke a key with a stream and an export open.
        stream = Stream(srv, alice)
        export, status, _ = srv.open_raw("/events/export?start=1970-01-01T00:00:00Z", alice)
        assert status == 200, status
        srv.request("POST", "/events", srv.admin, deploy("alice", "before the revocation"))
        assert stream.wait_for("before the revocation"), "the stream did not deliver"
        srv.cli_ok("keys", "revoke", alice_id)
        changed = os.stat(srv.keys_file).st_mtime
        srv.request("POST", "/events", srv.admin, deploy("alice", "after the revocation"))
        ended = stream.wait_end(30)
        after = [d for d in stream.data()
                 if str(d.get("action_description", "")).startswith("after the revocation")]
        ends = [line for line in stream.lines if line.startswith("data:") and "key_revoked" in line]
        if ended:
            print(f"1. stream of the revoked key: ended {(ended - changed) * 1000:.0f} ms after the keys file changed"
                  + (" (with an `end` message: key_revoked)" if ends else ""))
        else:
            print("1. stream of the revoked key: still open 30 s after the revocation")
        print(f"   events stored after the revocation sent on it: {len(after)}")
        body, closed, complete = drain(export, timeout=30)
        rows = body.count(b'"action_description"')
        state = "delivered whole" if complete else ("cut by the server" if closed else "still open after 30 s")
        print(f"   export of the revoked key, read after the revocation: {state}, {rows} of {a.events} events")
        stream.close()

        # 2. A revocation written into a broken keys file.
        before_lines = len(srv.log)
        with open(srv.keys_file) as f:
            keys = json.load(f)
        for k in keys["keys"]:
            if k["user_id"] == "alice" and not k.get("revoked"):
                k["revoked"] = "2026-01-01T00:00:00Z"
        text = json.dumps(keys, indent=2)
        text = text[:-2] + ",\n}"  # a trailing comma: not JSON
        tmp = srv.keys_file + ".edit"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.rename(tmp, srv.keys_file)
        time.sleep(5)
        status, body = srv.request("GET", "/events", alice2)
        code = json.loads(body).get("error", {}).get("code", "events") if body else "no answer"
        logged = sum(1 for line in srv.log[before_lines:] if "keys file" in line)
        health = json.loads(srv.request("GET", "/health")[1])
        print(f"2. key revoked by hand in a keys file with a syntax error: GET /events answers {status} {code}; "
              f"the server logged the broken file {logged} time(s) in 5 s; /health status {health.get('status')}"
              + (f", keys {health['keys']['state']}" if "keys" in health else ""))
        tmp_ok = json.dumps(keys, indent=2)
        with open(tmp, "w") as f:
            f.write(tmp_ok)
        os.chmod(tmp, 0o600)
        os.rename(tmp, srv.keys_file)

        # 3. Expiry.
        try:
            expiring = srv.add_key("user", "alice", "--expires", "4s")
        except RuntimeError:
            print("3. key expiry: not supported by this evlog")
            return
        listed = json.loads(srv.cli_ok("keys", "list", "--format", "json"))
        exp = [k["expires"] for k in listed if k.get("expires")][-1]
        from datetime import datetime
        at = datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp()
        deadline = time.time() + 10
        while srv.request("GET", "/events", expiring)[0] != 200 and time.time() < deadline:
            time.sleep(0.05)
        stream = Stream(srv, expiring)
        ended = stream.wait_end(30)
        status, body = srv.request("GET", "/events", expiring)
        if ended:
            print(f"3. stream of a key expiring at {exp}: ended {(ended - at) * 1000:.0f} ms after the expiry; "
                  f"then GET /events answers {status} {json.loads(body)['error']['code']}")
        else:
            print("3. stream of an expiring key: still open 30 s later")


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    main()
