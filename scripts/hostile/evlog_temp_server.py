"""A throw-away `evlog serve` for the scripts of scripts/hostile/ (standard
library only): 127.0.0.1:0 over a fresh temporary storage directory,
stopped (SIGTERM, then SIGKILL after 10 s) and removed by `stop()`.
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def proc_status(pid, field):
    """A field of /proc/<pid>/status, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


class Server:
    """`evlog serve` on 127.0.0.1:0 over a temporary storage directory."""

    def __init__(self, evlog, extra_keys=()):
        self.dir = tempfile.mkdtemp(prefix="evlog-hostile-")
        storage = os.path.join(self.dir, "data")
        self.keys = {}
        for role, user in extra_keys:
            out = subprocess.run(
                [evlog, "--storage", storage, "keys", "add", "--role", role, "--user", user],
                check=True, capture_output=True, text=True,
            )
            self.keys[user] = out.stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVLOG_")}
        self.proc = subprocess.Popen(
            [evlog, "--storage", storage, "serve", "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.addr = None
        self.admin = None
        found = threading.Event()

        def read_err():
            for line in self.proc.stderr:
                m = re.search(r"on http://(\S+)", line)
                if m and self.addr is None:
                    self.addr = m.group(1)
                    found.set()

        def read_out():
            for line in self.proc.stdout:
                m = re.search(r"(evk_[0-9a-f]+)", line)
                if m and self.admin is None:
                    self.admin = m.group(1)

        threading.Thread(target=read_err, daemon=True).start()
        threading.Thread(target=read_out, daemon=True).start()
        if not found.wait(60):
            self.stop()
            sys.exit("evlog serve did not start")
        host, port = self.addr.rsplit(":", 1)
        assert host == "127.0.0.1", "loopback only"
        self.port = int(port)
        deadline = time.time() + 10
        while not self.admin and not extra_keys and time.time() < deadline:
            time.sleep(0.05)

    def request(self, method, path, key, body=b"", ctype="application/json", timeout=60):
        """One request on a fresh connection: (status, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"X-API-Key": key, "Content-Type": ctype}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
