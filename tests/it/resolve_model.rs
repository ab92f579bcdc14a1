//! Model test of resolve and reopen: random sequences of appends, resolutions
//! and reopenings (redundant ones included, some appended in one batch with
//! their target), index commits, crashes between an append and the index
//! commit (a `catch_up` never committed, then a new indexer) and rebuilds
//! of the index from the files. After every commit, the index's derived
//! state must be the model's: latest resolution wins, by `seq`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use evlog::index::indexer::{INDEX_DIR, IndexConfig, Indexer};
use evlog::index::{IndexSearch, Query};
use evlog::resolution::{Action as Res, resolution_event};
use evlog::{Event, EventLog, EventType, Level, ManualClock};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::util::{open_with_clock, utc};

const WHO: &[&str] = &["alice", "bob", "carol"];
const USERS: &[&str] = &["dev", "ops", "qa"];

#[derive(Debug, Clone)]
enum Op {
    /// A new event of this level, by one of [`USERS`], with a duration or
    /// none.
    Append(Level, usize, Option<u8>),
    /// Resolve (true) or reopen (false) the n-th event appended (modulo),
    /// by one of [`WHO`].
    Resolution(usize, bool, usize),
    /// A new event and its resolution (true) or reopening, in one batch.
    BatchWithResolution(bool),
    /// The indexer reads everything and commits.
    Commit,
    /// The indexer reads everything, never commits, and is dropped (a
    /// crash between append and index commit); a new one takes over.
    Crash,
    /// The index is deleted and rebuilt from the files.
    Reindex,
}

fn op() -> impl Strategy<Value = Op> {
    let level = prop_oneof![
        Just(Level::Info),
        Just(Level::Warning),
        Just(Level::Error),
        Just(Level::Security)
    ];
    prop_oneof![
        4 => (level, 0..USERS.len(), prop::option::of(any::<u8>()))
            .prop_map(|(l, u, d)| Op::Append(l, u, d)),
        6 => (0..64usize, any::<bool>(), 0..WHO.len()).prop_map(|(i, r, w)| Op::Resolution(i, r, w)),
        1 => any::<bool>().prop_map(Op::BatchWithResolution),
        3 => Just(Op::Commit),
        1 => Just(Op::Crash),
        1 => Just(Op::Reindex),
    ]
}

fn config(path: &Path) -> IndexConfig {
    let mut cfg = IndexConfig::new(path);
    cfg.writer_memory = 15 << 20;
    cfg
}

