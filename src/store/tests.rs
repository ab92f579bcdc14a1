//! Unit tests of the store: chain continuity, torn tails, other writers,
//! verification, group commit and the appender.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::event::{Event, EventType};
use crate::store::verify::Problem;

fn ev(i: usize) -> Event {
    Event::new(
        EventType::ApiRequest,
        format!("user-{}", i % 7),
        format!("GET /items/{i}"),
    )
    .metadata(json!({"i": i, "method": "GET"}))
    .duration_ms(i as f64)
}

fn clock_at(y: i32, m: u32, d: u32, h: u32) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap(),
    ))
}

fn open(dir: &Path, clock: Arc<ManualClock>) -> EventLog {
    EventLog::open(Config::new(dir).durability(Durability::None).clock(clock)).unwrap()
}

fn records(log: &EventLog) -> Vec<Record> {
    log.scan(DayRange::all())
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn day_file(dir: &Path, y: i32, m: u32, d: u32) -> PathBuf {
    day::plain_path(dir, chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

#[test]
fn append_assigns_id_timestamp_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 10);
    let log = open(dir.path(), clock.clone());
    let id = log.append(ev(1)).unwrap();
    let given = uuid::Uuid::now_v7();
    let ts = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(log.append(ev(2).id(given).timestamp(ts)).unwrap(), given);
    let recs = records(&log);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].event.id, Some(id));
    assert_eq!(recs[0].event.timestamp, Some(clock.now()));
    assert_eq!((recs[0].seq, recs[1].seq), (1, 2));
    // A client timestamp is kept; the file is still the day of the append.
    assert_eq!(recs[1].event.timestamp, Some(ts));
    assert_eq!(recs[1].path, day_file(dir.path(), 2026, 11, 23));
    assert_eq!(recs[1].line, 2);
}

#[test]
fn chain_crosses_midnight_and_verify_from_a_later_day() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 23);
    let log = open(dir.path(), clock.clone());
    for i in 0..3 {
        log.append(ev(i)).unwrap();
    }
    clock.advance(Duration::hours(2));
    for i in 3..5 {
        log.append(ev(i)).unwrap();
    }
    assert!(day_file(dir.path(), 2026, 11, 23).exists());
    assert!(day_file(dir.path(), 2026, 11, 24).exists());
    let seqs: Vec<u64> = records(&log).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(log.verify(DayRange::all()).unwrap().ok());
    let from_24 = DayRange {
        from: Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
        to: None,
    };
    let r = log.verify(from_24).unwrap();
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!((r.files, r.lines), (1, 2));
}

#[test]
fn chain_continues_from_a_compressed_previous_day() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 20, 12);
    {
        let log = open(dir.path(), clock.clone());
        log.append(ev(0)).unwrap();
        log.append(ev(1)).unwrap();
    }
    let plain = day_file(dir.path(), 2026, 11, 20);
    let bytes = std::fs::read(&plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(format!("{}.gz", plain.display()), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&plain).unwrap();
    clock.advance(Duration::days(1));
    let log = open(dir.path(), clock);
    log.append(ev(2)).unwrap();
    let recs = records(&log);
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(log.verify(DayRange::all()).unwrap().ok());
}

#[test]
fn retention_anchor_starts_the_chain_when_earlier_days_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 20, 12);
    {
        let log = open(dir.path(), clock.clone());
        log.append(ev(0)).unwrap();
    }
    let first = day_file(dir.path(), 2026, 11, 20);
    let head = reader::last_head(&day::list(dir.path(), DayRange::all()).unwrap()[0])
        .unwrap()
        .unwrap();
    clock.advance(Duration::days(1));
    {
        let log = open(dir.path(), clock.clone());
        log.append(ev(1)).unwrap();
    }
    std::fs::remove_file(&first).unwrap();
    // Without the anchor, the chain seems to start mid-way: removed lines.
    let r = verify::verify(dir.path(), DayRange::all()).unwrap();
    assert_eq!(r.failure.unwrap().problem, Problem::Removed);
    std::fs::write(
        dir.path().join(chain::ANCHOR_FILE),
        serde_json::to_vec(&head).unwrap(),
    )
    .unwrap();
    let r = verify::verify(dir.path(), DayRange::all()).unwrap();
    assert!(r.ok(), "{:?}", r.failure);
}

