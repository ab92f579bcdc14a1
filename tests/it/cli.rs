//! The `evlog` binary: append (flags and --stdin), cat, verify, help and exit codes.

use chrono::SubsecRound;
use evlog::Event;
use evlog::store::day;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::util::{Store, event, ndjson, utc, written_store};

const BASE: &[(&str, &str)] = &[("--type", "commit"), ("--user", "dev"), ("--desc", "d")];

/// `append` with the base flags, `over` replacing or adding flags.
fn append_args(over: &[(&str, &str)]) -> Vec<String> {
    let mut flags: Vec<(&str, &str)> = BASE.to_vec();
    for (k, v) in over {
        match flags.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = v,
            None => flags.push((k, v)),
        }
    }
    let mut args = vec!["append".to_string()];
    for (k, v) in flags {
        // `--flag=value` so that values such as `-1` stay values.
        args.push(format!("{k}={v}"));
    }
    args
}

fn run_args(store: &Store, args: &[String]) -> crate::util::Out {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    store.run(&args, b"")
}

fn uuids(stdout: &str) -> Vec<Uuid> {
    stdout
        .lines()
        .map(|l| {
            l.parse::<Uuid>()
                .unwrap_or_else(|e| panic!("`{l}` is not a UUID: {e}"))
        })
        .collect()
}

#[test]
fn append_from_flags_prints_a_uuid_and_stores_every_field() {
    let store = Store::new();
    let out = run_args(
        &store,
        &append_args(&[
            ("--type", "deploy.finished"),
            ("--user", "zoë"),
            ("--desc", "Déployé ✓"),
            ("--status", "failure"),
            ("--level", "warning"),
            ("--meta", r#"{"branch":"main","n":[1,2]}"#),
            ("--files", "a.rs,src/ü.rs"),
            ("--comments", "c"),
            ("--request-id", "r1"),
            ("--source-ip", "10.0.0.1"),
            ("--duration-ms", "12.5"),
            ("--timestamp", "2026-11-23T13:00:00.1234567+01:00"),
        ]),
    );
    out.expect_code(0);
    let ids = uuids(&out.stdout);
    assert_eq!(ids.len(), 1, "{}", out.stdout);
    assert_eq!(ids[0].get_version_num(), 7);

    let records = store.records();
    assert_eq!(records.len(), 1);
    let e = &records[0].event;
    assert_eq!(e.id, Some(ids[0]));
    assert_eq!(e.event_type.as_str(), "deploy.finished");
    assert_eq!(e.user_id, "zoë");
    assert_eq!(e.action_description, "Déployé ✓");
    assert_eq!(e.status.as_str(), "failure");
    assert_eq!(e.level.as_str(), "warning");
    assert_eq!(e.metadata, Some(json!({"branch": "main", "n": [1, 2]})));
    assert_eq!(e.files_changed, ["a.rs", "src/ü.rs"]);
    assert_eq!(e.comments.as_deref(), Some("c"));
    assert_eq!(e.request_id.as_deref(), Some("r1"));
    assert_eq!(e.source_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(e.duration_ms, Some(12.5));
    assert_eq!(e.timestamp, Some(utc("2026-11-23T12:00:00.123456Z")));

    // Only the required flags: defaults apply, a second append chains on.
    let out = run_args(&store, &append_args(&[]));
    out.expect_code(0);
    assert_eq!(uuids(&out.stdout).len(), 1);
    let records = store.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].event.status.as_str(), "success");
    assert_eq!(records[1].event.level.as_str(), "info");
    store.run(&["verify"], b"").expect_code(0);
}

