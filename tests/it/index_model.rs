//! Model test of the index: random sequences of appends (varied fields,
//! client timestamps in the past, ties), clock moves across UTC midnight,
//! indexer restarts (some after an uncommitted `catch_up`, as a crash leaves
//! it), syncs and queries. At every query the index must answer exactly what
//! a brute-force scan of the files answered at the last sync: the same ids
//! in the same order, the same totals, the same statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use evlog::index::indexer::{IndexConfig, Indexer};
use evlog::index::schema::MAX_RUN;
use evlog::index::{IndexSearch, Query, QueryResponse, StatsResponse};
use evlog::{DayRange, Event, EventLog, EventType, Level, ManualClock, Record, Status};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::clock_model::{Step, start_time, step};
use crate::util::{ids, open_with_clock, utc};

// ---------------------------------------------------------------------------
// Vocabulary: small pools so that filters and full text often hit.

const TYPES: &[&str] = &[
    "commit",
    "api_request",
    "auth_failure",
    "file_change",
    "deploy.step",
    "custom.kind_0",
    "x",
];

/// "mallory" never appends: a filter on it matches nothing.
const USERS: &[&str] = &["alice", "bob", "zoë", "user-1", "mallory"];

/// Exact strings, case and punctuation included ("REQ-1" is not "req-1").
const REQUESTS: &[&str] = &["req-1", "req-2", "REQ-1", "r/3", "请求-9"];

/// 100 bytes: dropped by the tokenizer (it keeps tokens under 100 bytes).
const LONG_ASCII: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// 49 × "é" = 98 bytes: kept.
const E49: &str = "ééééééééééééééééééééééééééééééééééééééééééééééééé";

/// Pieces of descriptions, comments and metadata string values.
const FRAGMENTS: &[&str] = &[
    "deploy",
    "Deploy started",
    "deploy started",
    "started deploy",
    "GET",
    "get /api/v1/users",
    "POST",
    "Cargo.toml updated",
    "cargo",
    "toml",
    "release",
    "release notes",
    "notes",
    "été",
    "Été ✓ 事件",
    "事件",
    "日志",
    "naïve café",
    "İstanbul",
    "ΟΔΟΣ",
    "straße",
    "x42",
    "42",
    "v1.2.3",
    "src/lib.rs",
    "a-b_c",
    "!!!",
    "—",
    // A long token between two words: the words are not adjacent.
    concat!(
        "before ",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        " after"
    ),
    "ééééééééééééééééééééééééééééééééééééééééééééééééé",
];

const FILES: &[&str] = &[
    "src/lib.rs",
    "Cargo.toml",
    "notes.md",
    "docs/été.md",
    "release/notes.md",
    "src/index/query.rs",
    "README",
    "事件/日志.txt",
];

const META_KEYS: &[&str] = &["method", "path", "branch", "note", "api_token", "tags"];

/// Pieces of `q`: bare words (with punctuation, case, non-ASCII), quoted
/// phrases, and a dangling quote.
const Q_PIECES: &[&str] = &[
    "deploy",
    "DEPLOY",
    "get",
    "GET",
    "cargo",
    "toml",
    "Cargo.toml",
    "cargo.TOML",
    "src/lib.rs",
    "lib",
    "rs",
    "release",
    "notes",
    "md",
    "été",
    "ÉTÉ",
    "事件",
    "日志",
    "事件/日志",
    "naïve",
    "café",
    "istanbul",
    "İstanbul",
    "ΟΔΟΣ",
    "οδοσ",
    "οδος",
    "straße",
    "STRASSE",
    "42",
    "x42",
    "v1.2.3",
    "1.2",
    "a-b_c",
    "b_c",
    "users",
    "api/v1",
    "redacted",
    "!!!",
    "zzz",
    "before after",
    "\"before after\"",
    LONG_ASCII,
    E49,
    "\"deploy started\"",
    "\"started deploy\"",
    "\"release notes\"",
    "\"notes md\"",
    "\"toml updated\"",
    "\"été ✓ 事件\"",
    "\"Cargo toml\"",
    "\"get api\"",
    "\"café İstanbul\"",
    "\"deploy",
    "\"\"",
];

// ---------------------------------------------------------------------------
// Generated actions.

#[derive(Debug, Clone)]
enum MetaVal {
    Str(usize),
    Num(i64),
    Bool(bool),
    Arr(Vec<usize>),
    Obj(usize),
}

