//! evlog's side: the library under `Durability::Fsync` with its in-process
//! indexer (appends), the query store of the index bench, and the query
//! kinds through `IndexSearch`.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use evlog::index::{IndexConfig, IndexSearch, IndexerHandle, Query};
use evlog::{Config, Durability, EventLog};

use super::sql::{Answer, Stats};
use crate::common::realistic::{build_store, index_store};

/// Opens a store as a user runs it: fsync before each acknowledgement, and
/// the tail indexer in the same process (as `evlog serve` runs it).
pub fn open_durable(dir: &Path) -> (EventLog, IndexerHandle) {
    let log =
        EventLog::open(Config::new(dir).durability(Durability::Fsync)).expect("opening evlog");
    let ix = log
        .start_indexer(IndexConfig::new(dir))
        .expect("starting the indexer");
    (log, ix)
}

/// Builds the query store of `total` events over `days` (as the index bench
/// does: appended under `Durability::None`, then indexed by the real run
/// loop, merges included). Returns (append s, index s, merge s).
pub fn build_query_store(store: &Path, total: u64, days: &[NaiveDate]) -> (f64, f64, f64) {
    let gen_s = build_store(store, total, days);
    let (handle, index_s) = index_store(store, total, 4);
    let t1 = Instant::now();
    handle.shutdown().expect("indexer shutdown");
    (gen_s, index_s, t1.elapsed().as_secs_f64())
}

/// One run of a filter or text kind: (elapsed, answer).
pub fn page(s: &IndexSearch, q: &Query) -> (Duration, Answer) {
    let t0 = Instant::now();
    let r = std::hint::black_box(s.query(q).expect("query"));
    let d = t0.elapsed();
    let ids = r
        .events
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_string())
        .collect();
    (
        d,
        Answer::Page {
            total: r.total,
            ids,
        },
    )
}

/// One run of a stats kind: (elapsed, answer).
pub fn stats(s: &IndexSearch, q: &Query) -> (Duration, Answer) {
    let t0 = Instant::now();
    let r = std::hint::black_box(s.stats(q).expect("stats"));
    let d = t0.elapsed();
    let percentiles = match (r.p50_duration_ms, r.p95_duration_ms, r.p99_duration_ms) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    let histogram = r
        .histogram
        .iter()
        .map(|b| {
            let t = DateTime::parse_from_rfc3339(&b.start).expect("bucket start");
            (t.timestamp_micros(), b.count)
        })
        .collect();
    let a = Stats {
        total: r.total,
        by_type: r.by_type,
        by_status: r.by_status,
        by_level: r.by_level,
        unique_users: r.unique_users,
        avg_duration_ms: r.avg_duration_ms,
        percentiles,
        histogram,
    };
    (d, Answer::Stats(Box::new(a)))
}
