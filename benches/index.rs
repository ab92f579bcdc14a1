//! Index benchmarks against the targets of issue 3 (item 7), in one run.
//! A plain `main` (harness = false).
//!
//! 1. `throughput`: a store of N realistic events (default 1,000,000, about
//!    370 bytes stored per line, spread over a few day files) is indexed from
//!    scratch by `Indexer::open(IndexConfig::new(dir))` + `sync()`, and, in the
//!    same run, by a minimal bulk indexer with the same tantivy: read the same
//!    lines (`LineReader`), `parse_record`, `Fields::document`, add to a fresh
//!    index (same schema, `register_tokenizer`, same writer: 1 thread, 64 MB),
//!    one commit. Also the same without the JSON parsing (records parsed
//!    before the clock starts). R rounds (default 3), alternating; medians.
//! 2. `lag`: a fresh store under `Durability::Batch` with an in-process
//!    indexer (`EventLog::start_indexer`, default 500 ms commit / 1 s rescan).
//!    One thread appends paced `append_batch`es (default 100 events every
//!    2 ms = 50,000 events/s) for 60 s; a prober appends one event with a
//!    unique `request_id` every 50 ms and polls the indexer's reader with a
//!    `request_id` query until it is returned. Lag = found − append return.
//!    The process's RSS is sampled every 250 ms.
//! 3. `queries`: a store of 10,000,000 events over 20 days is built (append,
//!    then the real indexer run loop, merges included), then filter,
//!    full-text and stats queries run through `IndexSearch`: warm-up, then
//!    ≥ 200 runs per kind, each run with other parameters (day, user, term).
//!
//! Options (`--name value`, or the environment variable `EVLOG_BENCH_<NAME>`):
//! `--events 1000000`, `--days 3`, `--reps 3` (throughput);
//! `--lag-rate 50000`, `--lag-secs 60`, `--lag-batch 100`, `--probe-ms 50`,
//! `--lag-loop evlog|model` (lag; `model` runs a proposed indexer loop built
//! from the public `Indexer` API instead of `EventLog::start_indexer`);
//! `--query-events 10000000`, `--query-days 20`, `--runs 200`, `--warmup 20`,
//! `--max-secs 60` (per query kind: stop early after this long, stats only in
//! practice), `--verify auto|yes|no` (check each kind's first `total` against a
//! scan of the files; auto = when ≤ 1,000,000 query events),
//! `--query-store DIR` (build the 10M store there once and reuse it on later
//! runs; never deleted), `--kinds a,b` (only the query kinds whose name
//! contains one of these), `--only throughput,lag,queries` (default),
//! `--dir DIR` (default `$EVLOG_BENCH_DIR`, else `/tmp`; a real disk).
//!
//! With `EVLOG_BENCH_SLOWEST=1` the queries phase also prints the five
//! slowest runs of each kind with their parameters.
//!
//! Besides the report it prints `RESULT name=value` lines, and one
//! `TARGET|label|measured|goal|PASS or FAIL|other load` line per target.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench2 cargo bench --bench index -- --events 100000`.

mod common;

use common::kinds::{Class, kinds};
use common::realistic::{build_store, make_event, past_days};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use evlog::index::indexer::INDEX_DIR;
use evlog::index::schema::{self, Fields};
use evlog::index::{IndexConfig, IndexSearch, Indexer, Query};
use evlog::store::day::{self, DayRange};
use evlog::store::reader::{LineReader, parse_record};
use evlog::{Config, Durability, Event, EventLog, EventType, Record};
use serde_json::Value;

// ---------------------------------------------------------------- options

/// Command-line and environment options.
struct Opts {
    events: u64,
    days: u64,
    reps: usize,
    lag_rate: u64,
    lag_secs: f64,
    lag_batch: u64,
    probe_ms: u64,
    query_events: u64,
    query_days: u64,
    runs: usize,
    warmup: usize,
    max_secs: f64,
    verify: String,
    query_store: Option<String>,
    kinds: Option<Vec<String>>,
    lag_loop: String,
    only: Vec<String>,
    dir: Option<String>,
}

impl Opts {
    fn parse() -> Opts {
        let mut flags: HashMap<String, String> = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            // `cargo bench` appends `--bench`; ignore it (and any bare word).
            let Some(name) = a.strip_prefix("--") else {
                continue;
            };
            if name == "bench" {
                continue;
            }
            match name.split_once('=') {
                Some((k, v)) => {
                    flags.insert(k.to_string(), v.to_string());
                }
                None => {
                    let v = args
                        .next()
                        .unwrap_or_else(|| panic!("--{name} wants a value"));
                    flags.insert(name.to_string(), v);
                }
            }
        }
        let get = |name: &str| -> Option<String> {
            flags.get(name).cloned().or_else(|| {
                let var = format!("EVLOG_BENCH_{}", name.to_uppercase().replace('-', "_"));
                std::env::var(var).ok().filter(|v| !v.is_empty())
            })
        };
        fn num<T: std::str::FromStr>(v: Option<String>, name: &str, default: T) -> T {
            match v {
                Some(s) => s
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("--{name}: `{s}` is not a number")),
                None => default,
            }
        }
        let o = Opts {
            events: num(get("events"), "events", 1_000_000),
            days: num(get("days"), "days", 3),
            reps: num(get("reps"), "reps", 3),
            lag_rate: num(get("lag-rate"), "lag-rate", 50_000),
            lag_secs: num(get("lag-secs"), "lag-secs", 60.0),
            lag_batch: num(get("lag-batch"), "lag-batch", 100),
            probe_ms: num(get("probe-ms"), "probe-ms", 50),
            query_events: num(get("query-events"), "query-events", 10_000_000),
            query_days: num(get("query-days"), "query-days", 20),
            runs: num(get("runs"), "runs", 200),
            warmup: num(get("warmup"), "warmup", 20),
            max_secs: num(get("max-secs"), "max-secs", 60.0),
            verify: get("verify").unwrap_or_else(|| "auto".into()),
            query_store: get("query-store"),
            lag_loop: get("lag-loop").unwrap_or_else(|| "evlog".into()),
            kinds: get("kinds").map(|k| k.split(',').map(|s| s.trim().to_string()).collect()),
            only: get("only")
                .unwrap_or_else(|| "throughput,lag,queries".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            dir: get("dir"),
        };
        assert!(
            o.days >= 1 && o.query_days >= 1,
            "--days and --query-days must be >= 1"
        );
        assert!(o.reps >= 1 && o.runs >= 1, "--reps and --runs must be >= 1");
        assert!(
            o.lag_batch >= 1 && o.probe_ms >= 1,
            "--lag-batch and --probe-ms must be >= 1"
        );
        o
    }

    fn runs(&self, what: &str) -> bool {
        self.only.iter().any(|o| o == what)
    }
}

