"""A throwaway `evlog serve` for the scripts of scripts/hostile/ (standard
library only; every server on 127.0.0.1).

A script parses its flags with `args` (`--evlog PATH`, default $EVLOG, else
target/debug/evlog, so that the same script measures the code before and
after a fix), starts `Server` (`evlog serve --addr 127.0.0.1:0` over a fresh
temporary storage directory; a context manager that stops the server and
removes the directory), talks to it over plain HTTP/1.1 with timeouts and
runs the CLI on the same storage. Nothing here talks to anything but
loopback.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time


def args(doc, **extra):
    """Parses `--evlog` plus `extra` (name -> (type, default, help)); the
    script's docstring `doc` is its help. Fails unless the binary exists."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evlog", default=os.environ.get("EVLOG", "target/debug/evlog"),
                   help="the evlog binary (default $EVLOG, else target/debug/evlog)")
    for name, (kind, default, help_) in extra.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=help_)
    a = p.parse_args()
    a.evlog = os.path.abspath(a.evlog)
    if not os.access(a.evlog, os.X_OK):
        p.error(f"{a.evlog}: not an executable (build it, or pass --evlog)")
    return a


def version(evlog):
    """What is measured: the binary's path and when it was built."""
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(evlog)))
    return f"{evlog} (built {built})"


def deploy(user, desc, **extra):
    """A `deploy` event of `user` described as `desc` (plus `extra` fields),
    for `POST /events`."""
    return dict({"event_type": "deploy", "user_id": user, "action_description": desc,
                 "status": "success"}, **extra)


