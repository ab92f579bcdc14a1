//! Concurrent append throughput against SQLite, and `Appender` enqueue latency,
//! measured in one run on one disk. A plain `main` (harness = false).
//!
//! 1. `evlog`: N threads (default 64) each call `EventLog::append` under
//!    `Durability::Fsync` in a loop (each waits for its own ack) for a fixed
//!    time: events/s, plus the ack latency distribution and group sizes.
//! 2. `sqlite`: N threads (default 64), each with its own connection (WAL,
//!    `synchronous=FULL`, `busy_timeout`), one autocommit `INSERT` of the
//!    event's JSON per event, for a fixed time: events/s.
//! 3. `enqueue`: one thread times every `Appender::append` call separately
//!    (the event is built before the timer starts) over M events (default
//!    200,000) with a queue larger than M: p50/p99/p99.9/max.
//!
//! Options (`--name value`, or the environment variable `EVLOG_BENCH_<NAME>`):
//! `--threads 64`, `--secs 5` (evlog), `--sqlite-threads 64`,
//! `--sqlite-secs 5`, `--enqueue-events 200000`, `--enqueue-warmup 50000`, `--only evlog,sqlite,enqueue`,
//! `--dir DIR` (default `$EVLOG_BENCH_DIR`, else `/tmp`; must be a real disk).
//!
//! Besides the report, it prints one machine-readable line per figure:
//! `RESULT name=value`.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench --bench concurrent -- --secs 5`.

mod common;

use common::flags::Flags;
use common::load::run_threads;
use common::proc::{Noise, minor_faults, noisy};
use common::report::{pct, result};
use common::sqlite::open_durable;
use common::temp_dir;

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use evlog::{Appender, Config, Durability, EventLog};
use uuid::Uuid;

/// Command-line and environment options.
struct Opts {
    threads: usize,
    secs: f64,
    sqlite_threads: usize,
    sqlite_secs: f64,
    enqueue_events: usize,
    enqueue_warmup: usize,
    only: Vec<String>,
}

impl Opts {
    fn parse(f: &Flags) -> Opts {
        Opts {
            threads: f.num("threads", 64),
            secs: f.num("secs", 5.0),
            sqlite_threads: f.num("sqlite-threads", 64),
            sqlite_secs: f.num("sqlite-secs", 5.0),
            enqueue_events: f.num("enqueue-events", 200_000),
            enqueue_warmup: f.num("enqueue-warmup", 50_000),
            only: f.list("only", "evlog,sqlite,enqueue"),
        }
    }

    fn runs(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// p50, p99, p99.9 and max of sorted latencies in ns, in µs.
fn latencies_us(sorted: &[u64]) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}",
        us(pct(sorted, 50.0)),
        us(pct(sorted, 99.0)),
        us(pct(sorted, 99.9)),
        us(pct(sorted, 100.0))
    )
}

/// Prints how much CPU other processes used since `noise` started, and
/// `RESULT {phase}_other_cpu_pct`.
fn report_noise(noise: &Noise, phase: &str) {
    let (other, pct) = noise.other();
    println!(
        "        other processes used {other:.2} CPU-s meanwhile ({pct:.0}% of the machine){}",
        noisy(pct)
    );
    result(&format!("{phase}_other_cpu_pct"), format!("{pct:.0}"));
}

fn bench_evlog(threads: usize, secs: f64) -> f64 {
    let dir = temp_dir("evlog-concurrent-");
    let log = EventLog::open(Config::new(dir.path()).durability(Durability::Fsync))
        .expect("opening the log");
    // Warm-up: creates the day file and its directory entry.
    for i in 0..100 {
        log.append(common::event(i)).expect("append");
    }
    let commits0 = log.counters().group_commits.load(Ordering::Relaxed);
    let appended0 = log.counters().appended.load(Ordering::Relaxed);

    let l = log.clone();
    let noise = Noise::start();
    let (n, elapsed, lat) = run_threads(
        threads,
        secs,
        move |_| l.clone(),
        |log: &mut EventLog, t, i| {
            let e = common::event(((t as u64) << 32) | i);
            log.append(e).expect("append");
        },
    );
    let commits = log.counters().group_commits.load(Ordering::Relaxed) - commits0;
    let appended = log.counters().appended.load(Ordering::Relaxed) - appended0;
    drop(log);
    let bytes: u64 = std::fs::read_dir(dir.path())
        .expect("listing the store")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let total_lines = appended0 + appended;

    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "evlog   {threads} threads, EventLog::append, Durability::Fsync, {:.1} s",
        elapsed.as_secs_f64()
    );
    println!("        events          {n}");
    println!("        events/s        {rate:.0}");
    println!(
        "        group commits   {commits} (mean {:.1} events per fdatasync)",
        appended as f64 / commits.max(1) as f64
    );
    println!(
        "        stored line     {:.0} bytes on average",
        bytes as f64 / total_lines.max(1) as f64
    );
    println!("        ack latency us  {}", latencies_us(&lat));
    report_noise(&noise, "evlog");
    result("evlog_threads", threads);
    result("evlog_events", n);
    result("evlog_events_per_s", format!("{rate:.0}"));
    result(
        "evlog_events_per_commit",
        format!("{:.1}", appended as f64 / commits.max(1) as f64),
    );
    result(
        "evlog_line_bytes",
        format!("{:.0}", bytes as f64 / total_lines.max(1) as f64),
    );
    result("evlog_ack_p50_us", us(pct(&lat, 50.0)));
    result("evlog_ack_p99_us", us(pct(&lat, 99.0)));
    rate
}

