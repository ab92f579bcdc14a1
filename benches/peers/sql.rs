//! The peers' side of the comparison that does not depend on the database:
//! a table row of an event, evlog's filters as SQL `WHERE` clauses, and the
//! answers (total, first page, statistics) that all three systems must agree on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use evlog::index::Query;
use evlog::index::schema;
use evlog::{Event, Record};
use serde_json::Value;
use uuid::Uuid;

/// Columns of the `events` table in both databases, in this order.
pub const COLUMNS: &str = "seq, id, ts, event_type, user_id, action_description, status, level, \
     files_changed, comments, metadata, request_id, source_ip, duration_ms";

/// One event as a table row: every field of an evlog event (the chain hash
/// aside, which the peers have no use for).
pub struct Row {
    pub seq: Option<i64>,
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub event_type: String,
    pub user_id: String,
    pub action_description: String,
    pub status: &'static str,
    pub level: &'static str,
    pub files_changed: Vec<String>,
    pub comments: Option<String>,
    pub metadata: Option<Value>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub duration_ms: Option<f64>,
}

impl Row {
    /// The row of `e`. Without `id` or `timestamp` (events to be appended,
    /// which the server completes) they are the nil UUID and the epoch, and
    /// only the other columns are sent.
    pub fn of(e: Event, seq: Option<u64>) -> Row {
        Row {
            seq: seq.map(|s| s as i64),
            id: e.id.unwrap_or_default(),
            ts: e.timestamp.unwrap_or_default(),
            event_type: e.event_type.as_str().to_string(),
            user_id: e.user_id,
            action_description: e.action_description,
            status: e.status.as_str(),
            level: e.level.as_str(),
            files_changed: e.files_changed,
            comments: e.comments,
            metadata: e.metadata,
            request_id: e.request_id,
            source_ip: e.source_ip,
            duration_ms: e.duration_ms,
        }
    }

    /// The row of a stored record, with its chain position as `seq`.
    pub fn of_record(r: Record) -> Row {
        Row::of(r.event, Some(r.seq))
    }
}

/// A bound parameter of a `WHERE` clause.
#[derive(Debug, Clone)]
pub enum Param {
    /// A time (PostgreSQL: `timestamptz`; SQLite: µs since the epoch).
    Ts(DateTime<Utc>),
    /// Text.
    Text(String),
}

/// How the SQL differs between the two peers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dialect {
    /// `$1` placeholders, `tsvector @@ tsquery`.
    Postgres,
    /// `?1` placeholders, FTS5 `MATCH`.
    Sqlite,
}

/// A `WHERE` clause (without the keyword; `TRUE` when empty) and its parameters.
pub struct Where {
    pub sql: String,
    pub params: Vec<Param>,
}

/// evlog's filters of `q` as SQL over the `events` table. Time ranges are
/// `[from, to)` like evlog's; `q` becomes a full-text condition with evlog's
/// own tokens: each bare piece is a term or, with punctuation in it
/// (`src/lib.rs`), a phrase of its tokens; all pieces are required.
pub fn where_clause(q: &Query, dialect: Dialect, now: DateTime<Utc>) -> Where {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let bind = |conds: &mut Vec<String>, params: &mut Vec<Param>, tmpl: &str, p: Param| {
        params.push(p);
        let ph = match dialect {
            Dialect::Postgres => format!("${}", params.len()),
            Dialect::Sqlite => format!("?{}", params.len()),
        };
        conds.push(tmpl.replace("{}", &ph));
    };
    let (from, to, _) = q.range(now);
    if let Some(f) = from {
        bind(&mut conds, &mut params, "ts >= {}", Param::Ts(f));
    }
    if let Some(t) = to {
        bind(&mut conds, &mut params, "ts < {}", Param::Ts(t));
    }
    match q.event_types.len() {
        0 => {}
        1 => bind(
            &mut conds,
            &mut params,
            "event_type = {}",
            Param::Text(q.event_types[0].clone()),
        ),
        _ => panic!("the bench kinds filter on one type at most"),
    }
    if let Some(s) = q.status {
        bind(
            &mut conds,
            &mut params,
            "status = {}",
            Param::Text(s.as_str().into()),
        );
    }
    if let Some(l) = q.level {
        bind(
            &mut conds,
            &mut params,
            "level = {}",
            Param::Text(l.as_str().into()),
        );
    }
    if let Some(u) = &q.user_id {
        bind(
            &mut conds,
            &mut params,
            "user_id = {}",
            Param::Text(u.clone()),
        );
    }
    if let Some(r) = &q.request_id {
        bind(
            &mut conds,
            &mut params,
            "request_id = {}",
            Param::Text(r.clone()),
        );
    }
    if let Some(text) = &q.q {
        let pieces = text_pieces(text);
        match dialect {
            Dialect::Postgres => {
                let tsq: Vec<String> = pieces.iter().map(|p| p.join(" <-> ")).collect();
                bind(
                    &mut conds,
                    &mut params,
                    "search @@ to_tsquery('simple', {})",
                    Param::Text(tsq.join(" & ")),
                );
            }
            Dialect::Sqlite => {
                let m: Vec<String> = pieces
                    .iter()
                    .map(|p| format!("\"{}\"", p.join(" ")))
                    .collect();
                bind(
                    &mut conds,
                    &mut params,
                    "seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {})",
                    Param::Text(m.join(" AND ")),
                );
            }
        }
    }
    assert!(q.after_seq.is_none() && q.cursor.is_none() && q.offset == 0);
    Where {
        sql: if conds.is_empty() {
            "TRUE".into()
        } else {
            conds.join(" AND ")
        },
        params,
    }
}

