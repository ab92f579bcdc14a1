//! Where time lies inside each segment, and a time-range query built on it.
//!
//! Events reach the index in the order they were appended, so within a
//! segment the documents are (nearly) sorted by `timestamp`; a merged segment
//! is a few such runs laid end to end. [`SegmentTimes`] records, for every
//! block of [`BLOCK`] documents, the smallest and largest timestamp. From it:
//!
//! - [`TimeRange`] turns `[from, to)` into runs of document ids, reading
//!   timestamps only in the blocks that straddle a bound (a fast-field range
//!   scan reads every value of every overlapping segment);
//! - the newest-first search visits each time-ordered run of blocks (a
//!   [`Chunk`]) from its last documents backwards, newest runs first, and
//!   stops as soon as no earlier block can hold a newer match.
//!
//! Nothing here depends on the order for correctness, only for speed: a
//! block of shuffled timestamps just has a wide `[min, max]`.
//!
//! The same summary holds the `seq` bounds of each block, for the forward
//! search of a live tail ([`super::follow`]): a segment is seq-ordered when
//! written, but a merged one is its sources laid end to end in tantivy's
//! merge order (largest first), so no order is assumed there either.
//!
//! Segments never change, so their summaries are computed once and kept in
//! a [`TimeCache`] for as long as the segment is searchable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::{Cardinality, Column};
use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, Searcher, SegmentReader, TERMINATED};

use super::Error;

/// Documents per block of a [`SegmentTimes`].
pub const BLOCK: u32 = 1024;

/// Timestamp bounds (µs since the epoch) of each block of one segment.
pub struct SegmentTimes {
    max_doc: u32,
    /// `(min, max)` per block; `(i64::MAX, i64::MIN)` for a block without a
    /// timestamped document.
    blocks: Vec<(i64, i64)>,
    /// Maximal runs of blocks `[first, end)` whose largest timestamps never
    /// decrease: one per batch of appends in time order (a merged segment
    /// holds several, in any order).
    chunks: Vec<(usize, usize)>,
    /// The `seq` bounds per block.
    seqs: Vec<SeqBlock>,
    /// The `timestamp` and `seq` columns (opening one reads its block
    /// headers: worth doing once per segment, not once per query).
    ts: Column<tantivy::DateTime>,
    seq: Column<u64>,
}

impl std::fmt::Debug for SegmentTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentTimes")
            .field("max_doc", &self.max_doc)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// The timestamp column of a segment.
fn timestamps(reader: &SegmentReader) -> Result<Column<tantivy::DateTime>, Error> {
    reader
        .fast_fields()
        .date("timestamp")
        .map_err(Error::tantivy)
}

/// Reads the timestamps of documents `start..start + out.len()` (`None`
/// where a document has none).
fn read_block(
    col: &Column<tantivy::DateTime>,
    start: DocId,
    docs: &mut Vec<DocId>,
    out: &mut [Option<i64>],
) {
    let len = out.len() as u32;
    if col.get_cardinality() == Cardinality::Full {
        let mut vals = vec![tantivy::DateTime::MIN; len as usize];
        col.values.get_range(u64::from(start), &mut vals);
        for (o, v) in out.iter_mut().zip(vals) {
            *o = Some(v.into_timestamp_micros());
        }
    } else {
        docs.clear();
        docs.extend(start..start + len);
        let mut vals = vec![None; len as usize];
        col.first_vals(docs, &mut vals);
        for (o, v) in out.iter_mut().zip(vals) {
            *o = v.map(|d| d.into_timestamp_micros());
        }
    }
}

/// The `seq` bounds of each block of a segment.
fn seq_blocks(col: &Column<u64>, max_doc: u32) -> Vec<SeqBlock> {
    let n_blocks = max_doc.div_ceil(BLOCK);
    let mut out = Vec::with_capacity(n_blocks as usize);
    let (mut docs, mut vals) = (Vec::new(), Vec::new());
    for b in 0..n_blocks {
        let start = b * BLOCK;
        let len = (max_doc - start).min(BLOCK) as usize;
        docs.clear();
        docs.extend(start..start + len as u32);
        vals.clear();
        vals.resize(len, None);
        col.first_vals(&docs, &mut vals);
        let mut block = SeqBlock {
            min: u64::MAX,
            max: 0,
            sorted: vals.iter().all(Option::is_some),
        };
        let mut last = 0;
        for &s in vals.iter().flatten() {
            block.min = block.min.min(s);
            block.max = block.max.max(s);
            block.sorted &= s >= last;
            last = s;
        }
        out.push(block);
    }
    out
}

