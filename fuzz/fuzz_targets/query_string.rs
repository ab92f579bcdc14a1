//! Query strings of the read endpoints, parsed as the handlers do and, when
//! accepted, run as a query and as statistics on a small index: never a
//! panic; a rejection is a 400 naming a parameter; an accepted query never
//! fails with anything but a client error.
#![no_main]

use std::sync::OnceLock;

use evlog::index::{IndexConfig, IndexSearch, Indexer};
use evlog::server::fuzzing::{self, Endpoint};
use evlog::{Config, Durability, Event, EventLog, EventType, Level, Status};
use libfuzzer_sys::fuzz_target;

/// An index of a few events (today, and at both ends of the accepted range).
fn search() -> &'static IndexSearch {
    static S: OnceLock<IndexSearch> = OnceLock::new();
    S.get_or_init(|| {
        let dir = evlog_fuzz::scratch().join("store");
        let log = EventLog::open(Config::new(&dir).durability(Durability::None)).expect("open");
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
        let events = vec![
            Event::new(EventType::Commit, "alice", "fix src/lib.rs")
                .metadata(serde_json::json!({"branch": "main", "n": 1.5}))
                .duration_ms(3.0),
            Event::new(
                EventType::Custom("deploy.eu".into()),
                "bob",
                "deploy eu-west-1",
            )
            .status(Status::Failure)
            .level(Level::Error)
            .request_id("r1"),
            Event::new(EventType::Push, "alice", "old").timestamp(at("1678-01-01T00:00:00Z")),
            Event::new(EventType::Push, "bob", "new").timestamp(at("2261-12-31T23:59:59Z")),
        ];
        log.append_batch(events).expect("append");
        log.flush().expect("flush");
        let mut ix = Indexer::open(IndexConfig::new(&dir)).expect("indexer");
        ix.catch_up().expect("catch up");
        ix.commit().expect("commit");
        let s = ix.search();
        s.reload().expect("reload");
        // Keep the writer (and its lock) for the life of the process.
        std::mem::forget(ix);
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let endpoint = match mode % 4 {
        0 => Endpoint::Query,
        1 => Endpoint::Stats,
        2 => Endpoint::Export,
        _ => Endpoint::None,
    };
    match fuzzing::query_string(raw, endpoint) {
        Ok((q, _)) => {
            let s = search();
            for r in [s.query(&q).map(|_| ()), s.stats(&q).map(|_| ())] {
                if let Err(e) = r {
                    assert!(
                        matches!(e, evlog::index::Error::Query(_)),
                        "{raw:?}: not a client error: {e}"
                    );
                }
            }
        }
        Err((status, message)) => {
            assert_eq!(status, 400, "{raw:?}: {message}");
            let (name, what) = message
                .split_once(": ")
                .unwrap_or_else(|| panic!("{raw:?}: no parameter named: {message}"));
            assert!(!name.is_empty() && !what.is_empty(), "{raw:?}: {message}");
        }
    }
});