// ---------------------------------------------------------------- reporting

/// Nearest-rank percentile of sorted values.
fn pct<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    // Lower median for an even count (like the append script's `median`).
    s[(s.len() - 1) / 2]
}

fn result(name: &str, value: impl std::fmt::Display) {
    println!("RESULT {name}={value}");
}

/// One line of the summary table: label, measured, goal, PASS/FAIL, load.
fn target(label: &str, measured: &str, goal: &str, pass: bool, noise_pct: f64) {
    let load = if noise_pct > 10.0 {
        format!("{noise_pct:.0}% NOISY")
    } else {
        format!("{noise_pct:.0}%")
    };
    println!(
        "TARGET|{label}|{measured}|{goal}|{}|{load}",
        if pass { "PASS" } else { "FAIL" }
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- /proc

/// CPU time so far, in clock ticks (USER_HZ = 100): (all CPUs busy, this process).
fn cpu_ticks() -> (u64, u64) {
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0))
        })
        .unwrap_or(0);
    (busy, own_ticks())
}

/// utime + stime of this process, in ticks.
fn own_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
        .unwrap_or(0)
}

/// utime + stime from a `/proc/.../stat` line.
fn stat_ticks(s: &str) -> Option<u64> {
    let f: Vec<&str> = s[s.rfind(')')? + 2..].split(' ').collect();
    Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
}

/// Reports how much CPU other processes used during a phase: a busy machine
/// (another build or benchmark) makes every figure here worse.
struct Noise {
    start: (u64, u64),
    t0: Instant,
}

impl Noise {
    fn start() -> Noise {
        Noise {
            start: cpu_ticks(),
            t0: Instant::now(),
        }
    }

    /// Share of the machine (%) used by other processes since `start`.
    fn pct(&self) -> f64 {
        let (busy, own) = cpu_ticks();
        let other = (busy - self.start.0).saturating_sub(own - self.start.1) as f64 / 100.0;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        100.0 * other / (self.t0.elapsed().as_secs_f64() * cpus).max(1e-9)
    }

    fn report(&self, phase: &str) -> f64 {
        let pct = self.pct();
        println!(
            "        other processes used {pct:.0}% of the machine meanwhile{}",
            if pct > 10.0 { "  <-- NOISY" } else { "" }
        );
        result(&format!("{phase}_other_cpu_pct"), format!("{pct:.0}"));
        pct
    }
}

/// CPU ticks of each live thread of this process: tid → (name, ticks).
fn thread_ticks() -> HashMap<u64, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let name = s
            .find('(')
            .zip(s.rfind(')'))
            .map(|(a, b)| s[a + 1..b].to_string())
            .unwrap_or_default();
        if let Some(t) = stat_ticks(&s) {
            out.insert(tid, (name, t));
        }
    }
    out
}

/// A snapshot of the process's CPU: its total and each live thread's.
struct CpuSnap {
    total: u64,
    threads: HashMap<u64, (String, u64)>,
}

fn cpu_snap() -> CpuSnap {
    CpuSnap {
        total: own_ticks(),
        threads: thread_ticks(),
    }
}

/// CPU seconds per thread name (digits stripped) between two snapshots,
/// largest first. Threads that ended in between (tantivy's indexing worker
/// ends at each commit) are counted together as `(ended threads)`.
fn thread_cpu_between(a: &CpuSnap, b: &CpuSnap) -> Vec<(String, f64)> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut live = 0u64;
    for (tid, (name, t1)) in &b.threads {
        let t0 = a.threads.get(tid).map_or(0, |x| x.1);
        let key = if *tid == u64::from(std::process::id()) {
            "main".to_string()
        } else {
            name.trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string()
        };
        *by.entry(key).or_default() += t1.saturating_sub(t0);
        live += t1.saturating_sub(t0);
    }
    let ended = b.total.saturating_sub(a.total).saturating_sub(live);
    *by.entry("(ended threads)".into()).or_default() += ended;
    let mut v: Vec<(String, f64)> = by
        .into_iter()
        .filter(|(_, t)| *t > 0)
        .map(|(n, t)| (n, t as f64 / 100.0))
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v
}

fn print_threads(v: &[(String, f64)], wall: f64) {
    let s: Vec<String> = v
        .iter()
        .map(|(n, t)| format!("{n} {t:.1} s ({:.0}%)", 100.0 * t / wall.max(1e-9)))
        .collect();
    println!("        CPU by thread: {}", s.join(", "));
}