/// The `seq` bounds of one block of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqBlock {
    /// Smallest `seq` (`u64::MAX` when no document has one).
    pub min: u64,
    /// Largest `seq` (0 when no document has one).
    pub max: u64,
    /// Whether every document has a `seq` and they never decrease with the
    /// document id (a block that is not one run of one source segment).
    pub sorted: bool,
}

impl SegmentTimes {
    /// Reads every timestamp and `seq` of the segment once.
    pub fn compute(reader: &SegmentReader) -> Result<SegmentTimes, Error> {
        let col = timestamps(reader)?;
        let max_doc = reader.max_doc();
        let n_blocks = max_doc.div_ceil(BLOCK) as usize;
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut chunks = Vec::new();
        let mut running = i64::MIN;
        let (mut docs, mut vals) = (Vec::new(), Vec::new());
        for b in 0..n_blocks as u32 {
            let start = b * BLOCK;
            vals.clear();
            vals.resize(((max_doc - start).min(BLOCK)) as usize, None);
            read_block(&col, start, &mut docs, &mut vals);
            let (lo, hi) = vals
                .iter()
                .flatten()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
            if hi < running || chunks.is_empty() {
                chunks.push((b as usize, b as usize));
                running = i64::MIN;
            }
            blocks.push((lo, hi));
            running = running.max(hi);
            chunks.last_mut().expect("pushed").1 = b as usize + 1;
        }
        let seq = reader.fast_fields().u64("seq").map_err(Error::tantivy)?;
        Ok(SegmentTimes {
            max_doc,
            blocks,
            chunks,
            seqs: seq_blocks(&seq, max_doc),
            ts: col,
            seq,
        })
    }

    /// The `timestamp` column.
    pub fn timestamps(&self) -> &Column<tantivy::DateTime> {
        &self.ts
    }

    /// The `seq` column.
    pub fn seqs(&self) -> &Column<u64> {
        &self.seq
    }

    /// The smallest timestamp of the segment (`i64::MAX` if none).
    pub fn min(&self) -> i64 {
        self.blocks.iter().map(|b| b.0).min().unwrap_or(i64::MAX)
    }

    /// The largest timestamp of the segment (`i64::MIN` if none).
    pub fn max(&self) -> i64 {
        self.blocks.iter().map(|b| b.1).max().unwrap_or(i64::MIN)
    }

    /// The time-ordered runs of the segment that may hold a timestamp in
    /// `[from, to)`, for a backwards search of the newest matches.
    pub fn chunks(&self, from: i64, to: i64) -> Vec<Chunk> {
        let mut out = Vec::new();
        for &(first, end) in &self.chunks {
            // bound[i]: the largest timestamp in range among blocks first..=first+i.
            let mut bound = Vec::with_capacity(end - first);
            let mut hit = Vec::with_capacity(end - first);
            let mut running = i64::MIN;
            let mut last = None;
            for (i, &(lo, hi)) in self.blocks[first..end].iter().enumerate() {
                let overlaps = lo <= hi && hi >= from && lo < to;
                if overlaps {
                    running = running.max(hi.min(to.saturating_sub(1)));
                    last = Some(i);
                }
                bound.push(running);
                hit.push(overlaps);
            }
            if let Some(last) = last {
                bound.truncate(last + 1);
                hit.truncate(last + 1);
                out.push(Chunk {
                    start: first as DocId * BLOCK,
                    end: ((first + last + 1) as DocId * BLOCK).min(self.max_doc),
                    bound,
                    hit,
                });
            }
        }
        out
    }

    /// `(first doc, end doc, min, max)` of each block.
    pub fn blocks(&self) -> impl Iterator<Item = (DocId, DocId, i64, i64)> + '_ {
        self.blocks.iter().enumerate().map(|(b, &(lo, hi))| {
            let start = b as u32 * BLOCK;
            (start, (start + BLOCK).min(self.max_doc), lo, hi)
        })
    }

    /// `(first doc, end doc, seq bounds)` of each block.
    pub fn seq_blocks(&self) -> impl Iterator<Item = (DocId, DocId, SeqBlock)> + '_ {
        self.seqs.iter().enumerate().map(|(b, &s)| {
            let start = b as u32 * BLOCK;
            (start, (start + BLOCK).min(self.max_doc), s)
        })
    }

    /// The document runs of the segment whose timestamp lies in `[from, to)`.
    fn runs(&self, from: i64, to: i64) -> Vec<(DocId, DocId)> {
        let mut runs: Vec<(DocId, DocId)> = Vec::new();
        let mut push = |a: DocId, b: DocId| match runs.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => runs.push((a, b)),
        };
        let (mut docs, mut vals) = (Vec::new(), Vec::new());
        for (start, end, lo, hi) in self.blocks() {
            if hi < from || lo >= to || lo > hi {
                continue;
            }
            if lo >= from && hi < to {
                push(start, end);
                continue;
            }
            vals.clear();
            vals.resize((end - start) as usize, None);
            read_block(&self.ts, start, &mut docs, &mut vals);
            for (i, v) in vals.iter().enumerate() {
                if let Some(t) = v
                    && (from..to).contains(t)
                {
                    push(start + i as u32, start + i as u32 + 1);
                }
            }
        }
        runs
    }
}

