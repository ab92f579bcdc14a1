"""Helpers of the scripts/hostile/ reproductions of issue 12 aimed at the
log's readers (standard library only; every server on 127.0.0.1).

A reproduction starts `evlog serve` on a fresh temporary storage directory
(`Server`), talks to it over plain HTTP/1.1 and stops it; the binary comes
from `--evlog PATH` (default $EVLOG, else target/debug/evlog), so that the
same script measures the code before and after a fix.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time


def args(description, **extra):
    """The common flags (`--evlog`) plus `extra` (name -> (type, default, help))."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--evlog", default=os.environ.get("EVLOG", "target/debug/evlog"),
                   help="the evlog binary (default $EVLOG, else target/debug/evlog)")
    for name, (kind, default, help_) in extra.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=help_)
    a = p.parse_args()
    a.evlog = os.path.abspath(a.evlog)
    if not os.access(a.evlog, os.X_OK):
        p.error(f"{a.evlog}: not an executable (build it, or pass --evlog)")
    return a


class Server:
    """`evlog --storage DIR serve --addr 127.0.0.1:0` on a fresh directory."""

    def __init__(self, evlog, env=None, config=None):
        self.evlog = evlog
        self.root = tempfile.mkdtemp(prefix="evlog-hostile-")
        self.storage = os.path.join(self.root, "store")
        self.env = dict(os.environ, EVLOG_ROTATE_AT="off", **(env or {}))
        for var in ("EVLOG_STORAGE_PATH", "EVLOG_CONFIG", "EVLOG_KEYS_FILE", "EVLOG_ADDR"):
            self.env.pop(var, None)
        cmd = [evlog, "--storage", self.storage]
        if config is not None:
            path = os.path.join(self.root, "evlog.toml")
            with open(path, "w") as f:
                f.write(config)
            cmd += ["--config", path]
        self.proc = subprocess.Popen(
            cmd + ["serve", "--addr", "127.0.0.1:0"], cwd=self.root, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.admin = None
        for line in self.proc.stdout:
            if "evk_" in line:
                self.admin = next(w for w in line.split() if w.startswith("evk_"))
                break
        self.port = None
        for line in self.proc.stderr:
            if "on http://" in line:
                self.port = int(line.split("on http://")[1].split()[0].rsplit(":", 1)[1])
                break
        if self.admin is None or self.port is None:
            raise SystemExit("evlog serve did not start")
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=stream.read, daemon=True).start()

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, key=None, body=None, headers=None):
        """(status, body bytes) of one request on a fresh connection."""
        c = self.conn()
        h = dict(headers or {})
        if key:
            h["X-API-Key"] = key
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def append(self, events, key=None):
        for i in range(0, len(events), 5000):
            status, body = self.request("POST", "/events", key or self.admin, events[i:i + 5000])
            if status != 201:
                raise SystemExit(f"append: {status} {body[:300]!r}")

    def cli(self, *argv, env=None):
        """Runs `evlog --storage DIR ARGV...`; returns the completed process."""
        return subprocess.run([self.evlog, "--storage", self.storage, *argv], cwd=self.root,
                              env=dict(self.env, **(env or {})), capture_output=True, timeout=600)

    def key(self, role, user, env=None):
        out = self.cli("keys", "add", "--role", role, "--user", user, env=env)
        if out.returncode != 0:
            raise SystemExit(out.stderr.decode())
        k = out.stdout.decode().strip()
        # The server reloads the keys file every second; asking before that
        # would be a denial (recorded) of its own.
        time.sleep(1.2)
        deadline = time.time() + 10
        while self.request("GET", "/events", k)[0] != 200:
            if time.time() > deadline:
                raise SystemExit("the new key was not loaded")
            time.sleep(0.05)
        return k

    def caught_up(self):
        deadline = time.time() + 120
        while json.loads(self.request("GET", "/health")[1])["index"]["lag_events"] != 0:
            if time.time() > deadline:
                raise SystemExit("the index did not catch up")
            time.sleep(0.1)

    def export(self, query, key=None):
        """Every NDJSON line of /events/export?QUERY, as JSON values."""
        status, body = self.request("GET", "/events/export?format=ndjson&" + query,
                                    key or self.admin)
        if status != 200:
            raise SystemExit(f"export: {status} {body[:300]!r}")
        return [json.loads(l) for l in body.decode().splitlines() if l]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def version(evlog):
    """`git describe`-like label of the binary's build: its path and mtime."""
    return f"{evlog} (built {time.strftime('%Y-%m-%d %H:%M', time.localtime(os.path.getmtime(evlog)))})"