/// The pieces of a `q` without quotes, each as evlog's analyzer tokenizes it.
fn text_pieces(q: &str) -> Vec<Vec<String>> {
    assert!(!q.contains('"'), "the bench kinds have no quoted phrases");
    let mut analyzer = schema::analyzer();
    let mut out = Vec::new();
    for piece in q.split_whitespace() {
        let mut tokens = Vec::new();
        schema::word_tokens(&mut analyzer, piece, &mut tokens);
        if !tokens.is_empty() {
            out.push(tokens);
        }
    }
    out
}

/// Statistics as all three systems report them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub by_level: BTreeMap<String, u64>,
    pub unique_users: u64,
    pub avg_duration_ms: Option<f64>,
    /// p50, p95, p99 of `duration_ms` (nearest rank).
    pub percentiles: Option<[f64; 3]>,
    /// Bucket start (µs since the epoch) → count; empty buckets left out.
    pub histogram: BTreeMap<i64, u64>,
}

/// What one run of a query kind returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The number of matches and the ids of the 100 newest, newest first.
    Page { total: u64, ids: Vec<String> },
    /// Statistics.
    Stats(Box<Stats>),
}

impl Answer {
    /// The number of matching events.
    pub fn total(&self) -> u64 {
        match self {
            Answer::Page { total, .. } => *total,
            Answer::Stats(s) => s.total,
        }
    }
}

/// The histogram interval of evlog's stats for `q`, in µs: an hour for
/// ranges up to two days, else a day.
pub fn histogram_interval(q: &Query, now: DateTime<Utc>) -> i64 {
    let span = match q.range(now) {
        (Some(a), Some(b), _) => b - a,
        _ => chrono::Duration::days(30),
    };
    if span <= chrono::Duration::days(2) {
        3_600_000_000
    } else {
        86_400_000_000
    }
}

/// Where `a` (a peer) and `b` (evlog) differ, or `None`. Counts must be
/// equal; the mean may differ in the last digits (summation order), the
/// percentiles by evlog's sketch (buckets under 0.8% wide: 1% allowed).
pub fn differences(a: &Answer, b: &Answer) -> Option<String> {
    match (a, b) {
        (Answer::Page { total: ta, ids: ia }, Answer::Page { total: tb, ids: ib }) => {
            if ta != tb {
                Some(format!("total {ta} vs {tb}"))
            } else if ia != ib {
                let first = ia.iter().zip(ib).position(|(x, y)| x != y);
                Some(format!(
                    "first page differs ({} vs {} ids; first difference at {:?})",
                    ia.len(),
                    ib.len(),
                    first
                ))
            } else {
                None
            }
        }
        (Answer::Stats(x), Answer::Stats(y)) => {
            let close = |p: Option<f64>, q: Option<f64>, tol: f64| match (p, q) {
                (Some(p), Some(q)) => (p - q).abs() <= tol * q.abs().max(1e-9),
                (None, None) => true,
                _ => false,
            };
            let mut d = Vec::new();
            if x.total != y.total {
                d.push(format!("total {} vs {}", x.total, y.total));
            }
            if x.by_type != y.by_type {
                d.push("by_type".into());
            }
            if x.by_status != y.by_status {
                d.push("by_status".into());
            }
            if x.by_level != y.by_level {
                d.push("by_level".into());
            }
            if x.unique_users != y.unique_users {
                d.push(format!(
                    "unique_users {} vs {}",
                    x.unique_users, y.unique_users
                ));
            }
            if !close(x.avg_duration_ms, y.avg_duration_ms, 1e-9) {
                d.push(format!(
                    "avg {:?} vs {:?}",
                    x.avg_duration_ms, y.avg_duration_ms
                ));
            }
            let pa = x.percentiles.map(|p| p.to_vec()).unwrap_or_default();
            let pb = y.percentiles.map(|p| p.to_vec()).unwrap_or_default();
            if pa.len() != pb.len()
                || pa
                    .iter()
                    .zip(&pb)
                    .any(|(p, q)| !close(Some(*p), Some(*q), 0.01))
            {
                d.push(format!("percentiles {pa:?} vs {pb:?}"));
            }
            if x.histogram != y.histogram {
                d.push(format!(
                    "histogram ({} vs {} buckets)",
                    x.histogram.len(),
                    y.histogram.len()
                ));
            }
            (!d.is_empty()).then(|| d.join(", "))
        }
        _ => Some("different kinds of answer".into()),
    }
}