#[test]
fn a_second_writer_on_the_same_storage_continues_the_chain() {
    // Two EventLogs on one directory stand for two processes: each must see
    // the other's lines (via the file length) before sealing its own.
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 8);
    let a = open(dir.path(), clock.clone());
    let b = open(dir.path(), clock.clone());
    for i in 0..10 {
        if i % 3 == 0 { &b } else { &a }.append(ev(i)).unwrap();
    }
    let seqs: Vec<u64> = records(&a).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(a.verify(DayRange::all()).unwrap().ok());
}

#[test]
fn torn_tail_is_moved_aside_on_open_and_never_glued() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 8);
    {
        let log = open(dir.path(), clock.clone());
        log.append(ev(0)).unwrap();
    }
    let path = day_file(dir.path(), 2026, 11, 23);
    let torn = br#"{"id":"0190","event_type":"commit","user"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let log = open(dir.path(), clock.clone());
    assert_eq!(log.counters().torn_tails.load(Ordering::Relaxed), 1);
    let side = std::fs::read(format!("{}.torn", path.display())).unwrap();
    assert_eq!(side, [&torn[..], b"\n"].concat());
    log.append(ev(1)).unwrap();
    let recs = records(&log);
    assert_eq!(recs.len(), 2);
    assert!(std::fs::read(&path).unwrap().ends_with(b"\"}\n"));
    assert!(log.verify(DayRange::all()).unwrap().ok());
}

#[test]
fn torn_tail_left_by_another_process_is_recovered_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 8);
    let log = open(dir.path(), clock.clone());
    log.append(ev(0)).unwrap();
    let path = day_file(dir.path(), 2026, 11, 23);
    // Another writer crashed mid-line while this log stays open.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"half")
        .unwrap();
    log.append(ev(1)).unwrap();
    assert_eq!(records(&log).len(), 2);
    assert!(log.verify(DayRange::all()).unwrap().ok());
    assert_eq!(log.counters().torn_tails.load(Ordering::Relaxed), 1);
}

#[test]
fn batch_is_all_or_nothing_and_names_each_bad_index() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    let batch = vec![
        ev(0),
        Event::new(EventType::Push, "", "x"),
        ev(2),
        ev(3).source_ip("nope"),
    ];
    match log.append_batch(batch) {
        Err(Error::BatchRejected(r)) => {
            let idx: Vec<(usize, &str)> = r.iter().map(|(i, e)| (*i, e.field.as_str())).collect();
            assert_eq!(idx, [(1, "user_id"), (3, "source_ip")]);
        }
        other => panic!("expected BatchRejected, got {other:?}"),
    }
    assert!(records(&log).is_empty());
    assert_eq!(log.append_batch(vec![ev(0), ev(1)]).unwrap().len(), 2);
    assert_eq!(records(&log).len(), 2);
}

#[test]
fn privacy_filters_apply_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    log.append(ev(0).metadata(json!({"password": "hunter2", "nested": {"api_key": "k"}})))
        .unwrap();
    let text = std::fs::read_to_string(day_file(dir.path(), 2026, 11, 23)).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("\"k\""),
        "{text}"
    );
    assert!(text.contains(crate::event::privacy::MASK));
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(Config::new(dir.path())).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = &log;
            s.spawn(move || {
                for i in 0..100 {
                    log.append(ev(t * 1000 + i)).unwrap();
                }
            });
        }
    });
    let st = log.counters();
    assert_eq!(st.appended.load(Ordering::Relaxed), 800);
    assert!(st.group_commits.load(Ordering::Relaxed) <= 800);
    let recs = records(&log);
    assert_eq!(recs.len(), 800);
    let ids: std::collections::HashSet<_> = recs.iter().map(|r| r.event.id).collect();
    assert_eq!(ids.len(), 800);
    assert!(log.verify(DayRange::all()).unwrap().ok());
}

/// Writes 6 chained lines and returns the day file path and its lines.
fn six_lines(dir: &Path) -> (PathBuf, Vec<String>) {
    let log = open(dir, clock_at(2026, 11, 23, 8));
    for i in 0..6 {
        log.append(ev(i)).unwrap();
    }
    drop(log);
    let path = day_file(dir, 2026, 11, 23);
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    (path, lines)
}

