//! Storage faults through the failpoints of `evlog::store::Faults`: a full
//! disk, a failed fdatasync (also under concurrent appends), a read-only
//! file system; the index directory deleted under a running indexer, an
//! index of an old version; the clock stepping backwards across midnight.
//! Each: the caller gets a clear error, nothing acknowledged is lost, no
//! failed event is stored, the chain verifies, and appends work again once
//! the fault clears.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evlog::auth::{self, KeyStore, Role};
use evlog::index::{IndexConfig, IndexSearch, Indexer, Query};
use evlog::server::{Limits, Server};
use evlog::store::{Faults, StorageFault};
use evlog::{Config, Durability, EventLog, ManualClock};
use uuid::Uuid;

use crate::util::*;

fn open(store: &Store, faults: &Faults) -> EventLog {
    EventLog::open(
        Config::new(store.path())
            .durability(Durability::Fsync)
            .faults(faults.clone()),
    )
    .unwrap()
}

/// The stored ids, asserting that none repeats and the chain verifies.
fn stored_ids(store: &Store) -> HashSet<Uuid> {
    let report = store.verify();
    assert!(report.ok(), "{report:?}");
    distinct_ids(&store.records())
}

/// No day file ends in a partial line, and nothing was moved aside.
#[track_caller]
fn no_torn_lines(store: &Store) {
    for f in store.day_files() {
        let bytes = std::fs::read(&f.path).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{} ends in a partial line",
            f.path.display()
        );
    }
    assert!(store.torn_files().is_empty(), "{:?}", store.torn_files());
}

#[test]
fn a_full_disk_fails_the_append_whole_and_appends_resume_when_space_returns() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let mut acked: Vec<Uuid> = (0..3).map(|i| log.append(event("a", i)).unwrap()).collect();
    // Room for part of a batch: the write is cut short mid-line.
    faults.enospc_after(Some(300));
    let batch: Vec<_> = (10..20).map(|i| event("full", i)).collect();
    let err = log.append_batch(batch).unwrap_err();
    assert_eq!(err.storage_fault(), Some(StorageFault::Full), "{err}");
    assert!(err.advice().unwrap().contains("full"), "{err}");
    let err = log.append(event("full", 20)).unwrap_err();
    assert_eq!(err.storage_fault(), Some(StorageFault::Full), "{err}");
    no_torn_lines(&store);
    assert_eq!(stored_ids(&store), acked.iter().copied().collect());

    faults.clear();
    acked.push(log.append(event("a", 3)).unwrap());
    acked.extend(
        log.append_batch(vec![event("a", 4), event("a", 5)])
            .unwrap(),
    );
    no_torn_lines(&store);
    assert_eq!(stored_ids(&store), acked.into_iter().collect());
    assert_consecutive_seqs(&store.records());
}

#[test]
fn a_failed_fsync_acknowledges_nothing_and_its_lines_are_cut_before_the_next_write() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let mut acked: Vec<Uuid> = (0..3).map(|i| log.append(event("a", i)).unwrap()).collect();
    faults.fail_fsyncs(1);
    let err = log
        .append_batch(vec![event("doomed", 0), event("doomed", 1)])
        .unwrap_err();
    assert!(matches!(err, evlog::store::Error::Sync { .. }), "{err}");
    assert_eq!(err.storage_fault(), Some(StorageFault::Failed));
    // The next append cuts the unacknowledged lines off, then writes.
    acked.push(log.append(event("a", 3)).unwrap());
    let records = store.records();
    assert!(
        records.iter().all(|r| r.event.user_id != "user-doomed"),
        "an event whose fdatasync failed is still stored"
    );
    assert_eq!(stored_ids(&store), acked.into_iter().collect());
    assert_consecutive_seqs(&records);
    no_torn_lines(&store);
}

/// A process that exits after a failed fdatasync while other threads still
/// hold clones of its log (a failed `evlog append --stdin`: its reader is
/// blocked on standard input) left the failed lines in the day file, where
/// the next process could not tell them from acknowledged ones.
/// `EventLog::close` cuts them off whoever else holds the log.
#[test]
fn close_cuts_off_failed_lines_while_clones_remain() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let still_held = log.clone();
    let acked = log.append(event("a", 0)).unwrap();
    faults.fail_fsyncs(1);
    log.append(event("doomed", 0)).unwrap_err();
    assert!(
        store
            .records()
            .iter()
            .any(|r| r.event.user_id == "user-doomed"),
        "the failed line is on disk until something cuts it"
    );
    log.close().unwrap();
    let records = store.records();
    assert!(
        records.iter().all(|r| r.event.user_id != "user-doomed"),
        "an event whose fdatasync failed is still stored"
    );
    assert_eq!(stored_ids(&store), [acked].into_iter().collect());
    // Every clone is closed.
    assert!(matches!(
        still_held.append(event("a", 1)),
        Err(evlog::store::Error::Closed)
    ));
    no_torn_lines(&store);
}

