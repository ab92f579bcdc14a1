//! The committed fixtures of on-disk format v1 (`fixtures/v1/`, see
//! `fixtures/README.md`): today's reader, verifier, CLI and torn-tail
//! recovery must handle files written by format v1, and today's writer must
//! still produce exactly those bytes.
//!
//! `EVLOG_BLESS_FIXTURES=1 cargo test --test it fixtures::` regenerates the
//! fixtures in place. Only do that for a deliberate format change (and then
//! keep the old fixtures under a new version directory).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use evlog::store::verify::Problem;
use evlog::{Config, Durability, Event, EventLog, EventType, Level, ManualClock, Status};
use serde_json::json;
use uuid::Uuid;

use crate::util::{Store, fixtures_v1, open_with_clock, utc};

const DAY1: &str = "events_2026-01-14.jsonl";
const DAY2_GZ: &str = "events_2026-01-15.jsonl.gz";
const TORN_DAY: &str = "events_2026-01-16.jsonl";

fn id(n: u128) -> Uuid {
    // UUIDv7 layout (version 7, variant 10) with a fixed timestamp part.
    Uuid::from_u128(0x019b_bc00_0000_7000_8000_0000_0000_0000 | n)
}

/// The events of day 1 (plain file): every optional field, custom type,
/// metadata, files_changed and non-ASCII text.
fn day1_events() -> Vec<Event> {
    vec![
        Event::new(EventType::SystemStart, "svc-deploy", "Service started")
            .id(id(1))
            .metadata(json!({"version": "1.4.2", "host": "build-01"}))
            .duration_ms(12.5),
        Event::new(EventType::Commit, "dev", "Updated config")
            .id(id(2))
            .files_changed(["config.toml", "src/main.rs"])
            .metadata(json!({"branch": "main", "sha": "9fceb02"}))
            .comments("bump timeouts"),
        Event::new(
            EventType::AuthFailure,
            "zoë",
            "Connexion refusée — mot de passe erroné",
        )
        .id(id(3))
        .status(Status::Failure)
        .level(Level::Security)
        .source_ip("203.0.113.7")
        .request_id("req-42"),
        Event::new(
            EventType::Custom("deploy.finished".into()),
            "svc-deploy",
            "Déploiement terminé ✓ 完了",
        )
        .id(id(4))
        .level(Level::Warning)
        .metadata(json!({"region": "eu-west", "nested": {"ok": true, "n": [1, 2, 3]}}))
        .duration_ms(1234.5),
        Event::new(EventType::FileDelete, "dev", "Removed old logs")
            .id(id(5))
            .status(Status::InProgress)
            .files_changed(["logs/old.log"])
            .source_ip("2001:db8::1"),
    ]
}

/// The events of day 2 (gzip file), continuing the chain of day 1.
fn day2_events() -> Vec<Event> {
    vec![
        Event::new(EventType::Push, "dev", "Pushed main to origin")
            .id(id(6))
            .metadata(json!({"remote": "origin", "commits": 3})),
        Event::new(EventType::ApiError, "api", "GET /v1/ünïcode failed 🚀")
            .id(id(7))
            .status(Status::Failure)
            .level(Level::Error)
            .request_id("req-43")
            .duration_ms(0.25),
        Event::new(EventType::SystemStop, "svc-deploy", "Service stopped").id(id(8)),
    ]
}

/// The events of the torn store; the last one is cut in the middle.
fn torn_events() -> Vec<Event> {
    (0..4)
        .map(|i| {
            Event::new(EventType::Comment, "ana", format!("comment n° {i}"))
                .id(id(100 + i))
                .metadata(json!({"thread": 7}))
        })
        .collect()
}