class Server:
    """`evlog --storage DIR serve --addr 127.0.0.1:0` over a fresh directory.

    - `limits`: `[server.limits]` lines for a config file (none if empty);
    - `keys`: (role, user) pairs added before the start, into `self.keys`
      by user (the server then prints no first admin key: `self.admin` is
      None); without them `self.admin` is the key the first start printed;
    - `durability`: passed as `--durability` to every command if set;
    - `env`: extra environment (every inherited `EVLOG_*` is removed, and
      rotation is off).

    The server's log (standard error) collects in `self.log`, a line an item.
    """

    def __init__(self, evlog, limits="", keys=(), durability=None, env=None):
        self.evlog = os.path.abspath(evlog)
        self.root = tempfile.mkdtemp(prefix="evlog-hostile-")
        self.storage = os.path.join(self.root, "store")
        self.keys_file = os.path.join(self.storage, "keys.json")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOG_")}
        self.env["EVLOG_ROTATE_AT"] = "off"
        self.env.update(env or {})
        self.base = [self.evlog, "--storage", self.storage]
        if durability:
            self.base += ["--durability", durability]
        if limits:
            config = os.path.join(self.root, "evlog.toml")
            with open(config, "w") as f:
                f.write("[server.limits]\n" + limits + "\n")
            self.base += ["--config", config]
        self.keys = {user: self.add_key(role, user, wait=False) for role, user in keys}
        self.proc = subprocess.Popen(
            self.base + ["serve", "--addr", "127.0.0.1:0"], cwd=self.root, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log, out = [], []
        listening = threading.Event()

        def read_log():
            for line in self.proc.stderr:
                self.log.append(line)
                if "on http://" in line:
                    listening.set()

        def read_out():
            for line in self.proc.stdout:
                out.append(line)

        threading.Thread(target=read_log, daemon=True).start()
        threading.Thread(target=read_out, daemon=True).start()
        if not listening.wait(60):
            self.stop()
            raise SystemExit("evlog serve did not start:\n" + "".join(self.log))
        banner = next(line for line in self.log if "on http://" in line)
        self.host, port = banner.split("on http://")[1].split()[0].rsplit(":", 1)
        assert self.host == "127.0.0.1", "loopback only"
        self.port = int(port)
        self.admin = None
        deadline = time.time() + 10
        while not keys and self.admin is None:
            printed = [w for w in "".join(out).split() if w.startswith("evk_")]
            if printed:
                self.admin = printed[0]
            elif time.time() > deadline:
                self.stop()
                raise SystemExit("evlog serve printed no first admin key")
            else:
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self.proc.pid

    def shutdown(self):
        """Stops the server (SIGTERM, SIGKILL after 10 s); keeps the storage
        for the CLI."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        """Stops the server and removes its directory."""
        self.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)

    # The CLI on the same storage.

    def cli(self, *argv, env=None):
        """Runs `evlog --storage DIR ARGV...`; returns the completed process
        (output as bytes: text mode would turn a stored CR into LF)."""
        return subprocess.run(self.base + list(argv), cwd=self.root,
                              env=dict(self.env, **(env or {})), capture_output=True,
                              timeout=600)

    def cli_ok(self, *argv, env=None):
        """`cli`, failing (RuntimeError) unless it exits 0; its standard
        output as text, stripped."""
        r = self.cli(*argv, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"evlog {' '.join(argv)}: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode().strip()

    def add_key(self, role, user, *extra, env=None, wait=True):
        """`evlog keys add --role ROLE --user USER EXTRA...`: the new key. With
        `wait`, returns once the running server accepts it."""
        key = self.cli_ok("keys", "add", "--role", role, "--user", user, *extra, env=env)
        if wait:
            # The server sees the change within about a second; asking before
            # that would be a denial (recorded) of its own.
            time.sleep(1.2)
            deadline = time.time() + 10
            while self.request("GET", "/events", key)[0] != 200:
                if time.time() > deadline:
                    raise SystemExit("the new key was not loaded")
                time.sleep(0.05)
        return key

    def key_id(self, user):
        """The id (`k_…`) of `user`'s newest key that is not revoked."""
        keys = json.loads(self.cli_ok("keys", "list", "--format", "json"))
        return [k["id"] for k in keys if k["user_id"] == user and not k["revoked"]][-1]

    # HTTP.

    def conn(self, timeout=60):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, key=None, body=None, headers=None, timeout=60):
        """One request on a fresh connection: (status, body bytes); (0, b"")
        if there was no answer within `timeout`. `body`: bytes or str as
        they are, anything else as JSON."""
        h = dict(headers or {})
        if key:
            h["X-API-Key"] = key
        if body is not None:
            h.setdefault("Content-Type", "application/json")
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        except (socket.timeout, TimeoutError, ConnectionError):
            return 0, b""
        finally:
            c.close()

    def append(self, events, key=None):
        """Appends `events` (as the admin by default), 5,000 a request."""
        for i in range(0, len(events), 5000):
            status, body = self.request("POST", "/events", key or self.admin,
                                        events[i:i + 5000], timeout=120)
            if status != 201:
                raise SystemExit(f"append: {status} {body[:300]!r}")

    def seed(self, user, n, filler=300):
        """Appends `n` events of `user` (about 450 bytes each in an export)
        and waits until they are indexed."""
        pad = "x" * filler
        self.append([{"event_type": "commit", "user_id": user,
                      "action_description": f"seeded {i} {pad}", "status": "success"}
                     for i in range(n)])
        self.caught_up()

    def caught_up(self, settle=0.0):
        """Waits until the index has every event on disk; with `settle`,
        that many seconds later again (events the server writes itself)."""
        deadline = time.time() + 120
        while True:
            status, body = self.request("GET", "/health")
            if status == 200 and json.loads(body)["index"]["lag_events"] == 0:
                if not settle:
                    return
                time.sleep(settle)
                settle = 0.0
                continue
            if time.time() > deadline:
                raise SystemExit("the index did not catch up")
            time.sleep(0.05)

    def export(self, query, key=None):
        """Every NDJSON line of /events/export?QUERY, as JSON values."""
        status, body = self.request("GET", "/events/export?format=ndjson&" + query,
                                    key or self.admin)
        if status != 200:
            raise SystemExit(f"export: {status} {body[:300]!r}")
        return [json.loads(line) for line in body.decode().splitlines() if line]

    def open_raw(self, path, key, extra_headers=""):
        """Sends a GET on a new socket and reads only the status line and
        headers; the body is left unread. Returns (socket, status, head)."""
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n{extra_headers}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        text = head.split(b"\r\n\r\n")[0].decode(errors="replace")
        status = int(text[9:12]) if text.startswith("HTTP/1.1 ") else 0
        return s, status, text

    # The process (Linux /proc).

    def _status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def threads(self):
        """Threads of the server process."""
        return self._status("Threads")

    def mib(self, field):
        """A memory field of /proc/<pid>/status (VmRSS, VmHWM…), in MiB."""
        return self._status(field) / 1024


def drain(sock, timeout=60):
    """Reads a socket until the server closes it (or `timeout`); returns
    (bytes, closed_by_server, complete_chunked_body)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got, True, got.endswith(b"\r\n0\r\n\r\n")
            got += chunk
            if got.endswith(b"\r\n0\r\n\r\n"):
                return got, False, True
    except ConnectionResetError:
        return got, True, False
    except (socket.timeout, TimeoutError):
        return got, False, False
