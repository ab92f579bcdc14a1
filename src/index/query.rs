//! Filters → tantivy queries, newest first, with offset and cursor paging.

use std::ops::Bound;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhraseQuery, Query as TQuery, RangeQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{Order, Searcher, TantivyDocument, Term};

use super::Error;
use super::schema::{self, Fields};
use crate::event::{Level, Status, format_timestamp};

/// Default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The filters of `GET /events`, `evlog query` and `evlog stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// A UTC day of `timestamp`. With neither `date` nor `start`/`end`: today.
    pub date: Option<NaiveDate>,
    /// Inclusive lower bound of `timestamp`.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive upper bound of `timestamp`.
    pub end: Option<DateTime<Utc>>,
    /// Any of these types (empty: all).
    pub event_types: Vec<String>,
    /// Status.
    pub status: Option<Status>,
    /// Level.
    pub level: Option<Level>,
    /// Exact user id.
    pub user_id: Option<String>,
    /// Exact request id.
    pub request_id: Option<String>,
    /// Full text: terms ANDed, quotes make phrases, punctuation makes a phrase.
    pub q: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Matches to skip.
    pub offset: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only events stored after this chain position (`evlog tail -f`).
    pub after_seq: Option<u64>,
}

/// A client mistake in a query, naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct QueryError {
    /// The parameter.
    pub param: &'static str,
    /// What is wrong.
    pub message: String,
}

fn qerr(param: &'static str, message: impl Into<String>) -> QueryError {
    QueryError {
        param,
        message: message.into(),
    }
}

/// A position in the newest-first order: (timestamp µs, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    ts: i64,
    seq: u64,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{:x}.{:x}", self.ts, self.seq)
    }
    fn decode(s: &str) -> Option<Cursor> {
        let (a, b) = s.split_once('.')?;
        Some(Cursor {
            ts: i64::from_str_radix(a, 16).ok()?,
            seq: u64::from_str_radix(b, 16).ok()?,
        })
    }
}

impl Query {
    /// Checks limits and ranges; errors name the parameter.
    pub fn validate(&self) -> Result<(), QueryError> {
        if let Some(l) = self.limit
            && !(1..=MAX_LIMIT).contains(&l)
        {
            return Err(qerr("limit", format!("must be 1 to {MAX_LIMIT} (got {l})")));
        }
        if let (Some(s), Some(e)) = (self.start, self.end)
            && s >= e
        {
            return Err(qerr("end", "must be after start"));
        }
        if self.date.is_some() && (self.start.is_some() || self.end.is_some()) {
            return Err(qerr("date", "give either date or start/end, not both"));
        }
        if let Some(c) = &self.cursor
            && Cursor::decode(c).is_none()
        {
            return Err(qerr("cursor", "not a cursor returned by a previous page"));
        }
        for t in &self.event_types {
            t.parse::<crate::EventType>()
                .map_err(|e| qerr("event_type", e.message))?;
        }
        Ok(())
    }

    /// The page size in effect.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// The `[from, to)` range in effect and the day reported as `date`.
    pub fn range(
        &self,
        now: DateTime<Utc>,
    ) -> (
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<NaiveDate>,
    ) {
        if self.start.is_some() || self.end.is_some() {
            return (self.start, self.end, None);
        }
        let day = self.date.unwrap_or_else(|| now.date_naive());
        let from = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        (Some(from), Some(from + Duration::days(1)), Some(day))
    }

    /// The filters as given, for `filters_applied`.
    pub fn filters_applied(&self, now: DateTime<Utc>) -> Map<String, Value> {
        let mut m = Map::new();
        let (from, to, day) = self.range(now);
        if let Some(d) = day {
            m.insert("date".into(), d.to_string().into());
        }
        if self.start.is_some() || self.end.is_some() {
            if let Some(f) = from {
                m.insert("start".into(), format_timestamp(&f).into());
            }
            if let Some(t) = to {
                m.insert("end".into(), format_timestamp(&t).into());
            }
        }
        if !self.event_types.is_empty() {
            m.insert("event_type".into(), self.event_types.clone().into());
        }
        if let Some(s) = self.status {
            m.insert("status".into(), s.as_str().into());
        }
        if let Some(l) = self.level {
            m.insert("level".into(), l.as_str().into());
        }
        if let Some(u) = &self.user_id {
            m.insert("user_id".into(), u.clone().into());
        }
        if let Some(r) = &self.request_id {
            m.insert("request_id".into(), r.clone().into());
        }
        if let Some(q) = &self.q {
            m.insert("q".into(), q.clone().into());
        }
        m
    }

    /// The tantivy query of the filters (without cursor).
    pub(crate) fn to_tantivy(&self, f: &Fields, now: DateTime<Utc>) -> Box<dyn TQuery> {
        let mut must: Vec<Box<dyn TQuery>> = Vec::new();
        let (from, to, _) = self.range(now);
        if from.is_some() || to.is_some() {
            let lo = from.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_date(f.timestamp, schema::to_tantivy(t)))
            });
            let hi = to.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_date(f.timestamp, schema::to_tantivy(t)))
            });
            must.push(Box::new(RangeQuery::new(lo, hi)));
        }
        if !self.event_types.is_empty() {
            let any: Vec<(Occur, Box<dyn TQuery>)> = self
                .event_types
                .iter()
                .map(|t| (Occur::Should, term(f.event_type, t)))
                .collect();
            must.push(Box::new(BooleanQuery::new(any)));
        }
        if let Some(s) = self.status {
            must.push(term(f.status, s.as_str()));
        }
        if let Some(l) = self.level {
            must.push(term(f.level, l.as_str()));
        }
        if let Some(u) = &self.user_id {
            must.push(term(f.user_id, u));
        }
        if let Some(r) = &self.request_id {
            must.push(term(f.request_id, r));
        }
        if let Some(q) = &self.q {
            must.extend(full_text(f, q));
        }
        if let Some(n) = self.after_seq {
            must.push(Box::new(RangeQuery::new(
                Bound::Excluded(Term::from_field_u64(f.seq, n)),
                Bound::Unbounded,
            )));
        }
        if must.is_empty() {
            return Box::new(AllQuery);
        }
        Box::new(BooleanQuery::new(
            must.into_iter().map(|q| (Occur::Must, q)).collect(),
        ))
    }
}

