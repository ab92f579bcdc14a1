"""A throwaway `evlog serve` on 127.0.0.1 for the scripts of this folder
(standard library only): a fresh storage directory, the first admin key,
keys added through the CLI, events seeded over HTTP, and small HTTP
helpers with timeouts. Nothing here talks to anything but loopback.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time


class Server:
    """`evlog serve --addr 127.0.0.1:0` over a fresh storage directory.

    Use as a context manager: the process is killed and the directory
    removed on exit.
    """

    def __init__(self, evlog, limits=""):
        self.evlog = os.path.abspath(evlog)
        self.root = tempfile.mkdtemp(prefix="evlog-hostile-")
        self.storage = os.path.join(self.root, "store")
        self.keys_file = os.path.join(self.storage, "keys.json")
        config = os.path.join(self.root, "evlog.toml")
        with open(config, "w") as f:
            f.write("[server.limits]\n" + limits + "\n")
        self.base_args = [self.evlog, "--storage", self.storage, "--durability", "none",
                          "--config", config]
        self.log = []
        self.proc = subprocess.Popen(
            self.base_args + ["serve", "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("EVLOG_")})
        out = []
        threading.Thread(target=self._drain, args=(self.proc.stdout, out), daemon=True).start()
        deadline = time.time() + 60
        self.addr = None
        while self.addr is None:
            line = self.proc.stderr.readline()
            if not line or time.time() > deadline:
                raise RuntimeError("evlog serve did not start: " + "".join(self.log) + line)
            self.log.append(line)
            if "on http://" in line:
                self.addr = line.split("on http://")[1].split()[0]
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.log), daemon=True).start()
        self.host, self.port = self.addr.rsplit(":", 1)
        self.port = int(self.port)
        while True:
            words = "".join(out).split()
            keys = [w for w in words if w.startswith("evk_")]
            if keys:
                self.admin = keys[0]
                break
            if time.time() > deadline:
                raise RuntimeError("no admin key printed")
            time.sleep(0.05)

    @staticmethod
    def _drain(stream, into):
        for line in stream:
            into.append(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def cli(self, *args):
        """Runs `evlog <args>` on the same storage; returns its stdout."""
        r = subprocess.run(self.base_args + list(args), capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"evlog {' '.join(args)}: {r.stderr}")
        return r.stdout.strip()

    def add_key(self, role, user, *extra):
        return self.cli("keys", "add", "--role", role, "--user", user, *extra)

    def key_id(self, user):
        keys = json.loads(self.cli("keys", "list", "--format", "json"))
        return [k["id"] for k in keys if k["user_id"] == user and not k["revoked"]][-1]

    def request(self, method, path, key=None, body=None, timeout=30):
        """(status, parsed JSON or text, seconds); status 0 if no answer in `timeout`."""
        start = time.time()
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {}
        if key:
            headers["X-API-Key"] = key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            return r.status, parsed, time.time() - start
        except (socket.timeout, TimeoutError, ConnectionError):
            return 0, None, time.time() - start
        finally:
            c.close()

    def seed(self, user, n, filler=300):
        """Appends `n` events of `user` (about 450 bytes each in an export)."""
        pad = "x" * filler
        for start in range(0, n, 5000):
            batch = [{"event_type": "commit", "user_id": user,
                      "action_description": f"seeded {i} {pad}", "status": "success"}
                     for i in range(start, min(n, start + 5000))]
            status, body, _ = self.request("POST", "/events", self.admin, batch, timeout=120)
            if status != 201:
                raise RuntimeError(f"seeding: {status} {body}")
        self.caught_up()

    def caught_up(self):
        deadline = time.time() + 120
        while time.time() < deadline:
            status, h, _ = self.request("GET", "/health")
            if status == 200 and h["index"]["lag_events"] == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("the index did not catch up")

    def threads(self):
        """Threads of the server process (Linux)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024

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
