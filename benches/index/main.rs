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
//!    then the real indexer run loop, merges included; after each batch of
//!    10,000 the resolutions of 1% of its `warning`+ events), then filter,
//!    full-text and stats queries run through `IndexSearch`, and those of
//!    issue 15 (`resolved=false|true`, `tenant`): warm-up, then ≥ 200 runs
//!    per kind, each run with other parameters (day, user, term).
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
//!
//! Layout: `throughput.rs`, `lag.rs` (with the proposed loop in `model.rs`)
//! and `queries.rs` (its store in `store.rs`, the check of its totals in
//! `verify.rs`) are the three phases; `report.rs` prints the targets.

#[path = "../common/mod.rs"]
mod common;
mod lag;
mod model;
mod queries;
mod report;
mod store;
mod throughput;
mod verify;

use common::flags::Flags;

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
}

impl Opts {
    fn parse(f: &Flags) -> Opts {
        let o = Opts {
            events: f.num("events", 1_000_000),
            days: f.num("days", 3),
            reps: f.num("reps", 3),
            lag_rate: f.num("lag-rate", 50_000),
            lag_secs: f.num("lag-secs", 60.0),
            lag_batch: f.num("lag-batch", 100),
            probe_ms: f.num("probe-ms", 50),
            query_events: f.num("query-events", 10_000_000),
            query_days: f.num("query-days", 20),
            runs: f.num("runs", 200),
            warmup: f.num("warmup", 20),
            max_secs: f.num("max-secs", 60.0),
            verify: f.get("verify").unwrap_or_else(|| "auto".into()),
            query_store: f.get("query-store"),
            lag_loop: f.get("lag-loop").unwrap_or_else(|| "evlog".into()),
            kinds: f.kinds(),
            only: f.list("only", "throughput,lag,queries"),
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

fn main() {
    let f = Flags::parse();
    let o = Opts::parse(&f);
    let base = f.dir();
    println!("data under {}", base.display());
    if o.runs("throughput") {
        throughput::bench_throughput(&o);
    }
    if o.runs("lag") {
        lag::bench_lag(&o);
    }
    if o.runs("queries") {
        queries::bench_queries(&o);
    }
}