fn append_all(dir: &Path, start: &str, events: Vec<Event>) {
    let clock = Arc::new(ManualClock::new(utc(start)));
    let log = open_with_clock(dir, &clock);
    for e in events {
        log.append(e).unwrap();
        clock.advance(Duration::milliseconds(1500) + Duration::microseconds(7));
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // Ordinary single-member gzip (no file name, mtime 0), like `gzip -n`.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Writes `good/`, `torn/` and `tampered/` under `out` with the library.
fn generate(out: &Path) {
    // good/: day 1 plain, day 2 written plain then gzipped.
    let good = out.join("good");
    append_all(&good, "2026-01-14T09:00:00.123456Z", day1_events());
    // A second open continues the chain on the next day.
    append_all(&good, "2026-01-15T10:30:00.000001Z", day2_events());
    let plain2 = good.join("events_2026-01-15.jsonl");
    std::fs::write(good.join(DAY2_GZ), gzip(&std::fs::read(&plain2).unwrap())).unwrap();
    std::fs::remove_file(plain2).unwrap();
    std::fs::remove_file(good.join(evlog::store::LOCK_FILE)).unwrap();

    // torn/: 4 events, then the file cut in the middle of the 4th line.
    let torn = out.join("torn");
    append_all(&torn, "2026-01-16T08:00:00Z", torn_events());
    let path = torn.join(TORN_DAY);
    let bytes = std::fs::read(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let (line4, end) = (starts[3], starts[4]);
    std::fs::write(&path, &bytes[..line4 + (end - line4) / 2]).unwrap();
    std::fs::remove_file(torn.join(evlog::store::LOCK_FILE)).unwrap();

    // tampered/: good/ with line 3 of day 1 changed (a failure turned into a success).
    let tampered = out.join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let day1 = std::fs::read_to_string(good.join(DAY1)).unwrap();
    let mut lines: Vec<String> = day1.lines().map(str::to_string).collect();
    assert!(lines[2].contains(r#""status":"failure""#));
    lines[2] = lines[2].replace(r#""status":"failure""#, r#""status":"success""#);
    std::fs::write(tampered.join(DAY1), lines.join("\n") + "\n").unwrap();
    std::fs::copy(good.join(DAY2_GZ), tampered.join(DAY2_GZ)).unwrap();
}

/// The fixtures are the bytes today's writer produces from the same input: a
/// change to the serialization or the chain fails here, not in the field.
#[test]
fn fixtures_match_what_the_writer_produces() {
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("EVLOG_BLESS_FIXTURES").is_some() {
        generate(tmp.path());
        for store in ["good", "torn", "tampered"] {
            let dst = fixtures_v1().join(store);
            std::fs::create_dir_all(&dst).unwrap();
            for entry in std::fs::read_dir(tmp.path().join(store)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
            }
        }
        eprintln!("fixtures written to {}", fixtures_v1().display());
    }
    generate(tmp.path());
    for (store, file) in [
        ("good", DAY1),
        ("torn", TORN_DAY),
        ("tampered", DAY1),
        ("tampered", DAY2_GZ),
    ] {
        let fresh = std::fs::read(tmp.path().join(store).join(file)).unwrap();
        let frozen = std::fs::read(fixtures_v1().join(store).join(file)).unwrap();
        let (fresh, frozen) = if file.ends_with(".gz") {
            (gunzip(&fresh), gunzip(&frozen))
        } else {
            (fresh, frozen)
        };
        assert!(
            fresh == frozen,
            "{store}/{file} differs from what the writer produces now:\n--- frozen\n{}\n--- now\n{}",
            String::from_utf8_lossy(&frozen),
            String::from_utf8_lossy(&fresh)
        );
    }
    let fresh = gunzip(&std::fs::read(tmp.path().join("good").join(DAY2_GZ)).unwrap());
    let frozen = gunzip(&std::fs::read(fixtures_v1().join("good").join(DAY2_GZ)).unwrap());
    assert_eq!(
        String::from_utf8(frozen).unwrap(),
        String::from_utf8(fresh).unwrap()
    );
    // Each store holds exactly the documented files.
    for (store, files) in [
        ("good", &[DAY1, DAY2_GZ][..]),
        ("torn", &[TORN_DAY][..]),
        ("tampered", &[DAY1, DAY2_GZ][..]),
    ] {
        let mut names: Vec<String> = std::fs::read_dir(fixtures_v1().join(store))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, files, "{store}");
    }
}

#[test]
fn gz_fixture_is_one_ordinary_gzip_member() {
    let bytes = std::fs::read(fixtures_v1().join("good").join(DAY2_GZ)).unwrap();
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 0x08], "gzip magic + deflate");
    // A single-member decoder reads every line: nothing evlog-specific.
    let text = String::from_utf8(gunzip(&bytes)).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.ends_with('\n'));
}

#[test]
fn scan_reads_plain_and_gz_fixture_days_in_order() {
    let store = Store::from_fixture("good");
    let records = store.records();
    let want: Vec<Event> = day1_events().into_iter().chain(day2_events()).collect();
    assert_eq!(records.len(), want.len());
    for (i, (r, w)) in records.iter().zip(&want).enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.line, if i < 5 { i as u64 + 1 } else { i as u64 - 4 });
        let file = r.path.file_name().unwrap().to_str().unwrap();
        assert_eq!(file, if i < 5 { DAY1 } else { DAY2_GZ });
        // Everything but the store-assigned timestamp is what was appended.
        let mut got = r.event.clone();
        assert!(got.timestamp.take().is_some());
        assert_eq!(&got, w, "record {i}");
        assert_eq!(r.hash.len(), 64);
    }
    assert_eq!(
        records[0].event.timestamp,
        Some(utc("2026-01-14T09:00:00.123456Z"))
    );
    assert_eq!(
        records[5].event.timestamp,
        Some(utc("2026-01-15T10:30:00.000001Z"))
    );
    assert_eq!(records[2].event.user_id, "zoë");
    assert_eq!(
        records[3].event.action_description,
        "Déploiement terminé ✓ 完了"
    );
    assert_eq!(
        records[3].event.metadata,
        Some(json!({"region": "eu-west", "nested": {"ok": true, "n": [1, 2, 3]}}))
    );
    assert_eq!(
        records[1].event.files_changed,
        ["config.toml", "src/main.rs"]
    );
}

