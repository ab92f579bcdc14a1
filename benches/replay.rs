//! Live-tail replay against export (issue 12, item 4), in one run.
//! A plain `main` (harness = false).
//!
//! A store holds N events of user `alice` (default 60,000) with every
//! fourth event another user's (`bob`, N/3 more), appended in a few
//! batches (several segments) and indexed. With the same filters
//! (`user_id=alice`, all time), R rounds (default 3), alternating:
//!
//! 1. library: a [`Follow`] from seq 0 polled until it returns nothing (a
//!    `Last-Event-ID: 0` replay) against export's paging (`IndexSearch::query`,
//!    1000 per page, through the cursor); time and documents read
//!    ([`IndexSearch::docs_examined`]);
//! 2. HTTP (`evlog serve` on 127.0.0.1): `GET /events/stream` with
//!    `Last-Event-ID: 0` until N events have come against
//!    `GET /events/export?format=ndjson` to its end; time as the client
//!    sees it, and the server's CPU time (user + system, `/proc/PID/stat`).
//!
//! Options (`--name value`, or `EVLOG_BENCH_<NAME>`): `--events 60000`,
//! `--reps 3`, `--http yes|no`, `--dir DIR` (default `$EVLOG_BENCH_DIR`,
//! else `/tmp`). Prints a table and `RESULT name=value` lines.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench --bench replay`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use evlog::index::query::MAX_LIMIT;
use evlog::index::{Follow, IndexConfig, IndexSearch, Indexer, Query};
use evlog::{Config, Durability, Event, EventLog, EventType};

use common::flags::Flags;
use common::proc::process_cpu_s;
use common::serve::Server;

struct Opts {
    events: usize,
    reps: usize,
    http: bool,
}

fn opts() -> Opts {
    let f = Flags::parse();
    f.dir(); // where `common::temp_dir` puts the store
    Opts {
        events: f.num("events", 60_000),
        reps: f.num("reps", 3),
        http: f.get("http").is_none_or(|v| v != "no"),
    }
}

/// The filters of both sides.
fn filters() -> Query {
    Query {
        user_id: Some("alice".into()),
        start: Some(DateTime::<Utc>::UNIX_EPOCH),
        ..Default::default()
    }
}

fn build(dir: &std::path::Path, n: usize) -> usize {
    let log = EventLog::open(Config::new(dir).durability(Durability::None)).unwrap();
    let mut ix = Indexer::open(IndexConfig::new(dir)).unwrap();
    let total = n + n / 3;
    let parts = 6;
    let mut alice = 0;
    for p in 0..parts {
        let events: Vec<Event> = (p * total / parts..(p + 1) * total / parts)
            .map(|i| {
                let mut e = common::event(i as u64);
                e.user_id = if i % 4 == 3 {
                    "bob".into()
                } else {
                    alice += 1;
                    "alice".into()
                };
                e
            })
            .collect();
        log.append_batch(events).unwrap();
        ix.catch_up_and_commit().unwrap();
    }
    log.append(Event::new(EventType::SystemStart, "evlog", "built"))
        .unwrap();
    ix.catch_up_and_commit().unwrap();
    drop(ix);
    log.flush().unwrap();
    drop(log);
    alice
}

/// (seconds, events, documents read) of a replay from seq 0.
fn replay(search: &IndexSearch) -> (f64, usize, u64) {
    let before = search.docs_examined();
    let t = Instant::now();
    let mut follow = Follow::new(filters(), 0);
    let mut n = 0;
    loop {
        let b = follow.next_batch(search).unwrap();
        if b.is_empty() {
            break;
        }
        n += b.len();
    }
    (
        t.elapsed().as_secs_f64(),
        n,
        search.docs_examined() - before,
    )
}

