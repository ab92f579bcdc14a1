//! The index answers what a brute-force scan of the files answers; the
//! checkpoint makes indexing exactly-once across restarts; reindex reads .gz.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use evlog::index::indexer::{IndexConfig, Indexer};
use evlog::index::{IndexSearch, Query};
use evlog::{Level, Record, Status};
use serde_json::Value;

use crate::util::*;

fn indexed(store: &Store) -> IndexSearch {
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    ix.catch_up_and_commit().unwrap();
    IndexSearch::from_reader(ix.reader())
}

fn ts(r: &Record) -> DateTime<Utc> {
    r.event.timestamp.unwrap()
}

/// Ids newest first, as the index orders them.
fn expected(records: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<String> {
    let mut v: Vec<&Record> = records.iter().filter(|r| keep(r)).collect();
    v.sort_by_key(|r| std::cmp::Reverse((ts(r), r.seq)));
    v.iter().map(|r| r.event.id.unwrap().to_string()).collect()
}

fn two_day_store() -> Store {
    written_store(&[("2026-03-01T22:00:00Z", 45), ("2026-03-02T09:30:00Z", 45)])
}

#[test]
fn every_filter_answers_like_a_scan() {
    let store = two_day_store();
    let recs = store.records();
    let s = indexed(&store);
    let day1 = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let all_time = |q: Query| Query {
        start: Some(utc("2000-01-01T00:00:00Z")),
        limit: Some(1000),
        ..q
    };
    type Case = (Query, Box<dyn Fn(&Record) -> bool>);
    let mut cases: Vec<Case> = vec![
        (
            Query {
                date: Some(day1),
                limit: Some(1000),
                ..Default::default()
            },
            Box::new(move |r| ts(r).date_naive() == day1),
        ),
        (
            Query {
                start: Some(utc("2026-03-01T22:00:10Z")),
                end: Some(utc("2026-03-02T09:30:05Z")),
                limit: Some(1000),
                ..Default::default()
            },
            Box::new(|r| {
                ts(r) >= utc("2026-03-01T22:00:10Z") && ts(r) < utc("2026-03-02T09:30:05Z")
            }),
        ),
        (
            all_time(Query {
                event_types: vec!["commit".into(), "custom.kind_0".into()],
                ..Default::default()
            }),
            Box::new(|r| ["commit", "custom.kind_0"].contains(&r.event.event_type.as_str())),
        ),
        (
            all_time(Query {
                user_id: Some("user-v".into()),
                ..Default::default()
            }),
            Box::new(|_| true),
        ),
        (
            all_time(Query {
                user_id: Some("user-x".into()),
                ..Default::default()
            }),
            Box::new(|_| false),
        ),
        (
            all_time(Query {
                request_id: Some("v-17".into()),
                ..Default::default()
            }),
            Box::new(|r| r.event.request_id.as_deref() == Some("v-17")),
        ),
        (
            all_time(Query {
                q: Some("src/f3.rs".into()),
                ..Default::default()
            }),
            Box::new(|r| r.event.files_changed.iter().any(|f| f == "src/f3.rs")),
        ),
        (
            all_time(Query {
                q: Some("ACTION 12".into()),
                ..Default::default()
            }),
            Box::new(|r| r.event.action_description.starts_with("action 12 ")),
        ),
        (
            all_time(Query {
                q: Some("\"été ✓ 事件\"".into()),
                ..Default::default()
            }),
            Box::new(|_| true),
        ),
        (
            // metadata string values are plain full text
            all_time(Query {
                q: Some("v".into()),
                status: Some(Status::Failure),
                ..Default::default()
            }),
            Box::new(|r| r.event.metadata.is_some() && r.event.status == Status::Failure),
        ),
    ];
    for st in Status::ALL {
        cases.push((
            all_time(Query {
                status: Some(*st),
                ..Default::default()
            }),
            Box::new(move |r| r.event.status == *st),
        ));
    }
    for lv in Level::ALL {
        cases.push((
            all_time(Query {
                level: Some(*lv),
                ..Default::default()
            }),
            Box::new(move |r| r.event.level == *lv),
        ));
    }
    for (i, (q, keep)) in cases.iter().enumerate() {
        let resp = s.query(q).unwrap();
        let want = expected(&recs, keep);
        assert_eq!(ids(&resp.events), want, "case {i}: {q:?}");
        assert_eq!(resp.total as usize, want.len(), "case {i}");
        let st = s.stats(q).unwrap();
        assert_eq!(st.total as usize, want.len(), "stats case {i}");
    }
}

#[test]
fn stats_match_a_scan() {
    let store = two_day_store();
    let recs = store.records();
    let s = indexed(&store);
    let q = Query {
        start: Some(utc("2000-01-01T00:00:00Z")),
        ..Default::default()
    };
    let st = s.stats(&q).unwrap();
    let mut by_type = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    for r in &recs {
        *by_type
            .entry(r.event.event_type.to_string())
            .or_insert(0u64) += 1;
        *by_status.entry(r.event.status.to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(st.total, recs.len() as u64);
    assert_eq!(st.by_type, by_type);
    assert_eq!(st.by_status, by_status);
    assert_eq!(st.unique_users, 1);
    let durs: Vec<f64> = recs.iter().filter_map(|r| r.event.duration_ms).collect();
    let avg = durs.iter().sum::<f64>() / durs.len() as f64;
    assert!((st.avg_duration_ms.unwrap() - avg).abs() < 1e-9);
    let failures = by_status.get("failure").copied().unwrap_or(0) as f64;
    assert!((st.error_rate - failures / recs.len() as f64).abs() < 1e-12);
    assert_eq!(
        st.histogram.iter().map(|b| b.count).sum::<u64>(),
        recs.len() as u64
    );
    assert_eq!(st.histogram_interval, "day");

    // No event with a duration: null, not 0.
    let q = Query {
        request_id: Some("v-1".into()),
        start: q.start,
        ..Default::default()
    };
    assert_eq!(s.stats(&q).unwrap().avg_duration_ms, None);
}

#[test]
fn cursor_and_offset_pages_cover_everything_once() {
    let store = two_day_store();
    let s = indexed(&store);
    let base = Query {
        start: Some(utc("2000-01-01T00:00:00Z")),
        limit: Some(7),
        ..Default::default()
    };
    let all = ids(&s
        .query(&Query {
            limit: Some(1000),
            ..base.clone()
        })
        .unwrap()
        .events);
    let mut paged = Vec::new();
    let mut q = base.clone();
    loop {
        let resp = s.query(&q).unwrap();
        assert_eq!(resp.total as usize, all.len());
        paged.extend(ids(&resp.events));
        match resp.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let page3 = s.query(&Query { offset: 14, ..base }).unwrap();
    assert_eq!(ids(&page3.events), all[14..21].to_vec());
}

#[test]
fn restarts_index_nothing_twice_and_skip_nothing() {
    let store = written_store(&[("2026-03-01T10:00:00Z", 30)]);
    {
        let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
        ix.catch_up_and_commit().unwrap();
    }
    // More appends, then an indexer that crashes before committing.
    let log =
        evlog::EventLog::open(evlog::Config::new(store.path()).durability(evlog::Durability::None))
            .unwrap();
    for i in 0..20 {
        log.append(event("late", i)).unwrap();
    }
    {
        let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
        assert_eq!(ix.catch_up().unwrap(), 20);
        // dropped without commit
    }
    let s = indexed(&store);
    assert_eq!(s.num_docs(), 50);
    let resp = s
        .query(&Query {
            start: Some(utc("2000-01-01T00:00:00Z")),
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    let mut seen = ids(&resp.events);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50);
}

#[test]
fn malformed_lines_are_counted_and_skipped() {
    let store = written_store(&[("2026-03-01T10:00:00Z", 5)]);
    let day = store.day_files()[0].path.clone();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&day)
        .unwrap()
        .write_all(b"not json\n{\"half\n")
        .unwrap();
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    ix.catch_up_and_commit().unwrap();
    assert_eq!(
        ix.stats()
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(IndexSearch::from_reader(ix.reader()).num_docs(), 5);
}

#[test]
fn reindex_reads_compressed_days_and_cli_json_has_the_http_shape() {
    let store = two_day_store();
    // Compress the first day as rotation would, drop the index.
    let first = store.day_files()[0].path.clone();
    let bytes = std::fs::read(&first).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(format!("{}.gz", first.display()), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&first).unwrap();
    store.run(&["reindex"], b"").expect_code(0);
    let out = store.run(
        &[
            "query",
            "--start",
            "2000-01-01T00:00:00Z",
            "--limit",
            "1000",
            "--format",
            "json",
        ],
        b"",
    );
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["date", "events", "filters_applied", "next_cursor", "total"]
    );
    assert_eq!(v["total"], 90);
    assert_eq!(v["events"].as_array().unwrap().len(), 90);
    let out = store.run(&["stats", "--date", "2026-03-01", "--format", "json"], b"");
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 45);
    // A client mistake names the parameter.
    let out = store.run(&["query", "--limit", "0"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("limit"), "{}", out.stderr);
}