#[test]
fn cat_prints_plain_and_gz_fixture_days() {
    let store = Store::from_fixture("good");
    let plain = std::fs::read_to_string(store.file(DAY1)).unwrap();
    let gz = String::from_utf8(gunzip(&std::fs::read(store.file(DAY2_GZ)).unwrap())).unwrap();

    let out = store.run(&["cat"], b"");
    out.expect_code(0);
    assert_eq!(out.stdout, format!("{plain}{gz}"));
    assert_eq!(out.stderr, "");

    for (args, want) in [
        (&["cat", "--date", "2026-01-15"][..], gz.as_str()),
        (
            &["cat", "--from", "2026-01-10", "--to", "2026-01-14"],
            &plain,
        ),
        (&["cat", "--date", "2026-01-16"], ""),
    ] {
        let out = store.run(args, b"");
        out.expect_code(0);
        assert_eq!(out.stdout, want, "{args:?}");
    }
}

#[test]
fn verify_passes_on_the_good_fixture() {
    let store = Store::from_fixture("good");
    let report = store.verify();
    assert!(report.ok(), "{:?}", report.failure);
    assert_eq!((report.files, report.lines), (2, 8));
    assert_eq!(report.last.unwrap().seq, 8);

    store.expect_cli_verifies("8 line(s) in 2 file(s)");
    // A range that starts at day 2 continues from the last line of day 1.
    let out = store.run(&["verify", "--from", "2026-01-15"], b"");
    out.expect_code(0);
    assert!(
        out.stderr.contains("chain continues from"),
        "{}",
        out.stderr
    );
    // So does one day alone (`--date`), and it checks only that day's lines.
    let out = store.run(&["verify", "--date", "2026-01-15"], b"");
    out.expect_code(0);
    assert!(
        out.stderr.contains("chain continues from"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("in 1 file(s)"), "{}", out.stdout);
    let out = store.run(
        &["verify", "--date", "2026-01-15", "--from", "2026-01-14"],
        b"",
    );
    out.expect_code(2);
}

#[test]
fn verify_names_file_line_and_changed_on_the_tampered_fixture() {
    let store = Store::from_fixture("tampered");
    let report = store.verify();
    let f = report.failure.expect("tampering must be found");
    assert_eq!(f.path, store.file(DAY1));
    assert_eq!((f.line, f.problem), (3, Problem::Changed));

    let out = store.run(&["verify"], b"");
    out.expect_code(1);
    let want = format!("{}:3: changed", store.file(DAY1).display());
    assert!(out.stdout.contains(&want), "want {want}\n{}", out.stdout);
    // Reading still works: tampering is the verifier's business.
    assert_eq!(store.records().len(), 8);
}

/// The torn fixture split at its last newline: (complete lines, torn tail).
fn torn_fixture_parts() -> (Vec<u8>, Vec<u8>) {
    let bytes = std::fs::read(fixtures_v1().join("torn").join(TORN_DAY)).unwrap();
    let cut = bytes.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    assert!(
        cut < bytes.len(),
        "the torn fixture must end without a newline"
    );
    (bytes[..cut].to_vec(), bytes[cut..].to_vec())
}

#[test]
fn scan_and_verify_ignore_an_unrecovered_torn_tail() {
    let store = Store::from_fixture("torn");
    let records = store.records();
    assert_eq!(records.len(), 3);
    let report = store.verify();
    assert!(report.ok(), "{:?}", report.failure);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("after the last newline")),
        "{:?}",
        report.notes
    );
    // Reading moved nothing.
    assert!(store.torn_files().is_empty());
    assert_eq!(
        std::fs::read(store.file(TORN_DAY)).unwrap(),
        std::fs::read(fixtures_v1().join("torn").join(TORN_DAY)).unwrap()
    );
}

