#!/usr/bin/env python3
"""Issue 12, item 8: a user key named like the operator reads every key
change, and every rotation report.

The operator (login `ops`) has a user key `ops` (for their own appends) and
adds and revokes keys with `evlog keys`; the script counts the
`system_config` events (key changes) that the `ops` user key reads, and
shows who they say appended them (`appended_by`). Then an admin key for
the user `ops` runs `POST /admin/rotate`; the script shows where its
report is stored and whether the `ops` user key reads it.
Bounded: one server on 127.0.0.1, five key changes, one rotation.

    scripts/hostile/key_events.py [--evlog target/debug/evlog]
"""

from evlog_server import Server, args, version


def main():
    a = args(__doc__)
    print(f"evlog: {version(a.evlog)}")
    ops_env = {"USER": "ops", "LOGNAME": "ops"}
    with Server(a.evlog) as s:
        ops = s.add_key("user", "ops", env=ops_env)
        s.add_key("user", "bob", env=ops_env)
        s.cli_ok("keys", "add", "--role", "service", "--user", "billing", env=ops_env)
        s.cli_ok("keys", "revoke", s.key_id("bob"), env=ops_env)
        s.caught_up()
        query = "event_type=system_config&start=1970-01-01T00:00:00Z"
        seen = s.export(query, key=ops)
        every = s.export(query)
        users = sorted({e["user_id"] for e in every})
        operators = sorted({str((e.get("metadata") or {}).get("operator")) for e in every})
        by = sorted({str(e.get("appended_by")) for e in every})
        print(f"key changes stored: {len(every)} (user_id {users}, metadata.operator {operators}, "
              f"appended_by {by})")
        print(f"key changes the user key `ops` reads: {len(seen)}")

        admin = s.add_key("admin", "ops", env=ops_env)
        status, _ = s.request("POST", "/admin/rotate", admin)
        assert status == 200, status
        s.caught_up()

        def reports(events):
            return [e for e in events if "bytes_before" in (e.get("metadata") or {})]

        stored = reports(s.export(query))
        seen = reports(s.export(query, key=ops))
        where = [(e["user_id"], (e.get("metadata") or {}).get("operator")) for e in stored]
        print(f"rotation by the admin key `ops`: stored as (user_id, metadata.operator) {where}; "
              f"reports the user key `ops` reads: {len(seen)}")


if __name__ == "__main__":
    main()