/// (VmRSS, RssAnon, RssFile) of this process, in KiB.
fn rss_kib() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// Waits until this process has been idle (background merges done) for
/// 500 ms, at most `limit`. Returns (seconds waited, CPU seconds used meanwhile).
fn settle(limit: Duration) -> (f64, f64) {
    let t0 = Instant::now();
    let c0 = own_ticks();
    let mut last = c0;
    while t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = own_ticks();
        if now - last <= 2 {
            break;
        }
        last = now;
    }
    (
        t0.elapsed().as_secs_f64(),
        (own_ticks() - c0) as f64 / 100.0,
    )
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn day_file_bytes(p: &Path) -> u64 {
    day::list(p, DayRange::all())
        .expect("listing day files")
        .iter()
        .map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len()))
        .sum()
}

// ---------------------------------------------------------------- 1. throughput

/// `Indexer::open` + `sync` from scratch. Returns (docs, seconds, threads' CPU).
fn run_evlog_indexer(store: &Path) -> (u64, f64, Vec<(String, f64)>) {
    let _ = std::fs::remove_dir_all(store.join(INDEX_DIR));
    let th0 = cpu_snap();
    let t0 = Instant::now();
    let mut ix = Indexer::open(IndexConfig::new(store)).expect("Indexer::open");
    let n = ix.sync().expect("sync");
    let secs = t0.elapsed().as_secs_f64();
    let threads = thread_cpu_between(&th0, &cpu_snap());
    let docs = ix.reader().searcher().num_docs();
    assert_eq!(docs, n, "every added document is searchable after sync");
    drop(ix);
    (n, secs, threads)
}

/// What the ceiling indexes: each line as read, or records parsed beforehand.
enum Source<'a> {
    Files(&'a Path),
    Parsed(&'a [(Record, NaiveDate, std::ops::Range<usize>)], &'a [u8]),
}

/// The minimal bulk indexer. Returns (docs, seconds, threads' CPU).
fn run_ceiling(index_dir: &Path, src: Source<'_>) -> (u64, f64, Vec<(String, f64)>) {
    let _ = std::fs::remove_dir_all(index_dir);
    std::fs::create_dir_all(index_dir).expect("index dir");
    let th0 = cpu_snap();
    let t0 = Instant::now();
    let fields = Fields::new();
    let index = tantivy::Index::create_in_dir(index_dir, fields.schema.clone()).expect("create");
    schema::register_tokenizer(&index);
    let mut writer: tantivy::IndexWriter = {
        // The same writer threads and memory as evlog's indexer.
        let cfg = IndexConfig::new(index_dir);
        index
            .writer_with_num_threads(cfg.writer_threads, cfg.writer_memory)
            .expect("writer")
    };
    let mut n = 0u64;
    match src {
        Source::Files(store) => {
            let mut buf = Vec::new();
            for f in day::list(store, DayRange::all()).expect("list") {
                let mut r = LineReader::open(&f).expect("open day file");
                while let Some((no, line)) = r.next_line(&mut buf).expect("read") {
                    let rec = parse_record(&f.path, no, line).expect("parse");
                    writer
                        .add_document(fields.document(&rec, f.day, line))
                        .expect("add");
                    n += 1;
                }
            }
        }
        Source::Parsed(recs, lines) => {
            for (rec, d, range) in recs {
                writer
                    .add_document(fields.document(rec, *d, &lines[range.clone()]))
                    .expect("add");
                n += 1;
            }
        }
    }
    writer.commit().expect("commit");
    let secs = t0.elapsed().as_secs_f64();
    let threads = thread_cpu_between(&th0, &cpu_snap());
    let reader = index.reader().expect("reader");
    assert_eq!(reader.searcher().num_docs(), n);
    drop(writer);
    (n, secs, threads)
}

type Parsed = (Vec<(Record, NaiveDate, std::ops::Range<usize>)>, Vec<u8>);

fn parse_all(store: &Path) -> Parsed {
    let mut recs = Vec::new();
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    for f in day::list(store, DayRange::all()).expect("list") {
        let mut r = LineReader::open(&f).expect("open day file");
        while let Some((no, line)) = r.next_line(&mut buf).expect("read") {
            let rec = parse_record(&f.path, no, line).expect("parse");
            let a = lines.len();
            lines.extend_from_slice(line);
            recs.push((rec, f.day, a..lines.len()));
        }
    }
    (recs, lines)
}