/// fsyncgate: after a failed fdatasync, a later one may succeed although the
/// earlier bytes never reached the disk. Batches written on top of the
/// failed one (the committer writes the next group while the syncer syncs)
/// must fail too, and be cut off with it.
#[test]
fn concurrent_appends_around_a_failed_fsync_ack_only_what_stays_stored() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let threads = 8;
    let per = 60u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            let faults = faults.clone();
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let mut failed = Vec::new();
                for i in 0..per {
                    if t == 0 && (i == 10 || i == 30) {
                        faults.fail_fsyncs(1);
                    }
                    let mut e = event(&format!("t{t}"), i);
                    let id = Uuid::now_v7();
                    e.id = Some(id);
                    match log.append(e) {
                        Ok(_) => ok.push(id),
                        Err(err) => {
                            assert_eq!(err.storage_fault(), Some(StorageFault::Failed), "{err}");
                            failed.push(id);
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (HashSet::new(), HashSet::new());
    for h in handles {
        let (o, f) = h.join().unwrap();
        ok.extend(o);
        failed.extend(f);
    }
    assert!(!failed.is_empty(), "no fdatasync failed");
    // One more append performs any cut still pending.
    ok.insert(log.append(event("last", 0)).unwrap());
    let stored = stored_ids(&store);
    assert!(ok.is_subset(&stored), "acknowledged events lost");
    assert!(
        stored.is_disjoint(&failed),
        "{} failed appends are stored",
        stored.intersection(&failed).count()
    );
    assert_eq!(stored.len(), ok.len());
    assert_consecutive_seqs(&store.records());
    no_torn_lines(&store);
}

#[test]
fn a_read_only_storage_refuses_appends_until_it_is_writable_again() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let mut acked = vec![log.append(event("a", 0)).unwrap()];
    faults.read_only(true);
    for i in 0..3 {
        let err = log.append(event("ro", i)).unwrap_err();
        assert_eq!(err.storage_fault(), Some(StorageFault::ReadOnly), "{err}");
        assert!(err.advice().unwrap().contains("read-only"), "{err}");
    }
    faults.read_only(false);
    acked.push(log.append(event("a", 1)).unwrap());
    assert_eq!(stored_ids(&store), acked.into_iter().collect());
    no_torn_lines(&store);
}

#[test]
fn a_log_opened_on_read_only_storage_says_so() {
    let store = Store::new();
    open(&store, &Faults::none()).append(event("a", 0)).unwrap();
    let faults = Faults::parse("erofs=1").unwrap();
    let err = EventLog::open(Config::new(store.path()).faults(faults)).unwrap_err();
    assert_eq!(err.storage_fault(), Some(StorageFault::ReadOnly), "{err}");
}

#[test]
fn the_cli_reports_a_full_disk_and_a_failed_fsync_in_words() {
    let store = Store::new();
    let append: &[&str] = &["append", "--type", "commit", "--user", "dev", "--desc", "x"];
    // (EVLOG_FAULTS, command, what its error says)
    for (faults, args, says) in [
        (
            "enospc_after=10",
            append,
            Some("disk holding the storage is full"),
        ),
        (
            "fsync_fail=1",
            append,
            Some("could not make the events durable"),
        ),
        ("disk_on_fire=1", &["verify"], None),
    ] {
        let out = store
            .cmd()
            .env("EVLOG_FAULTS", faults)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{faults}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(says) = says {
            assert!(stderr.contains(says), "{faults}: {stderr}");
        }
    }
    // `append --stdin` fails while its reader still waits on an open
    // standard input: it exits at once, and what failed is cut off (before,
    // the line whose fdatasync failed stayed in the day file).
    let mut child = store
        .cmd()
        .env("EVLOG_FAULTS", "fsync_fail=1")
        .args(["append", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, ndjson("stdin-doomed", 0).as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(2));
    assert!(
        store.records().is_empty(),
        "a line whose fdatasync failed is still stored"
    );
    // Nothing of the failed appends is stored; the next one works.
    store
        .run(
            &[
                "append", "--type", "commit", "--user", "dev", "--desc", "ok",
            ],
            b"",
        )
        .expect_code(0);
    let records = store.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.action_description, "ok");
}

async fn server_with(faults: &Faults) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("store");
    let log = EventLog::open(Config::new(&storage).faults(faults.clone())).unwrap();
    let keys = storage.join("keys.json");
    let admin = auth::update(&keys, |f| f.add(Role::Admin, "root", None))
        .unwrap()
        .0;
    let server = Server::new(log, KeyStore::open(&keys).unwrap(), Limits::default()).unwrap();
    (dir, server, admin)
}