#[derive(Debug, Clone)]
enum ClientTs {
    /// So many microseconds before "now".
    PastMicros(i64),
    /// A fixed instant shared by many events (ties broken by seq).
    Fixed(i64),
}

#[derive(Debug, Clone)]
struct EventSpec {
    ty: usize,
    status: usize,
    level: usize,
    user: usize,
    request: Option<usize>,
    description: Vec<usize>,
    comments: Option<Vec<usize>>,
    files: Vec<usize>,
    metadata: Option<Vec<(usize, MetaVal)>>,
    duration: Option<f64>,
    ts: Option<ClientTs>,
}

#[derive(Debug, Clone)]
enum Range {
    AllTime,
    Date(i64),
    /// Microseconds from the base time; either bound may be absent.
    StartEnd(Option<i64>, Option<i64>),
}

#[derive(Debug, Clone)]
struct QuerySpec {
    range: Range,
    types: Vec<usize>,
    status: Option<usize>,
    level: Option<usize>,
    user: Option<usize>,
    request: Option<usize>,
    q: Option<Vec<QPiece>>,
    page: usize,
}

/// One piece of `q`.
#[derive(Debug, Clone)]
enum QPiece {
    /// From `Q_PIECES`.
    Listed(usize),
    /// A fragment as a bare piece (its words ANDed).
    Fragment(usize),
    /// A fragment in quotes (a phrase).
    Quoted(usize),
    /// A file name, bare.
    File(usize),
}

impl QPiece {
    fn text(&self) -> String {
        match self {
            QPiece::Listed(i) => Q_PIECES[*i].to_string(),
            QPiece::Fragment(i) => FRAGMENTS[*i].to_string(),
            QPiece::Quoted(i) => format!("\"{}\"", FRAGMENTS[*i]),
            QPiece::File(i) => FILES[*i].to_string(),
        }
    }
}

fn q_piece() -> impl Strategy<Value = QPiece> {
    prop_oneof![
        3 => (0..Q_PIECES.len()).prop_map(QPiece::Listed),
        1 => (0..FRAGMENTS.len()).prop_map(QPiece::Fragment),
        1 => (0..FRAGMENTS.len()).prop_map(QPiece::Quoted),
        1 => (0..FILES.len()).prop_map(QPiece::File),
    ]
}

#[derive(Debug, Clone)]
enum Action {
    Append(Vec<EventSpec>),
    AdvanceClock(Step),
    /// Drop the indexer and open a new one; with `true`, after a `catch_up`
    /// that is never committed (a crash).
    RestartIndexer(bool),
    Sync,
    Query(QuerySpec),
}

/// Start of the window the clock, client timestamps and queries live in.
fn base() -> DateTime<Utc> {
    utc("2026-02-28T00:00:00Z")
}

const DAY_US: i64 = 86_400_000_000;

fn fragments(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..FRAGMENTS.len(), 1..max)
}