fn bench_throughput(base: &Path, o: &Opts) {
    let tmp = tempfile::Builder::new()
        .prefix("evlog-ixtp-")
        .tempdir_in(base)
        .expect("temp dir");
    let store = tmp.path().join("store");
    let days = past_days(o.days);
    println!(
        "throughput  {} events over {} day files ({} .. {})",
        o.events,
        days.len(),
        days[0],
        days[days.len() - 1]
    );
    let gen_s = build_store(&store, o.events, &days);
    let bytes = day_file_bytes(&store);
    let line_bytes = bytes as f64 / o.events as f64;
    println!(
        "        generated in {gen_s:.1} s (append_batch of 10,000, Durability::None): {:.0} MB, {line_bytes:.0} bytes per stored line",
        bytes as f64 / 1e6
    );
    result("tp_events", o.events);
    result("tp_line_bytes", format!("{line_bytes:.0}"));
    result("tp_gen_s", format!("{gen_s:.1}"));

    let ceiling_dir = tmp.path().join("ceiling-index");
    let (mut ev, mut ce, mut cn) = (Vec::new(), Vec::new(), Vec::new());
    let mut noise_max: f64 = 0.0;
    let mut post_cpu: Vec<f64> = Vec::new();
    let line = |name: &str, n: u64, s: f64, th: &[(String, f64)]| {
        println!(
            "        {name:<28} {s:>7.2} s  {:>8.0} docs/s",
            n as f64 / s
        );
        print_threads(th, s);
    };
    for rep in 1..=o.reps {
        println!("        -- round {rep}/{}", o.reps);
        settle(Duration::from_secs(120));
        let noise = Noise::start();
        // Alternate which goes first, so that neither always runs on a
        // machine warmed (or heated) by the other.
        for evlog_turn in [rep % 2 == 1, rep % 2 == 0] {
            if evlog_turn {
                let (n, s, th) = run_evlog_indexer(&store);
                assert_eq!(n, o.events, "evlog indexed every event");
                line("evlog Indexer open+sync", n, s, &th);
                ev.push(n as f64 / s);
            } else {
                let (n, s, th) = run_ceiling(&ceiling_dir, Source::Files(&store));
                assert_eq!(n, o.events, "the ceiling indexed every event");
                line("ceiling (read+parse+add)", n, s, &th);
                ce.push(n as f64 / s);
            }
            let (_, cpu) = settle(Duration::from_secs(120));
            post_cpu.push(cpu);
        }
        noise_max = noise_max.max(noise.pct());

        let (recs, lines) = parse_all(&store);
        settle(Duration::from_secs(120));
        let noise = Noise::start();
        let (n, s, th) = run_ceiling(&ceiling_dir, Source::Parsed(&recs, &lines));
        assert_eq!(n, o.events);
        line("ceiling, records pre-parsed", n, s, &th);
        cn.push(n as f64 / s);
        drop((recs, lines));
        settle(Duration::from_secs(120));
        noise_max = noise_max.max(noise.pct());
    }
    let (e, c, p) = (median(&ev), median(&ce), median(&cn));
    let ratio = e / c;
    let rounds: Vec<String> = ev
        .iter()
        .zip(&ce)
        .map(|(a, b)| format!("{:.2}", a / b))
        .collect();
    println!("        median docs/s: evlog {e:.0}, ceiling {c:.0}, ceiling without parsing {p:.0}");
    println!("        evlog / ceiling per round: {}", rounds.join(", "));
    println!(
        "        evlog / ceiling = {ratio:.2}; CPU used after each timed commit (background merges): {:?} s",
        post_cpu
    );
    println!("        other processes: up to {noise_max:.0}% of the machine");
    result("tp_evlog_docs_per_s", format!("{e:.0}"));
    result("tp_ceiling_docs_per_s", format!("{c:.0}"));
    result("tp_ceiling_noparse_docs_per_s", format!("{p:.0}"));
    result("tp_ratio", format!("{ratio:.2}"));
    result("tp_other_cpu_pct", format!("{noise_max:.0}"));
    target(
        &format!("indexer throughput, {} events: evlog / ceiling", o.events),
        &format!("{ratio:.2}x ({e:.0} / {c:.0} docs/s)"),
        ">= 0.6x",
        ratio >= 0.6,
        noise_max,
    );
}

// ---------------------------------------------------------------- 2. lag

/// The indexer under test in the lag phase: evlog's run loop, or a model of
/// a proposed loop built from the public `Indexer` API.
enum LagIndexer {
    Real(evlog::index::IndexerHandle),
    Model(ModelIndexer),
}