/// The model: per target, whether resolved and by whom (the latest
/// resolution appended).
#[derive(Default)]
struct Model {
    /// Every event appended that is not a resolution, in order.
    targets: Vec<Uuid>,
    /// Every event appended, resolutions included.
    all: Vec<Uuid>,
    state: HashMap<Uuid, (bool, String)>,
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    log: EventLog,
    indexer: Option<Indexer>,
    model: Model,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(utc("2026-12-01T10:00:00Z")));
        let log = open_with_clock(dir.path(), &clock);
        let indexer = Some(Indexer::open(config(dir.path())).unwrap());
        Harness {
            dir,
            clock,
            log,
            indexer,
            model: Model::default(),
        }
    }

    fn tick(&self) {
        self.clock.advance(Duration::milliseconds(3));
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(level, user, duration) => {
                self.tick();
                let mut e = Event::new(EventType::Commit, USERS[*user], "work").level(*level);
                if let Some(d) = duration {
                    e = e.duration_ms(f64::from(*d));
                }
                let id = self.log.append(e).unwrap();
                self.model.targets.push(id);
                self.model.all.push(id);
            }
            Op::Resolution(i, resolve, who) => {
                if self.model.targets.is_empty() {
                    return;
                }
                let target = self.model.targets[i % self.model.targets.len()];
                let action = if *resolve { Res::Resolve } else { Res::Reopen };
                self.tick();
                let id = self
                    .log
                    .append(resolution_event(action, target, WHO[*who], None))
                    .unwrap();
                self.model.all.push(id);
                self.model
                    .state
                    .insert(target, (*resolve, WHO[*who].to_string()));
            }
            Op::BatchWithResolution(resolve) => {
                self.tick();
                let target = Uuid::now_v7();
                let action = if *resolve { Res::Resolve } else { Res::Reopen };
                let mut e = Event::new(EventType::Commit, "dev", "batched").level(Level::Error);
                e.id = Some(target);
                let ids = self
                    .log
                    .append_batch(vec![e, resolution_event(action, target, "alice", None)])
                    .unwrap();
                self.model.targets.push(target);
                self.model.all.extend(ids);
                self.model
                    .state
                    .insert(target, (*resolve, "alice".to_string()));
            }
            Op::Commit => {
                self.indexer
                    .as_mut()
                    .unwrap()
                    .catch_up_and_commit()
                    .unwrap();
                self.check("after a commit");
            }
            Op::Crash => {
                let mut ix = self.indexer.take().unwrap();
                ix.catch_up().unwrap();
                drop(ix);
                self.indexer = Some(Indexer::open(config(self.dir.path())).unwrap());
            }
            Op::Reindex => {
                drop(self.indexer.take());
                std::fs::remove_dir_all(self.dir.path().join(INDEX_DIR)).unwrap();
                let mut ix = Indexer::open(config(self.dir.path())).unwrap();
                ix.catch_up_and_commit().unwrap();
                self.indexer = Some(ix);
                self.check("after a reindex");
            }
        }
    }

    /// Every event the index answers with `resolved` = `want`, with the
    /// answers' `total`s.
    fn ids(&self, search: &IndexSearch, want: Option<bool>) -> (Vec<Value>, u64) {
        let q = Query {
            start: Some(utc("2026-01-01T00:00:00Z")),
            end: Some(utc("2027-01-01T00:00:00Z")),
            resolved: want,
            limit: Some(1000),
            ..Query::default()
        };
        let r = search.query(&q).unwrap();
        assert!(r.next_cursor.is_none(), "one page holds them");
        let stats = search.stats(&q).unwrap();
        assert_eq!(stats.total, r.total, "stats and query agree ({want:?})");
        // The rest of the statistics are those of the events returned.
        let counts = |key: &str| {
            let mut m = BTreeMap::new();
            for e in &r.events {
                *m.entry(e[key].as_str().unwrap().to_string())
                    .or_insert(0u64) += 1;
            }
            m
        };
        let ctx = format!("resolved={want:?}: {stats:?}");
        assert_eq!(stats.by_type, counts("event_type"), "{ctx}");
        assert_eq!(stats.by_status, counts("status"), "{ctx}");
        assert_eq!(stats.by_level, counts("level"), "{ctx}");
        assert_eq!(
            stats.unique_users as usize,
            counts("user_id").len(),
            "{ctx}"
        );
        let durations: Vec<f64> = r
            .events
            .iter()
            .filter_map(|e| e["duration_ms"].as_f64())
            .collect();
        let avg =
            (!durations.is_empty()).then(|| durations.iter().sum::<f64>() / durations.len() as f64);
        match (stats.avg_duration_ms, avg) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "{ctx}"),
            (got, want) => assert_eq!(got, want, "{ctx}"),
        }
        let days = counts("timestamp")
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (t, n)| {
                *m.entry(t[..10].to_string()).or_insert(0u64) += n;
                m
            });
        let histogram: BTreeMap<String, u64> = stats
            .histogram
            .iter()
            .map(|b| (b.start[..10].to_string(), b.count))
            .collect();
        assert_eq!(histogram, days, "{ctx}");
        (r.events, r.total)
    }

    fn check(&self, when: &str) {
        let search = self.indexer.as_ref().unwrap().search();
        search.reload().unwrap();
        let m = &self.model;
        let is_resolved = |id: &Uuid| m.state.get(id).is_some_and(|s| s.0);
        let (all, total) = self.ids(&search, None);
        assert_eq!(
            total as usize,
            m.all.len(),
            "{when}: every event is indexed"
        );
        for e in &all {
            let id: Uuid = e["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(e["resolved"], is_resolved(&id), "{when}: {e}");
            match m.state.get(&id) {
                Some((true, by)) => {
                    assert_eq!(e["resolved_by"], by.as_str(), "{when}: {e}");
                    assert!(e["resolved_at"].is_string(), "{when}: {e}");
                }
                _ => assert!(e.get("resolved_by").is_none(), "{when}: {e}"),
            }
        }
        let want_resolved: Vec<Uuid> = m.all.iter().filter(|i| is_resolved(i)).copied().collect();
        let (resolved, n) = self.ids(&search, Some(true));
        let got = sorted(&resolved);
        assert_eq!(got, sorted_ids(&want_resolved), "{when}: resolved=true");
        assert_eq!(
            n as usize,
            want_resolved.len(),
            "{when}: resolved=true total"
        );
        let (open, n) = self.ids(&search, Some(false));
        let want_open: Vec<Uuid> = m.all.iter().filter(|i| !is_resolved(i)).copied().collect();
        assert_eq!(
            sorted(&open),
            sorted_ids(&want_open),
            "{when}: resolved=false"
        );
        assert_eq!(n as usize, want_open.len(), "{when}: resolved=false total");
    }
}

fn sorted(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn sorted_ids(ids: &[Uuid]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_index_keeps_the_latest_resolution_of_each_event(ops in prop::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        h.apply(&Op::Commit);
    }
}

/// A resolution and a reopening of the same event in one batch: the one
/// stored last wins, whichever way round.
#[test]
fn within_one_batch_the_later_resolution_wins() {
    let mut h = Harness::new();
    h.apply(&Op::Append(Level::Error, 0, None));
    let target = h.model.targets[0];
    for (first, second, resolved) in [
        (Res::Resolve, Res::Reopen, false),
        (Res::Reopen, Res::Resolve, true),
    ] {
        let ids = h
            .log
            .append_batch(vec![
                resolution_event(first, target, "alice", None),
                resolution_event(second, target, "bob", None),
            ])
            .unwrap();
        h.model.all.extend(ids);
        h.model.state.insert(target, (resolved, "bob".into()));
        h.apply(&Op::Commit);
    }
}
