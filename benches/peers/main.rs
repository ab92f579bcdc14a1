//! evlog side by side with PostgreSQL and SQLite on the same workload, same
//! run, same disk (issue 14, item 5). A plain `main` (harness = false),
//! driven by `scripts/bench-peers.sh`, which installs PostgreSQL, creates,
//! starts and stops a private cluster, runs evlog's HTTP server and wrk, and
//! prints the table of ratios.
//!
//! Phases (`--only`, comma-separated):
//! - `gen`: writes `--events N` realistic events (the index bench's
//!   generator, without id or timestamp) as NDJSON to `--out FILE`: the input
//!   of the bulk load and of wrk's single appends.
//! - `appends`: `--threads 64` threads, each a client of its own, append one
//!   event at a time for `--secs 30` and wait for each to be durable: evlog's
//!   library (`EventLog::append`, `Durability::Fsync`, in-process indexer
//!   running); SQLite (one writer connection shared behind a mutex, as
//!   SQLite applications write; autocommit `INSERT` into the indexed table
//!   with its FTS5 trigger); PostgreSQL (a connection each over
//!   TCP, autocommit `INSERT`, `synchronous_commit=on`). events/s, ack p50/p99.
//! - `bulk`: loads `--input FILE` (NDJSON) into an empty table with its
//!   indexes in place: PostgreSQL by one `COPY` (CSV prepared before the
//!   clock starts), SQLite by one transaction of prepared inserts (events
//!   parsed before the clock starts). Both are durable and searchable when
//!   the commit returns. (evlog's `append --stdin` is timed by the script.)
//! - `queries`: builds a store of `--query-events 10000000` events over
//!   `--query-days 20` days exactly as the index bench (`benches/index/`) does
//!   and indexes it; loads the same records (same ids, times, seq) into each
//!   peer, then builds their indexes; warms each system's files into the page
//!   cache; runs the index bench's query kinds (filters, full text, stats; the
//!   same `Query` values) on each: `--warmup 5` runs, then `--runs 50` with
//!   other parameters each (stop early after `--max-secs 300` per kind),
//!   p50/p99. The first `--verify 4` runs of every kind are compared across
//!   systems: the same total, the same first page of ids, the same statistics
//!   (percentiles within evlog's sketch error, 1%).
//!
//! Other options (`--name value`, or `EVLOG_BENCH_<NAME>`): `--systems
//! evlog,pg,sqlite`, `--pg "host=127.0.0.1 port=N user=U dbname=D"` (needed
//! for `pg`), `--kinds a,b` (only the kinds whose name contains one),
//! `--query-store DIR` (build the evlog store there once, reuse it later),
//! `--dir DIR` (default `$EVLOG_BENCH_DIR`, else `/tmp`; a real disk).
//!
//! Prints `RESULT name=value` lines for the script's summary, and one
//! `MISMATCH ...` line per disagreement between systems.

#[path = "../common/mod.rs"]
mod common;
mod ev;
mod pg;
mod sql;
mod sqlite;

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::disk::{dir_bytes, read_through, stored_days, warm_index};
use common::flags::Flags;
use common::kinds::{Kind, kinds, query_days, retain_named};
use common::load::run_threads;
use common::realistic::make_event;
use common::report::{pct, result};
use evlog::index::IndexSearch;
use evlog::store::day::DayRange;
use evlog::{Event, EventLog};
use sql::{Answer, Row};
use uuid::Uuid;

/// Options (see the module docs).
struct Opts {
    only: Vec<String>,
    systems: Vec<String>,
    pg: Option<String>,
    threads: usize,
    secs: f64,
    events: u64,
    out: Option<String>,
    input: Option<String>,
    query_events: u64,
    query_days: u64,
    runs: usize,
    warmup: usize,
    max_secs: f64,
    verify: usize,
    kinds: Option<Vec<String>>,
    query_store: Option<String>,
    dir: PathBuf,
}

impl Opts {
    fn parse() -> Opts {
        let f = Flags::parse();
        let dir = f.dir();
        Opts {
            only: f.list("only", "appends,bulk,queries"),
            systems: f.list("systems", "evlog,pg,sqlite"),
            pg: f.get("pg"),
            threads: f.num("threads", 64),
            secs: f.num("secs", 30.0),
            events: f.num("events", 1_000_000),
            out: f.get("out"),
            input: f.get("input"),
            query_events: f.num("query-events", 10_000_000),
            query_days: f.num("query-days", 20),
            runs: f.num("runs", 50),
            warmup: f.num("warmup", 5),
            max_secs: f.num("max-secs", 300.0),
            verify: f.num("verify", 4),
            kinds: f.kinds(),
            query_store: f.get("query-store"),
            dir,
        }
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.iter().any(|o| o == phase)
    }