/// The proposed loop: commits on a fixed cadence measured from the start of
/// the previous commit (not its end), catches up right before each commit,
/// and is woken only by this log's commits (no file watcher).
struct ModelIndexer {
    reader: tantivy::IndexReader,
    stats: Arc<evlog::index::indexer::IndexStats>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl ModelIndexer {
    fn start(log: &EventLog, dir: &Path) -> ModelIndexer {
        let mut ix = Indexer::open(IndexConfig::new(dir)).expect("Indexer::open");
        let reader = ix.reader();
        let stats = ix.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        log.on_commit(move || {
            let _ = tx.try_send(());
        });
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("model-indexer".into())
            .spawn(move || {
                let interval = Duration::from_millis(500);
                let mut durations = Vec::new();
                let mut next = Instant::now() + interval;
                loop {
                    if stop2.load(Ordering::Relaxed) {
                        ix.catch_up().expect("catch_up");
                        ix.commit().expect("commit");
                        return durations;
                    }
                    let now = Instant::now();
                    if now >= next {
                        ix.catch_up().expect("catch_up");
                        let t0 = Instant::now();
                        ix.commit().expect("commit");
                        durations.push(t0.elapsed());
                        next = t0 + interval;
                        continue;
                    }
                    let wait = (next - now).min(Duration::from_millis(100));
                    match rx.recv_timeout(wait) {
                        Ok(()) => {
                            ix.catch_up().expect("catch_up");
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            stop2.store(true, Ordering::Relaxed);
                        }
                    }
                }
            })
            .expect("spawn");
        ModelIndexer {
            reader,
            stats,
            stop,
            thread,
        }
    }
}

impl LagIndexer {
    fn reader(&self) -> tantivy::IndexReader {
        match self {
            LagIndexer::Real(h) => h.reader().clone(),
            LagIndexer::Model(m) => m.reader.clone(),
        }
    }
    fn counts(&self) -> (u64, u64) {
        let s: &evlog::index::indexer::IndexStats = match self {
            LagIndexer::Real(h) => h.stats(),
            LagIndexer::Model(m) => &m.stats,
        };
        (
            s.indexed.load(Ordering::Relaxed),
            s.commits.load(Ordering::Relaxed),
        )
    }
    /// Stops it; returns the model's commit durations (empty for evlog's).
    fn shutdown(self) -> Vec<Duration> {
        match self {
            LagIndexer::Real(h) => {
                h.shutdown().expect("indexer shutdown");
                Vec::new()
            }
            LagIndexer::Model(m) => {
                m.stop.store(true, Ordering::Relaxed);
                m.thread.join().expect("model indexer")
            }
        }
    }
}

fn bench_lag(base: &Path, o: &Opts) {
    let tmp = tempfile::Builder::new()
        .prefix("evlog-ixlag-")
        .tempdir_in(base)
        .expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let log = EventLog::open(Config::new(&dir).durability(Durability::Batch)).expect("open");
    let rss0 = rss_kib();
    let model = match o.lag_loop.as_str() {
        "evlog" => false,
        "model" => true,
        other => panic!("--lag-loop: `{other}` is not evlog or model"),
    };
    let handle = if model {
        LagIndexer::Model(ModelIndexer::start(&log, &dir))
    } else {
        LagIndexer::Real(
            log.start_indexer(IndexConfig::new(&dir))
                .expect("start_indexer"),
        )
    };
    let reader = handle.reader();
    let search = IndexSearch::from_reader(reader.clone());
    println!(
        "lag  {} events/s for {:.0} s: append_batch of {} every {:.2} ms (one thread, Durability::Batch), \
         probe every {} ms; {}",
        o.lag_rate,
        o.lag_secs,
        o.lag_batch,
        1000.0 * o.lag_batch as f64 / o.lag_rate as f64,
        o.probe_ms,
        if model {
            "MODEL of the proposed indexer loop (commit every 500 ms from the previous commit's start, \
             catch up before each commit, woken by the log's commits, no file watcher)"
        } else {
            "in-process indexer EventLog::start_indexer (500 ms commit, 1 s rescan)"
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    let behind_max_us = Arc::new(AtomicU64::new(0));
    // RSS sampler.
    let rss_samples = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                v.push(rss_kib());
                std::thread::sleep(Duration::from_millis(250));
            }
            v
        })
    };
    // Paced appender.
    let th0 = cpu_snap();
    let noise = Noise::start();
    let t_start = Instant::now();
    let appender = {
        let (log, stop, behind) = (log.clone(), stop.clone(), behind_max_us.clone());
        let (rate, batch) = (o.lag_rate, o.lag_batch);
        std::thread::Builder::new()
            .name("bench-appender".into())
            .spawn(move || {
                let mut sent = 0u64;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = t_start + Duration::from_secs_f64(sent as f64 / rate as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else {
                        behind.fetch_max((now - due).as_micros() as u64, Ordering::Relaxed);
                    }
                    let events: Vec<Event> = (0..batch).map(|k| make_event(i + k)).collect();
                    i += batch;
                    log.append_batch(events).expect("append_batch");
                    sent += batch;
                }
                sent
            })
            .expect("spawn")
    };
    // Prober: this thread.
    let mut pending: std::collections::VecDeque<(String, Instant)> = Default::default();
    let mut lags: Vec<Duration> = Vec::new();
    let mut k = 0u64;
    let mut next_probe = Instant::now();
    let mut last_gen = u64::MAX;
    let mut seen_gen = u64::MAX;
    let mut reloads: Vec<Instant> = Vec::new();
    let mut last_check = Instant::now();
    let mut polls = 0u64;
    let run_for = Duration::from_secs_f64(o.lag_secs);
    let drain_limit = Duration::from_secs(30);
    let mut appending = true;
    let mut run_secs = 0.0;
    let mut sent = 0u64;
    let mut appender = Some(appender);
    loop {
        let now = Instant::now();
        if appending && now - t_start >= run_for {
            appending = false;
            stop.store(true, Ordering::Relaxed);
            sent = appender.take().expect("once").join().expect("appender");
            run_secs = t_start.elapsed().as_secs_f64();
        }
        if appending && now >= next_probe {
            let rid = format!("probe-{k:06}");
            k += 1;
            let e = Event::new(
                EventType::Custom("bench.probe".into()),
                "prober",
                "lag probe",
            )
            .request_id(rid.clone());
            log.append(e).expect("probe append");
            pending.push_back((rid, Instant::now()));
            next_probe += Duration::from_millis(o.probe_ms);
        }
        // Whenever the indexer's reader moved to a new commit (and every
        // 250 ms regardless), query the oldest pending probe, and the next
        // while they are found. Probes are appended one after the other and
        // a commit covers a prefix of the files, so a probe cannot become
        // searchable before an older one: querying only the oldest keeps the
        // prober's CPU small however long the backlog.
        let g = reader.searcher().generation().generation_id();
        if g != seen_gen {
            // A reload (after a commit) seen while appending: the commit cadence.
            if appending {
                reloads.push(Instant::now());
            }
            seen_gen = g;
        }
        if !pending.is_empty()
            && (g != last_gen || last_check.elapsed() >= Duration::from_millis(250))
        {
            last_gen = g;
            last_check = Instant::now();
            while let Some((rid, at)) = pending.front() {
                polls += 1;
                let r = search
                    .query(&Query {
                        start: Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()),
                        request_id: Some(rid.clone()),
                        ..Default::default()
                    })
                    .expect("probe query");
                if r.total == 0 || r.events.is_empty() {
                    break;
                }
                lags.push(Instant::now() - *at);
                pending.pop_front();
            }
        }
        if !appending && (pending.is_empty() || t_start.elapsed() > run_for + drain_limit) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let lost = pending.len();
    let threads = thread_cpu_between(&th0, &cpu_snap());
    let wall = t_start.elapsed().as_secs_f64();
    let noise_pct = noise.pct();
    stop.store(true, Ordering::Relaxed);
    let samples = rss_samples.join().expect("rss sampler");
    let (indexed, commits) = handle.counts();
    let t_shut = Instant::now();
    let mut commit_durations = handle.shutdown();
    let shut_s = t_shut.elapsed().as_secs_f64();
    let appended = log.counters().appended.load(Ordering::Relaxed);
    drop(log);

    lags.sort_unstable();
    let (p50, p99, max) = (
        ms(pct(&lags, 50.0)),
        ms(pct(&lags, 99.0)),
        ms(pct(&lags, 100.0)),
    );
    let rate = sent as f64 / run_secs;
    let rss_max = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let anon_max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let file_max = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or_default();
    println!(
        "        appended {sent} events in {run_secs:.1} s = {rate:.0} events/s (+{k} probes); \
         appender at most {:.1} ms behind schedule",
        behind_max_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
    println!(
        "        probes {}: lag ms p50 {p50:.0}  p99 {p99:.0}  max {max:.0}; not found within 30 s after the run: {lost}",
        lags.len()
    );
    println!(
        "        indexer: {indexed} documents, {commits} commits by the end of the probes ({appended} appended); \
         shutdown (final commit + merges) {shut_s:.1} s; {polls} probe queries"
    );
    if !commit_durations.is_empty() {
        commit_durations.sort_unstable();
        println!(
            "        model: Indexer::commit took p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            ms(pct(&commit_durations, 50.0)),
            ms(pct(&commit_durations, 99.0)),
            ms(pct(&commit_durations, 100.0))
        );
    }
    println!(
        "        RSS (whole bench process: log, appender, prober, indexer, tantivy writer + merges, mapped index files): \
         max {:.0} MiB (anon max {:.0}, file-backed max {:.0}); before the indexer {:.0} MiB; at the end {:.0} MiB",
        rss_max as f64 / 1024.0,
        anon_max as f64 / 1024.0,
        file_max as f64 / 1024.0,
        rss0.0 as f64 / 1024.0,
        last.0 as f64 / 1024.0
    );
    let mut gaps: Vec<Duration> = reloads.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    println!(
        "        time between reader reloads (commits) while appending, ms: p50 {:.0}  p99 {:.0}  max {:.0} ({} reloads)",
        ms(pct(&gaps, 50.0)),
        ms(pct(&gaps, 99.0)),
        ms(pct(&gaps, 100.0)),
        reloads.len()
    );
    result(
        "lag_commit_gap_p50_ms",
        format!("{:.0}", ms(pct(&gaps, 50.0))),
    );
    result(
        "lag_commit_gap_max_ms",
        format!("{:.0}", ms(pct(&gaps, 100.0))),
    );
    print_threads(&threads, wall);
    println!(
        "        other processes used {noise_pct:.0}% of the machine meanwhile{}",
        if noise_pct > 10.0 { "  <-- NOISY" } else { "" }
    );
    result("lag_rate", format!("{rate:.0}"));
    result("lag_probes", lags.len());
    result("lag_lost", lost);
    result("lag_p50_ms", format!("{p50:.0}"));
    result("lag_p99_ms", format!("{p99:.0}"));
    result("lag_max_ms", format!("{max:.0}"));
    result("lag_rss_max_mib", format!("{:.0}", rss_max as f64 / 1024.0));
    result(
        "lag_rss_anon_max_mib",
        format!("{:.0}", anon_max as f64 / 1024.0),
    );
    result(
        "lag_rss_growth_mib",
        format!("{:.0}", rss_max.saturating_sub(rss0.0) as f64 / 1024.0),
    );
    result("lag_other_cpu_pct", format!("{noise_pct:.0}"));
    let rate_ok = rate >= 0.98 * o.lag_rate as f64;
    target(
        &format!(
            "index lag p99 at {} events/s ({} probes)",
            o.lag_rate,
            lags.len()
        ),
        &format!(
            "{p99:.0} ms (p50 {p50:.0}, max {max:.0}{}{})",
            if lost > 0 {
                format!(", {lost} lost")
            } else {
                String::new()
            },
            if rate_ok {
                String::new()
            } else {
                format!(", only {rate:.0}/s appended")
            }
        ),
        "<= 1000 ms",
        p99 <= 1000.0 && lost == 0 && rate_ok && !lags.is_empty(),
        noise_pct,
    );
}

