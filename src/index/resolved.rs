//! Derived state: which events are resolved, as of one searcher.
//!
//! Documents are never updated. The state of an event is derived from the
//! resolution events (`event_resolved`, `event_reopened`, see
//! [`crate::resolution`]) the searcher holds: for each target id, the
//! resolution with the highest `seq` wins. Since the resolutions are indexed
//! like any other line, the state is right after a crash (the indexer
//! re-reads what it had not committed), after a reindex, and when a target
//! and its resolutions are appended in one batch, with no bookkeeping of its
//! own to keep consistent.
//!
//! Per searcher, [`ResolutionCache::of`] folds the resolutions into a map
//! target → [`State`], and lists per segment the documents currently
//! resolved (sorted doc ids): the `resolved=` filter ([`ResolvedDocs`], a
//! tantivy query over those lists) and the `resolved`, `resolved_at`,
//! `resolved_by` fields of returned events ([`Resolutions::annotate`]) read
//! them. What a segment says never changes, so the cache keeps, per segment,
//! its resolution records and where each target id was found in it: a new
//! searcher costs the lookups of its new segments only, and the fold of
//! the records (a few µs per thousand resolutions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tantivy::index::{InvertedIndexReader, SegmentId};
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Opstamp, Score, Searcher, SegmentReader, TERMINATED, Term};
use uuid::Uuid;

use super::Error;
use super::schema::Fields;
use crate::event::format_timestamp;
use crate::resolution::Action;

/// The current state of an event some resolution names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Resolved (the latest resolution is an `event_resolved`), or reopened.
    pub resolved: bool,
    /// The time of the latest resolution (µs since the epoch).
    pub at: i64,
    /// Its `user_id`: who resolved or reopened it.
    pub by: String,
    /// Its `seq`.
    pub seq: u64,
}

/// One resolution document of a segment.
#[derive(Debug, Clone)]
struct Record {
    doc: DocId,
    target: Uuid,
    state: State,
}

/// The derived state of one searcher.
#[derive(Debug, Default)]
pub struct Resolutions {
    states: HashMap<Uuid, State>,
    /// Per segment, the documents currently resolved, sorted.
    docs: HashMap<SegmentId, Arc<[DocId]>>,
}

impl Resolutions {
    /// The state of `id`, if a resolution names it.
    pub fn state(&self, id: &Uuid) -> Option<&State> {
        self.states.get(id)
    }

    /// Whether `id` is resolved now.
    pub fn is_resolved(&self, id: &Uuid) -> bool {
        self.state(id).is_some_and(|s| s.resolved)
    }

    /// Events resolved now (by id).
    pub fn resolved_ids(&self) -> usize {
        self.states.values().filter(|s| s.resolved).count()
    }

    /// Adds `resolved` (always) and `resolved_at`, `resolved_by` (when
    /// resolved) to a returned event.
    pub fn annotate(&self, event: &mut Value) {
        let state = event
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .and_then(|id| self.state(&id));
        let Some(obj) = event.as_object_mut() else {
            return;
        };
        match state {
            Some(s) if s.resolved => {
                obj.insert("resolved".into(), true.into());
                if let Some(at) = chrono::DateTime::from_timestamp_micros(s.at) {
                    obj.insert("resolved_at".into(), format_timestamp(&at).into());
                }
                obj.insert("resolved_by".into(), s.by.clone().into());
            }
            _ => {
                obj.insert("resolved".into(), false.into());
            }
        }
    }

    /// The documents resolved now, as a tantivy query.
    pub fn query(&self) -> ResolvedDocs {
        ResolvedDocs {
            docs: Arc::new(self.docs.clone()),
        }
    }

    /// The documents of `segment` resolved now, sorted.
    pub fn docs_in(&self, segment: SegmentId) -> &[DocId] {
        self.docs.get(&segment).map_or(&[], |d| d)
    }

    /// Whether no document is resolved (the `resolved=false` filter is then
    /// no filter at all).
    pub fn none_resolved(&self) -> bool {
        self.docs.values().all(|d| d.is_empty())
    }
}

