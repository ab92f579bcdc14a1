//! The query kinds of the index and peers benches: filter, full-text and
//! stats questions, each run `k` with other parameters (day, user, term), so
//! that every system answers the same questions.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use evlog::event::DEFAULT_TENANT;
use evlog::index::Query;
use evlog::{Level, Status};

use super::realistic::{midnight, past_days};

/// What a kind asks for.
#[derive(Clone, Copy, PartialEq)]
pub enum Class {
    /// Filters: the total and the 100 newest matches.
    Filter,
    /// Full text (`q`): the total and the 100 newest matches.
    Text,
    /// Statistics of a large range (with a latency goal).
    Stats,
    /// Statistics reported for information (no goal).
    Info,
}

/// A query kind: its name, class, and the query of run `k`.
pub struct Kind {
    pub name: &'static str,
    pub class: Class,
    pub make: Box<dyn Fn(usize) -> Query>,
}

impl Kind {
    /// Whether it asks for statistics (else for the total and a page).
    pub fn is_stats(&self) -> bool {
        matches!(self.class, Class::Stats | Class::Info)
    }

    /// Its name as part of a `RESULT` name: lower case, `_` for anything
    /// not alphanumeric.
    pub fn key(&self) -> String {
        self.name
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            .to_lowercase()
    }
}

/// Keeps the kinds whose name contains one of `want` (`--kinds`), if given.
pub fn retain_named(kinds: &mut Vec<Kind>, want: Option<&[String]>) {
    if let Some(want) = want {
        kinds.retain(|k| want.iter().any(|w| k.name.contains(w.as_str())));
    }
}

/// The days of a queries phase's store of `events` (the `days` ending
/// yesterday), after its header line.
pub fn query_days(events: u64, days: u64) -> Vec<NaiveDate> {
    let days = past_days(days);
    println!(
        "queries  {events} events over {} days ({} .. {})",
        days.len(),
        days[0],
        days[days.len() - 1]
    );
    days
}

/// The `start` of the all-time kinds.
pub fn all_time() -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap())
}

/// A user for run `k`: alternately one of the 200 busy users and any of 10,000.
pub fn query_user(k: usize) -> String {
    if k.is_multiple_of(2) {
        format!("user-{}", (k * 37) % 200)
    } else {
        format!("user-{}", (k * 7919) % 10_000)
    }
}

/// The event types of the filter kinds.
const TYPES: [&str; 4] = ["api_request", "commit", "auth_failure", "deploy.finished"];
/// The statuses of the filter kinds.
const STATUSES: [Status; 4] = [
    Status::Failure,
    Status::Pending,
    Status::InProgress,
    Status::Success,
];

/// A filter of run `k`, set on another query.
type Filter = fn(usize) -> Query;

/// The event type of run `k`.
fn query_type(k: usize) -> Vec<String> {
    vec![TYPES[k % TYPES.len()].into()]
}