// ---------------------------------------------------------------- 3. queries

/// The text values of an event, as the index's `text` field gets them.
fn text_values(e: &Event) -> Vec<String> {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(m) => m.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut out = vec![e.action_description.clone()];
    out.extend(e.comments.clone());
    out.extend(e.files_changed.iter().cloned());
    if let Some(m) = &e.metadata {
        strings(m, &mut out);
    }
    out
}

fn tokens(s: &str) -> Vec<String> {
    let mut a = schema::analyzer();
    let mut st = a.token_stream(s);
    let mut v = Vec::new();
    while let Some(t) = st.next() {
        v.push(t.text.clone());
    }
    v
}

/// Whether `rec` matches `q`, decided without the index (for `--verify`).
fn brute_match(rec: &Record, q: &Query, now: DateTime<Utc>) -> bool {
    let e = &rec.event;
    let ts = e.timestamp.expect("stored");
    let (from, to, _) = q.range(now);
    if from.is_some_and(|f| ts < f) || to.is_some_and(|t| ts >= t) {
        return false;
    }
    if !q.event_types.is_empty() && !q.event_types.iter().any(|t| t == e.event_type.as_str()) {
        return false;
    }
    if q.status.is_some_and(|s| s != e.status) || q.level.is_some_and(|l| l != e.level) {
        return false;
    }
    if q.user_id.as_ref().is_some_and(|u| *u != e.user_id) {
        return false;
    }
    if q.request_id.is_some() && q.request_id != e.request_id {
        return false;
    }
    if let Some(text) = &q.q {
        // Bare pieces only (the query kinds have no quotes): a run of tokens
        // within one word of a value.
        let words: Vec<Vec<String>> = text_values(e)
            .iter()
            .flat_map(|s| s.split_whitespace().map(tokens).collect::<Vec<_>>())
            .collect();
        for piece in text.split_whitespace() {
            let want = tokens(piece);
            if !words
                .iter()
                .any(|v| v.windows(want.len()).any(|w| w == want.as_slice()))
            {
                return false;
            }
        }
    }
    true
}

