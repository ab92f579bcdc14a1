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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use evlog::index::query::MAX_LIMIT;
use evlog::index::{Follow, IndexConfig, IndexSearch, Indexer, Query};
use evlog::{Config, Durability, Event, EventLog, EventType};

struct Opts {
    events: usize,
    reps: usize,
    http: bool,
}

fn opts() -> Opts {
    let mut flags = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(name) = a.strip_prefix("--") else {
            continue;
        };
        if name == "bench" {
            continue;
        }
        let v = args
            .next()
            .unwrap_or_else(|| panic!("--{name} wants a value"));
        flags.insert(name.to_string(), v);
    }
    let get = |name: &str| {
        flags.get(name).cloned().or_else(|| {
            std::env::var(format!("EVLOG_BENCH_{}", name.to_uppercase()))
                .ok()
                .filter(|v| !v.is_empty())
        })
    };
    if let Some(d) = get("dir") {
        // SAFETY: set before any other thread starts.
        unsafe { std::env::set_var("EVLOG_BENCH_DIR", d) };
    }
    Opts {
        events: get("events").map_or(60_000, |v| v.replace('_', "").parse().expect("--events")),
        reps: get("reps").map_or(3, |v| v.parse().expect("--reps")),
        http: get("http").is_none_or(|v| v != "no"),
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
        ix.sync().unwrap();
    }
    log.append(Event::new(EventType::SystemStart, "evlog", "built"))
        .unwrap();
    ix.sync().unwrap();
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

struct Server {
    child: Child,
    addr: String,
    key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evlog"))
        .arg("--storage")
        .arg(dir)
        .args(["--durability", "none", "serve", "--addr", "127.0.0.1:0"])
        .env("EVLOG_ROTATE_AT", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
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
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no banner");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining the log so the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Server { child, addr, key }
}

/// CPU seconds (user + system) the server process has used so far.
fn cpu_s(s: &Server) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.child.id())).unwrap();
    // After the command name (in parentheses): the state (field 3), ...,
    // utime (field 14) and stime (field 15), in clock ticks.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / hz as f64
}

/// (seconds, server CPU seconds) of `f`.
fn with_cpu<T>(s: &Server, f: impl FnOnce() -> T) -> (T, f64) {
    let before = cpu_s(s);
    let out = f();
    (out, cpu_s(s) - before)
}

/// Seconds until `GET /events/stream` with `Last-Event-ID: 0` delivered `n` events.
fn http_replay(s: &Server, n: usize) -> f64 {
    let t = Instant::now();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    write!(
        c,
        "GET /events/stream?user_id=alice HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nLast-Event-ID: 0\r\n\r\n",
        s.key
    )
    .unwrap();
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
fn http_export(s: &Server) -> (f64, usize) {
    let t = Instant::now();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    write!(
        c,
        "GET /events/export?user_id=alice&start=1970-01-01T00:00:00Z&format=ndjson HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nConnection: close\r\n\r\n",
        s.key
    )
    .unwrap();
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
    let s = serve(dir.path());
    let (mut rt, mut et, mut rc, mut ec) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut replay = || {
        let (t, cpu) = with_cpu(&s, || http_replay(&s, n));
        rt.push(t);
        rc.push(cpu);
    };
    let mut export = || {
        let ((t, lines), cpu) = with_cpu(&s, || http_export(&s));
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