/// The generation a [`Resolutions`] was computed for: its segments and
/// their deletes.
type Generation = std::collections::BTreeMap<SegmentId, Option<Opstamp>>;

/// Computes and keeps the [`Resolutions`] of a reader's searchers.
#[derive(Default)]
pub struct ResolutionCache {
    fields: Fields,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: Option<(Generation, Arc<Resolutions>)>,
    /// Per segment: its resolution records.
    records: HashMap<SegmentId, Arc<Vec<Record>>>,
    /// Per segment: where target ids were found (empty: not in it).
    found: HashMap<SegmentId, HashMap<Uuid, Vec<DocId>>>,
}

impl ResolutionCache {
    /// The derived state of `searcher`.
    pub fn of(&self, searcher: &Searcher) -> Result<Arc<Resolutions>, Error> {
        let generation = searcher.generation().segments().clone();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, r)) = &inner.last
            && *g == generation
        {
            return Ok(r.clone());
        }
        let readers = searcher.segment_readers();
        inner.records.retain(|id, _| generation.contains_key(id));
        inner.found.retain(|id, _| generation.contains_key(id));
        // The fold: the latest resolution of each target, among live documents.
        let mut states: HashMap<Uuid, State> = HashMap::new();
        for r in readers {
            let records = match inner.records.get(&r.segment_id()) {
                Some(rs) => rs.clone(),
                None => {
                    let rs = Arc::new(records_of(&self.fields, r)?);
                    inner.records.insert(r.segment_id(), rs.clone());
                    rs
                }
            };
            let alive = r.alive_bitset();
            for rec in records.iter() {
                if alive.is_some_and(|a| a.is_deleted(rec.doc)) {
                    continue;
                }
                match states.get(&rec.target) {
                    Some(s) if s.seq >= rec.state.seq => {}
                    _ => {
                        states.insert(rec.target, rec.state.clone());
                    }
                }
            }
        }
        // Where the resolved targets are, per segment.
        let mut docs = HashMap::new();
        for r in readers {
            let found = inner.found.entry(r.segment_id()).or_default();
            let mut ids: Option<Arc<InvertedIndexReader>> = None;
            let mut list = Vec::new();
            for (target, s) in &states {
                if !s.resolved {
                    continue;
                }
                if !found.contains_key(target) {
                    let ix = match &ids {
                        Some(ix) => ix,
                        None => {
                            let ix = r.inverted_index(self.fields.id).map_err(Error::tantivy)?;
                            ids.insert(ix)
                        }
                    };
                    found.insert(*target, postings(ix, self.fields.id, target)?);
                }
                list.extend_from_slice(&found[target]);
            }
            list.sort_unstable();
            list.dedup();
            docs.insert(r.segment_id(), Arc::from(list));
        }
        let res = Arc::new(Resolutions { states, docs });
        inner.last = Some((generation, res.clone()));
        Ok(res)
    }
}

/// As a reader's warmer, computes the state of a new searcher before the
/// reload that brings it is published.
impl tantivy::Warmer for ResolutionCache {
    fn warm(&self, searcher: &Searcher) -> tantivy::Result<()> {
        // A failure must not fail the commit: the query that needs the
        // state computes it (and reports the error) itself.
        if let Err(e) = self.of(searcher) {
            tracing::warn!(error = %e, "computing the resolved events of a new searcher");
        }
        Ok(())
    }

    fn garbage_collect(&self, _live: &[&tantivy::SearcherGeneration]) {}
}

/// The documents of `id` in a segment.
fn postings(
    ix: &InvertedIndexReader,
    field: tantivy::schema::Field,
    id: &Uuid,
) -> Result<Vec<DocId>, Error> {
    let term = Term::from_field_text(field, &id.to_string());
    let mut out = Vec::new();
    if let Some(mut p) = ix
        .read_postings(&term, IndexRecordOption::Basic)
        .map_err(|e| Error::io("index", e))?
    {
        let mut d = p.doc();
        while d != TERMINATED {
            out.push(d);
            d = p.advance();
        }
    }
    Ok(out)
}