/// A time-ordered run of documents `[start, end)` of a segment, limited to
/// the blocks that may hold a timestamp of a range.
#[derive(Debug)]
pub struct Chunk {
    /// First document.
    pub start: DocId,
    /// End (exclusive) of the last block that may match.
    pub end: DocId,
    /// Per block from `start`: the largest timestamp in range up to it.
    bound: Vec<i64>,
    /// Per block from `start`: whether it may hold a timestamp in range.
    hit: Vec<bool>,
}

impl Chunk {
    /// The window `[lo, hi)` to search before document `before`: it ends
    /// with the last block before `before` that may match and spans `blocks`
    /// such blocks (fewer at the start of the chunk). `None` when no block
    /// before `before` may match.
    pub fn window(&self, before: DocId, blocks: usize) -> Option<(DocId, DocId)> {
        let mut b = (before.saturating_sub(self.start)).div_ceil(BLOCK) as usize;
        b = b.min(self.hit.len());
        while b > 0 && !self.hit[b - 1] {
            b -= 1;
        }
        if b == 0 {
            return None;
        }
        let hi = (self.start + b as DocId * BLOCK).min(self.end).min(before);
        let mut seen = 0;
        while b > 0 && seen < blocks {
            b -= 1;
            if self.hit[b] {
                seen += 1;
            }
        }
        Some((self.start + b as DocId * BLOCK, hi))
    }

    /// The largest timestamp in range among documents `start..doc`.
    pub fn max_before(&self, doc: DocId) -> i64 {
        if doc <= self.start {
            return i64::MIN;
        }
        self.bound[((doc - 1 - self.start) / BLOCK) as usize]
    }

    /// The largest timestamp in range of the chunk.
    pub fn max(&self) -> i64 {
        self.bound.last().copied().unwrap_or(i64::MIN)
    }
}

/// The [`SegmentTimes`] of the segments of the current searchers.
#[derive(Debug, Default)]
pub struct TimeCache {
    map: Mutex<HashMap<SegmentId, Arc<SegmentTimes>>>,
}

/// The summaries of every segment of one searcher.
pub type Times = Arc<HashMap<SegmentId, Arc<SegmentTimes>>>;

impl TimeCache {
    /// Segments summarised.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The summaries of `searcher`'s segments, computing the missing ones and
    /// forgetting segments that are no longer searchable.
    pub fn of(&self, searcher: &Searcher) -> Result<Times, Error> {
        let known: HashMap<SegmentId, Arc<SegmentTimes>> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            searcher
                .segment_readers()
                .iter()
                .filter_map(|r| {
                    map.get(&r.segment_id())
                        .map(|t| (r.segment_id(), t.clone()))
                })
                .collect()
        };
        let mut out = known;
        for r in searcher.segment_readers() {
            if let std::collections::hash_map::Entry::Vacant(e) = out.entry(r.segment_id()) {
                e.insert(Arc::new(SegmentTimes::compute(r)?));
            }
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Segments of older searchers may still be in use elsewhere; keep
        // the cache bounded by what the newest searcher holds.
        map.retain(|id, _| out.contains_key(id));
        for (id, t) in &out {
            map.entry(*id).or_insert_with(|| t.clone());
        }
        Ok(Arc::new(out))
    }
}

/// As a reader's warmer, computes the summaries of a searcher's new segments
/// before the reload that brings them is published (on the reloading
/// thread: the indexer's, after its commits and merges), so that the first
/// query after a large merge does not pay for them.
impl tantivy::Warmer for TimeCache {
    fn warm(&self, searcher: &Searcher) -> tantivy::Result<()> {
        // A failure here must not fail the commit: the query that needs the
        // summary computes it (and reports the error) itself.
        if let Err(e) = self.of(searcher) {
            tracing::warn!(error = %e, "computing the time summaries of new segments");
        }
        Ok(())
    }