async fn post(server: &Server, key: &str, body: &str) -> (u16, serde_json::Value, bool) {
    let r = warp::test::request()
        .method("POST")
        .path("/events")
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body)
        .reply(&server.routes())
        .await;
    let retry = r.headers().contains_key("retry-after");
    let v = serde_json::from_slice(r.body()).unwrap();
    (r.status().as_u16(), v, retry)
}

/// Switches one fault on.
type Arm<'a> = &'a dyn Fn(&Faults);

#[tokio::test(flavor = "multi_thread")]
async fn http_appends_answer_507_and_503_with_codes_and_succeed_after_the_fault() {
    let faults = Faults::none();
    let (_dir, server, admin) = server_with(&faults).await;
    let body =
        r#"{"event_type":"commit","user_id":"dev","action_description":"x","status":"success"}"#;
    let cases: [(Arm, u16, &str, bool); 3] = [
        (
            &|f| f.enospc_after(Some(0)),
            507,
            "insufficient_storage",
            false,
        ),
        (&|f| f.fail_fsyncs(1), 503, "storage_failed", true),
        (&|f| f.read_only(true), 503, "storage_read_only", false),
    ];
    for (arm, status, code, retry) in cases {
        arm(&faults);
        let (s, v, r) = post(&server, &admin, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("not"),
            "{v}"
        );
        assert_eq!(r, retry, "Retry-After for {code}");
        faults.clear();
        let (s, v, _) = post(&server, &admin, body).await;
        assert_eq!(s, 201, "after {code}: {v}");
    }
}

/// Polls `f` until it holds (at most 60 s, then fails).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_time() -> Query {
    Query {
        start: Some(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
        limit: Some(1000),
        ..Query::default()
    }
}

fn count(search: &IndexSearch) -> u64 {
    search.query(&all_time()).map(|r| r.total).unwrap_or(0)
}

#[test]
fn an_index_directory_deleted_under_a_running_indexer_is_rebuilt_from_the_files() {
    let store = Store::new();
    let log = open(&store, &Faults::none());
    let mut cfg = IndexConfig::new(store.path());
    cfg.commit_interval = Duration::from_millis(50);
    cfg.rescan_interval = Duration::from_millis(50);
    let handle = log.start_indexer(cfg).unwrap();
    let search = handle.search().clone();
    let ids: Vec<_> = (0..20)
        .map(|i| log.append(event("a", i)).unwrap())
        .collect();
    eventually("first 20 indexed", || count(&search) == 20);

    std::fs::remove_dir_all(store.path().join("index")).unwrap();
    let more: Vec<_> = (20..30)
        .map(|i| log.append(event("a", i)).unwrap())
        .collect();
    eventually("rebuilt with all 30", || {
        handle
            .stats()
            .rebuilds
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
            && count(&search) == 30
    });
    assert!(store.path().join("index/meta.json").exists());
    for id in ids.iter().chain(&more) {
        assert!(search.get(*id).unwrap().is_some(), "{id} not found");
    }
    handle.shutdown().unwrap();
    // The rebuilt index is a proper one: reopened, it holds each event once.
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    assert_eq!(ix.catch_up_and_commit().unwrap(), 0);
    assert_eq!(count(&ix.search()), 30);
}

#[test]
fn an_index_of_another_schema_is_rebuilt_when_the_indexer_opens() {
    let store = Store::new();
    let log = open(&store, &Faults::none());
    for i in 0..5 {
        log.append(event("a", i)).unwrap();
    }
    // An index written by some other version: a different tantivy schema.
    let path = store.path().join("index");
    std::fs::create_dir_all(&path).unwrap();
    let mut b = tantivy::schema::Schema::builder();
    b.add_text_field("old_field", tantivy::schema::TEXT);
    let old = tantivy::Index::create_in_dir(&path, b.build()).unwrap();
    drop(old);
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    assert_eq!(ix.catch_up_and_commit().unwrap(), 5);
    assert_eq!(count(&ix.search()), 5);
}