/// The resolution documents of a segment: those with a `target`.
fn records_of(f: &Fields, r: &SegmentReader) -> Result<Vec<Record>, Error> {
    let ff = r.fast_fields();
    let Some(targets) = ff.str("target").map_err(Error::tantivy)? else {
        return Ok(Vec::new());
    };
    let users = ff.str("user_id").map_err(Error::tantivy)?;
    let seqs = ff.u64("seq").map_err(Error::tantivy)?;
    let times = ff.date("timestamp").map_err(Error::tantivy)?;
    let types = r.inverted_index(f.event_type).map_err(Error::tantivy)?;
    let mut out = Vec::new();
    let (mut target, mut by) = (String::new(), String::new());
    for action in [Action::Resolve, Action::Reopen] {
        let term = Term::from_field_text(f.event_type, action.event_type());
        let Some(mut p) = types
            .read_postings(&term, IndexRecordOption::Basic)
            .map_err(|e| Error::io("index", e))?
        else {
            continue;
        };
        let mut doc = p.doc();
        while doc != TERMINATED {
            target.clear();
            let t = targets.term_ords(doc).next();
            if let Some(ord) = t
                && targets
                    .ord_to_str(ord, &mut target)
                    .map_err(|e| Error::io("index", e))?
                && let Ok(id) = Uuid::parse_str(&target)
            {
                by.clear();
                if let Some(u) = &users
                    && let Some(ord) = u.term_ords(doc).next()
                {
                    u.ord_to_str(ord, &mut by)
                        .map_err(|e| Error::io("index", e))?;
                }
                out.push(Record {
                    doc,
                    target: id,
                    state: State {
                        resolved: action.resolves(),
                        at: times.first(doc).map_or(0, |t| t.into_timestamp_micros()),
                        by: by.clone(),
                        seq: seqs.first(doc).unwrap_or(0),
                    },
                });
            }
            doc = p.advance();
        }
    }
    Ok(out)
}

/// The documents resolved now (`resolved=true`; under `MustNot`,
/// `resolved=false`).
#[derive(Debug, Clone)]
pub struct ResolvedDocs {
    docs: Arc<HashMap<SegmentId, Arc<[DocId]>>>,
}

impl Query for ResolvedDocs {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for ResolvedDocs {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let docs = self
            .docs
            .get(&reader.segment_id())
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()));
        Ok(Box::new(Sorted::new(docs, boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut s = self.scorer(reader, 1.0)?;
        if s.seek(doc) == doc {
            Ok(Explanation::new("Resolved", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} is not resolved"
            )))
        }
    }
}

/// A doc set over a sorted list.
struct Sorted {
    docs: Arc<[DocId]>,
    i: usize,
    boost: Score,
}

impl Sorted {
    fn new(docs: Arc<[DocId]>, boost: Score) -> Sorted {
        Sorted { docs, i: 0, boost }
    }
}

impl DocSet for Sorted {
    fn advance(&mut self) -> DocId {
        if self.i < self.docs.len() {
            self.i += 1;
        }
        self.doc()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc() >= target {
            return self.doc();
        }
        self.i += self.docs[self.i..].partition_point(|d| *d < target);
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.i).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        (self.docs.len() - self.i) as u32
    }
}

impl Scorer for Sorted {
    fn score(&mut self) -> Score {
        self.boost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sorted_list_iterates_and_seeks() {
        let mut s = Sorted::new(Arc::from(vec![1, 5, 9]), 1.0);
        assert_eq!(s.doc(), 1);
        assert_eq!(s.seek(2), 5);
        assert_eq!(s.seek(5), 5);
        assert_eq!(s.advance(), 9);
        assert_eq!(s.seek(10), TERMINATED);
        assert_eq!(s.advance(), TERMINATED);
        let mut s = Sorted::new(Arc::from(vec![1, 5, 9]), 1.0);
        assert_eq!(s.count_including_deleted(), 3);
        let empty = Sorted::new(Arc::from(Vec::new()), 1.0);
        assert_eq!(empty.doc(), TERMINATED);
    }
}