fn verify_after(edit: impl FnOnce(&mut Vec<String>)) -> verify::Failure {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut lines) = six_lines(dir.path());
    edit(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let r = verify::verify(dir.path(), DayRange::all()).unwrap();
    r.failure.expect("tampering must be detected")
}

#[test]
fn verify_names_changed_line() {
    let f = verify_after(|l| l[2] = l[2].replace("GET /items/2", "GET /items/9"));
    assert_eq!((f.line, f.problem), (3, Problem::Changed));
}

#[test]
fn verify_names_removed_line() {
    let f = verify_after(|l| {
        l.remove(2);
    });
    assert_eq!((f.line, f.problem), (3, Problem::Removed));
}

#[test]
fn verify_names_reordered_lines() {
    let f = verify_after(|l| l.swap(1, 2));
    assert_eq!((f.line, f.problem), (2, Problem::Reordered));
}

#[test]
fn verify_names_inserted_lines() {
    // A copy of a line already in the chain.
    let f = verify_after(|l| {
        let dup = l[1].clone();
        l.insert(2, dup);
    });
    assert_eq!((f.line, f.problem), (3, Problem::Inserted));
    // A forged line without chain fields.
    let f = verify_after(|l| {
        l.insert(
            3,
            r#"{"event_type":"commit","user_id":"x","action_description":"forged","status":"success"}"#.into(),
        )
    });
    assert_eq!((f.line, f.problem), (4, Problem::Inserted));
}

#[test]
fn verify_notes_a_torn_tail_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = six_lines(dir.path());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"x")
        .unwrap();
    let r = verify::verify(dir.path(), DayRange::all()).unwrap();
    assert!(r.ok());
    assert_eq!(r.lines, 6);
    assert!(r.notes.iter().any(|n| n.contains("torn")), "{:?}", r.notes);
}

#[test]
fn scan_reports_malformed_lines_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut lines) = six_lines(dir.path());
    lines.insert(2, "this is not json".into());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    let items: Vec<_> = log.scan(DayRange::all()).unwrap().collect();
    assert_eq!(items.len(), 7);
    let bad: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(bad.len(), 1);
    assert!(
        matches!(bad[0], Error::Malformed { line: 3, .. }),
        "{:?}",
        bad[0]
    );
}

#[test]
fn appender_flushes_counts_drops_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    let app = Appender::with_capacity(log.clone(), 1);
    // Hold the storage lock, as another process would, so the worker blocks.
    let lock = lock::open_lock(dir.path()).unwrap();
    lock.lock().unwrap();
    let mut accepted = 0;
    for i in 0..50 {
        if app.append(ev(i)) {
            accepted += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(app.dropped() > 0, "a full queue drops");
    assert_eq!(accepted + app.dropped(), 50);
    lock.unlock().unwrap();
    app.flush();
    assert_eq!(records(&log).len() as u64, accepted);
    assert_eq!(app.stats().written.load(Ordering::Relaxed), accepted);
    drop(app);
}

/// What `f` logs through `tracing` on this thread, as text.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn appender_logs_event_write_failed_for_a_bad_event_and_flushes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    let out = logs_of(|| {
        let app = Appender::new(log.clone());
        app.append(Event::new(EventType::Push, "bob", "ok"));
        app.append(Event::new(EventType::Custom("Nope".into()), "carol", "bad"));
        drop(app); // flushes
    });
    assert_eq!(records(&log).len(), 1);
    assert!(
        out.contains("EVENT_WRITE_FAILED user_id=carol event_type=Nope error=event_type:"),
        "{out}"
    );
}

/// A failed write through the appender is one `EVENT_WRITE_FAILED` line
/// (the committer's, naming the file and the count), not one more per
/// event: an alert counts failures, not lines.
#[test]
fn a_failed_write_through_the_appender_logs_one_event_write_failed_line() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::none();
    let mut cfg = Config::new(dir.path())
        .durability(Durability::None)
        .clock(clock_at(2026, 11, 23, 8));
    cfg.faults = faults.clone();
    let out = logs_of(|| {
        // Opened here: the committer logs through this scope's subscriber.
        let log = EventLog::open(cfg).unwrap();
        let app = Appender::new(log.clone());
        faults.enospc_after(Some(0));
        app.append(Event::new(EventType::Push, "bob", "one"));
        app.append(Event::new(EventType::Push, "bob", "two"));
        drop(app); // flushes
    });
    let keyed = out
        .lines()
        .filter(|l| l.contains("EVENT_WRITE_FAILED"))
        .count();
    assert!(keyed >= 1, "{out}");
    let lost = out
        .lines()
        .filter(|l| l.contains("appender: event lost"))
        .count();
    assert_eq!(lost, 2, "each lost event is named: {out}");
    assert!(
        out.lines()
            .filter(|l| l.contains("EVENT_WRITE_FAILED"))
            .all(|l| l.contains("file=")),
        "only the committer's line carries the key: {out}"
    );
}