    fn on(&self, system: &str) -> bool {
        self.systems.iter().any(|s| s == system)
    }

    fn pg(&self) -> &str {
        self.pg
            .as_deref()
            .expect("--pg (a connection string) is needed for the pg system")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

// ---------------------------------------------------------------- gen

fn gen_events(o: &Opts) {
    let out = o.out.as_deref().expect("gen: --out FILE");
    let mut w = BufWriter::new(std::fs::File::create(out).expect("creating --out"));
    for i in 0..o.events {
        serde_json::to_writer(&mut w, &make_event(i)).expect("json");
        w.write_all(b"\n").expect("write");
    }
    w.flush().expect("flush");
    println!("gen     {} events to {out}", o.events);
}

// ---------------------------------------------------------------- appends

/// Reports one system's closed-loop appends; returns events/s.
fn report_appends(name: &str, label: &str, n: u64, elapsed: Duration, lat: &[u64]) -> f64 {
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<10} {label}: {n} events in {:.1} s = {rate:.0} events/s; ack p50 {} ms, p99 {} ms (load {})",
        elapsed.as_secs_f64(),
        ms(pct(lat, 50.0)),
        ms(pct(lat, 99.0)),
        loadavg()
    );
    result(&format!("append_{name}_events_per_s"), format!("{rate:.0}"));
    result(&format!("append_{name}_p50_ms"), ms(pct(lat, 50.0)));
    result(&format!("append_{name}_p99_ms"), ms(pct(lat, 99.0)));
    rate
}

/// The event of thread `t`'s `i`-th append.
fn nth(t: usize, i: u64) -> Event {
    make_event(((t as u64) << 32) | i)
}

fn appends(o: &Opts) {
    let threads = o.threads;
    println!(
        "appends  {threads} threads, one event per call, each acknowledged when durable, {} s each",
        o.secs
    );
    if o.on("evlog") {
        let dir = common::temp_dir("evlog-peers-lib-");
        let (log, ix) = ev::open_durable(dir.path());
        for i in 0..100 {
            log.append(nth(999, i)).expect("append");
        }
        let l = log.clone();
        let (n, el, lat) = run_threads(
            threads,
            o.secs,
            move |_| l.clone(),
            |log: &mut EventLog, t, i| {
                log.append(nth(t, i)).expect("append");
            },
        );
        ix.shutdown().expect("indexer");
        let stored = log.scan(DayRange::all()).expect("scan").count() as u64;
        assert_eq!(stored, n + 100, "every acknowledged append is stored");
        report_appends(
            "evlog_lib",
            "EventLog::append, fsync, indexer in-process",
            n,
            el,
            &lat,
        );
    }
    if o.on("sqlite") {
        let dir = common::temp_dir("evlog-peers-sqlite-");
        let path = dir.path().join("events.db");
        // One writer connection shared behind a mutex, as SQLite applications
        // write: 64 connections of their own would spin in SQLite's busy
        // handler (sleeps of up to 100 ms) and reach a few hundred events/s.
        let c = std::sync::Arc::new(std::sync::Mutex::new(sqlite::open(&path)));
        sqlite::create(&c.lock().expect("lock"), true);
        let (n, el, lat) = run_threads(
            threads,
            o.secs,
            move |_| c.clone(),
            |c: &mut std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>, t, i| {
                // The same work evlog does on the caller's thread: id and time.
                let e = nth(t, i).id(Uuid::now_v7()).timestamp(Utc::now());
                let row = Row::of(e, None);
                sqlite::insert(&c.lock().expect("lock"), &row);
            },
        );
        assert_eq!(
            sqlite::count(&sqlite::open(&path)),
            n,
            "every acknowledged insert is stored"
        );
        report_appends(
            "sqlite",
            "one shared writer connection, autocommit INSERT, WAL, synchronous=FULL, indexes + FTS5",
            n,
            el,
            &lat,
        );
    }
    if o.on("pg") {
        let conn = o.pg().to_string();
        let mut c = pg::connect(&conn);
        pg::create(&mut c, true);
        let (n, el, lat) = run_threads(
            threads,
            o.secs,
            move |_| {
                let mut c = pg::connect(&conn);
                let st = pg::prepare_insert(&mut c);
                (c, st)
            },
            |(c, st): &mut (postgres::Client, postgres::Statement), t, i| {
                pg::insert(c, st, &nth(t, i));
            },
        );
        assert_eq!(pg::count(&mut c), n, "every acknowledged insert is stored");
        report_appends(
            "pg",
            "a connection each (TCP), autocommit INSERT, synchronous_commit=on, indexes + GIN",
            n,
            el,
            &lat,
        );
        pg::drop_table(&mut c);
    }
}