/// The query kinds over a store of `days`; `request_ids` are ids to look up.
pub fn kinds(days: &[NaiveDate], request_ids: Vec<String>) -> Vec<Kind> {
    let days = days.to_vec();
    let day = move |k: usize| days[(k * 7) % days.len()];
    let d = day.clone();
    let terms = ["timeout", "flaky", "deadlock", "rollback", "uploader"];
    let phrases = [
        "src/lib.rs",
        "src/index/query.rs",
        "Cargo.toml",
        "tests/it/cli.rs",
    ];
    let meta = ["eu-west-1", "release/2.4", "cli/1.4.2", "infra-terraform"];
    let hours = |k: usize| chrono::Duration::hours(((k * 5) % 21) as i64);
    let mut v: Vec<Kind> = Vec::new();
    let mut add =
        |name, class, make: Box<dyn Fn(usize) -> Query>| v.push(Kind { name, class, make });
    // One filter on one day.
    let on_day: [(&str, Filter); 3] = [
        ("date+event_type", |k| Query {
            event_types: query_type(k),
            ..Default::default()
        }),
        ("date+user_id", |k| Query {
            user_id: Some(query_user(k)),
            ..Default::default()
        }),
        ("date+status", |k| Query {
            status: Some(STATUSES[k % STATUSES.len()]),
            ..Default::default()
        }),
    ];
    for (name, filter) in on_day {
        let dd = d.clone();
        add(
            name,
            Class::Filter,
            Box::new(move |k| Query {
                date: Some(dd(k)),
                ..filter(k)
            }),
        );
    }
    // Three hours of a day, with or without a type.
    for (name, typed) in [("start/end 3 h", false), ("start/end 3 h+event_type", true)] {
        let dd = d.clone();
        add(
            name,
            Class::Filter,
            Box::new(move |k| {
                let s = midnight(dd(k)) + hours(k);
                Query {
                    start: Some(s),
                    end: Some(s + chrono::Duration::hours(3)),
                    event_types: if typed { query_type(k) } else { Vec::new() },
                    ..Default::default()
                }
            }),
        );
    }
    add(
        "all-time user_id",
        Class::Filter,
        Box::new(move |k| Query {
            start: all_time(),
            user_id: Some(query_user(k)),
            ..Default::default()
        }),
    );
    add(
        "all-time request_id",
        Class::Filter,
        Box::new(move |k| Query {
            start: all_time(),
            request_id: Some(request_ids[k % request_ids.len()].clone()),
            ..Default::default()
        }),
    );
    for (name, words, scoped) in [
        ("date+q term", &terms[..], true),
        ("date+q phrase (src/lib.rs)", &phrases[..], true),
        ("date+q metadata value", &meta[..], true),
        ("all-time q term", &terms[..], false),
        ("all-time q phrase (src/lib.rs)", &phrases[..], false),
        ("all-time q metadata value", &meta[..], false),
    ] {
        let dd = d.clone();
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        add(
            name,
            Class::Text,
            Box::new(move |k| Query {
                date: scoped.then(|| dd(k)),
                start: if scoped { None } else { all_time() },
                q: Some(words[k % words.len()].clone()),
                ..Default::default()
            }),
        );
    }
    add(
        "stats all-time",
        Class::Stats,
        Box::new(|_| Query {
            start: all_time(),
            ..Default::default()
        }),
    );
    let dd = d.clone();
    add(
        "stats one day",
        Class::Info,
        Box::new(move |k| Query {
            date: Some(dd(k)),
            ..Default::default()
        }),
    );
    v
}

/// The levels of the `resolved=false` kinds with another filter.
const OPEN_LEVELS: [Level; 3] = [Level::Warning, Level::Error, Level::Security];

/// The kinds of issue 15 (index bench only; the peers have no such state):
/// open (`resolved=false`) and resolved events, all-time and on one day,
/// alone or with a level, and the tenant filter (`_`, the default tenant,
/// which every event of the store is in: a single-tenant server's queries).
pub fn state_kinds(days: &[NaiveDate]) -> Vec<Kind> {
    let days = days.to_vec();
    let day = move |k: usize| days[(k * 7) % days.len()];
    let mut v: Vec<Kind> = Vec::new();
    for (name, resolved, dated, leveled) in [
        ("all-time resolved=false", false, false, false),
        ("all-time resolved=false+level", false, false, true),
        ("date+resolved=false", false, true, false),
        ("date+resolved=false+level", false, true, true),
        ("all-time resolved=true", true, false, false),
        ("date+resolved=true", true, true, false),
    ] {
        let d = day.clone();
        v.push(Kind {
            name,
            class: Class::Filter,
            make: Box::new(move |k| Query {
                date: dated.then(|| d(k)),
                start: if dated { None } else { all_time() },
                level: leveled.then(|| OPEN_LEVELS[k % OPEN_LEVELS.len()]),
                resolved: Some(resolved),
                ..Default::default()
            }),
        });
    }
    let d = day.clone();
    v.push(Kind {
        name: "date+event_type+tenant",
        class: Class::Filter,
        make: Box::new(move |k| Query {
            date: Some(d(k)),
            event_types: query_type(k),
            tenant: Some(DEFAULT_TENANT.into()),
            ..Default::default()
        }),
    });
    v.push(Kind {
        name: "all-time user_id+tenant",
        class: Class::Filter,
        make: Box::new(move |k| Query {
            start: all_time(),
            user_id: Some(query_user(k)),
            tenant: Some(DEFAULT_TENANT.into()),
            ..Default::default()
        }),
    });
    let d = day.clone();
    v.push(Kind {
        name: "date+event_type+tenant+resolved=false",
        class: Class::Filter,
        make: Box::new(move |k| Query {
            date: Some(d(k)),
            event_types: query_type(k),
            tenant: Some(DEFAULT_TENANT.into()),
            resolved: Some(false),
            ..Default::default()
        }),
    });
    v.push(Kind {
        name: "stats all-time resolved=false",
        class: Class::Info,
        make: Box::new(|_| Query {
            start: all_time(),
            resolved: Some(false),
            ..Default::default()
        }),
    });
    v
}