fn meta_val() -> impl Strategy<Value = MetaVal> {
    prop_oneof![
        4 => (0..FRAGMENTS.len()).prop_map(MetaVal::Str),
        1 => prop_oneof![Just(42i64), Just(7), Just(-1)].prop_map(MetaVal::Num),
        1 => any::<bool>().prop_map(MetaVal::Bool),
        1 => prop::collection::vec(0..FRAGMENTS.len(), 0..3).prop_map(MetaVal::Arr),
        1 => (0..FRAGMENTS.len()).prop_map(MetaVal::Obj),
    ]
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let duration = prop_oneof![
        3 => Just(None),
        1 => Just(Some(0.0)),
        3 => (0u32..400).prop_map(|k| Some(f64::from(k) * 0.25)),
        1 => Just(Some(1_000_000.5)),
    ];
    let ts = prop_oneof![
        4 => Just(None),
        1 => prop_oneof![
            Just(1i64),
            Just(1_000_000),
            Just(3_600_000_000),
            Just(DAY_US + 1),
            Just(3 * DAY_US),
        ]
        .prop_map(|us| Some(ClientTs::PastMicros(us))),
        1 => prop_oneof![Just(DAY_US * 2 + 43_200_000_000), Just(DAY_US * 3)]
            .prop_map(|us| Some(ClientTs::Fixed(us))),
    ];
    (
        (
            0..TYPES.len(),
            0..Status::ALL.len(),
            0..Level::ALL.len(),
            0..USERS.len() - 1,
            prop::option::weighted(0.6, 0..REQUESTS.len()),
        ),
        (
            fragments(4),
            prop::option::weighted(0.4, fragments(3)),
            prop::collection::vec(0..FILES.len(), 0..3),
            prop::option::weighted(
                0.5,
                prop::collection::vec((0..META_KEYS.len(), meta_val()), 0..4),
            ),
            duration,
            ts,
        ),
    )
        .prop_map(
            |(
                (ty, status, level, user, request),
                (description, comments, files, metadata, duration, ts),
            )| EventSpec {
                ty,
                status,
                level,
                user,
                request,
                description,
                comments,
                files,
                metadata,
                duration,
                ts,
            },
        )
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    // Instants in the window, often exactly at a midnight (bounds are
    // inclusive at start, exclusive at end).
    let instant = prop_oneof![(0i64..5 * DAY_US), (0i64..6).prop_map(|d| d * DAY_US)];
    let range = prop_oneof![
        2 => Just(Range::AllTime),
        2 => (0i64..5).prop_map(Range::Date),
        2 => (
            prop::option::weighted(0.8, instant.clone()),
            prop::option::weighted(0.6, instant),
        )
            .prop_map(|(a, b)| Range::StartEnd(a, b)),
    ];
    (
        range,
        prop_oneof![
            4 => Just(Vec::new()),
            1 => prop::collection::vec(0..TYPES.len(), 1..4),
        ],
        prop::option::weighted(0.15, 0..Status::ALL.len()),
        prop::option::weighted(0.15, 0..Level::ALL.len()),
        prop::option::weighted(0.1, 0..USERS.len()),
        prop::option::weighted(0.08, 0..REQUESTS.len()),
        prop::option::weighted(
            0.6,
            prop_oneof![
                4 => prop::collection::vec(q_piece(), 1..2),
                2 => prop::collection::vec(q_piece(), 2..3),
                1 => prop::collection::vec(q_piece(), 3..4),
            ],
        ),
        1usize..8,
    )
        .prop_map(
            |(range, types, status, level, user, request, q, page)| QuerySpec {
                range,
                types,
                status,
                level,
                user,
                request,
                q,
                page,
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => prop::collection::vec(event_spec(), 1..10).prop_map(Action::Append),
        2 => step(0..5_000_000).prop_map(Action::AdvanceClock),
        2 => any::<bool>().prop_map(Action::RestartIndexer),
        3 => Just(Action::Sync),
        4 => query_spec().prop_map(Action::Query),
    ]
}

// ---------------------------------------------------------------------------
// Building events and queries.

fn event_of(spec: &EventSpec, now: DateTime<Utc>) -> Event {
    let join = |ix: &[usize]| {
        ix.iter()
            .map(|i| FRAGMENTS[*i])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut e = Event::new(
        TYPES[spec.ty].parse::<EventType>().unwrap(),
        USERS[spec.user],
        join(&spec.description),
    )
    .status(Status::ALL[spec.status])
    .level(Level::ALL[spec.level])
    .files_changed(spec.files.iter().map(|i| FILES[*i]));
    if let Some(r) = spec.request {
        e = e.request_id(REQUESTS[r]);
    }
    if let Some(c) = &spec.comments {
        e = e.comments(join(c));
    }
    if let Some(m) = &spec.metadata {
        let mut map = Map::new();
        for (k, v) in m {
            let v = match v {
                MetaVal::Str(i) => json!(FRAGMENTS[*i]),
                MetaVal::Num(n) => json!(n),
                MetaVal::Bool(b) => json!(b),
                MetaVal::Arr(a) => json!(a.iter().map(|i| FRAGMENTS[*i]).collect::<Vec<_>>()),
                MetaVal::Obj(i) => json!({"inner": FRAGMENTS[*i], "n": 42}),
            };
            map.insert(META_KEYS[*k].to_string(), v);
        }
        e = e.metadata(Value::Object(map));
    }
    if let Some(d) = spec.duration {
        e = e.duration_ms(d);
    }
    match spec.ts {
        None => {}
        Some(ClientTs::PastMicros(us)) => e = e.timestamp(now - Duration::microseconds(us)),
        Some(ClientTs::Fixed(us)) => e = e.timestamp(base() + Duration::microseconds(us)),
    }
    e
}

fn query_of(spec: &QuerySpec) -> Query {
    let mut q = Query {
        limit: Some(1000),
        ..Default::default()
    };
    let at = |us: i64| base() + Duration::microseconds(us);
    match spec.range {
        Range::AllTime => q.start = Some(utc("2000-01-01T00:00:00Z")),
        Range::Date(d) => q.date = Some(base().date_naive() + Duration::days(d)),
        Range::StartEnd(a, b) => {
            q.start = a.map(at);
            q.end = b.map(at);
            if let (Some(s), Some(e)) = (q.start, q.end) {
                // start < end, or the query is a client mistake.
                match s.cmp(&e) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => q.end = Some(e + Duration::microseconds(1)),
                    std::cmp::Ordering::Greater => (q.start, q.end) = (Some(e), Some(s)),
                }
            }
            if q.start.is_none() && q.end.is_none() {
                q.end = Some(utc("2100-01-01T00:00:00Z"));
            }
        }
    }
    q.event_types = spec.types.iter().map(|i| TYPES[*i].to_string()).collect();
    q.status = spec.status.map(|i| Status::ALL[i]);
    q.level = spec.level.map(|i| Level::ALL[i]);
    q.user_id = spec.user.map(|i| USERS[i].to_string());
    q.request_id = spec.request.map(|i| REQUESTS[i].to_string());
    q.q = spec
        .q
        .as_ref()
        .map(|p| p.iter().map(QPiece::text).collect::<Vec<_>>().join(" "))
        // A `q` with no word at all is a client mistake (it would match
        // everything): leave it out. Blank is no filter.
        .filter(|t| t.trim().is_empty() || !q_pieces(t).is_empty());
    q
}

// ---------------------------------------------------------------------------
// The model of the query semantics, written from the documented behaviour
// of `src/index/query.rs` and the `evlog` analyzer, independently of tantivy.

/// The analyzer: runs of `char::is_alphanumeric` characters; tokens of 100
/// bytes or more are dropped but keep their position; each kept token is
/// lowercased char by char (no final-sigma rule). Returns (position, token).
fn analyze(s: &str) -> Vec<(usize, String)> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .enumerate()
        .filter(|(_, t)| t.len() < 100)
        .map(|(pos, t)| (pos, t.chars().flat_map(char::to_lowercase).collect()))
        .collect()
}

