//! The check of the queries phase (`--verify`): each kind's first totals
//! against a scan of the day files, matched without the index.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use evlog::index::schema;
use evlog::index::{IndexSearch, Query};
use evlog::store::day::DayRange;
use evlog::{Event, Record};
use serde_json::Value;

use crate::common::kinds::Kind;

/// Checks that the first 4 runs of every kind return the totals (and, for
/// a page, as many events) that a scan of the store's files gives.
pub fn totals(store: &Path, search: &IndexSearch, kinds: &[Kind]) {
    let now = Utc::now();
    let recs: Vec<Record> = evlog::store::Scan::new(store, DayRange::all())
        .expect("scan")
        .map(|r| r.expect("record"))
        .collect();
    // Every resolution of the generated stores resolves (none reopens).
    let resolved: HashSet<uuid::Uuid> = recs
        .iter()
        .filter_map(|r| evlog::resolution::target_of(&r.event))
        .map(|(_, id)| id)
        .collect();
    for kind in kinds {
        for k in [0usize, 1, 2, 3] {
            let q = (kind.make)(k);
            let want = recs
                .iter()
                .filter(|r| brute_match(r, &q, now, &resolved))
                .count() as u64;
            let got = if kind.is_stats() {
                search.stats(&q).expect("stats").total
            } else {
                let r = search.query(&q).expect("query");
                assert_eq!(r.events.len() as u64, want.min(q.limit() as u64));
                r.total
            };
            assert_eq!(got, want, "{}: run {k}: index total vs scan", kind.name);
        }
    }
    println!(
        "        verified: the first 4 runs of every kind return the totals a scan of the files gives"
    );
}

/// The text values of an event, as the index's `text` field gets them.
fn text_values(e: &Event) -> Vec<String> {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(m) => m.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut out = vec![e.action_description.clone()];
    out.extend(e.comments.clone());
    out.extend(e.files_changed.iter().cloned());
    if let Some(m) = &e.metadata {
        strings(m, &mut out);
    }
    out
}

fn tokens(s: &str) -> Vec<String> {
    let mut a = schema::analyzer();
    let mut st = a.token_stream(s);
    let mut v = Vec::new();
    while let Some(t) = st.next() {
        v.push(t.text.clone());
    }
    v
}

/// Whether `rec` matches `q`, decided without the index (for `--verify`).
fn brute_match(
    rec: &Record,
    q: &Query,
    now: DateTime<Utc>,
    resolved: &HashSet<uuid::Uuid>,
) -> bool {
    let e = &rec.event;
    let ts = e.timestamp.expect("stored");
    let (from, to, _) = q.range(now);
    if from.is_some_and(|f| ts < f) || to.is_some_and(|t| ts >= t) {
        return false;
    }
    if !q.event_types.is_empty() && !q.event_types.iter().any(|t| t == e.event_type.as_str()) {
        return false;
    }
    if q.status.is_some_and(|s| s != e.status) || q.level.is_some_and(|l| l != e.level) {
        return false;
    }
    if q.user_id.as_ref().is_some_and(|u| *u != e.user_id) {
        return false;
    }
    if q.request_id.is_some() && q.request_id != e.request_id {
        return false;
    }
    if q.tenant
        .as_deref()
        .is_some_and(|t| t != e.tenant_or_default())
    {
        return false;
    }
    if q.resolved
        .is_some_and(|r| r != e.id.is_some_and(|id| resolved.contains(&id)))
    {
        return false;
    }
    if let Some(text) = &q.q {
        // Bare pieces only (the query kinds have no quotes): a run of tokens
        // within one word of a value.
        let words: Vec<Vec<String>> = text_values(e)
            .iter()
            .flat_map(|s| s.split_whitespace().map(tokens).collect::<Vec<_>>())
            .collect();
        for piece in text.split_whitespace() {
            let want = tokens(piece);
            if !words
                .iter()
                .any(|v| v.windows(want.len()).any(|w| w == want.as_slice()))
            {
                return false;
            }
        }
    }
    true
}