// ---------------------------------------------------------------- bulk

fn read_events(path: &str) -> Vec<Event> {
    let f = std::io::BufReader::new(std::fs::File::open(path).expect("opening --input"));
    f.lines()
        .map(|l| Event::from_json(l.expect("read").as_bytes()).expect("an event"))
        .collect()
}

fn bulk(o: &Opts) {
    let input = o.input.as_deref().expect("bulk: --input FILE (NDJSON)");
    let events = read_events(input);
    let n = events.len() as u64;
    println!("bulk     {n} events into an empty table with its indexes in place");
    if o.on("pg") {
        let mut c = pg::connect(o.pg());
        pg::create(&mut c, true);
        let mut w = pg::csv_writer();
        let mut chunks = Vec::new();
        for e in &events {
            pg::csv_line(&mut w, &Row::of(e.clone(), None));
            if w.get_ref().len() >= 1 << 20 {
                chunks.push(pg::take_csv(&mut w));
            }
        }
        chunks.push(w.into_inner().expect("csv"));
        let load = loadavg();
        let t0 = Instant::now();
        let copied = pg::copy_in(&mut c, false, chunks.into_iter());
        let s = t0.elapsed().as_secs_f64();
        assert_eq!(copied, n);
        assert_eq!(pg::count(&mut c), n);
        println!(
            "pg         one COPY (CSV), indexes + GIN in place: {s:.1} s = {:.0} events/s, durable and searchable at commit (load {load})",
            n as f64 / s
        );
        result("bulk_pg_s", format!("{s:.2}"));
        pg::drop_table(&mut c);
    }
    if o.on("sqlite") {
        let dir = common::temp_dir("evlog-peers-sqlite-");
        let path = dir.path().join("events.db");
        let mut c = sqlite::open(&path);
        sqlite::create(&c, true);
        let load = loadavg();
        let t0 = Instant::now();
        let tx = c.transaction().expect("begin");
        for e in &events {
            let e = e.clone().id(Uuid::now_v7()).timestamp(Utc::now());
            sqlite::insert(&tx, &Row::of(e, None));
        }
        tx.commit().expect("commit");
        let s = t0.elapsed().as_secs_f64();
        assert_eq!(sqlite::count(&c), n);
        println!(
            "sqlite     one transaction of prepared INSERTs, indexes + FTS5 trigger in place: {s:.1} s = {:.0} events/s, durable and searchable at commit (load {load})",
            n as f64 / s
        );
        result("bulk_sqlite_s", format!("{s:.2}"));
    }
}

// ---------------------------------------------------------------- queries

/// One kind's figures on one system.
struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    runs: usize,
    answers: Vec<Answer>,
}

/// Runs every kind on one system: warm-up, then timed runs; keeps the
/// answers of the first `o.verify` runs.
fn measure(
    o: &Opts,
    system: &str,
    kinds: &[Kind],
    mut run: impl FnMut(&Kind, usize) -> (Duration, Answer),
) -> Vec<Measured> {
    println!("  {system}: load {} before", loadavg());
    println!(
        "        {:<32} {:>5} {:>10} {:>10} {:>12}",
        "kind (limit 100)", "runs", "p50 ms", "p99 ms", "mean total"
    );
    let mut out = Vec::new();
    for kind in kinds {
        let w0 = Instant::now();
        for j in 0..o.warmup {
            run(kind, 1_000_000 + j);
            if w0.elapsed().as_secs_f64() > o.max_secs / 4.0 {
                break;
            }
        }
        let t0 = Instant::now();
        let mut lat = Vec::with_capacity(o.runs);
        let mut answers = Vec::new();
        let mut totals = 0u64;
        for k in 0..o.runs {
            let (d, a) = run(kind, k);
            lat.push(d);
            totals += a.total();
            if k < o.verify {
                answers.push(a);
            }
            if t0.elapsed().as_secs_f64() > o.max_secs && k + 1 >= o.verify {
                break;
            }
        }
        lat.sort_unstable();
        let msf = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p50, p99) = (msf(pct(&lat, 50.0)), msf(pct(&lat, 99.0)));
        println!(
            "        {:<32} {:>5} {:>10.2} {:>10.2} {:>12.0}",
            kind.name,
            lat.len(),
            p50,
            p99,
            totals as f64 / lat.len() as f64
        );
        let key = kind.key();
        result(&format!("q_{system}_{key}_p50_ms"), format!("{p50:.2}"));
        result(&format!("q_{system}_{key}_p99_ms"), format!("{p99:.2}"));
        result(&format!("q_{system}_{key}_runs"), lat.len());
        out.push(Measured {
            p50_ms: p50,
            p99_ms: p99,
            runs: lat.len(),
            answers,
        });
    }
    println!("  {system}: load {} after", loadavg());
    out
}