/// The pieces of `q`: odd parts between `"` are quoted phrases, even parts
/// split on whitespace; each piece is the tokens of its text (empty: no
/// constraint) and whether it was quoted.
fn q_pieces(q: &str) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    for (i, part) in q.split('"').enumerate() {
        let quoted = i % 2 == 1;
        let pieces: Vec<&str> = if quoted {
            vec![part]
        } else {
            part.split_whitespace().collect()
        };
        for p in pieces {
            let toks: Vec<String> = analyze(p).into_iter().map(|(_, t)| t).collect();
            if !toks.is_empty() {
                out.push((toks, quoted));
            }
        }
    }
    out
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// The separate values of the `text` field of an event.
fn text_values(e: &Event) -> Vec<&str> {
    let mut v = vec![e.action_description.as_str()];
    v.extend(e.comments.as_deref());
    v.extend(e.files_changed.iter().map(String::as_str));
    if let Some(m) = &e.metadata {
        collect_strings(m, &mut v);
    }
    v
}

/// Whether `tokens` occur at consecutive positions within one value.
fn value_has_phrase(value: &[(usize, String)], tokens: &[String]) -> bool {
    let at: BTreeMap<usize, &str> = value.iter().map(|(p, t)| (*p, t.as_str())).collect();
    value.iter().any(|(start, _)| {
        tokens
            .iter()
            .enumerate()
            .all(|(k, t)| at.get(&(start + k)) == Some(&t.as_str()))
    })
}

/// A quoted piece (or a bare one of more than `MAX_RUN` tokens) is a phrase
/// within one value; a bare piece of 2 to `MAX_RUN` tokens must be
/// consecutive tokens of one whitespace-separated word of a value.
fn matches_text(e: &Event, pieces: &[(Vec<String>, bool)]) -> bool {
    let texts = text_values(e);
    let values: Vec<Vec<(usize, String)>> = texts.iter().map(|t| analyze(t)).collect();
    pieces.iter().all(|(p, quoted)| {
        if !quoted && (2..=MAX_RUN).contains(&p.len()) {
            texts.iter().any(|t| {
                t.split_whitespace()
                    .any(|w| value_has_phrase(&analyze(w), p))
            })
        } else {
            values.iter().any(|v| value_has_phrase(v, p))
        }
    })
}

