//! Full text (`q`) by hand-picked cases: metadata values, punctuation terms
//! as runs of tokens within a word, quotes, AND, non-ASCII, case; through the library and the CLI.

use std::sync::Arc;

use evlog::index::indexer::{IndexConfig, Indexer};
use evlog::index::{IndexSearch, Query};
use evlog::{Event, EventType, ManualClock};
use serde_json::{Value, json};

use crate::util::{Store, open_with_clock, utc};

/// Appends `events` one second apart (the first is the oldest), indexes
/// them, and returns the store, a searcher and the ids in append order.
fn indexed(events: Vec<Event>) -> (Store, IndexSearch, Vec<String>) {
    let store = Store::new();
    let clock = Arc::new(ManualClock::new(utc("2026-04-01T10:00:00Z")));
    let log = open_with_clock(store.path(), &clock);
    let mut ids = Vec::new();
    for e in events {
        ids.push(log.append(e).unwrap().to_string());
        clock.advance(chrono::Duration::seconds(1));
    }
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    ix.catch_up_and_commit().unwrap();
    (store, IndexSearch::from_reader(ix.reader()), ids)
}

fn ev(description: &str) -> Event {
    Event::new(EventType::Commit, "dev", description)
}

/// The indexes (in append order) of the events `q` finds.
fn found(s: &IndexSearch, ids: &[String], q: &str) -> Vec<usize> {
    let resp = s
        .query(&Query {
            start: Some(utc("2000-01-01T00:00:00Z")),
            q: Some(q.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.total as usize, resp.events.len(), "{q}");
    let mut v: Vec<usize> = resp
        .events
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap();
            ids.iter().position(|x| x == id).unwrap()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn full_text_cases() {
    let (_store, s, ids) = indexed(vec![
        // 0
        ev("Updated the build").files_changed(["Cargo.toml", "src/lib.rs"]),
        // 1: "cargo" and "toml", apart
        ev("cargo fmt, then toml check"),
        // 2
        ev("served a request").metadata(json!({"method": "GET", "path": "/api/v1/users"})),
        // 3
        ev("Deploy started").comments("by the été crew"),
        // 4
        ev("started deploy").metadata(json!({"note": "事件 日志", "n": 42})),
        // 5: "release" ends one value, "notes" starts the next
        ev("wrote the release").files_changed(["notes.md"]),
        // 6
        ev("RELEASE NOTES published").metadata(json!({"tags": ["Naïve", {"deep": "ÉCOLE"}]})),
    ]);
    let f = |q: &str| found(&s, &ids, q);

    // Metadata string values are text, whatever their depth; numbers are not.
    assert_eq!(f("GET"), [2]);
    assert_eq!(f("get"), [2]);
    assert_eq!(f("/api/v1/users"), [2]);
    assert_eq!(f("école"), [6]);
    assert_eq!(f("naïve"), [6]);
    assert_eq!(f("42"), Vec::<usize>::new());

    // Punctuation makes a phrase: Cargo.toml is not cargo … toml.
    assert_eq!(f("Cargo.toml"), [0]);
    assert_eq!(f("cargo.TOML"), [0]);
    assert_eq!(f("cargo toml"), [0, 1]);
    assert_eq!(f("src/lib.rs"), [0]);
    assert_eq!(f("lib.rs"), [0]);
    assert_eq!(f("src/notes.md"), Vec::<usize>::new());
    assert_eq!(f("v1/users"), [2], "a run inside a longer word");
    assert_eq!(f("API-V1"), [2], "any punctuation, any case");

    // Quotes make phrases; bare words are ANDed.
    assert_eq!(f("\"deploy started\""), [3]);
    assert_eq!(f("\"started deploy\""), [4]);
    assert_eq!(f("deploy started"), [3, 4]);
    assert_eq!(f("deploy été"), [3]);
    assert_eq!(f("deploy zzz"), Vec::<usize>::new());
    assert_eq!(f("\"deploy started\" crew"), [3]);
    assert_eq!(f("\"deploy started\" 日志"), Vec::<usize>::new());

    // A phrase does not run from one value into the next.
    assert_eq!(f("release notes"), [5, 6]);
    assert_eq!(f("\"release notes\""), [6]);

    // Non-ASCII and case.
    assert_eq!(f("été"), [3]);
    assert_eq!(f("ÉTÉ"), [3]);
    assert_eq!(f("事件"), [4]);
    assert_eq!(f("\"事件 日志\""), [4]);
    // A bare piece with punctuation stays within one word: 事件/日志 is not
    // the two words 事件 日志 (quote them for that).
    assert_eq!(f("事件/日志"), Vec::<usize>::new());
    assert_eq!(f("\"日志 事件\""), Vec::<usize>::new());
    assert_eq!(f("UPDATED"), [0]);
}

#[test]
fn cli_query_q_finds_a_file_name_as_a_phrase() {
    let (store, _s, ids) = indexed(vec![
        ev("Updated the build").files_changed(["Cargo.toml"]),
        ev("cargo fmt, then toml check"),
        ev("served").metadata(json!({"method": "GET"})),
    ]);
    let query = |q: &str| -> Vec<String> {
        let out = store.run(
            &[
                "query",
                "--start",
                "2000-01-01T00:00:00Z",
                "-q",
                q,
                "--format",
                "json",
            ],
            b"",
        );
        out.expect_code(0);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["filters_applied"]["q"], q);
        crate::util::ids(v["events"].as_array().unwrap())
    };
    assert_eq!(query("Cargo.toml"), [ids[0].clone()]);
    assert_eq!(query("cargo toml"), [ids[1].clone(), ids[0].clone()]);
    assert_eq!(query("get"), [ids[2].clone()]);
}