#[test]
fn opening_over_the_torn_fixture_moves_the_tail_aside() {
    let (complete, tail) = torn_fixture_parts();
    let store = Store::from_fixture("torn");
    let clock = Arc::new(ManualClock::new(utc("2026-01-16T09:00:00Z")));
    let log = open_with_clock(store.path(), &clock);
    // Open alone recovers: the tail is in `.torn` (with a newline), the day
    // file ends at its last complete line.
    let torn_path = store.file(&format!("{TORN_DAY}.torn"));
    assert_eq!(
        std::fs::read(&torn_path).unwrap(),
        [&tail[..], b"\n"].concat()
    );
    assert_eq!(std::fs::read(store.file(TORN_DAY)).unwrap(), complete);
    assert_eq!(
        log.counters()
            .torn_tails
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The next append starts a line of its own, chained to line 3.
    let new_id = log
        .append(Event::new(EventType::Comment, "ana", "after the crash"))
        .unwrap();
    drop(log);
    let bytes = std::fs::read(store.file(TORN_DAY)).unwrap();
    assert!(bytes.starts_with(&complete));
    assert!(bytes.ends_with(b"\n"));
    let records = store.records();
    assert_eq!(records.len(), 4);
    assert_eq!(records[3].event.id, Some(new_id));
    assert_eq!(records[3].line, 4);
    crate::util::assert_consecutive_seqs(&records);
    let torn_id = id(103);
    assert!(records.iter().all(|r| r.event.id != Some(torn_id)));
    let report = store.verify();
    assert!(report.ok(), "{:?}", report.failure);
    assert!(report.notes.is_empty(), "{:?}", report.notes);

    // Opening again finds nothing more to move.
    drop(EventLog::open(Config::new(store.path()).durability(Durability::None)).unwrap());
    assert_eq!(
        std::fs::read(&torn_path).unwrap(),
        [&tail[..], b"\n"].concat()
    );
}

#[test]
fn cli_append_over_the_torn_fixture_recovers_and_continues_the_chain() {
    let (complete, tail) = torn_fixture_parts();
    let store = Store::from_fixture("torn");
    let out = store.run(
        &[
            "append", "--type", "comment", "--user", "ana", "--desc", "later",
        ],
        b"",
    );
    out.expect_code(0);
    let id: Uuid = out.stdout.trim().parse().unwrap();
    // The CLI appends to today's file; the torn day was recovered at open.
    assert!(
        std::fs::read(store.file(TORN_DAY))
            .unwrap()
            .starts_with(&complete)
    );
    assert_eq!(
        std::fs::read(store.file(&format!("{TORN_DAY}.torn"))).unwrap(),
        [&tail[..], b"\n"].concat()
    );
    let records = store.records();
    assert_eq!(records.len(), 4);
    assert_eq!(records[3].event.id, Some(id));
    crate::util::assert_consecutive_seqs(&records);
    store.run(&["verify"], b"").expect_code(0);
}

/// Issue 12: stored lines gained an optional `appended_by` (before `seq`).
/// Lines of format v1, which lack it, still read and verify beside new
/// lines that carry it, and `cat` prints both as stored.
#[test]
fn v1_lines_without_appended_by_read_beside_lines_with_it() {
    let store = Store::from_fixture("good");
    let old = store.records().len();
    let log = EventLog::open(Config::new(store.path())).unwrap();
    log.append(Event::new(EventType::Push, "dev", "a new line").appended_by("k_0123456789ab"))
        .unwrap();
    drop(log);
    let records = store.records();
    assert_eq!(records.len(), old + 1);
    assert!(records[..old].iter().all(|r| r.event.appended_by.is_none()));
    assert_eq!(
        records[old].event.appended_by.as_deref(),
        Some("k_0123456789ab")
    );
    assert!(store.verify().ok());
    let out = store.run(&["cat"], b"");
    out.expect_code(0);
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.contains(r#""appended_by":"k_0123456789ab","seq":"#),
        "{last}"
    );
}

/// Issue 15: v1 lines have no `source`; they read beside new lines that
/// carry one, the chain verifies, and the index filters on it (the v1
/// events match no source).
#[test]
fn v1_lines_without_source_read_beside_lines_with_it() {
    let store = Store::from_fixture("good");
    let old = store.records().len();
    let log = EventLog::open(Config::new(store.path())).unwrap();
    log.append(Event::new(EventType::Push, "dev", "from a service").source("api-service"))
        .unwrap();
    drop(log);
    let records = store.records();
    assert_eq!(records.len(), old + 1);
    assert!(records[..old].iter().all(|r| r.event.source.is_none()));
    assert_eq!(records[old].event.source.as_deref(), Some("api-service"));
    assert!(store.verify().ok());
    let all = ["--start", "2000-01-01T00:00:00Z", "--format", "json"];
    let total = |extra: &[&str]| {
        let out = store.run(&[&["query"][..], &all, extra].concat(), b"");
        out.expect_code(0);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["total"].clone()
    };
    assert_eq!(total(&[]), json!(old + 1));
    assert_eq!(total(&["--source", "api-service"]), json!(1));
}

/// Issue 15: v1 lines have no `tenant`: they are the default tenant's
/// (`tenant=_`) beside new lines of a tenant, the chain verifies, and a
/// line without one is written as before (no `tenant` key at all).
#[test]
fn v1_lines_without_tenant_read_as_the_default_tenant() {
    let store = Store::from_fixture("good");
    let old = store.records().len();
    let log = EventLog::open(Config::new(store.path())).unwrap();
    log.append(Event::new(EventType::Push, "dev", "of acme").tenant("acme"))
        .unwrap();
    log.append(Event::new(EventType::Push, "dev", "of no tenant"))
        .unwrap();
    drop(log);
    let records = store.records();
    assert_eq!(records.len(), old + 2);
    assert!(records[..old].iter().all(|r| r.event.tenant.is_none()));
    assert_eq!(records[old].event.tenant.as_deref(), Some("acme"));
    assert!(records[old + 1].event.tenant.is_none());
    let lines = store.lines();
    assert!(!String::from_utf8_lossy(&lines[old + 1]).contains("\"tenant\""));
    assert!(store.verify().ok());
    let all = ["--start", "2000-01-01T00:00:00Z", "--format", "json"];
    let total = |extra: &[&str]| {
        let out = store.run(&[&["query"][..], &all, extra].concat(), b"");
        out.expect_code(0);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["total"].clone()
    };
    assert_eq!(total(&[]), json!(old + 2));
    assert_eq!(total(&["--tenant", "_"]), json!(old + 1));
    assert_eq!(total(&["--tenant", "acme"]), json!(1));
    assert_eq!(total(&["--tenant", "globex"]), json!(0));
    let out = store.run(&[&["query"][..], &all, &["--tenant", "Acme"]].concat(), b"");
    assert!(out.stderr.contains("tenant"), "{}", out.stderr);
    assert_ne!(out.code, Some(0));
}