fn range_of(q: &Query) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match q.date {
        Some(d) => {
            let from = d.and_hms_opt(0, 0, 0).unwrap().and_utc();
            (Some(from), Some(from + Duration::days(1)))
        }
        None => (q.start, q.end),
    }
}

fn ts(r: &Record) -> DateTime<Utc> {
    r.event.timestamp.unwrap()
}

/// The records matching `q`, newest first (timestamp, then seq, descending).
fn brute_force<'a>(records: &'a [Record], q: &Query) -> Vec<&'a Record> {
    let (from, to) = range_of(q);
    let pieces = q.q.as_deref().map(q_pieces).unwrap_or_default();
    let mut v: Vec<&Record> = records
        .iter()
        .filter(|r| {
            let e = &r.event;
            from.is_none_or(|f| ts(r) >= f)
                && to.is_none_or(|t| ts(r) < t)
                && (q.event_types.is_empty()
                    || q.event_types.iter().any(|t| t == e.event_type.as_str()))
                && q.status.is_none_or(|s| s == e.status)
                && q.level.is_none_or(|l| l == e.level)
                && q.user_id.as_ref().is_none_or(|u| *u == e.user_id)
                && q.request_id
                    .as_ref()
                    .is_none_or(|x| Some(x) == e.request_id.as_ref())
                && matches_text(e, &pieces)
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse((ts(r), r.seq)));
    v
}

fn record_ids(v: &[&Record]) -> Vec<String> {
    v.iter().map(|r| r.event.id.unwrap().to_string()).collect()
}

fn counts<'a>(it: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k.to_string()).or_insert(0) += 1;
    }
    m
}

#[track_caller]
fn check_stats(st: &StatsResponse, want: &[&Record], q: &Query, when: &str) {
    let ctx = || format!("{when}: stats of {q:?}");
    assert_eq!(st.total, want.len() as u64, "{}", ctx());
    let events = || want.iter().map(|r| &r.event);
    assert_eq!(
        st.by_type,
        counts(events().map(|e| e.event_type.as_str())),
        "{}",
        ctx()
    );
    assert_eq!(
        st.by_status,
        counts(events().map(|e| e.status.as_str())),
        "{}",
        ctx()
    );
    assert_eq!(
        st.by_level,
        counts(events().map(|e| e.level.as_str())),
        "{}",
        ctx()
    );
    let users: BTreeSet<&str> = events().map(|e| e.user_id.as_str()).collect();
    assert_eq!(st.unique_users, users.len() as u64, "{}", ctx());
    let failures = events().filter(|e| e.status == Status::Failure).count();
    let rate = if want.is_empty() {
        0.0
    } else {
        failures as f64 / want.len() as f64
    };
    assert!((st.error_rate - rate).abs() < 1e-12, "{}", ctx());

    let durs: Vec<f64> = events().filter_map(|e| e.duration_ms).collect();
    let pcts = [
        ("p50", st.p50_duration_ms),
        ("p95", st.p95_duration_ms),
        ("p99", st.p99_duration_ms),
    ];
    if durs.is_empty() {
        assert_eq!(st.avg_duration_ms, None, "{}", ctx());
        for (name, p) in pcts {
            assert_eq!(p, None, "{name}: {}", ctx());
        }
    } else {
        let avg = durs.iter().sum::<f64>() / durs.len() as f64;
        let got = st.avg_duration_ms.unwrap_or_else(|| panic!("{}", ctx()));
        assert!(
            (got - avg).abs() <= 1e-9 * avg.abs().max(1.0),
            "avg {got} != {avg}: {}",
            ctx()
        );
        let min = durs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = durs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (name, p) in pcts {
            let p = p.unwrap_or_else(|| panic!("{name} missing: {}", ctx()));
            assert!(
                (min..=max).contains(&p),
                "{name} {p} outside [{min}, {max}] of {durs:?}: {}",
                ctx()
            );
        }
    }

    // The histogram: hourly for spans up to two days, each bucket holding
    // exactly the matches of its interval, all matches in some bucket.
    let (from, to) = range_of(q);
    let span = match (from, to) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::days(30),
    };
    let (interval, width) = if span <= Duration::days(2) {
        ("hour", Duration::hours(1))
    } else {
        ("day", Duration::days(1))
    };
    assert_eq!(st.histogram_interval, interval, "{}", ctx());
    let mut prev: Option<DateTime<Utc>> = None;
    for b in &st.histogram {
        let start = utc(&b.start);
        assert!(prev.is_none_or(|p| p < start), "{}", ctx());
        prev = Some(start);
        let n = want
            .iter()
            .filter(|r| ts(r) >= start && ts(r) < start + width)
            .count();
        assert_eq!(b.count, n as u64, "bucket {}: {}", b.start, ctx());
    }
    assert_eq!(
        st.histogram.iter().map(|b| b.count).sum::<u64>(),
        want.len() as u64,
        "{}",
        ctx()
    );
}