/// Builds the query store (or reuses `--query-store` if it holds an index of
/// exactly `total` documents). Returns the store path and the temp dir to keep alive.
fn query_store(base: &Path, o: &Opts, days: &[NaiveDate]) -> (PathBuf, Option<tempfile::TempDir>) {
    let (store, tmp) = match &o.query_store {
        Some(p) => (PathBuf::from(p), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("evlog-ixq-")
                .tempdir_in(base)
                .expect("temp dir");
            (t.path().join("store"), Some(t))
        }
    };
    if store.join(INDEX_DIR).exists() {
        let s = IndexSearch::open(&store).expect("open index");
        let n = s.num_docs();
        assert_eq!(
            n,
            o.query_events,
            "{} holds an index of {n} documents, not --query-events {}: use another --query-store",
            store.display(),
            o.query_events
        );
        println!(
            "        reusing {} ({n} documents; the day range is the one it was built with)",
            store.display()
        );
        return (store, tmp);
    }
    assert!(
        !store.exists() || std::fs::read_dir(&store).is_ok_and(|mut d| d.next().is_none()),
        "{} is not empty and has no index",
        store.display()
    );
    let gen_s = build_store(&store, o.query_events, days);
    let bytes = day_file_bytes(&store);
    println!(
        "        generated in {gen_s:.1} s: {:.2} GB of day files, {:.0} bytes per line",
        bytes as f64 / 1e9,
        bytes as f64 / o.query_events as f64
    );
    result("q_gen_s", format!("{gen_s:.1}"));
    // Index with the real run loop, then shut down, which waits for merges.
    let noise = Noise::start();
    let th0 = cpu_snap();
    let t0 = Instant::now();
    let handle = evlog::index::IndexerHandle::spawn(IndexConfig::new(&store)).expect("spawn");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let s = handle.stats();
        if s.commits.load(Ordering::Relaxed) > 0
            && s.indexed.load(Ordering::Relaxed) >= o.query_events
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3 * 3600),
            "indexing the query store did not finish in 3 h"
        );
    }
    let index_s = t0.elapsed().as_secs_f64();
    let threads = thread_cpu_between(&th0, &cpu_snap());
    let t1 = Instant::now();
    handle.shutdown().expect("indexer shutdown");
    let merge_s = t1.elapsed().as_secs_f64();
    let (index, _) = evlog::index::indexer::open_index(&store.join(INDEX_DIR)).expect("open index");
    let segments = index.searchable_segment_ids().expect("segments").len();
    let ix_bytes = dir_bytes(&store.join(INDEX_DIR));
    println!(
        "        indexed in {index_s:.1} s ({:.0} docs/s, first commit included); merges after it: {merge_s:.1} s; \
         {segments} segments, {:.2} GB index",
        o.query_events as f64 / index_s,
        ix_bytes as f64 / 1e9
    );
    print_threads(&threads, index_s);
    noise.report("q_build");
    result("q_index_s", format!("{index_s:.1}"));
    result("q_merge_s", format!("{merge_s:.1}"));
    result("q_segments", segments);
    (store, tmp)
}