#[test]
fn an_appender_with_appended_by_stamps_the_events_that_have_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), clock_at(2026, 11, 23, 8));
    let app = Appender::with_appended_by(log.clone(), "evlog");
    app.append(ev(1));
    app.append(ev(2).appended_by("k_0123456789ab"));
    app.flush();
    // The library itself leaves it as given: absent here.
    log.append(ev(3)).unwrap();
    let by: Vec<Option<String>> = records(&log)
        .into_iter()
        .map(|r| r.event.appended_by)
        .collect();
    assert_eq!(
        by,
        [Some("evlog".into()), Some("k_0123456789ab".into()), None]
    );
}

/// Issue 15, item 4: `[[dedup]]` rules in the library's appender.
#[test]
fn an_appender_with_dedup_rules_keeps_one_per_user_and_type_per_window_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(2026, 11, 23, 8);
    let log = open(dir.path(), clock.clone());
    let rule = crate::dedup::DedupRule {
        event_types: vec!["login_failed".into()],
        per: Duration::minutes(10),
        max: 1,
    };
    let app = Appender::new(log.clone()).with_dedup(&log, &[rule]);
    let failed = |u: &str| Event::new(EventType::Custom("login_failed".into()), u, "bad password");
    for _ in 0..4 {
        assert!(app.append(failed("alice")));
    }
    app.append(failed("bob"));
    // Not listed: never suppressed, auth_failure included.
    app.append(Event::new(EventType::AuthFailure, "alice", "denied"));
    app.append(Event::new(EventType::AuthFailure, "alice", "denied"));
    clock.advance(Duration::minutes(10));
    app.append(failed("alice"));
    app.shutdown();
    let events: Vec<Event> = records(&log).into_iter().map(|r| r.event).collect();
    let count = |t: &str, u: &str| {
        events
            .iter()
            .filter(|e| e.event_type.as_str() == t && e.user_id == u)
            .count()
    };
    assert_eq!(count("login_failed", "alice"), 2, "one per window");
    assert_eq!(count("login_failed", "bob"), 1);
    assert_eq!(count("auth_failure", "alice"), 2);
    let summaries: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type.as_str() == crate::dedup::SUMMARY_TYPE)
        .collect();
    // The first suppression is summarised at once, the two after it (less
    // than a minute later) at shutdown.
    let counts: Vec<&serde_json::Value> = summaries
        .iter()
        .map(|e| &e.metadata.as_ref().unwrap()["suppressed"])
        .collect();
    assert_eq!(
        counts,
        [&json!({"login_failed": 1}), &json!({"login_failed": 2})]
    );
    assert_eq!(summaries[0].user_id, "evlog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_appends_share_group_commits_and_keep_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(Config::new(dir.path()).durability(Durability::Fsync)).unwrap();
    // More concurrent appends than the runtime has threads: each waits as a
    // future, not on a thread.
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..10 {
                    ids.extend(log.append_batch_async(vec![ev(t * 10 + i)]).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let stored: Vec<Uuid> = records(&log).iter().map(|r| r.event.id.unwrap()).collect();
    assert_eq!(stored.len(), 640);
    let (mut a, mut b) = (ids.clone(), stored);
    a.sort();
    b.sort();
    assert_eq!(a, b, "every acknowledged id is stored once");
    assert!(log.counters().group_commits.load(Ordering::Relaxed) < 640);
    // All or nothing, as append_batch.
    let mut bad = ev(1);
    bad.user_id.clear();
    let err = log.append_batch_async(vec![ev(2), bad]).await.unwrap_err();
    assert!(
        matches!(err, Error::BatchRejected(ref r) if r.len() == 1 && r[0].0 == 1),
        "{err}"
    );
    assert_eq!(records(&log).len(), 640);
    assert!(log.verify(DayRange::all()).unwrap().ok());
}
