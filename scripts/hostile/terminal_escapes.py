#!/usr/bin/env python3
"""Issue 12, item 6: an event that rewrites the operator's terminal.

Stores (as a user key) events whose text clears the screen, sets the window
title, moves the cursor up to print a fake line, and uses the C1 CSI, DEL
and a right-to-left override; then runs `evlog query`, `evlog tail -n 5`,
`evlog cat` and `evlog query --format ndjson` with standard output on a
pseudo-terminal, as an operator would, and counts the control characters
that reached it (other than the newlines ending lines). Bounded: one server
on 127.0.0.1, two events, four commands.

    scripts/hostile/terminal_escapes.py [--evlog target/debug/evlog]
"""

import os
import pty
import subprocess

from evlog_server import Server, args, version

HOSTILE = ("deploy ok\x1b[2J\x1b]0;pwned\x07\r\x1b[1Afake: all good\n"
           "\u009b31mred\u007f\u202etxt.exe")


def obeyable(text):
    return sum(1 for c in text if (c != "\n" and (ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f))
               or 0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069)


def on_a_terminal(s, *argv):
    master, slave = pty.openpty()
    p = subprocess.Popen(s.base + list(argv), cwd=s.root, env=s.env,
                         stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command is done
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    p.wait(600)
    return out.decode("utf-8", "replace").replace("\r\n", "\n")


def main():
    a = args(__doc__)
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog) as s:
        mallory = s.add_key("user", "mallory")
        s.append([{"event_type": "commit", "status": "success", "user_id": "mallory",
                   "action_description": HOSTILE}], key=mallory)
        s.caught_up()
        s.shutdown()
        for argv in (["query"], ["tail", "-n", "5"], ["cat"], ["query", "--format", "ndjson"]):
            text = on_a_terminal(s, *argv)
            print(f"evlog {' '.join(argv)}: {obeyable(text)} control character(s) reached the terminal")


if __name__ == "__main__":
    main()
