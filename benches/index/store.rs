//! The store of the queries phase: built (appended, then indexed by the
//! real run loop, merges included) or reused from `--query-store`, and the
//! request ids it holds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use evlog::index::IndexSearch;
use evlog::index::indexer::INDEX_DIR;
use evlog::store::day::{self, DayRange};
use evlog::store::reader::{LineReader, parse_record};

use crate::Opts;
use crate::common::disk::{day_file_bytes, dir_bytes};
use crate::common::proc::{Noise, cpu_snap, print_threads, thread_cpu_between};
use crate::common::realistic::{build_store_resolving, index_store};
use crate::common::report::result;
use crate::common::temp_dir;

/// Builds the query store: `--query-events` events and the resolutions of
/// 1% of their `warning`+ events (or reuses `--query-store` if it holds an
/// index of at least `--query-events` documents). Returns the store path,
/// its number of documents and the temp dir to keep alive.
pub fn query_store(o: &Opts, days: &[NaiveDate]) -> (PathBuf, u64, Option<tempfile::TempDir>) {
    let (store, tmp) = match &o.query_store {
        Some(p) => (PathBuf::from(p), None),
        None => {
            let t = temp_dir("evlog-ixq-");
            (t.path().join("store"), Some(t))
        }
    };
    if store.join(INDEX_DIR).exists() {
        let s = IndexSearch::open(&store).expect("open index");
        let n = s.num_docs();
        assert!(
            n >= o.query_events && n <= o.query_events + o.query_events / 100,
            "{} holds an index of {n} documents, not --query-events {} and its resolutions: use another --query-store",
            store.display(),
            o.query_events
        );
        println!(
            "        reusing {} ({n} documents; the day range is the one it was built with)",
            store.display()
        );
        return (store, n, tmp);
    }
    assert!(
        !store.exists() || std::fs::read_dir(&store).is_ok_and(|mut d| d.next().is_none()),
        "{} is not empty and has no index",
        store.display()
    );
    let (gen_s, resolutions) = build_store_resolving(&store, o.query_events, days, true);
    let docs = o.query_events + resolutions;
    let bytes = day_file_bytes(&store);
    println!(
        "        generated in {gen_s:.1} s: {:.2} GB of day files, {:.0} bytes per line; \
         {resolutions} of the events are resolutions (event_resolved)",
        bytes as f64 / 1e9,
        bytes as f64 / docs as f64
    );
    result("q_gen_s", format!("{gen_s:.1}"));
    result("q_resolutions", resolutions);
    // Index with the real run loop, then shut down, which waits for merges.
    let noise = Noise::start();
    let th0 = cpu_snap();
    let (handle, index_s) = index_store(&store, docs, 3);
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
        docs as f64 / index_s,
        ix_bytes as f64 / 1e9
    );
    print_threads(&threads, index_s);
    noise.report("q_build");
    result("q_index_s", format!("{index_s:.1}"));
    result("q_merge_s", format!("{merge_s:.1}"));
    result("q_segments", segments);
    (store, docs, tmp)
}

/// Request ids to look up: those of every `events / 256`-th line of the
/// store (of `events` lines) that has one.
pub fn request_ids(store: &Path, events: u64) -> Vec<String> {
    let mut request_ids = Vec::new();
    let step = (events / 256).max(1);
    let mut n = 0u64;
    let mut buf = Vec::new();
    for f in day::list(store, DayRange::all()).expect("list") {
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
    request_ids
}