fn term(field: tantivy::schema::Field, value: &str) -> Box<dyn TQuery> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

/// Splits `q` into quoted phrases and bare words; each becomes a term query
/// (one token) or a phrase query (several tokens, e.g. `src/lib.rs`).
fn full_text(f: &Fields, q: &str) -> Vec<Box<dyn TQuery>> {
    let mut out: Vec<Box<dyn TQuery>> = Vec::new();
    let mut analyzer = schema::analyzer();
    for (i, part) in q.split('"').enumerate() {
        let quoted = i % 2 == 1;
        let pieces: Vec<&str> = if quoted {
            vec![part]
        } else {
            part.split_whitespace().collect()
        };
        for piece in pieces {
            let mut tokens = Vec::new();
            let mut stream = analyzer.token_stream(piece);
            while let Some(t) = stream.next() {
                tokens.push(Term::from_field_text(f.text, &t.text));
            }
            match tokens.len() {
                0 => {}
                1 => out.push(Box::new(TermQuery::new(
                    tokens.remove(0),
                    IndexRecordOption::Basic,
                ))),
                _ => out.push(Box::new(PhraseQuery::new(tokens))),
            }
        }
    }
    out
}

/// One page of results: the body of `GET /events` and `evlog query --format json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryResponse {
    /// The stored events (chain fields included), newest first.
    pub events: Vec<Value>,
    /// Every match of the filters, not just this page.
    pub total: u64,
    /// The day queried, when the range is a day.
    pub date: Option<String>,
    /// The filters in effect.
    pub filters_applied: Map<String, Value>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

type SortKey = (Option<tantivy::DateTime>, Option<u64>);

/// Runs `query` against `searcher`.
pub fn search(
    searcher: &Searcher,
    f: &Fields,
    query: &Query,
    now: DateTime<Utc>,
) -> Result<QueryResponse, Error> {
    query.validate()?;
    let base = query.to_tantivy(f, now);
    let limit = query.limit();
    let sort = (
        (
            SortByStaticFastValue::<tantivy::DateTime>::for_field("timestamp"),
            Order::Desc,
        ),
        (SortByStaticFastValue::<u64>::for_field("seq"), Order::Desc),
    );
    let top = TopDocs::with_limit(limit)
        .and_offset(query.offset)
        .order_by(sort);
    // `left`: matches after this page, to decide whether there is a next one.
    let (total, hits, left): (usize, Vec<(SortKey, tantivy::DocAddress)>, usize) =
        match &query.cursor {
            None => {
                let (total, hits) = searcher
                    .search(&*base, &(Count, top))
                    .map_err(Error::tantivy)?;
                let left = total.saturating_sub(query.offset + hits.len());
                (total, hits, left)
            }
            Some(c) => {
                let c = Cursor::decode(c).expect("validated");
                let total = searcher.search(&*base, &Count).map_err(Error::tantivy)?;
                let paged =
                    BooleanQuery::new(vec![(Occur::Must, base), (Occur::Must, after_cursor(f, c))]);
                let (after, hits) = searcher
                    .search(&paged, &(Count, top))
                    .map_err(Error::tantivy)?;
                let left = after.saturating_sub(query.offset + hits.len());
                (total, hits, left)
            }
        };
    let mut events = Vec::with_capacity(hits.len());
    for (_, addr) in &hits {
        let doc: TantivyDocument = searcher.doc(*addr).map_err(Error::tantivy)?;
        let line = doc
            .get_first(f.line)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| Error::Tantivy(format!("stored line unreadable: {e}")))?;
        events.push(v);
    }
    let next_cursor = match hits.last() {
        Some(((Some(ts), Some(seq)), _)) if left > 0 => Some(
            Cursor {
                ts: ts.into_timestamp_micros(),
                seq: *seq,
            }
            .encode(),
        ),
        _ => None,
    };
    let (_, _, day) = query.range(now);
    Ok(QueryResponse {
        events,
        total: total as u64,
        date: day.map(|d| d.to_string()),
        filters_applied: query.filters_applied(now),
        next_cursor,
    })
}

/// Documents strictly after `c` in newest-first order: older timestamp, or
/// the same timestamp and a smaller seq.
fn after_cursor(f: &Fields, c: Cursor) -> Box<dyn TQuery> {
    let ts = tantivy::DateTime::from_timestamp_micros(c.ts);
    let older = RangeQuery::new(
        Bound::Unbounded,
        Bound::Excluded(Term::from_field_date(f.timestamp, ts)),
    );
    let same_ts = RangeQuery::new(
        Bound::Included(Term::from_field_date(f.timestamp, ts)),
        Bound::Included(Term::from_field_date(f.timestamp, ts)),
    );
    let lower_seq = RangeQuery::new(
        Bound::Unbounded,
        Bound::Excluded(Term::from_field_u64(f.seq, c.seq)),
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, Box::new(older) as Box<dyn TQuery>),
        (
            Occur::Should,
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(same_ts) as Box<dyn TQuery>),
                (Occur::Must, Box::new(lower_seq)),
            ])),
        ),
    ]))
}
