//! Filters → tantivy queries, newest first, with offset and cursor paging.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, Occur, PhraseQuery, Query as TQuery, RangeQuery,
    TermQuery, Weight,
};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{DocAddress, DocId, DocSet, Searcher, TantivyDocument, Term};

use super::schema::{self, Fields};
use super::timeline::{self, TimeRange, Times};
use super::{Error, View};
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
    /// Exact emitting service (`source`).
    pub source: Option<String>,
    /// Resolved (`true`) or open (`false`) events only; see
    /// [`crate::resolution`].
    pub resolved: Option<bool>,
    /// Exact tenant: a tenant's name, or [`crate::event::DEFAULT_TENANT`]
    /// for the default tenant's events (those without `tenant`).
    pub tenant: Option<String>,
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
    /// Only events stored in this day's file, whatever their `timestamp`
    /// (retention's open-day rule: a day file is deleted whole). Not a
    /// parameter of the API. Combine it with a `start` that holds every
    /// event (`MIN_TIMESTAMP`) to drop the default day.
    pub file_day: Option<NaiveDate>,
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
    /// Fixes the default day: without `date`, `start` and `end`, a query
    /// means today at the moment it is answered; a query paged over a
    /// while (an export) keeps the day it started on, so that pages past
    /// UTC midnight do not ask for the next day with the first day's cursor.
    pub fn pin_default_day(&mut self, now: DateTime<Utc>) {
        if self.date.is_none() && self.start.is_none() && self.end.is_none() {
            self.date = Some(now.date_naive());
        }
    }

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
        if let Some(t) = &self.tenant
            && t != crate::event::DEFAULT_TENANT
            && !crate::event::is_valid_tenant(t)
        {
            return Err(qerr(
                "tenant",
                format!(
                    "{} (or `{}` for the default tenant)",
                    crate::event::TENANT_RULE,
                    crate::event::DEFAULT_TENANT
                ),
            ));
        }
        for t in &self.event_types {
            t.parse::<crate::EventType>()
                .map_err(|e| qerr("event_type", e.message))?;
        }
        // Punctuation alone makes no search term, and no term would match
        // every event: say so rather than answer with everything.
        if let Some(q) = &self.q
            && !q.trim().is_empty()
            && !has_words(q)
        {
            return Err(qerr(
                "q",
                format!("`{q}` has no word to search for (letters or digits)"),
            ));
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
        if let Some(s) = &self.source {
            m.insert("source".into(), s.clone().into());
        }
        if let Some(r) = self.resolved {
            m.insert("resolved".into(), r.into());
        }
        if let Some(t) = &self.tenant {
            m.insert("tenant".into(), t.clone().into());
        }
        if let Some(q) = &self.q {
            m.insert("q".into(), q.clone().into());
        }
        if let Some(d) = self.file_day {
            m.insert("file_day".into(), d.to_string().into());
        }
        m
    }

    /// The tantivy query of the filters, for the searcher of `view`.
    pub(crate) fn to_tantivy(
        &self,
        f: &Fields,
        view: &View,
        now: DateTime<Utc>,
    ) -> Box<dyn TQuery> {
        self.to_tantivy_until(f, view, now, None)
    }

    /// Like [`Query::to_tantivy`], with the range's end lowered to `until`
    /// (µs, exclusive) when given.
    fn to_tantivy_until(
        &self,
        f: &Fields,
        view: &View,
        now: DateTime<Utc>,
        until: Option<i64>,
    ) -> Box<dyn TQuery> {
        let times = &view.times;
        let mut must: Vec<Box<dyn TQuery>> = Vec::new();
        let (from, to, _) = self.range(now);
        let to = match (to.map(|t| t.timestamp_micros()), until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let from = from.map(|t| t.timestamp_micros());
        // A range holding every document is left out, so that a lone term
        // is counted from its document frequency.
        let covers_all = times
            .values()
            .all(|t| from.is_none_or(|f| f <= t.min()) && to.is_none_or(|to| t.max() < to));
        if !covers_all {
            must.push(Box::new(TimeRange::new(from, to, times.clone())));
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
        if let Some(s) = &self.source {
            must.push(term(f.source, s));
        }
        if let Some(t) = &self.tenant {
            must.push(term(f.tenant, t));
        }
        if let Some(q) = &self.q {
            must.extend(full_text(f, q));
        }
        if let Some(d) = self.file_day {
            must.push(Box::new(TermQuery::new(
                Term::from_field_u64(f.day, schema::day_number(d)),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(n) = self.after_seq {
            must.push(Box::new(RangeQuery::new(
                Bound::Excluded(Term::from_field_u64(f.seq, n)),
                Bound::Unbounded,
            )));
        }
        let mut clauses: Vec<(Occur, Box<dyn TQuery>)> =
            must.into_iter().map(|q| (Occur::Must, q)).collect();
        match self.resolved {
            Some(true) => clauses.push((Occur::Must, Box::new(view.resolutions.query()))),
            // With nothing resolved, every event is open.
            Some(false) if !view.resolutions.none_resolved() => {
                if clauses.is_empty() {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                clauses.push((Occur::MustNot, Box::new(view.resolutions.query())));
            }
            _ => {}
        }
        match clauses.len() {
            0 => Box::new(AllQuery),
            1 if clauses[0].0 == Occur::Must => clauses.remove(0).1,
            _ => Box::new(BooleanQuery::new(clauses)),
        }
    }
}

/// Whether the analyzer finds at least one token in `q`.
fn has_words(q: &str) -> bool {
    let mut analyzer = schema::analyzer();
    let mut tokens = Vec::new();
    q.split(|c: char| c.is_whitespace() || c == '"').any(|w| {
        schema::word_tokens(&mut analyzer, w, &mut tokens);
        !tokens.is_empty()
    })
}

fn term(field: tantivy::schema::Field, value: &str) -> Box<dyn TQuery> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

/// Splits `q` into quoted phrases and bare pieces, every one required. A
/// quoted phrase matches consecutive tokens of one text value; a bare piece
/// of several tokens (`src/lib.rs`) matches consecutive tokens within one
/// word of the text: the `runs` terms it begins when it has at most
/// [`schema::MAX_RUN`] tokens, else a phrase.
fn full_text(f: &Fields, q: &str) -> Vec<Box<dyn TQuery>> {
    let mut out: Vec<Box<dyn TQuery>> = Vec::new();
    let mut analyzer = schema::analyzer();
    let mut tokens = Vec::new();
    for (i, part) in q.split('"').enumerate() {
        let quoted = i % 2 == 1;
        let pieces: Vec<&str> = if quoted {
            vec![part]
        } else {
            part.split_whitespace().collect()
        };
        for piece in pieces {
            schema::word_tokens(&mut analyzer, piece, &mut tokens);
            match tokens.len() {
                0 => {}
                1 => out.push(term(f.text, &tokens[0])),
                n if !quoted && n <= schema::MAX_RUN => {
                    let (lo, hi) = schema::run_range(&tokens);
                    out.push(Box::new(RangeQuery::new(
                        Bound::Included(Term::from_field_text(f.runs, &lo)),
                        Bound::Excluded(Term::from_field_text(f.runs, &hi)),
                    )))
                }
                _ => out.push(Box::new(PhraseQuery::new(
                    tokens
                        .iter()
                        .map(|t| Term::from_field_text(f.text, t))
                        .collect(),
                ))),
            }
        }
    }
    out
}

/// One page of results: the body of `GET /events` and `evlog query --format json`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct QueryResponse {
    /// The stored events (chain fields included), newest first.
    #[schema(value_type = Vec<crate::event::schema::StoredEvent>)]
    pub events: Vec<Value>,
    /// Every match of the filters, not just this page.
    pub total: u64,
    /// The day queried, when the range is a day.
    #[schema(required = true, format = Date)]
    pub date: Option<String>,
    /// The filters in effect.
    #[schema(value_type = Object)]
    pub filters_applied: Map<String, Value>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Runs `query` against the searcher of `view`. Adds the documents whose
/// columns it read to `examined`.
pub(crate) fn search(
    view: &View,
    f: &Fields,
    query: &Query,
    now: DateTime<Utc>,
    examined: &AtomicU64,
) -> Result<QueryResponse, Error> {
    query.validate()?;
    let (searcher, times) = (&view.searcher, &view.times);
    let limit = query.limit();
    let scoring = EnableScoring::disabled_from_searcher(searcher);
    let base = query
        .to_tantivy(f, view, now)
        .weight(scoring)
        .map_err(Error::tantivy)?;
    let total = count(view, f, query, now, &*base)?;
    // The page, plus one match to tell whether another page follows.
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c).expect("validated"));
    let want = query.offset.saturating_add(limit).saturating_add(1);
    let (from, to, _) = query.range(now);
    let from = from.map_or(i64::MIN, |t| t.timestamp_micros());
    let to = to.map_or(i64::MAX, |t| t.timestamp_micros());
    let hits = if let Some(c) = cursor {
        // Matches at or before the cursor's timestamp, minus those the
        // previous pages showed.
        let until = c.ts.saturating_add(1);
        let weight = query
            .to_tantivy_until(f, view, now, Some(until))
            .weight(scoring)
            .map_err(Error::tantivy)?;
        newest(
            searcher,
            &*weight,
            times,
            (from, to.min(until)),
            want,
            Some(c),
            examined,
        )?
    } else {
        newest(searcher, &*base, times, (from, to), want, None, examined)?
    };
    let page: Vec<&Hit> = hits.iter().skip(query.offset).take(limit).collect();
    let mut events = Vec::with_capacity(page.len());
    for h in &page {
        events.push(returned_event(view, f, DocAddress::new(h.segment, h.doc))?);
    }
    let next_cursor = match page.last() {
        Some(h) if hits.len() > query.offset + limit => Some(
            Cursor {
                ts: h.ts,
                seq: h.seq,
            }
            .encode(),
        ),
        _ => None,
    };
    let (_, _, day) = query.range(now);
    Ok(QueryResponse {
        events,
        total,
        date: day.map(|d| d.to_string()),
        filters_applied: query.filters_applied(now),
        next_cursor,
    })
}

/// The matches of `query`, whose weight is `weight`. Open events
/// (`resolved=false`) are counted as the matches without that filter less
/// the resolved ones: both counts are cheap (a lone term from its document
/// frequency, the resolved from their short lists), where counting through
/// the exclusion would visit every match.
fn count(
    view: &View,
    f: &Fields,
    query: &Query,
    now: DateTime<Utc>,
    weight: &dyn Weight,
) -> Result<u64, Error> {
    let of = |w: &dyn Weight| -> Result<u64, Error> {
        let mut n = 0u64;
        for r in view.searcher.segment_readers() {
            n += u64::from(w.count(r).map_err(Error::tantivy)?);
        }
        Ok(n)
    };
    if query.resolved != Some(false) {
        return of(weight);
    }
    let weight_of = |resolved: Option<bool>| {
        Query {
            resolved,
            ..query.clone()
        }
        .to_tantivy(f, view, now)
        .weight(EnableScoring::disabled_from_searcher(&view.searcher))
        .map_err(Error::tantivy)
    };
    let all = of(&*weight_of(None)?)?;
    let resolved = of(&*weight_of(Some(true))?)?;
    Ok(all.saturating_sub(resolved))
}

/// A document as the API returns it: its stored line with the derived
/// state of `view` (`resolved`, `resolved_at`, `resolved_by`).
pub(crate) fn returned_event(view: &View, f: &Fields, addr: DocAddress) -> Result<Value, Error> {
    let mut event = stored_event(&view.searcher, f, addr)?;
    view.resolutions.annotate(&mut event);
    Ok(event)
}

/// The stored line of a document, as JSON (chain fields included).
pub(crate) fn stored_event(
    searcher: &Searcher,
    f: &Fields,
    addr: DocAddress,
) -> Result<Value, Error> {
    let doc: TantivyDocument = searcher.doc(addr).map_err(Error::tantivy)?;
    let line = doc
        .get_first(f.line)
        .and_then(|v| v.as_bytes())
        .unwrap_or_default();
    serde_json::from_slice(line).map_err(|e| Error::Tantivy(format!("stored line unreadable: {e}")))
}

/// A match: its place in the newest-first order and its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    ts: i64,
    seq: u64,
    segment: u32,
    doc: DocId,
}

/// The `k` newest matches of `weight` (by timestamp, then seq), strictly
/// after `cursor` in that order when given, newest first. `range` (µs,
/// `[from, to)`) is the time range `weight` is limited to.
///
/// Each segment is searched backwards from the last block that may hold a
/// timestamp of the range, in windows of growing size (documents arrive in
/// time order), and left as soon as no earlier document of it can be newer
/// than the k-th match found so far; segments are taken newest first, and
/// skipped whole on the same test.
fn newest(
    searcher: &Searcher,
    weight: &dyn Weight,
    times: &Times,
    range: (i64, i64),
    k: usize,
    cursor: Option<Cursor>,
    examined: &AtomicU64,
) -> Result<Vec<Hit>, Error> {
    let mut heap: BinaryHeap<Reverse<Hit>> = BinaryHeap::with_capacity(k + 1);
    let mut chunks = Vec::new();
    for (ord, r) in searcher.segment_readers().iter().enumerate() {
        let st = timeline::of_segment(times, r)?;
        for c in st.chunks(range.0, range.1) {
            chunks.push((ord as u32, r, st.clone(), c));
        }
    }
    chunks.sort_by_key(|c| Reverse(c.3.max()));
    // Whether nothing with timestamps up to `max` can enter the heap.
    let done = |heap: &BinaryHeap<Reverse<Hit>>, max: i64| {
        heap.len() >= k && heap.peek().is_some_and(|Reverse(w)| max < w.ts)
    };
    let (mut docs, mut ts, mut seq) = (Vec::new(), Vec::new(), Vec::new());
    for (ord, reader, st, chunk) in chunks {
        let (ts_col, seq_col) = (st.timestamps(), st.seqs());
        let alive = reader.alive_bitset();
        let mut before = chunk.end;
        let mut blocks = 4;
        while !done(&heap, chunk.max_before(before)) {
            let Some((lo, hi)) = chunk.window(before, blocks) else {
                break;
            };
            let mut scorer = weight.scorer(reader, 1.0).map_err(Error::tantivy)?;
            let mut d = scorer.doc();
            if d < lo {
                d = scorer.seek(lo);
            }
            docs.clear();
            while d < hi {
                if alive.is_none_or(|a| a.is_alive(d)) {
                    docs.push(d);
                }
                d = scorer.advance();
            }
            examined.fetch_add(docs.len() as u64, Ordering::Relaxed);
            ts.clear();
            ts.resize(docs.len(), None);
            ts_col.first_vals(&docs, &mut ts);
            seq.clear();
            seq.resize(docs.len(), None);
            seq_col.first_vals(&docs, &mut seq);
            // Newest first (documents are in time order): once the heap is
            // full, older ones are turned away without touching it.
            for i in (0..docs.len()).rev() {
                let hit = Hit {
                    ts: ts[i].map_or(i64::MIN, |t| t.into_timestamp_micros()),
                    seq: seq[i].unwrap_or(0),
                    segment: ord,
                    doc: docs[i],
                };
                if cursor.is_some_and(|c| (hit.ts, hit.seq) >= (c.ts, c.seq)) {
                    continue;
                }
                if heap.len() < k {
                    heap.push(Reverse(hit));
                } else if heap
                    .peek()
                    .is_some_and(|Reverse(w)| (hit.ts, hit.seq) > (w.ts, w.seq))
                {
                    heap.pop();
                    heap.push(Reverse(hit));
                }
            }
            before = lo;
            blocks = blocks.saturating_mul(4);
        }
    }
    let mut hits: Vec<Hit> = heap.into_iter().map(|Reverse(h)| h).collect();
    hits.sort_unstable_by_key(|h| Reverse((h.ts, h.seq)));
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review of issue 14: an export paged past UTC midnight asked for the
    /// new day with the first day's cursor and ended early.
    #[test]
    fn the_default_day_is_pinned_once_and_explicit_ranges_are_kept() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut q = Query::default();
        q.pin_default_day(now);
        assert_eq!(q.date, NaiveDate::from_ymd_opt(2026, 11, 30));
        q.pin_default_day(now + Duration::seconds(2));
        assert_eq!(q.date, NaiveDate::from_ymd_opt(2026, 11, 30));
        let mut ranged = Query {
            start: Some(now),
            ..Query::default()
        };
        ranged.pin_default_day(now);
        assert_eq!((ranged.date, ranged.start), (None, Some(now)));
    }
}