#[test]
fn append_with_a_bad_flag_value_exits_1_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("--type", "Not-A-Type", "event_type"),
        ("--user", "", "user_id"),
        ("--desc", "   ", "action_description"),
        ("--status", "done", "status"),
        ("--level", "fatal", "level"),
        ("--meta", "[1]", "metadata"),
        ("--meta", "{not json", "metadata"),
        ("--source-ip", "999.1.1.1", "source_ip"),
        ("--duration-ms", "-1", "duration_ms"),
        ("--duration-ms", "NaN", "duration_ms"),
        ("--request-id", "", "request_id"),
        ("--timestamp", "yesterday", "timestamp"),
    ];
    for (flag, value, field) in cases {
        let store = Store::new();
        let out = run_args(&store, &append_args(&[(flag, value)]));
        assert_eq!(
            out.code,
            Some(1),
            "{flag}={value:?}: want exit 1\n{}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(&format!("{field}: ")),
            "{flag}={value:?}: want the message to name {field}, got: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{flag}={value:?}");
        assert!(
            day::list(store.path(), evlog::DayRange::all())
                .unwrap()
                .is_empty(),
            "{flag}={value:?}: nothing may be written"
        );
    }
}

#[test]
fn unparsable_flags_are_usage_errors_with_exit_2() {
    let store = Store::new();
    for (args, mention) in [
        (append_args(&[("--duration-ms", "abc")]), "--duration-ms"),
        (
            vec!["--durability".into(), "sometimes".into(), "verify".into()],
            "fsync, batch or none",
        ),
        (
            vec!["cat".into(), "--date".into(), "2026-13-01".into()],
            "YYYY-MM-DD",
        ),
        (
            vec!["append".into(), "--stdin".into(), "--user=u".into()],
            "--user",
        ),
        (vec!["append".into()], "--type"),
        (vec![], "Usage"),
    ] {
        let out = run_args(&store, &args);
        assert_eq!(out.code, Some(2), "{args:?}\n{}", out.stderr);
        assert!(out.stderr.contains(mention), "{args:?}: {}", out.stderr);
    }
    // A verify of a storage directory that does not exist is an error, not a pass.
    let out = store.run(&["verify"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

#[test]
fn help_of_each_subcommand_exits_0() {
    let store = Store::new();
    for args in [
        &["--help"][..],
        &["-h"],
        &["--version"],
        &["append", "--help"],
        &["cat", "--help"],
        &["verify", "--help"],
        &["help", "append"],
    ] {
        let out = store.run(args, b"");
        out.expect_code(0);
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let out = store.run(&["append", "--help"], b"");
    for flag in ["--stdin", "--type", "--meta", "--files", "--timestamp"] {
        assert!(out.stdout.contains(flag), "{flag}: {}", out.stdout);
    }
    let out = store.run(&["verify", "--help"], b"");
    assert!(out.stdout.contains("--from"), "{}", out.stdout);
}

#[test]
fn append_stdin_appends_good_lines_and_reports_bad_ones_by_number() {
    let store = Store::new();
    let bad_status = ndjson("s", 2).replace(r#""status":"pending""#, r#""status":"done""#);
    let no_user =
        r#"{"event_type":"commit","user_id":"","action_description":"x","status":"success"}"#;
    let unknown = r#"{"event_type":"commit","user_id":"u","action_description":"x","status":"success","colour":"red"}"#;
    let input = [
        ndjson("s", 0),                             // 1
        "{\"event_type\":\"commit\"\n".to_string(), // 2: invalid JSON
        ndjson("s", 1).replace('\n', "\r\n"),       // 3: CRLF is fine
        "   \n".to_string(),                        // 4: blank, skipped
        bad_status,                                 // 5: bad status
        format!("{no_user}\n"),                     // 6: empty user_id
        "[1,2]\n".to_string(),                      // 7: not an object
        format!("{unknown}\n"),                     // 8: unknown field
        ndjson("s", 3).trim_end().to_string(),      // 9: no final newline
    ]
    .concat();
    assert!(ndjson("s", 2).contains("\"status\":\"pending\""));
    let out = store.run(&["append", "--stdin"], input.as_bytes());
    out.expect_code(1);
    let ids = uuids(&out.stdout);
    assert_eq!(ids.len(), 3, "{}", out.stdout);

    let err: Vec<&str> = out.stderr.lines().collect();
    for (n, needle) in [
        (2, "event: invalid JSON"),
        (5, "status"),
        (6, "user_id"),
        (7, ": "),
        (8, "colour"),
    ] {
        let prefix = format!("line {n}: ");
        let line = err
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{}", out.stderr));
        assert!(line.contains(needle), "{line}: want {needle}");
    }
    for ok_line in [1, 3, 4, 9] {
        assert!(
            !out.stderr.contains(&format!("line {ok_line}:")),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("appended 3 event(s), rejected 5"),
        "{}",
        out.stderr
    );

    let records = store.records();
    let stored: Vec<Uuid> = records.iter().map(|r| r.event.id.unwrap()).collect();
    assert_eq!(stored, ids, "stored in input order, ids as printed");
    for (r, i) in records.iter().zip([0, 1, 3]) {
        let mut e = r.event.clone();
        e.id = None;
        e.timestamp = None;
        assert_eq!(e, event("s", i));
    }
}

#[test]
fn append_stdin_with_no_good_line_writes_nothing() {
    let store = Store::new();
    let out = store.run(&["append", "--stdin"], b"");
    out.expect_code(0);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("appended 0 event(s), rejected 0"),
        "{}",
        out.stderr
    );

    let out = store.run(&["append", "--stdin"], b"{}\nnope\n\n");
    out.expect_code(1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("line 1: "), "{}", out.stderr);
    assert!(out.stderr.contains("line 2: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("appended 0 event(s), rejected 2"),
        "{}",
        out.stderr
    );
    assert!(store.records().is_empty());
}

#[test]
fn append_stdin_keeps_the_input_timestamp_and_id() {
    let store = Store::new();
    let id = Uuid::now_v7();
    let mut v: Value = serde_json::to_value(event("t", 4)).unwrap();
    v["timestamp"] = json!("2020-02-29T23:59:59.1234567+02:00");
    v["id"] = json!(id.to_string());
    let line = format!("{v}\n{}", ndjson("t", 5));
    let before = chrono::Utc::now().trunc_subsecs(6);
    let out = store.run(&["append", "--stdin"], line.as_bytes());
    let after = chrono::Utc::now();
    out.expect_code(0);
    let ids = uuids(&out.stdout);
    assert_eq!(ids[0], id);
    assert_eq!(ids.len(), 2);
    let records = store.records();
    assert_eq!(
        records[0].event.timestamp,
        Some(utc("2020-02-29T21:59:59.123456Z"))
    );
    assert_eq!(records[0].event.id, Some(id));
    // The day file is the day of the append, not of the event.
    assert!(
        !store.file("events_2020-02-29.jsonl").exists(),
        "{:?}",
        store.day_files()
    );
    // An event without a timestamp gets the append time.
    let ts = records[1].event.timestamp.unwrap();
    assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}");
}

#[test]
fn cat_date_prints_ndjson_that_parses() {
    let store = Store::new();
    let input: String = (0..20).map(|i| ndjson("c", i)).collect();
    let out = store.run(&["append", "--stdin"], input.as_bytes());
    out.expect_code(0);
    let ids = uuids(&out.stdout);

    // The appends landed on today's file (or two, had midnight passed meanwhile).
    let mut printed = Vec::new();
    for f in store.day_files() {
        let day = f.day.format("%Y-%m-%d").to_string();
        let out = store.run(&["cat", "--date", &day], b"");
        out.expect_code(0);
        assert_eq!(out.stderr, "");
        assert!(out.stdout.ends_with('\n'));
        for line in out.stdout.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["seq"].is_u64(), "{line}");
            assert_eq!(v["hash"].as_str().map(str::len), Some(64), "{line}");
            let e = Event::from_json(line.as_bytes()).unwrap();
            printed.push(e.id.unwrap());
        }
    }
    assert_eq!(printed, ids);
    // Other days print nothing.
    let out = store.run(&["cat", "--date", "2001-01-01"], b"");
    out.expect_code(0);
    assert_eq!(out.stdout, "");
}

#[test]
fn cat_output_appends_into_another_store() {
    let src = Store::from_fixture("good");
    let cat = src.run(&["cat"], b"");
    cat.expect_code(0);
    let dst = Store::new();
    let out = dst.run(&["append", "--stdin"], cat.stdout.as_bytes());
    out.expect_code(0);
    let ids = uuids(&out.stdout);
    let src_records = src.records();
    let dst_records = dst.records();
    assert_eq!(ids.len(), src_records.len());
    for ((a, b), id) in src_records.iter().zip(&dst_records).zip(&ids) {
        assert_eq!(
            a.event, b.event,
            "chain fields are dropped, the event is kept"
        );
        assert_eq!(b.event.id.as_ref(), Some(id));
    }
    dst.run(&["verify"], b"").expect_code(0);
}

/// 6 lines on 2026-03-01 and 3 on 2026-03-02.
fn two_day_store() -> Store {
    written_store(&[("2026-03-01T22:00:00Z", 6), ("2026-03-02T00:00:01Z", 3)])
}

const D1: &str = "events_2026-03-01.jsonl";
const D2: &str = "events_2026-03-02.jsonl";

type Tamper = fn(&mut Vec<String>, &mut Vec<String>);

#[test]
fn verify_exits_0_then_1_naming_file_line_and_kind_of_tampering() {
    let cases: &[(&str, Tamper, &str, u64, &str)] = &[
        (
            "changed content",
            |d1, _| d1[2] = d1[2].replace("user-v", "user-w"),
            D1,
            3,
            "changed",
        ),
        (
            "changed hash",
            |d1, _| {
                let at = d1[3].len() - 3;
                let c = if d1[3].as_bytes()[at] == b'0' {
                    "1"
                } else {
                    "0"
                };
                d1[3].replace_range(at..at + 1, c);
            },
            D1,
            4,
            "changed",
        ),
        (
            "changed last line",
            |_, d2| d2[2] = d2[2].replace("action 8", "action 9"),
            D2,
            3,
            "changed",
        ),
        (
            "removed line",
            |d1, _| {
                d1.remove(2);
            },
            D1,
            3,
            "removed",
        ),
        (
            "removed first line",
            |d1, _| {
                d1.remove(0);
            },
            D1,
            1,
            "removed",
        ),
        (
            "removed last line of a day",
            |d1, _| {
                d1.pop();
            },
            D2,
            1,
            "removed",
        ),
        (
            "inserted line without chain fields",
            |d1, _| {
                let forged = serde_json::to_string(&event("x", 1)).unwrap();
                d1.insert(2, forged);
            },
            D1,
            3,
            "inserted",
        ),
        (
            "inserted copy of an earlier line",
            |d1, _| {
                let copy = d1[1].clone();
                d1.insert(4, copy);
            },
            D1,
            5,
            "inserted",
        ),
        (
            "inserted repeat of the previous line",
            |d1, _| {
                let copy = d1[1].clone();
                d1.insert(2, copy);
            },
            D1,
            3,
            "inserted",
        ),
        (
            "inserted line claiming the next seq",
            |d1, _| {
                let forged = format!(
                    r#"{{"event_type":"commit","user_id":"x","action_description":"x","status":"success","seq":3,"hash":"{}"}}"#,
                    "ab".repeat(32)
                );
                d1.insert(2, forged);
            },
            D1,
            3,
            "inserted",
        ),
        (
            "swapped lines 2 and 5",
            |d1, _| d1.swap(1, 4),
            D1,
            2,
            "reordered",
        ),
        (
            "swapped adjacent lines 3 and 4",
            |d1, _| d1.swap(2, 3),
            D1,
            3,
            "reordered",
        ),
        (
            "swapped last two lines",
            |_, d2| d2.swap(1, 2),
            D2,
            2,
            "reordered",
        ),
    ];
    for (what, tamper, file, line, kind) in cases {
        let store = two_day_store();
        store.expect_cli_verifies("9 line(s) in 2 file(s)");

        let read = |name: &str| -> Vec<String> {
            std::fs::read_to_string(store.file(name))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        let (mut d1, mut d2) = (read(D1), read(D2));
        tamper(&mut d1, &mut d2);
        std::fs::write(store.file(D1), d1.join("\n") + "\n").unwrap();
        std::fs::write(store.file(D2), d2.join("\n") + "\n").unwrap();

        let out = store.run(&["verify"], b"");
        assert_eq!(out.code, Some(1), "{what}: want exit 1\n{}", out.stdout);
        let want = format!("{}:{line}: {kind}:", store.file(file).display());
        assert!(
            out.stdout.starts_with("FAILED: ") && out.stdout.contains(&want),
            "{what}: want `{want}`, got: {}",
            out.stdout
        );
        let report = store.verify();
        let f = report.failure.expect(what);
        assert_eq!(
            (f.line, f.problem.to_string().as_str()),
            (*line, *kind),
            "{what}"
        );
    }
}

#[test]
fn cat_skips_a_malformed_line_with_a_warning_naming_file_and_line() {
    let store = written_store(&[("2026-04-01T12:00:00Z", 3)]);
    let path = store.file("events_2026-04-01.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        &path,
        format!(
            "{}\nnot json at all\n{}\n{}\n",
            lines[0], lines[1], lines[2]
        ),
    )
    .unwrap();

    let out = store.run(&["cat"], b"");
    out.expect_code(0);
    assert_eq!(out.stdout, text, "every good line, nothing else");
    let want = format!("warning: {}:2: malformed line", path.display());
    assert!(out.stderr.contains(&want), "want {want}\n{}", out.stderr);
    assert!(
        out.stderr.contains("1 malformed line(s) skipped"),
        "{}",
        out.stderr
    );

    let out = store.run(&["verify"], b"");
    out.expect_code(1);
    let want = format!("{}:2: inserted", path.display());
    assert!(out.stdout.contains(&want), "want {want}\n{}", out.stdout);
}

#[test]
fn query_and_stats_match_user_id_as_stored_when_ids_are_hashed() {
    const KEY: &str = "cli-hash-key";
    let store = Store::new();
    let with_key = |args: &[&str]| {
        crate::util::run(
            store.cmd().env("EVLOG_USER_ID_HASH_KEY", KEY).args(args),
            b"",
        )
    };
    for user in ["alice", "bob", "alice"] {
        let args = append_args(&[("--user", user)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        with_key(&args).expect_code(0);
    }
    let hashed = evlog::event::privacy::hash_user_id(KEY, "alice");
    let out = with_key(&["query", "--user-id", "alice", "--format", "json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 2, "{v}");
    for e in v["events"].as_array().unwrap() {
        assert_eq!(e["user_id"], hashed.as_str());
    }
    // The stored id names the same user.
    let out = with_key(&["query", "--user-id", &hashed, "--format", "json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 2, "{v}");
    let out = with_key(&["stats", "--user-id", "alice", "--format", "json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 2, "{v}");
    // Without the key the plain id matches nothing: nothing is stored in clear.
    let out = store.run(&["query", "--user-id", "alice", "--format", "json"], b"");
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 0, "{v}");
}

/// Issue 14: `evlog export` writes every match (past the 1000 cap of a
/// query page), newest first, to standard output or to a file, and a bad
/// filter is a usage error that leaves no file behind.
#[test]
fn export_writes_every_match_to_stdout_or_a_file() {
    let store = written_store(&[
        ("2026-11-20T08:00:00Z", 1300),
        ("2026-11-21T08:00:00Z", 1200),
    ]);
    let all = ["--start", "2026-11-01T00:00:00Z"];
    let out = store.run(&[&["export"][..], &all].concat(), b"");
    out.expect_code(0);
    let events = lines(&out.stdout);
    assert_eq!(events.len(), 2500);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2500);
    // Filters as for query: one day.
    let out = store.run(&["export", "--date", "2026-11-21"], b"");
    out.expect_code(0);
    assert_eq!(lines(&out.stdout).len(), 1200);

    let file = store.file("nov.csv");
    let f = file.to_str().unwrap();
    let out = store.run(
        &[&["export"][..], &all, &["--format", "csv", "--output", f]].concat(),
        b"",
    );
    out.expect_code(0);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains("exported 2500 event(s)"),
        "{}",
        out.stderr
    );
    assert!(!store.file("nov.csv.part").exists());
    // Readable by owner and group, as the day files are; not by everyone.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640, "{mode:o}");
    let mut r = csv::Reader::from_path(&file).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        evlog::export::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2500);
    assert_eq!(&rows[0][1], events[0]["id"].as_str().unwrap());

    // A bad filter: exit 2 naming it, no file written.
    let bad = store.file("bad.csv");
    let out = store.run(
        &[
            "export",
            "--status",
            "meh",
            "--output",
            bad.to_str().unwrap(),
        ],
        b"",
    );
    out.expect_code(2);
    assert!(out.stderr.contains("meh"), "{}", out.stderr);
    assert!(!bad.exists());
    let out = store.run(&["export", "--format", "xml"], b"");
    out.expect_code(2);
    let help = store.run(&["export", "--help"], b"");
    help.expect_code(0);
    for word in ["--format", "--output", "--event-type", "november.csv"] {
        assert!(help.stdout.contains(word), "{word}: {}", help.stdout);
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Issue 15: `--status`/`--level` flags and `--stdin` lines take any case
/// and store lowercase; the filters of `query` take any case too.
#[test]
fn append_takes_status_and_level_in_any_case_and_stores_lowercase() {
    let store = Store::new();
    run_args(
        &store,
        &append_args(&[("--status", "In_Progress"), ("--level", "SECURITY")]),
    )
    .expect_code(0);
    let line = r#"{"event_type":"commit","user_id":"u","action_description":"d","status":"Failure","level":"ERROR"}"#;
    store
        .run(&["append", "--stdin"], format!("{line}\n").as_bytes())
        .expect_code(0);
    let lines: Vec<String> = store
        .lines()
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains(r#""status":"in_progress","level":"security""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""status":"failure","level":"error""#),
        "{}",
        lines[1]
    );
    let out = store.run(&["query", "--level", "Error", "--format", "json"], b"");
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["events"][0]["status"], "failure");
}

/// Issue 15: `evlog append --source` stores the emitting service; `query`,
/// `stats` and `export` filter on it with `--source`.
#[test]
fn append_source_and_filter_query_stats_and_export_by_it() {
    let store = Store::new();
    for (source, user) in [
        ("api-service", "a"),
        ("background-job", "b"),
        ("api-service", "c"),
    ] {
        run_args(
            &store,
            &append_args(&[("--source", source), ("--user", user)]),
        )
        .expect_code(0);
    }
    run_args(&store, &append_args(&[("--user", "d")])).expect_code(0);
    let records = store.records();
    assert_eq!(records[0].event.source.as_deref(), Some("api-service"));
    assert_eq!(records[3].event.source, None);
    let json = |args: &[&str]| {
        let out = store.run(args, b"");
        out.expect_code(0);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    let v = json(&["query", "--source", "api-service", "--format", "json"]);
    assert_eq!(v["total"], 2, "{v}");
    assert_eq!(v["filters_applied"]["source"], "api-service");
    let v = json(&["stats", "--source", "background-job", "--format", "json"]);
    assert_eq!(v["total"], 1, "{v}");
    let out = store.run(&["export", "--source", "api-service"], b"");
    out.expect_code(0);
    let users: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|e| e["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["c", "a"]);
    // The rule of the field: 1 to 128 characters.
    let out = run_args(&store, &append_args(&[("--source", "")]));
    out.expect_code(1);
    assert!(
        out.stderr.contains("source: must be 1 to 128"),
        "{}",
        out.stderr
    );
    assert!(
        store
            .run(&["append", "--help"], b"")
            .stdout
            .contains("--source")
    );
}

/// Issue 15: `evlog append --tenant` stores the tenant; `query`, `stats`,
/// `export` and `tail` filter on it with `--tenant` (`_`: the default
/// tenant's events, those without one); a name outside the rule is refused.
#[test]
fn append_tenant_and_filter_query_stats_export_and_tail_by_it() {
    let store = Store::new();
    for (tenant, user) in [("acme", "a"), ("globex", "b"), ("acme", "c")] {
        run_args(
            &store,
            &append_args(&[("--tenant", tenant), ("--user", user)]),
        )
        .expect_code(0);
    }
    run_args(&store, &append_args(&[("--user", "d")])).expect_code(0);
    let records = store.records();
    assert_eq!(records[0].event.tenant.as_deref(), Some("acme"));
    assert_eq!(records[3].event.tenant, None);
    let json = |args: &[&str]| {
        let out = store.run(args, b"");
        out.expect_code(0);
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    let v = json(&["query", "--tenant", "acme", "--format", "json"]);
    assert_eq!(v["total"], 2, "{v}");
    assert_eq!(v["filters_applied"]["tenant"], "acme");
    let v = json(&["query", "--tenant", "_", "--format", "json"]);
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["events"][0]["user_id"], "d");
    let v = json(&["stats", "--tenant", "globex", "--format", "json"]);
    assert_eq!(v["total"], 1, "{v}");
    let out = store.run(&["export", "--tenant", "acme"], b"");
    out.expect_code(0);
    let users: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|e| e["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["c", "a"]);
    let out = store.run(&["export", "--tenant", "acme", "--format", "csv"], b"");
    out.expect_code(0);
    let mut rows = out.stdout.lines();
    assert!(
        rows.next()
            .unwrap()
            .ends_with(",source,tenant,resolved,resolved_at,resolved_by"),
        "{}",
        out.stdout
    );
    // The tenant column, then the state of these open events.
    assert!(rows.all(|r| r.ends_with(",acme,false,,")), "{}", out.stdout);
    let out = store.run(&["tail", "-n", "10", "--tenant", "globex"], b"");
    out.expect_code(0);
    let users: Vec<String> = lines(&out.stdout)
        .iter()
        .map(|e| e["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["b"], "{}", out.stdout);
    // The rule of the field, in appends and in filters.
    let out = run_args(&store, &append_args(&[("--tenant", "Acme")]));
    out.expect_code(1);
    assert!(out.stderr.contains("tenant: must match"), "{}", out.stderr);
    let out = store.run(&["query", "--tenant", "a b"], b"");
    assert!(out.stderr.contains("tenant"), "{}", out.stderr);
    assert_ne!(out.code, Some(0));
}

/// Issue 15: `evlog keys add --tenant T` makes a key of one tenant,
/// `--all-tenants` an admin key of every tenant (admin keys only, and not
/// with --tenant); `keys list` shows which, and each change is recorded in
/// the key's tenant.
#[test]
fn keys_add_tenant_and_all_tenants_and_list_shows_them() {
    let store = Store::new();
    store.add_key_with("user", "alice", &["--tenant", "acme"]);
    store.add_key_with("admin", "root", &["--all-tenants"]);
    store.add_key("service", "ci");
    for (args, says) in [
        (
            &["--role", "user", "--all-tenants"][..],
            "--all-tenants is for admin keys only",
        ),
        (
            &["--role", "service", "--all-tenants"][..],
            "--all-tenants is for admin keys only",
        ),
        (
            &["--role", "admin", "--all-tenants", "--tenant", "acme"][..],
            "cannot be used with",
        ),
        (
            &["--role", "user", "--tenant", "Acme"][..],
            "--tenant `Acme` must match",
        ),
        (
            &["--role", "user", "--tenant", "_"][..],
            "--tenant `_` must match",
        ),
    ] {
        let mut all = vec!["keys", "add", "--user", "u"];
        all.extend_from_slice(args);
        let out = store.run(&all, b"");
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "no key printed: {}", out.stdout);
    }
    let out = store.run(&["keys", "list", "--format", "json"], b"");
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let scope = |user: &str| {
        let k = v
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["user_id"] == user)
            .unwrap();
        (k["tenant"].clone(), k["all_tenants"].clone())
    };
    assert_eq!(scope("alice"), (json!("acme"), json!(false)));
    assert_eq!(scope("root"), (Value::Null, json!(true)));
    assert_eq!(scope("ci"), (Value::Null, json!(false)));
    let out = store.run(&["keys", "list", "--format", "table"], b"");
    out.expect_code(0);
    assert!(
        out.stdout.lines().next().unwrap().contains("TENANT"),
        "{}",
        out.stdout
    );
    let row = |user: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(user))
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (row("alice"), row("root"), row("ci")),
        ("acme".into(), "*".into(), "-".into())
    );
    // Key changes are recorded in the key's tenant.
    let added: Vec<_> = store
        .records()
        .into_iter()
        .filter(|r| r.event.action_description.starts_with("key added"))
        .map(|r| r.event.tenant)
        .collect();
    assert_eq!(added, [Some("acme".to_string()), None, None]);
}
