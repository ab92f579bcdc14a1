//! Purge with counts and the open-day rule (issue 15, item 3): the library,
//! `POST /admin/purge`, `evlog purge`, the failure log lines, and the daily
//! run caught up after a missed time.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use evlog::index::{IndexConfig, IndexSearch, Indexer};
use evlog::rotate::{self, IndexMode, purge};
use evlog::{Level, ManualClock};
use serde_json::Value;

use crate::rotate::snapshot;
use crate::util::{Store, event, open_with_clock};

const I: Level = Level::Info;
const W: Level = Level::Warning;
const E: Level = Level::Error;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn noon(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

/// `Utc::now()` minus `n` days: CLI runs use the real clock.
fn days_ago(n: i64) -> NaiveDate {
    (Utc::now() - Duration::days(n)).date_naive()
}

/// A store whose day `d` holds one event per level listed (appended from
/// noon of `d`, a second apart, through the library), and an index
/// covering all of them.
fn store_of(days: &[(NaiveDate, &[Level])]) -> Store {
    let store = Store::new();
    let clock = Arc::new(ManualClock::new(noon(days[0].0)));
    let log = open_with_clock(store.path(), &clock);
    for (d, levels) in days {
        clock.set(noon(*d));
        for (i, l) in levels.iter().enumerate() {
            log.append(event("p", i as u64).level(*l)).unwrap();
            clock.advance(Duration::seconds(1));
        }
    }
    drop(log);
    index(store.path());
    store
}

/// Catches the index up and commits, as `evlog query` does.
fn index(dir: &Path) -> IndexSearch {
    let mut ix = Indexer::open(IndexConfig::new(dir)).unwrap();
    ix.catch_up_and_commit().unwrap();
    ix.search()
}

fn on_day(dir: &Path, d: NaiveDate) -> u64 {
    crate::rotate::on_day(&index(dir), d)
}

/// The open-day rule end to end in the library: a day with an open warning
/// is kept and listed, the day after it is kept behind it (deletions stay a
/// prefix, the chain verifies), the info-only day before it is deleted with
/// its exact count (from its .gz), a dry run answers the same and changes
/// nothing, and `force` deletes the kept days.
#[test]
fn an_open_day_is_kept_with_the_days_after_it_and_force_deletes_them() {
    let store = store_of(&[
        (day("2026-01-01"), &[I, I, I]),
        (day("2026-01-02"), &[I, W]),
        (day("2026-01-03"), &[I, I]),
        (day("2026-03-01"), &[I]),
    ]);
    let now = noon(day("2026-03-01"));
    // Compress the old days first: their events are counted from the .gz.
    let mut o = rotate::Options::new(
        rotate::Policy {
            compress_after: Some(Duration::days(7)),
            delete_after: None,
            max_total_size: None,
        },
        now,
    );
    o.threads = 2;
    let r = rotate::run(store.path(), &o).unwrap();
    assert_eq!(r.compressed.len(), 3, "{r:?}");

    let before = snapshot(store.path());
    let dry = purge::run(store.path(), &purge::options(30, now, true, false), 30).unwrap();
    assert_eq!(snapshot(store.path()), before, "a dry run wrote something");
    let real = purge::run(store.path(), &purge::options(30, now, false, false), 30).unwrap();
    for p in [&dry, &real] {
        assert_eq!(p.deleted, 3, "{p:?}");
        assert_eq!(p.deleted_days, ["2026-01-01"]);
        assert_eq!(p.events_per_day["2026-01-01"], 3);
        assert_eq!(p.kept_open_days, ["2026-01-02"]);
        assert_eq!(p.kept_behind_open_days, ["2026-01-03"]);
        assert!(p.ok() && !p.force);
    }
    assert!(dry.dry_run && !real.dry_run);
    assert_eq!(
        dry.message,
        "Would purge 3 events in 1 day (1 day kept: open warnings; 1 younger day kept behind them)"
    );
    assert_eq!(
        real.message,
        "Purged 3 events in 1 day (1 day kept: open warnings; 1 younger day kept behind them)"
    );
    assert!(!store.file("events_2026-01-01.jsonl.gz").exists());
    assert!(store.file("events_2026-01-02.jsonl.gz").exists());
    assert!(store.file("events_2026-01-03.jsonl.gz").exists());
    assert_eq!(on_day(store.path(), day("2026-01-01")), 0);
    assert_eq!(on_day(store.path(), day("2026-01-02")), 2);
    let v = store.verify();
    assert!(v.ok(), "{:?}", v.failure);

    let forced = purge::run(store.path(), &purge::options(30, now, false, true), 30).unwrap();
    assert!(forced.force);
    assert_eq!(forced.deleted_days, ["2026-01-02", "2026-01-03"]);
    assert_eq!(forced.deleted, 4);
    assert!(forced.kept_open_days.is_empty() && forced.kept_behind_open_days.is_empty());
    assert_eq!(forced.message, "Purged 4 events in 2 days");
    assert_eq!(on_day(store.path(), day("2026-01-02")), 0);
    let v = store.verify();
    assert!(v.ok(), "{:?}", v.failure);
    assert_eq!(v.lines, 1);
}

/// A replicating edge never deletes a day the stream has not acknowledged
/// (`replication.cursor` behind it), not even forced, and the days after
/// it stay with it; once the cursor passes them they go.
#[test]
fn days_not_yet_published_to_the_stream_are_kept_even_when_forced() {
    use evlog::replicate::cursor::Cursor;
    let store = store_of(&[
        (day("2026-01-01"), &[I, I, I]),
        (day("2026-01-02"), &[I, I]),
        (day("2026-01-03"), &[I, I]),
        (day("2026-03-01"), &[I]),
    ]);
    let now = noon(day("2026-03-01"));
    let at = |seq| Cursor {
        seq,
        ..Cursor::default()
    };
    at(4).save(store.path()).unwrap();
    let p = purge::run(store.path(), &purge::options(30, now, false, true), 30).unwrap();
    assert_eq!(p.deleted_days, ["2026-01-01"], "{p:?}");
    assert_eq!(p.deleted, 3);
    assert_eq!(p.kept_unpublished_days, ["2026-01-02", "2026-01-03"]);
    assert!(
        p.message.contains("2 days kept: not yet published"),
        "{}",
        p.message
    );
    assert!(store.file("events_2026-01-02.jsonl").exists());
    at(7).save(store.path()).unwrap();
    let p = purge::run(store.path(), &purge::options(30, now, false, true), 30).unwrap();
    assert_eq!(p.deleted_days, ["2026-01-02", "2026-01-03"], "{p:?}");
    assert!(p.kept_unpublished_days.is_empty());
    let v = store.verify();
    assert!(v.ok(), "{:?}", v.failure);
}

/// Only open events keep a day: once its warning is resolved (the
/// resolution stored in another, younger day), the day goes; reopened, it
/// is kept again.
#[test]
fn a_day_whose_warnings_are_resolved_is_deleted_and_reopened_is_kept() {
    use evlog::resolution::{Action, resolution_event};
    let store = store_of(&[(day("2026-01-01"), &[I, W, E]), (day("2026-03-01"), &[I])]);
    let now = noon(day("2026-03-01"));
    let warnings: Vec<uuid::Uuid> = store
        .records()
        .iter()
        .filter(|r| r.event.level != I)
        .map(|r| r.event.id.unwrap())
        .collect();
    let clock = Arc::new(ManualClock::new(now));
    let log = open_with_clock(store.path(), &clock);
    let resolve = |action, id| {
        log.append(resolution_event(action, id, "ops", None))
            .unwrap();
        index(store.path());
        purge::run(store.path(), &purge::options(30, now, true, false), 30).unwrap()
    };
    // One of the two resolved: still open.
    let p = resolve(Action::Resolve, warnings[0]);
    assert_eq!(p.kept_open_days, ["2026-01-01"], "{p:?}");
    // Both: the day goes.
    let p = resolve(Action::Resolve, warnings[1]);
    assert!(p.kept_open_days.is_empty(), "{p:?}");
    assert_eq!(
        (p.deleted_days.clone(), p.deleted),
        (vec!["2026-01-01".to_string()], 3)
    );
    // One reopened: kept again.
    let p = resolve(Action::Reopen, warnings[0]);
    assert_eq!(p.kept_open_days, ["2026-01-01"], "{p:?}");
    let p = resolve(Action::Resolve, warnings[0]);
    let real = purge::run(store.path(), &purge::options(30, now, false, false), 30).unwrap();
    assert_eq!((real.deleted_days, real.deleted), (p.deleted_days, 3));
    assert!(!store.file("events_2026-01-01.jsonl").exists());
}

/// Retention deletes files, so a day is judged by the events its file
/// holds: an open error stored today-of-the-file with a timestamp of
/// another day still keeps the file's day (and does not keep the day of
/// its timestamp).
#[test]
fn a_day_is_judged_by_the_events_in_its_file_not_by_their_timestamps() {
    let store = Store::new();
    let clock = Arc::new(ManualClock::new(noon(day("2026-01-01"))));
    let log = open_with_clock(store.path(), &clock);
    log.append(event("p", 0).level(I)).unwrap();
    clock.set(noon(day("2026-01-02")));
    log.append(event("p", 1).level(E).timestamp(noon(day("2026-01-01"))))
        .unwrap();
    clock.set(noon(day("2026-03-01")));
    log.append(event("p", 2).level(I)).unwrap();
    drop(log);
    index(store.path());
    let now = noon(day("2026-03-01"));
    let p = purge::run(store.path(), &purge::options(30, now, false, false), 30).unwrap();
    assert_eq!(p.deleted_days, ["2026-01-01"], "{p:?}");
    assert_eq!(p.deleted, 1);
    assert_eq!(p.kept_open_days, ["2026-01-02"]);
}

/// Without an index nothing tells which days are open: the days due are
/// kept (and the report says why) unless the rule is turned off.
#[test]
fn without_an_index_days_due_are_kept_unless_forced() {
    let store = store_of(&[(day("2026-01-01"), &[I]), (day("2026-03-01"), &[I])]);
    std::fs::remove_dir_all(store.file("index")).unwrap();
    let now = noon(day("2026-03-01"));
    let mut o = purge::options(30, now, false, false);
    o.index = IndexMode::Without;
    let p = purge::run(store.path(), &o, 30).unwrap();
    assert!(p.deleted_days.is_empty(), "{p:?}");
    assert_eq!(p.kept_open_days, ["2026-01-01"]);
    assert!(p.notes.iter().any(|n| n.contains("no index")), "{p:?}");
    let mut o = purge::options(30, now, false, true);
    o.index = IndexMode::Without;
    let p = purge::run(store.path(), &o, 30).unwrap();
    assert_eq!(p.deleted_days, ["2026-01-01"]);
    assert_eq!(p.deleted, 1);
}

#[test]
fn cli_purges_with_counts_refuses_short_retention_and_logs_failures() {
    let (old, open, today) = (days_ago(40), days_ago(35), days_ago(0));
    let store = store_of(&[(old, &[I, I]), (open, &[W]), (today, &[I])]);
    let out = store.run(&["purge", "--retention-days", "10"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.contains("retention-days") && out.stderr.contains("minimum retention of 30"),
        "{}",
        out.stderr
    );
    // The minimum comes from the flag (or env, or [rotation]) too.
    let out = store.run(
        &[
            "purge",
            "--retention-days",
            "10",
            "--min-retention-days",
            "5",
            "--dry-run",
        ],
        b"",
    );
    out.expect_code(0);
    let out = store.run(&["purge", "--retention-days", "30", "--dry-run"], b"");
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("Would purge 2 events in 1 day (1 day kept: open warnings)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("kept open     {open}")),
        "{}",
        out.stdout
    );
    assert!(store.file(&format!("events_{old}.jsonl")).exists());
    let out = store.run(
        &["purge", "--retention-days", "30", "--format", "json"],
        b"",
    );
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["deleted"], 2);
    assert_eq!(v["deleted_days"], serde_json::json!([old.to_string()]));
    assert_eq!(v["kept_open_days"], serde_json::json!([open.to_string()]));
    assert_eq!(v["retention_days"], 30);
    assert_eq!(v["dry_run"], false);
    assert!(!store.file(&format!("events_{old}.jsonl")).exists());
    // The purge is recorded in the log, as the server records its purges.
    let lines: Vec<String> = store
        .lines()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("purge by `evlog purge`")
            && l.contains("Purged 2 events in 1 day")),
        "{lines:?}"
    );
    let out = store.run(&["purge", "--retention-days", "30", "--force"], b"");
    out.expect_code(0);
    assert!(
        out.stdout.contains("Purged 1 event in 1 day"),
        "{}",
        out.stdout
    );
    assert!(!store.file(&format!("events_{open}.jsonl")).exists());
    // A purge that fails (a directory where a day file should be stops
    // the index's catch-up): one EVENT_PURGE_FAILED line, exit 2.
    let bad = days_ago(50);
    std::fs::create_dir(store.file(&format!("events_{bad}.jsonl"))).unwrap();
    let out = store.run(&["purge", "--retention-days", "30"], b"");
    out.expect_code(2);
    assert_eq!(
        out.stderr.matches("EVENT_PURGE_FAILED file=").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("EVENT_ROTATE_FAILED"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir(store.file(&format!("events_{bad}.jsonl"))).unwrap();
    // So does one that cannot start (another holds rotate.lock), and a rotation.
    let lock = std::fs::File::create(store.file(rotate::LOCK_FILE)).unwrap();
    lock.lock().unwrap();
    let out = store.run(&["purge", "--retention-days", "30"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.contains("EVENT_PURGE_FAILED file=") && out.stderr.contains("another rotation"),
        "{}",
        out.stderr
    );
    let out = store.run(&["rotate"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.contains("EVENT_ROTATE_FAILED file="),
        "{}",
        out.stderr
    );
    lock.unlock().unwrap();
}

/// `evlog rotate` applies the rule by default and lists the kept days;
/// `--keep-open=false` deletes them.
#[test]
fn cli_rotate_keeps_open_days_unless_told_not_to() {
    let (old, open, today) = (days_ago(40), days_ago(35), days_ago(0));
    let store = store_of(&[(old, &[I]), (open, &[E]), (today, &[I])]);
    let out = store.run(&["rotate", "--delete-after", "30d"], b"");
    out.expect_code(0);
    assert!(
        out.stdout.contains(&format!("kept open      {open}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1 deleted (1 events), 1 kept open"),
        "{}",
        out.stdout
    );
    // (Not compressed: it was due for deletion when compression looked.)
    assert!(store.file(&format!("events_{open}.jsonl")).exists());
    let out = store.run(
        &[
            "rotate",
            "--delete-after",
            "30d",
            "--keep-open=false",
            "--format",
            "json",
        ],
        b"",
    );
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["deleted_events"][open.to_string()], 1, "{v}");
    assert_eq!(v["kept_open_days"], serde_json::json!([]));
    let help = store.run(&["rotate", "--help"], b"");
    assert!(help.stdout.contains("--keep-open"), "{}", help.stdout);
}

mod http {
    use super::*;
    use evlog::auth::{self, KeyStore, Role};
    use evlog::server::{Limits, Server};
    use evlog::settings::RotationSettings;
    use warp::http::StatusCode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_purge_answers_counts_keeps_open_days_and_refuses_bad_retention() {
        let store = store_of(&[
            (day("2026-01-01"), &[I, I, I]),
            (day("2026-01-02"), &[I, Level::Security]),
            (day("2026-03-01"), &[I]),
        ]);
        let clock = Arc::new(ManualClock::new(noon(day("2026-03-01"))));
        let log = open_with_clock(store.path(), &clock);
        let keys = store.file("keys.json");
        let add = |role, user: &str, all| {
            auth::update(&keys, |f| f.add_scoped(role, user, None, None, None, all))
                .unwrap()
                .0
        };
        // Purge deletes whole days, which every tenant shares: an
        // all-tenants admin's; an admin of the default tenant is refused.
        let (admin, scoped, user) = (
            add(Role::Admin, "root", true),
            add(Role::Admin, "root", false),
            add(Role::User, "alice", false),
        );
        let server = Server::new(log, KeyStore::open(&keys).unwrap(), Limits::default()).unwrap();
        server.set_rotation(RotationSettings {
            rotate_at: None,
            ..RotationSettings::default()
        });
        let routes = server.routes();
        let call = |key: &str, path: &str| {
            warp::test::request()
                .method("POST")
                .path(path)
                .header("x-api-key", key)
                .reply(&routes)
        };
        let before = snapshot(store.path());
        for (path, says) in [
            ("/admin/purge", "retention_days: required"),
            ("/admin/purge?retention_days=abc", "not a number of days"),
            ("/admin/purge?retention_days=-1", "not a number of days"),
            (
                "/admin/purge?retention_days=29",
                "minimum retention of 30 days",
            ),
            ("/admin/purge?retention_days=99999999", "more than"),
            (
                "/admin/purge?retention_days=30&retention_days=40",
                "more than once",
            ),
            (
                "/admin/purge?retention_days=30&dry_run=maybe",
                "not a boolean",
            ),
            (
                "/admin/purge?retention_days=30&verbose=1",
                "unknown parameter",
            ),
        ] {
            let resp = call(&admin, path).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
            let v: Value = serde_json::from_slice(resp.body()).unwrap();
            assert_eq!(v["error"]["code"], "invalid_parameter", "{path}: {v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(says), "{path}: {msg}");
        }
        for key in [&user, &scoped] {
            let resp = call(key, "/admin/purge?retention_days=30").await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        }
        let dry = call(&admin, "/admin/purge?retention_days=30&dry_run=true").await;
        assert_eq!(dry.status(), StatusCode::OK);
        let dry: Value = serde_json::from_slice(dry.body()).unwrap();
        assert_eq!(
            snapshot(store.path())
                .keys()
                .filter(|p| p.to_string_lossy().contains("events_"))
                .count(),
            before
                .keys()
                .filter(|p| p.to_string_lossy().contains("events_"))
                .count()
        );
        assert!(
            store.file("events_2026-01-01.jsonl").exists(),
            "a dry run deleted"
        );
        let real = call(&admin, "/admin/purge?retention_days=30").await;
        assert_eq!(real.status(), StatusCode::OK);
        let real: Value = serde_json::from_slice(real.body()).unwrap();
        for v in [&dry, &real] {
            assert_eq!(v["deleted"], 3, "{v}");
            assert_eq!(v["deleted_days"], serde_json::json!(["2026-01-01"]));
            assert_eq!(v["kept_open_days"], serde_json::json!(["2026-01-02"]));
            assert_eq!(v["retention_days"], 30);
        }
        assert_eq!(dry["dry_run"], true);
        assert_eq!(real["dry_run"], false);
        assert_eq!(
            real["message"],
            "Purged 3 events in 1 day (1 day kept: open warnings)"
        );
        assert!(!store.file("events_2026-01-01.jsonl").exists());
        // Answered after the index dropped the deleted day.
        let q = warp::test::request()
            .path("/events?date=2026-01-01")
            .header("x-api-key", &admin)
            .reply(&routes)
            .await;
        let q: Value = serde_json::from_slice(q.body()).unwrap();
        assert_eq!(q["total"], 0, "{q}");
        let forced = call(&admin, "/admin/purge?retention_days=30&force=true").await;
        let forced: Value = serde_json::from_slice(forced.body()).unwrap();
        assert_eq!(forced["deleted"], 2, "{forced}");
        assert_eq!(forced["force"], true);
        let m = warp::test::request().path("/metrics").reply(&routes).await;
        let m = String::from_utf8_lossy(m.body()).into_owned();
        assert!(
            m.contains("evlog_purged_events_total{by=\"purge\"} 5"),
            "{m}"
        );
        drop(routes);
        tokio::task::spawn_blocking(move || server.close().unwrap())
            .await
            .unwrap();
        // Each real purge is recorded under the user `evlog`, naming the key.
        let reports: Vec<Value> = store
            .lines()
            .iter()
            .map(|l| serde_json::from_slice::<Value>(l).unwrap())
            .filter(|v| {
                v["action_description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("purge by root"))
            })
            .collect();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0]["user_id"], "evlog");
        assert_eq!(reports[0]["metadata"]["deleted"], 3);
        assert_eq!(reports[1]["metadata"]["force"], true);
    }

    /// Issue 15: the server starts at 00:40, the daily run is at 00:15 and
    /// none is recorded today: it runs at once (and records the time).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_daily_run_missed_while_down_runs_on_start_within_the_grace() {
        let store = store_of(&[(day("2026-01-01"), &[I]), (day("2026-02-28"), &[I])]);
        let clock = Arc::new(ManualClock::new(
            day("2026-03-01").and_hms_opt(0, 40, 0).unwrap().and_utc(),
        ));
        let log = open_with_clock(store.path(), &clock);
        let keys = store.file("keys.json");
        auth::update(&keys, |f| f.add(Role::Admin, "root", None)).unwrap();
        let server = Server::new(log, KeyStore::open(&keys).unwrap(), Limits::default()).unwrap();
        server.set_rotation(RotationSettings {
            policy: rotate::Policy {
                compress_after: None,
                delete_after: Some(Duration::days(30)),
                max_total_size: None,
            },
            rotate_at: chrono::NaiveTime::from_hms_opt(0, 15, 0),
            catch_up_grace: Some(Duration::hours(1)),
            ..RotationSettings::default()
        });
        let last = store.file(rotate::schedule::LAST_RUN_FILE);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.file("events_2026-01-01.jsonl").exists() || !last.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the missed daily run did not run"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            rotate::schedule::last_run(store.path()),
            Some(day("2026-03-01").and_hms_opt(0, 40, 0).unwrap().and_utc())
        );
        tokio::task::spawn_blocking(move || server.close().unwrap())
            .await
            .unwrap();
    }
}

/// Item 5: a rotation that fails on a file, run through `POST
/// /admin/rotate`, logs one `EVENT_ROTATE_FAILED` line in the server's log.
#[test]
fn a_failed_rotation_on_the_server_logs_event_rotate_failed() {
    let bad = days_ago(20);
    let store = store_of(&[(bad, &[I, I]), (days_ago(0), &[I])]);
    let name = format!("events_{bad}.jsonl");
    crate::rotate::tamper(&store.file(&name));
    let serve = crate::serve::Serve::start(&store);
    let resp = crate::serve::client()
        .post(serve.url("/admin/rotate"))
        .header("x-api-key", &serve.admin)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["failures"][0]["file"], name.as_str(), "{v}");
    let line = format!("EVENT_ROTATE_FAILED file={}", store.file(&name).display());
    crate::serve::eventually("the failure line in the log", || {
        serve.log().contains(&line).then_some(())
    });
    assert_eq!(
        serve.log().matches("EVENT_ROTATE_FAILED").count(),
        1,
        "{}",
        serve.log()
    );
}