fn bench_sqlite(threads: usize, secs: f64) -> f64 {
    let dir = temp_dir("evlog-sqlite-");
    let path = dir.path().join("events.db");
    open_durable(&path)
        .execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body TEXT NOT NULL)",
        )
        .expect("create table");
    // One connection per thread, opened before the clock starts.
    let p = path.clone();
    let noise = Noise::start();
    let (n, elapsed, lat) = run_threads(
        threads,
        secs,
        move |_| open_durable(&p),
        |conn: &mut rusqlite::Connection, t, i| {
            // The same work evlog does on the caller's thread: id, timestamp, JSON.
            let id = Uuid::now_v7();
            let e = common::event(((t as u64) << 32) | i)
                .id(id)
                .timestamp(Utc::now());
            let body = serde_json::to_string(&e).expect("json");
            conn.prepare_cached("INSERT INTO events (id, body) VALUES (?1, ?2)")
                .expect("prepare")
                .execute(rusqlite::params![id.to_string(), body])
                .expect("insert");
        },
    );
    let rows: i64 = open_durable(&path)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows as u64, n, "every acknowledged insert is in the table");

    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "sqlite  {threads} threads, own connection each, WAL, synchronous=FULL, busy_timeout 60 s,"
    );
    println!(
        "        one autocommit INSERT (one transaction) per event, {:.1} s",
        elapsed.as_secs_f64()
    );
    println!("        events          {n}");
    println!("        events/s        {rate:.0}");
    println!("        commit latency us  {}", latencies_us(&lat));
    report_noise(&noise, "sqlite");
    result("sqlite_threads", threads);
    result("sqlite_events", n);
    result("sqlite_events_per_s", format!("{rate:.0}"));
    result("sqlite_p99_us", us(pct(&lat, 99.0)));
    rate
}

fn bench_enqueue(events: usize, warmup: usize) {
    let dir = temp_dir("evlog-enqueue-");
    let log = EventLog::open(Config::new(dir.path()).durability(Durability::Fsync))
        .expect("opening the log");
    log.append(common::event(0)).expect("append");
    // A queue larger than the run, so that no call takes the drop path.
    let capacity = events.max(warmup) + 1024;
    let appender = Appender::with_capacity(log, capacity);

    // Warm-up, untimed: the allocator's free lists, the queue's pages and the
    // background thread reach the state of a service that has been running.
    for i in 0..warmup as u64 {
        appender.append(common::event(i));
    }
    appender.flush();

    // The cost of the timer itself, for reference.
    let mut floor = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t0 = Instant::now();
        floor.push(t0.elapsed().as_nanos() as u64);
    }
    floor.sort_unstable();

    let mut lat = Vec::with_capacity(events);
    let faults0 = minor_faults();
    let noise = Noise::start();
    let start = Instant::now();
    for i in 0..events as u64 {
        let e = common::event(i);
        let t0 = Instant::now();
        let ok = appender.append(e);
        lat.push(t0.elapsed().as_nanos() as u64);
        assert!(ok, "enqueue {i} was dropped");
    }
    let enqueue_wall = start.elapsed();
    let faults = minor_faults() - faults0;
    let drain = Instant::now();
    let dropped = appender.dropped();
    appender.shutdown();
    let drain = drain.elapsed();
    lat.sort_unstable();

    println!(
        "enqueue Appender::append over {events} events after {warmup} warm-up (queue {capacity}), Durability::Fsync behind it"
    );
    println!(
        "        latency us  {}   (mean {:.3})",
        latencies_us(&lat),
        lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64 / 1000.0
    );
    let over = |us: u64| lat.iter().filter(|&&ns| ns > us * 1000).count();
    println!(
        "        calls over 1 us: {}, over 5 us: {}, over 50 us: {}; minor page faults in this thread during the loop: {faults}",
        over(1),
        over(5),
        over(50)
    );
    println!(
        "        timer floor us  p50 {}  p99 {}",
        us(pct(&floor, 50.0)),
        us(pct(&floor, 99.0))
    );
    println!(
        "        loop {:.3} s (incl. building events), drained {:.3} s after; dropped {dropped}",
        enqueue_wall.as_secs_f64(),
        drain.as_secs_f64()
    );
    report_noise(&noise, "enqueue");
    result("enqueue_events", events);
    result("enqueue_p50_us", us(pct(&lat, 50.0)));
    result("enqueue_p99_us", us(pct(&lat, 99.0)));
    result("enqueue_p999_us", us(pct(&lat, 99.9)));
    result("enqueue_max_us", us(pct(&lat, 100.0)));
    result("enqueue_dropped", dropped);
}

fn main() {
    let f = Flags::parse();
    let opts = Opts::parse(&f);
    let base = f.dir();
    println!("data under {}", base.display());
    let mut evlog_rate = None;
    let mut sqlite_rate = None;
    if opts.runs("evlog") {
        evlog_rate = Some(bench_evlog(opts.threads, opts.secs));
    }
    if opts.runs("sqlite") {
        sqlite_rate = Some(bench_sqlite(opts.sqlite_threads, opts.sqlite_secs));
    }
    if let (Some(e), Some(s)) = (evlog_rate, sqlite_rate) {
        let ratio = e / s;
        println!("ratio   evlog / sqlite = {ratio:.1}x");
        result("evlog_over_sqlite", format!("{ratio:.1}"));
    }
    if opts.runs("enqueue") {
        bench_enqueue(opts.enqueue_events, opts.enqueue_warmup);
    }
}