#[test]
fn an_index_whose_checkpoint_has_an_old_version_is_rebuilt_when_the_indexer_opens() {
    let store = Store::new();
    let log = open(&store, &Faults::none());
    for i in 0..5 {
        log.append(event("a", i)).unwrap();
    }
    Indexer::open(IndexConfig::new(store.path()))
        .unwrap()
        .catch_up_and_commit()
        .unwrap();
    {
        // Rewrite the payload as a version-0 index would have it.
        let index = tantivy::Index::open_in_dir(store.path().join("index")).unwrap();
        let mut w: tantivy::IndexWriter = index.writer(15 << 20).unwrap();
        w.delete_all_documents().unwrap();
        let mut p = w.prepare_commit().unwrap();
        p.set_payload(r#"{"v":0,"files":{"2000-01-01":{"offset":1,"lines":1}}}"#);
        p.commit().unwrap();
        w.wait_merging_threads().unwrap();
    }
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    assert_eq!(
        ix.catch_up_and_commit().unwrap(),
        5,
        "every event indexed again"
    );
    assert_eq!(count(&ix.search()), 5);
}

/// A failed fdatasync cuts lines off a day file that the indexer may
/// already have indexed; new lines then take their place. The index must
/// notice and index the day again rather than keep phantom events and read
/// the new lines from a stale offset.
#[test]
fn lines_cut_after_a_failed_fsync_leave_no_phantoms_in_the_index() {
    let store = Store::new();
    let faults = Faults::none();
    let log = open(&store, &faults);
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    let mut acked: Vec<Uuid> = (0..3).map(|i| log.append(event("a", i)).unwrap()).collect();
    faults.fail_fsyncs(1);
    log.append_batch((0..4).map(|i| event("doomed", i)).collect())
        .unwrap_err();
    // The indexer sees the doomed lines before the cut...
    ix.catch_up_and_commit().unwrap();
    // ...then the next append cuts them off and writes in their place.
    acked.extend((3..6).map(|i| log.append(event("a", i)).unwrap()));
    ix.catch_up_and_commit().unwrap();
    let search = ix.search();
    let page = search.query(&all_time()).unwrap();
    let mut indexed = ids(&page.events);
    indexed.sort();
    let mut want: Vec<String> = acked.iter().map(Uuid::to_string).collect();
    want.sort();
    assert_eq!(indexed, want);
    assert_eq!(page.total, 6);
}

#[test]
fn the_clock_stepping_back_across_midnight_keeps_one_chain_in_day_order() {
    let store = Store::new();
    let clock = Arc::new(ManualClock::new(utc("2026-03-09T12:00:00Z")));
    let config = Config::new(store.path())
        .durability(Durability::None)
        .clock(clock.clone());
    let log = EventLog::open(config.clone()).unwrap();
    let mut ids = vec![log.append(event("a", 0)).unwrap()]; // day D-1
    clock.set(utc("2026-03-11T00:00:05Z")); // day D+1
    ids.push(log.append(event("a", 1)).unwrap());
    clock.set(utc("2026-03-10T23:59:58Z")); // back to day D
    ids.push(log.append(event("a", 2)).unwrap());
    ids.extend(
        log.append_batch(vec![event("a", 3), event("a", 4)])
            .unwrap(),
    );
    drop(log);
    // A restart with the clock still behind.
    let log = EventLog::open(config).unwrap();
    ids.push(log.append(event("a", 5)).unwrap());
    clock.set(utc("2026-03-11T00:00:09Z"));
    ids.push(log.append(event("a", 6)).unwrap());
    drop(log);

    let report = store.verify();
    assert!(report.ok(), "{report:?}");
    let records = store.records();
    assert_consecutive_seqs(&records);
    let stored: Vec<Uuid> = records.iter().map(|r| r.event.id.unwrap()).collect();
    assert_eq!(stored, ids, "every event exactly once, in append order");
    let days: Vec<String> = store
        .day_files()
        .iter()
        .map(|f| f.day.to_string())
        .collect();
    assert_eq!(
        days,
        ["2026-03-09", "2026-03-11"],
        "no file for the day stepped back to"
    );
    // The events keep the time the clock gave them.
    assert_eq!(
        records[2].event.timestamp.unwrap(),
        utc("2026-03-10T23:59:58Z")
    );
}

/// Issue 15: every failed write logs one line with the key
/// `EVENT_WRITE_FAILED` that an alert can match: here through the CLI
/// (flags and `--stdin`), which appends through the library's store.
#[test]
fn a_failed_write_logs_one_event_write_failed_line_in_the_cli() {
    let append: &[&str] = &["append", "--type", "commit", "--user", "dev", "--desc", "x"];
    let stdin =
        br#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success"}
"#;
    for (faults, args, input) in [
        ("enospc_after=10", append, &b""[..]),
        ("fsync_fail=1", append, &b""[..]),
        ("fsync_fail=1", &["append", "--stdin"][..], &stdin[..]),
    ] {
        let store = Store::new();
        let out = crate::util::run(store.cmd().env("EVLOG_FAULTS", faults).args(args), input);
        assert_ne!(out.code, Some(0), "{faults} {args:?}");
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("EVENT_WRITE_FAILED"))
            .collect();
        assert_eq!(lines.len(), 1, "{faults} {args:?}: {}", out.stderr);
        assert!(
            lines[0].contains("EVENT_WRITE_FAILED file=") && lines[0].contains(" events=1 "),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("events_"),
            "names the day file: {}",
            lines[0]
        );
        // A write that works logs nothing of the kind.
        let out = store.run(append, b"");
        out.expect_code(0);
        assert!(!out.stderr.contains("EVENT_WRITE_FAILED"), "{}", out.stderr);
    }
}