/// Streams the store's records, as rows, to `f`; returns how many.
fn each_row(store: &Path, mut f: impl FnMut(Row)) -> u64 {
    let mut n = 0;
    for r in evlog::store::Scan::new(store, DayRange::all()).expect("scan") {
        f(Row::of_record(r.expect("record")));
        n += 1;
    }
    n
}

fn queries(o: &Opts) {
    let days = query_days(o.query_events, o.query_days);
    let tmp = common::temp_dir("evlog-peers-q-");
    let store = match &o.query_store {
        Some(p) => PathBuf::from(p),
        None => tmp.path().join("store"),
    };
    if IndexSearch::open(&store).is_ok_and(|s| s.num_docs() == o.query_events) {
        println!("        reusing {}", store.display());
    } else {
        let (gen_s, index_s, merge_s) = ev::build_query_store(&store, o.query_events, &days);
        println!(
            "        evlog store: appended in {gen_s:.1} s, indexed in {index_s:.1} s, merges {merge_s:.1} s"
        );
        result("qload_evlog_append_s", format!("{gen_s:.1}"));
        result("qload_evlog_index_s", format!("{:.1}", index_s + merge_s));
    }
    let days = stored_days(&store);
    // The store was appended from make_event(0), make_event(1), … in order.
    let step = (o.query_events / 256).max(1);
    let request_ids: Vec<String> = (0..o.query_events)
        .step_by(step as usize)
        .filter_map(|i| make_event(i).request_id)
        .collect();
    let mut kinds = kinds(&days, request_ids);
    retain_named(&mut kinds, o.kinds.as_deref());
    let now = Utc::now();
    let mut all: Vec<(&str, Vec<Measured>)> = Vec::new();
    if o.on("evlog") {
        warmed("evlog", "of index files", || warm_index(&store));
        result("qsize_evlog_mb", dir_bytes(&store) / 1_000_000);
        let s = IndexSearch::open(&store).expect("IndexSearch::open");
        assert_eq!(s.num_docs(), o.query_events);
        all.push((
            "evlog",
            measure(o, "evlog", &kinds, |k, i| {
                let q = (k.make)(i);
                if k.is_stats() {
                    ev::stats(&s, &q)
                } else {
                    ev::page(&s, &q)
                }
            }),
        ));
        drop(s);
        if o.query_store.is_none() {
            // The peers load the day files; the index's disk is freed for them.
            std::fs::remove_dir_all(store.join(evlog::index::indexer::INDEX_DIR))
                .expect("removing the index");
        }
    }
    if o.on("pg") {
        let mut c = pg::connect(o.pg());
        pg::create(&mut c, false);
        let t0 = Instant::now();
        let mut w = pg::csv_writer();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let st = store.clone();
        let producer = std::thread::spawn(move || {
            each_row(&st, |r| {
                pg::csv_line(&mut w, &r);
                if w.get_ref().len() >= 1 << 20 {
                    tx.send(pg::take_csv(&mut w)).expect("send");
                }
            });
            tx.send(w.into_inner().expect("csv")).expect("send");
        });
        let copied = pg::copy_in(&mut c, true, rx.into_iter());
        producer.join().expect("producer");
        let copy_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for i in pg::INDEXES {
            c.batch_execute(i).expect("index");
        }
        c.batch_execute("VACUUM ANALYZE events").expect("vacuum");
        let index_s = t1.elapsed().as_secs_f64();
        assert_eq!(copied, o.query_events);
        println!(
            "  pg: {copied} rows copied in {copy_s:.1} s, indexed + VACUUM ANALYZE in {index_s:.1} s"
        );
        result("qload_pg_copy_s", format!("{copy_s:.1}"));
        result("qload_pg_index_s", format!("{index_s:.1}"));
        let mut r = pg::Runner::new(c);
        result("qsize_pg_mb", r.size() / 1_000_000);
        warmed("pg", "of table and indexes", || r.prewarm());
        all.push((
            "pg",
            measure(o, "pg", &kinds, |k, i| {
                let q = (k.make)(i);
                let t0 = Instant::now();
                let a = if k.is_stats() {
                    r.stats(&q, now)
                } else {
                    r.page(&q, now)
                };
                (t0.elapsed(), a)
            }),
        ));
        pg::drop_table(r.client());
    }
    if o.on("sqlite") {
        let dir = common::temp_dir("evlog-peers-sqlite-");
        let path = dir.path().join("events.db");
        let c = sqlite::open(&path);
        sqlite::create(&c, false);
        let t0 = Instant::now();
        c.execute_batch("BEGIN").expect("begin");
        let n = each_row(&store, |r| {
            sqlite::insert(&c, &r);
            if r.seq.is_some_and(|s| s % 100_000 == 0) {
                c.execute_batch("COMMIT; BEGIN").expect("commit");
            }
        });
        c.execute_batch("COMMIT").expect("commit");
        let load_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        sqlite::index_after_load(&c);
        let index_s = t1.elapsed().as_secs_f64();
        assert_eq!(sqlite::count(&c), o.query_events);
        println!(
            "  sqlite: {n} rows inserted in {load_s:.1} s, indexed (B-trees, FTS5 rebuild, ANALYZE) in {index_s:.1} s"
        );
        result("qload_sqlite_insert_s", format!("{load_s:.1}"));
        result("qload_sqlite_index_s", format!("{index_s:.1}"));
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        result("qsize_sqlite_mb", size / 1_000_000);
        warmed("sqlite", "database file", || read_through(&path));
        all.push((
            "sqlite",
            measure(o, "sqlite", &kinds, |k, i| {
                let q = (k.make)(i);
                let t0 = Instant::now();
                let a = if k.is_stats() {
                    sqlite::stats(&c, &q, now)
                } else {
                    sqlite::page(&c, &q, now)
                };
                (t0.elapsed(), a)
            }),
        ));
    }
    compare(&kinds, &all);
}