/// (seconds, events, documents read) of an export's paging.
fn export(search: &IndexSearch) -> (f64, usize, u64) {
    let before = search.docs_examined();
    let t = Instant::now();
    let mut q = filters();
    q.limit = Some(MAX_LIMIT);
    let mut n = 0;
    loop {
        let page = search.query(&q).unwrap();
        n += page.events.len();
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    (
        t.elapsed().as_secs_f64(),
        n,
        search.docs_examined() - before,
    )
}

/// `evlog serve` on the store, and its admin key.
fn serve(dir: &std::path::Path) -> (Server, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evlog"));
    cmd.arg("--storage")
        .arg(dir)
        .args(["--durability", "none", "serve", "--addr", "127.0.0.1:0"])
        .env("EVLOG_ROTATE_AT", "off")
        .stdout(Stdio::piped());
    let mut s = Server::start(cmd);
    let mut out = BufReader::new(s.child.stdout.take().unwrap());
    let mut line = String::new();
    let key = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "no admin key printed"
        );
        if let Some(k) = line.split_whitespace().find(|w| w.starts_with("evk_")) {
            break k.to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (s, key)
}

/// (seconds, server CPU seconds) of `f`.
fn with_cpu<T>(s: &Server, f: impl FnOnce() -> T) -> (T, f64) {
    let before = process_cpu_s(s.child.id());
    let out = f();
    (out, process_cpu_s(s.child.id()) - before)
}

/// A connection to the server with `GET {target}` sent, with the key and `headers`.
fn get(s: &Server, key: &str, target: &str, headers: &str) -> TcpStream {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    write!(
        c,
        "GET {target} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n{headers}\r\n"
    )
    .unwrap();
    c
}

/// Seconds until `GET /events/stream` with `Last-Event-ID: 0` delivered `n` events.
fn http_replay(s: &Server, key: &str, n: usize) -> f64 {
    let t = Instant::now();
    let c = get(
        s,
        key,
        "/events/stream?user_id=alice",
        "Last-Event-ID: 0\r\n",
    );
    let mut r = BufReader::with_capacity(1 << 16, c);
    let mut line = String::new();
    let mut got = 0;
    while got < n {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        if line.starts_with("event:") {
            got += 1;
        }
    }
    t.elapsed().as_secs_f64()
}

/// (seconds, lines) of `GET /events/export?format=ndjson` with the same filters.
fn http_export(s: &Server, key: &str) -> (f64, usize) {
    let t = Instant::now();
    let mut c = get(
        s,
        key,
        "/events/export?user_id=alice&start=1970-01-01T00:00:00Z&format=ndjson",
        "Connection: close\r\n",
    );
    let mut body = Vec::new();
    c.read_to_end(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    let lines = text.matches("\"user_id\":\"alice\"").count();
    (t.elapsed().as_secs_f64(), lines)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let o = opts();
    let dir = common::temp_dir("evlog-replay-");
    let t = Instant::now();
    let n = build(dir.path(), o.events);
    println!(
        "store: {n} events of alice + {} of bob, built and indexed in {:.1} s",
        o.events + o.events / 3 - n,
        t.elapsed().as_secs_f64()
    );
    let ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
    let search = ix.search();
    let (mut rt, mut et) = (Vec::new(), Vec::new());
    let (mut rd, mut ed) = (0, 0);
    for round in 0..o.reps {
        let (r, e) = if round % 2 == 0 {
            let r = replay(&search);
            (r, export(&search))
        } else {
            let e = export(&search);
            (replay(&search), e)
        };
        assert_eq!(r.1, n, "replay returned every event of alice");
        assert_eq!(e.1, n, "export returned every event of alice");
        rt.push(r.0);
        et.push(e.0);
        (rd, ed) = (r.2, e.2);
    }
    drop(search);
    drop(ix);
    let (r, e) = (median(rt), median(et));
    println!("library, median of {} rounds:", o.reps);
    println!("  replay (Follow from seq 0): {r:.3} s, {rd} documents read");
    println!("  export (pages of {MAX_LIMIT}):      {e:.3} s, {ed} documents read");
    println!("  replay / export: {:.2}", r / e);
    println!("RESULT lib_replay_s={r:.3}");
    println!("RESULT lib_export_s={e:.3}");
    println!("RESULT lib_replay_docs={rd}");
    println!("RESULT lib_export_docs={ed}");
    if !o.http {
        return;
    }
    let (s, key) = serve(dir.path());
    let (mut rt, mut et, mut rc, mut ec) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut replay = || {
        let (t, cpu) = with_cpu(&s, || http_replay(&s, &key, n));
        rt.push(t);
        rc.push(cpu);
    };
    let mut export = || {
        let ((t, lines), cpu) = with_cpu(&s, || http_export(&s, &key));
        assert_eq!(lines, n, "export returned every event of alice");
        et.push(t);
        ec.push(cpu);
    };
    for round in 0..o.reps {
        if round % 2 == 0 {
            replay();
            export();
        } else {
            export();
            replay();
        }
    }
    let (r, e) = (median(rt), median(et));
    let (r_cpu, e_cpu) = (median(rc), median(ec));
    println!(
        "HTTP (evlog serve on 127.0.0.1), median of {} rounds (time; server CPU):",
        o.reps
    );
    println!("  GET /events/stream, Last-Event-ID: 0, until {n} events: {r:.3} s; {r_cpu:.2} s");
    println!("  GET /events/export?format=ndjson, to its end:           {e:.3} s; {e_cpu:.2} s");
    println!(
        "  replay / export: {:.2}; server CPU {:.2}",
        r / e,
        r_cpu / e_cpu
    );
    println!("RESULT http_replay_s={r:.3}");
    println!("RESULT http_export_s={e:.3}");
    println!("RESULT http_replay_cpu_s={r_cpu:.2}");
    println!("RESULT http_export_cpu_s={e_cpu:.2}");
}
