//! Regression tests of the index, each named after what broke.

use std::sync::Arc;

use evlog::index::indexer::{IndexConfig, Indexer};
use evlog::index::{IndexSearch, Query};
use evlog::{Event, EventType, ManualClock};

use crate::util::{Store, open_with_clock, utc};

/// The percentiles come from a sketch accurate to 1% of a value: one event
/// with `duration_ms` 0.25 reported a p50 of 0.249, below every duration.
#[test]
fn stats_percentiles_fell_outside_the_durations() {
    for durations in [&[0.25][..], &[7.0, 7.0, 7.0], &[0.0, 3.3], &[1e6 + 0.5]] {
        let store = Store::new();
        let clock = Arc::new(ManualClock::new(utc("2026-04-01T10:00:00Z")));
        let log = open_with_clock(store.path(), &clock);
        for d in durations {
            log.append(Event::new(EventType::Commit, "u", "d").duration_ms(*d))
                .unwrap();
        }
        let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
        ix.catch_up_and_commit().unwrap();
        let st = IndexSearch::from_reader(ix.reader())
            .stats(&Query {
                start: Some(utc("2000-01-01T00:00:00Z")),
                ..Default::default()
            })
            .unwrap();
        let min = durations.iter().copied().fold(f64::INFINITY, f64::min);
        let max = durations.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for p in [st.p50_duration_ms, st.p95_duration_ms, st.p99_duration_ms] {
            let p = p.unwrap();
            assert!(
                (min..=max).contains(&p),
                "{p} outside [{min}, {max}] of {durations:?}"
            );
        }
        if min == max {
            assert_eq!(st.p50_duration_ms, Some(min), "{durations:?}");
        }
    }
}