fn bench_queries(base: &Path, o: &Opts) {
    let days = past_days(o.query_days);
    println!(
        "queries  {} events over {} days ({} .. {})",
        o.query_events,
        days.len(),
        days[0],
        days[days.len() - 1]
    );
    let (store, _tmp) = query_store(base, o, &days);
    // The day range actually stored (a reused store may have other days).
    let days: Vec<NaiveDate> = day::list(&store, DayRange::all())
        .expect("list")
        .iter()
        .map(|f| f.day)
        .collect();
    // A serving index is read all day and stays in the page cache; a freshly
    // built or reused one may be partly evicted. Read it once, so that the
    // figures are those of the steady state and not of disk reads.
    let t0 = Instant::now();
    let mut warm = 0u64;
    for e in std::fs::read_dir(store.join(INDEX_DIR)).expect("index dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            warm += std::io::copy(
                &mut std::fs::File::open(&p).expect("open index file"),
                &mut std::io::sink(),
            )
            .expect("read index file");
        }
    }
    println!(
        "        page cache warmed: read {:.2} GB of index files in {:.1} s",
        warm as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    let search = IndexSearch::open(&store).expect("IndexSearch::open");
    assert_eq!(search.num_docs(), o.query_events);
    // Request ids to look up: every `step`-th line of the store that has one.
    let mut request_ids = Vec::new();
    let step = (o.query_events / 256).max(1);
    let mut n = 0u64;
    let mut buf = Vec::new();
    for f in day::list(&store, DayRange::all()).expect("list") {
        let mut r = LineReader::open(&f).expect("open");
        while let Some((no, line)) = r.next_line(&mut buf).expect("read") {
            n += 1;
            if n.is_multiple_of(step) {
                let rec = parse_record(&f.path, no, line).expect("parse");
                request_ids.extend(rec.event.request_id);
            }
        }
    }
    assert!(!request_ids.is_empty());
    let mut kinds = kinds(&days, request_ids);
    if let Some(want) = &o.kinds {
        kinds.retain(|k| want.iter().any(|w| k.name.contains(w.as_str())));
    }
    let verify = match o.verify.as_str() {
        "yes" => true,
        "no" => false,
        _ => o.query_events <= 1_000_000,
    };
    if verify {
        let now = Utc::now();
        let recs: Vec<Record> = evlog::store::Scan::new(&store, DayRange::all())
            .expect("scan")
            .map(|r| r.expect("record"))
            .collect();
        for kind in &kinds {
            for k in [0usize, 1, 2, 3] {
                let q = (kind.make)(k);
                let want = recs.iter().filter(|r| brute_match(r, &q, now)).count() as u64;
                let got = if matches!(kind.class, Class::Stats | Class::Info) {
                    search.stats(&q).expect("stats").total
                } else {
                    let r = search.query(&q).expect("query");
                    assert_eq!(r.events.len() as u64, want.min(q.limit() as u64));
                    r.total
                };
                assert_eq!(got, want, "{}: run {k}: index total vs scan", kind.name);
            }
        }
        println!(
            "        verified: the first 4 runs of every kind return the totals a scan of the files gives"
        );
    }
    println!(
        "        {:<32} {:>6} {:>9} {:>9} {:>9} {:>12}  goal",
        "kind (limit 100)", "runs", "p50 ms", "p99 ms", "max ms", "mean total"
    );
    let mut summary = Vec::new();
    let phase_noise = Noise::start();
    for kind in &kinds {
        let is_stats = matches!(kind.class, Class::Stats | Class::Info);
        let run = |k: usize| -> (Duration, u64) {
            let q = (kind.make)(k);
            let t0 = Instant::now();
            let total = if is_stats {
                std::hint::black_box(search.stats(&q).expect("stats")).total
            } else {
                std::hint::black_box(search.query(&q).expect("query")).total
            };
            (t0.elapsed(), total)
        };
        for k in 0..o.warmup {
            run(1_000_000 + k);
        }
        let noise = Noise::start();
        let t0 = Instant::now();
        let mut lat = Vec::with_capacity(o.runs);
        let mut slowest: Vec<(Duration, usize)> = Vec::new();
        let mut totals = 0u64;
        for k in 0..o.runs {
            let (d, total) = run(k);
            lat.push(d);
            slowest.push((d, k));
            totals += total;
            if t0.elapsed().as_secs_f64() > o.max_secs {
                break;
            }
        }
        if std::env::var_os("EVLOG_BENCH_SLOWEST").is_some() {
            slowest.sort_unstable_by(|a, b| b.cmp(a));
            for (d, k) in slowest.iter().take(5) {
                println!(
                    "          slow run {k}: {:.2} ms, {:?}",
                    ms(*d),
                    (kind.make)(*k)
                );
            }
        }
        // Below 2 s the tick counters are too coarse: the phase's share is used.
        let noise_pct = (t0.elapsed() >= Duration::from_secs(2)).then(|| noise.pct());
        lat.sort_unstable();
        let (p50, p99, max) = (
            ms(pct(&lat, 50.0)),
            ms(pct(&lat, 99.0)),
            ms(pct(&lat, 100.0)),
        );
        let goal = match kind.class {
            Class::Filter => Some(10.0),
            Class::Text => Some(20.0),
            Class::Stats => Some(100.0),
            Class::Info => None,
        };
        println!(
            "        {:<32} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>12.0}  {}{}",
            kind.name,
            lat.len(),
            p50,
            p99,
            max,
            totals as f64 / lat.len() as f64,
            goal.map_or("-".into(), |g| format!("p99 <= {g:.0} ms")),
            match noise_pct {
                Some(n) if n > 10.0 => format!("  NOISY ({n:.0}% other load)"),
                _ => String::new(),
            }
        );
        let key = kind
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            .to_lowercase();
        result(&format!("q_{key}_p50_ms"), format!("{p50:.2}"));
        result(&format!("q_{key}_p99_ms"), format!("{p99:.2}"));
        result(&format!("q_{key}_max_ms"), format!("{max:.2}"));
        result(&format!("q_{key}_runs"), lat.len());
        if let Some(g) = goal {
            summary.push((kind.name, p50, p99, max, g, lat.len(), noise_pct));
        }
    }
    let phase_pct = phase_noise.report("q_measure");
    for (name, p50, p99, max, g, n, noise_pct) in summary {
        let noise_pct: Option<f64> = noise_pct;
        target(
            &format!("query p99, {name} ({n} runs)"),
            &format!("{p99:.2} ms (p50 {p50:.2}, max {max:.2})"),
            &format!("<= {g:.0} ms"),
            p99 <= g,
            noise_pct.unwrap_or(phase_pct),
        );
    }
}

fn main() {
    let o = Opts::parse();
    let base = match &o.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("creating --dir");
            PathBuf::from(d)
        }
        None => common::bench_base_dir(),
    };
    println!("data under {}", base.display());
    if o.runs("throughput") {
        bench_throughput(&base, &o);
    }
    if o.runs("lag") {
        bench_lag(&base, &o);
    }
    if o.runs("queries") {
        bench_queries(&base, &o);
    }
}