/// Prints how long `read` (which reads a system's files into the page
/// cache and returns the bytes it read) took: "  {system}: N GB {what} read …".
fn warmed(system: &str, what: &str, read: impl FnOnce() -> u64) {
    let t0 = Instant::now();
    let bytes = read();
    println!(
        "  {system}: {:.2} GB {what} read into the page cache in {:.1} s",
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
}

/// Checks that every system gave the same answers as evlog (or, without
/// evlog, as the first system) and prints the latencies side by side.
fn compare(kinds: &[Kind], all: &[(&str, Vec<Measured>)]) {
    let Some((base, base_m)) = all.first() else {
        return;
    };
    let mut mismatches = 0;
    let mut checked = 0;
    for (sys, m) in &all[1..] {
        for (i, kind) in kinds.iter().enumerate() {
            for (k, (a, b)) in m[i].answers.iter().zip(&base_m[i].answers).enumerate() {
                checked += 1;
                if let Some(d) = sql::differences(a, b) {
                    mismatches += 1;
                    println!("MISMATCH {sys} vs {base}: {} run {k}: {d}", kind.name);
                }
            }
        }
    }
    result("verify_checked", checked);
    result("verify_mismatches", mismatches);
    println!(
        "verified: {checked} answers of the peers compared with {base}'s (totals, first pages, statistics): {mismatches} mismatches"
    );
    if all.len() < 2 {
        return;
    }
    println!("\n  latency p50 / p99 (ms) side by side; a ratio > 1 means evlog is faster");
    print!("        {:<32}", "kind");
    for (sys, _) in all {
        print!(" {:>21}", sys);
    }
    println!();
    for (i, kind) in kinds.iter().enumerate() {
        print!("        {:<32}", kind.name);
        for (_, m) in all {
            print!(" {:>9.2} / {:>9.2}", m[i].p50_ms, m[i].p99_ms);
        }
        let runs: Vec<String> = all.iter().map(|(_, m)| m[i].runs.to_string()).collect();
        println!("  (runs {})", runs.join("/"));
    }
}

fn main() {
    let o = Opts::parse();
    println!("data under {}; load {}", o.dir.display(), loadavg());
    if o.runs("gen") {
        gen_events(&o);
    }
    if o.runs("appends") {
        appends(&o);
    }
    if o.runs("bulk") {
        bulk(&o);
    }
    if o.runs("queries") {
        queries(&o);
    }
}