    /// `of` already keeps only the newest searcher's segments.
    fn garbage_collect(&self, _live: &[&tantivy::SearcherGeneration]) {}
}

/// The summary of `reader`'s segment: from `times`, or computed when the
/// segment is not in it.
pub fn of_segment(times: &Times, reader: &SegmentReader) -> Result<Arc<SegmentTimes>, Error> {
    match times.get(&reader.segment_id()) {
        Some(t) => Ok(t.clone()),
        None => Ok(Arc::new(SegmentTimes::compute(reader)?)),
    }
}

/// Documents whose `timestamp` (µs) lies in `[from, to)`.
#[derive(Clone, Debug)]
pub struct TimeRange {
    from: i64,
    to: i64,
    times: Times,
}

impl TimeRange {
    /// `[from, to)` in µs, with the summaries of the searcher it runs on.
    pub fn new(from: Option<i64>, to: Option<i64>, times: Times) -> TimeRange {
        TimeRange {
            from: from.unwrap_or(i64::MIN),
            to: to.unwrap_or(i64::MAX),
            times,
        }
    }
}

impl Query for TimeRange {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for TimeRange {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let runs = of_segment(&self.times, reader)
            .map_err(to_tantivy)?
            .runs(self.from, self.to);
        Ok(Box::new(Runs::new(runs, boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut s = self.scorer(reader, 1.0)?;
        if s.seek(doc) == doc {
            Ok(Explanation::new("TimeRange", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} is outside the time range"
            )))
        }
    }
}

fn to_tantivy(e: Error) -> tantivy::TantivyError {
    tantivy::TantivyError::InternalError(e.to_string())
}

/// A doc set made of sorted, disjoint runs `[start, end)`.
struct Runs {
    runs: Vec<(DocId, DocId)>,
    i: usize,
    doc: DocId,
    boost: Score,
}

impl Runs {
    fn new(runs: Vec<(DocId, DocId)>, boost: Score) -> Runs {
        let doc = runs.first().map_or(TERMINATED, |r| r.0);
        Runs {
            runs,
            i: 0,
            doc,
            boost,
        }
    }
}

impl DocSet for Runs {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        self.doc += 1;
        if self.doc >= self.runs[self.i].1 {
            self.i += 1;
            self.doc = self.runs.get(self.i).map_or(TERMINATED, |r| r.0);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        if target < self.runs[self.i].1 {
            self.doc = target;
            return target;
        }
        self.i += self.runs[self.i..].partition_point(|r| r.1 <= target);
        self.doc = self
            .runs
            .get(self.i)
            .map_or(TERMINATED, |r| r.0.max(target));
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.runs.iter().map(|r| r.1 - r.0).sum()
    }

    fn count_including_deleted(&mut self) -> u32 {
        if self.doc == TERMINATED {
            return 0;
        }
        let rest: u32 = self.runs[self.i + 1..].iter().map(|r| r.1 - r.0).sum();
        let n = self.runs[self.i].1 - self.doc + rest;
        self.doc = TERMINATED;
        self.i = self.runs.len();
        n
    }
}

impl Scorer for Runs {
    fn score(&mut self) -> Score {
        self.boost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut r: Runs) -> Vec<DocId> {
        let mut v = Vec::new();
        while r.doc() != TERMINATED {
            v.push(r.doc());
            r.advance();
        }
        v
    }

    #[test]
    fn runs_iterate_seek_and_count() {
        let runs = vec![(2, 4), (10, 11), (20, 23)];
        assert_eq!(
            collect(Runs::new(runs.clone(), 1.0)),
            vec![2, 3, 10, 20, 21, 22]
        );
        let mut r = Runs::new(runs.clone(), 1.0);
        assert_eq!(r.seek(3), 3);
        assert_eq!(r.seek(5), 10);
        assert_eq!(r.seek(15), 20);
        assert_eq!(r.seek(21), 21);
        assert_eq!(r.count_including_deleted(), 2);
        assert_eq!(r.doc(), TERMINATED);
        let mut r = Runs::new(runs.clone(), 1.0);
        assert_eq!(r.seek(23), TERMINATED);
        assert_eq!(r.advance(), TERMINATED);
        assert_eq!(Runs::new(runs, 1.0).size_hint(), 6);
        assert_eq!(Runs::new(Vec::new(), 1.0).doc(), TERMINATED);
    }
}