/// Issue 15: a `POST /events` that fails on storage (a full disk) is
/// logged by the server as `EVENT_WRITE_FAILED`.
#[test]
fn a_failed_http_append_logs_event_write_failed_in_the_server_log() {
    let store = Store::new();
    let key = store.add_key("admin", "root");
    let s = crate::serve::Serve::start_opts(
        &store,
        crate::serve::Opts {
            args: &[],
            // Room for the key event and the server's start event, not for
            // the large event below.
            env: &[("EVLOG_FAULTS", "enospc_after=4096")],
        },
    );
    crate::serve::eventually("the start event is stored", || {
        store
            .records()
            .iter()
            .any(|r| r.event.event_type.as_str() == "system_start")
            .then_some(())
    });
    assert!(!s.log().contains("EVENT_WRITE_FAILED"), "{}", s.log());
    let big = serde_json::json!({"event_type": "commit", "user_id": "dev",
        "action_description": "x".repeat(8000), "status": "success"});
    let r = crate::serve::client()
        .post(s.url("/events"))
        .header("x-api-key", &key)
        .json(&big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);
    crate::serve::eventually("the failed write is logged", || {
        s.log().contains("EVENT_WRITE_FAILED file=").then_some(())
    });
}

/// Issue 15: an index written before `source` was indexed (checkpoint
/// version 1, whose documents have no `source` term) is rebuilt when the
/// indexer opens it, so that `source` filters find the old events too.
#[test]
fn an_index_of_the_version_before_source_is_rebuilt_and_filters_on_source() {
    let store = Store::new();
    let log = open(&store, &Faults::none());
    for i in 0..5 {
        log.append(event("a", i).source(if i % 2 == 0 { "api-service" } else { "cron" }))
            .unwrap();
    }
    Indexer::open(IndexConfig::new(store.path()))
        .unwrap()
        .catch_up_and_commit()
        .unwrap();
    {
        // As version 1 left it: every line indexed (the checkpoint at the
        // end of the files), but no document with a `source` term.
        let index = tantivy::Index::open_in_dir(store.path().join("index")).unwrap();
        let payload = index.load_metas().unwrap().payload.unwrap();
        let v = format!(r#""v":{}"#, evlog::index::indexer::INDEX_VERSION);
        assert!(payload.contains(&v), "{payload}");
        let mut w: tantivy::IndexWriter = index.writer(15 << 20).unwrap();
        w.delete_all_documents().unwrap();
        let mut p = w.prepare_commit().unwrap();
        p.set_payload(&payload.replace(&v, r#""v":1"#));
        p.commit().unwrap();
        w.wait_merging_threads().unwrap();
    }
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    ix.catch_up_and_commit().unwrap();
    let q = Query {
        source: Some("api-service".into()),
        ..all_time()
    };
    assert_eq!(ix.search().query(&q).unwrap().total, 3);
    assert_eq!(count(&ix.search()), 5);
}