// ---------------------------------------------------------------------------
// The harness.

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    log: EventLog,
    indexer: Option<Indexer>,
    search: IndexSearch,
    /// The records in the files at the last sync: what the index must hold.
    committed: Vec<Record>,
}

fn index_config(path: &Path) -> IndexConfig {
    let mut cfg = IndexConfig::new(path);
    cfg.writer_memory = 15 << 20;
    cfg
}

impl Harness {
    fn new(start: DateTime<Utc>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let log = open_with_clock(dir.path(), &clock);
        let indexer = Indexer::open(index_config(dir.path())).unwrap();
        let search = IndexSearch::open(dir.path()).unwrap();
        Harness {
            dir,
            clock,
            log,
            indexer: Some(indexer),
            search,
            committed: Vec::new(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        evlog::Clock::now(&*self.clock)
    }

    fn indexer(&mut self) -> &mut Indexer {
        self.indexer.as_mut().unwrap()
    }

    fn scan(&self) -> Vec<Record> {
        self.log
            .scan(DayRange::all())
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn apply(&mut self, a: &Action, when: &str) {
        match a {
            Action::Append(specs) => {
                for s in specs {
                    let e = event_of(s, self.now());
                    self.log.append(e).unwrap();
                }
            }
            Action::AdvanceClock(step) => step.apply(&self.clock),
            Action::RestartIndexer(crash) => {
                let mut ix = self.indexer.take().unwrap();
                if *crash {
                    ix.catch_up().unwrap();
                }
                drop(ix);
                self.indexer = Some(Indexer::open(index_config(self.dir.path())).unwrap());
            }
            Action::Sync => {
                self.indexer().catch_up_and_commit().unwrap();
                self.committed = self.scan();
            }
            Action::Query(spec) => self.check_query(&query_of(spec), spec.page, when),
        }
    }

    fn check_query(&mut self, q: &Query, page: usize, when: &str) {
        self.search.reload().unwrap();
        assert_eq!(
            self.search.num_docs(),
            self.committed.len() as u64,
            "{when}: documents in the index"
        );
        let want = brute_force(&self.committed, q);
        let want_ids = record_ids(&want);
        let resp: QueryResponse = self.search.query(q).unwrap();
        assert_eq!(ids(&resp.events), want_ids, "{when}: {q:?}");
        assert_eq!(resp.total, want.len() as u64, "{when}: total of {q:?}");
        assert_eq!(resp.next_cursor, None, "{when}: {q:?}");
        // The stored lines come back as they are in the files.
        for (e, r) in resp.events.iter().zip(&want) {
            assert_eq!(e["seq"].as_u64(), Some(r.seq), "{when}");
            assert_eq!(
                serde_json::from_value::<Event>(e.clone()).unwrap().id,
                r.event.id
            );
        }

        // Cursor pages of `page` cover the same list once.
        let mut paged = Vec::new();
        let mut pq = Query {
            limit: Some(page),
            ..q.clone()
        };
        loop {
            let resp = self.search.query(&pq).unwrap();
            assert_eq!(resp.total, want.len() as u64, "{when}: paged {pq:?}");
            assert!(resp.events.len() <= page);
            paged.extend(ids(&resp.events));
            match resp.next_cursor {
                Some(c) => pq.cursor = Some(c),
                None => break,
            }
            assert!(
                paged.len() <= want.len(),
                "{when}: paging runs past the end"
            );
        }
        assert_eq!(paged, want_ids, "{when}: cursor pages of {page}");
        // One offset page.
        let off = Query {
            limit: Some(page),
            offset: page,
            ..q.clone()
        };
        let resp = self.search.query(&off).unwrap();
        let end = (2 * page).min(want_ids.len());
        let slice = want_ids.get(page..end).unwrap_or_default();
        assert_eq!(ids(&resp.events), slice, "{when}: offset page");
        assert_eq!(resp.total, want.len() as u64, "{when}: offset page");
        // Its cursor leads on to the page after it, and exists only if there is one.
        assert_eq!(
            resp.next_cursor.is_some(),
            2 * page < want_ids.len(),
            "{when}: cursor of the offset page"
        );
        if let Some(c) = resp.next_cursor {
            let next = self
                .search
                .query(&Query {
                    limit: Some(page),
                    cursor: Some(c),
                    ..q.clone()
                })
                .unwrap();
            let end = (3 * page).min(want_ids.len());
            assert_eq!(
                ids(&next.events),
                want_ids[2 * page..end],
                "{when}: the page after the offset page"
            );
        }

        let st = self.search.stats(q).unwrap();
        check_stats(&st, &want, q, when);
    }

    /// Final: a sync makes the index cover every line of every file, each
    /// once, and the `queries` answer like the scan.
    fn check_final(&mut self, queries: &[QuerySpec]) {
        self.apply(&Action::Sync, "final");
        for (i, spec) in queries.iter().enumerate() {
            self.check_query(
                &query_of(spec),
                spec.page,
                &format!("final query {i} {spec:?}"),
            );
        }
        let all = Query {
            start: Some(utc("2000-01-01T00:00:00Z")),
            limit: Some(1000),
            ..Default::default()
        };
        self.check_query(&all, 5, "final");
        // Through the log's own query method too.
        let resp = self.log.query(&all).unwrap();
        assert_eq!(resp.total, self.committed.len() as u64);
        let cp = self.indexer().checkpoint().clone();
        for f in evlog::store::day::list(self.dir.path(), DayRange::all()).unwrap() {
            let len = std::fs::metadata(&f.path).unwrap().len();
            assert_eq!(
                cp.files.get(&f.day).map(|m| m.offset),
                Some(len),
                "checkpoint of {}",
                f.path.display()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_exactly_what_a_scan_of_the_files_answers(
        start in start_time(),
        initial in prop::collection::vec(event_spec(), 0..40),
        actions in prop::collection::vec(action(), 1..13),
        finally in prop::collection::vec(query_spec(), 8),
    ) {
        let mut h = Harness::new(start);
        h.apply(&Action::Append(initial), "initial append");
        for (i, a) in actions.iter().enumerate() {
            h.apply(a, &format!("action {i} {a:?}"));
        }
        h.check_final(&finally);
    }
}

// ---------------------------------------------------------------------------
// The model of the text semantics, pinned by hand so that the model itself
// cannot drift into agreeing with a broken index.

#[test]
fn the_text_model_follows_the_documented_rules() {
    let e = Event::new(EventType::Commit, "u", "Deploy started — release")
        .comments("naïve café")
        .files_changed(["notes.md", "src/lib.rs"])
        .metadata(json!({"method": "GET", "n": 42, "tags": ["ΟΔΟΣ"], "o": {"i": "İstanbul"}}));
    let m = |q: &str| matches_text(&e, &q_pieces(q));
    assert!(m("deploy"));
    assert!(m("DEPLOY started"));
    assert!(m("\"deploy started\""));
    assert!(!m("\"started deploy\""));
    // Across two values of `text`: not a phrase.
    assert!(m("release notes"));
    assert!(!m("\"release notes\""));
    assert!(m("src/lib.rs"));
    assert!(m("lib.rs") && m("SRC/LIB"), "a run inside a word");
    assert!(!m("src/notes.md"));
    assert!(!m("started-release"), "a bare piece stays within one word");
    assert!(m("\"started release\""), "a quoted phrase crosses words");
    assert!(m("get"));
    assert!(!m("42"), "numbers in metadata are not text");
    assert!(m("οδοσ") && m("ΟΔΟΣ") && !m("οδος"));
    assert!(m("İstanbul") && !m("istanbul"));
    assert!(m("café naïve"));
    assert!(!m("café zzz"));
    assert!(m("\"\"") && m("!!!"), "no tokens: no constraint");
    let long = Event::new(
        EventType::Commit,
        "u",
        format!("before {LONG_ASCII} after {E49}"),
    );
    let l = |q: &str| matches_text(&long, &q_pieces(q));
    assert!(l("before after"));
    assert!(!l("\"before after\""), "a dropped token keeps its position");
    assert!(l(E49) && l(LONG_ASCII));
}
