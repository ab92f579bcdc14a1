//! Statistics for the query filters, computed in the index from fast fields
//! and term statistics (never by loading events).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::query::{EnableScoring, Weight};
use tantivy::schema::Field;
use tantivy::{DocId, DocSet, SegmentReader, TERMINATED, Term};

use super::query::Query;
use super::schema::Fields;
use super::timeline::{self, SegmentTimes};
use super::{Error, View};

/// One histogram bucket.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Bucket {
    /// Start of the bucket (RFC 3339 UTC).
    #[schema(format = DateTime)]
    pub start: String,
    /// Events in it.
    pub count: u64,
}

/// The body of `GET /events/stats` and `evlog stats --format json`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StatsResponse {
    /// Matching events.
    pub total: u64,
    /// Count per event type.
    pub by_type: BTreeMap<String, u64>,
    /// Count per status.
    pub by_status: BTreeMap<String, u64>,
    /// Count per level.
    pub by_level: BTreeMap<String, u64>,
    /// Distinct users (exact).
    pub unique_users: u64,
    /// Mean `duration_ms` of the events that have one; null if none has.
    #[schema(required = true)]
    pub avg_duration_ms: Option<f64>,
    /// Median `duration_ms`.
    #[schema(required = true)]
    pub p50_duration_ms: Option<f64>,
    /// 95th percentile of `duration_ms`.
    #[schema(required = true)]
    pub p95_duration_ms: Option<f64>,
    /// 99th percentile of `duration_ms`.
    #[schema(required = true)]
    pub p99_duration_ms: Option<f64>,
    /// Failures / total (0 when there are no events).
    pub error_rate: f64,
    /// `hour` or `day`.
    #[schema(pattern = "^(hour|day)$")]
    pub histogram_interval: String,
    /// Counts per interval, oldest first.
    pub histogram: Vec<Bucket>,
    /// The day queried, when the range is a day.
    #[schema(required = true, format = Date)]
    pub date: Option<String>,
    /// The filters in effect.
    #[schema(value_type = Object)]
    pub filters_applied: Map<String, Value>,
}

/// Computes the statistics of the events matching `query` (paging
/// ignored), on the searcher of `view`.
///
/// One pass over the fast fields of the matching documents, in blocks. A
/// segment that the filters cover whole (only a time range, containing the
/// whole segment, and no deleted documents) is not even read document by
/// document: its counts per type, status and level are the document
/// frequencies of the inverted index, its users the terms of `user_id`, and
/// its histogram comes from the block summaries of [`super::timeline`].
/// Open events (`resolved=false`) take the same path: the segment's counts
/// less those of its resolved documents, which are few (read one by one).
pub(crate) fn stats(
    view: &View,
    f: &Fields,
    query: &Query,
    now: DateTime<Utc>,
) -> Result<StatsResponse, Error> {
    query.validate()?;
    let (searcher, times) = (&view.searcher, &view.times);
    let (from, to, day) = query.range(now);
    let span = match (from, to) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::days(30),
    };
    let hourly = span <= Duration::days(2);
    let interval: i64 = if hourly {
        3_600_000_000
    } else {
        86_400_000_000
    };
    let weight = query
        .to_tantivy(f, view, now)
        .weight(EnableScoring::disabled_from_searcher(searcher))
        .map_err(Error::tantivy)?;
    // The tenant filter covers a segment whole when every document of it
    // is of that tenant (one tenant, the usual case: its term in each);
    // `resolved=false` does, less the resolved documents.
    let only_range_and_tenant = query.event_types.is_empty()
        && query.status.is_none()
        && query.level.is_none()
        && query.user_id.is_none()
        && query.request_id.is_none()
        && query.source.is_none()
        && query.resolved != Some(true)
        && query.q.is_none()
        && query.after_seq.is_none();
    let (lo, hi) = (
        from.map_or(i64::MIN, |t| t.timestamp_micros()),
        to.map_or(i64::MAX, |t| t.timestamp_micros()),
    );
    let mut acc = Acc::new(interval);
    for r in searcher.segment_readers() {
        let st = timeline::of_segment(times, r)?;
        let whole = only_range_and_tenant
            && r.alive_bitset().is_none()
            && whole_tenant(r, f, query.tenant.as_deref())?
            && lo <= st.min()
            && st.max() < hi
            && st.timestamps().get_cardinality() == Cardinality::Full;
        if whole {
            let resolved = match query.resolved {
                Some(false) => view.resolutions.docs_in(r.segment_id()),
                _ => &[],
            };
            acc.whole_segment(r, f, &st, resolved)?;
        } else {
            acc.matching(r, &st, &*weight)?;
        }
    }
    Ok(acc.finish(
        hourly,
        day.map(|d| d.to_string()),
        query.filters_applied(now),
    ))
}

/// Whether every document of the segment is of `tenant` (any: yes).
fn whole_tenant(r: &SegmentReader, f: &Fields, tenant: Option<&str>) -> Result<bool, Error> {
    let Some(t) = tenant else { return Ok(true) };
    let n = r
        .inverted_index(f.tenant)
        .map_err(Error::tantivy)?
        .doc_freq(&Term::from_field_text(f.tenant, t))
        .map_err(Error::tantivy)?;
    Ok(n == r.max_doc())
}

/// Buckets of the duration sketch: sign, exponent and the top 7 mantissa
/// bits of an f64 (each bucket spans less than 0.8% of its values).
const SKETCH_SHIFT: u32 = 45;

/// Documents per fast-field read.
const BATCH: usize = 4096;

/// The statistics under construction.
struct Acc {
    interval: i64,
    total: u64,
    by_type: HashMap<String, u64>,
    by_status: HashMap<String, u64>,
    by_level: HashMap<String, u64>,
    users: HashSet<Vec<u8>>,
    dur_count: u64,
    dur_sum: f64,
    dur_min: f64,
    dur_max: f64,
    /// Counts per sketch bucket (allocated on the first duration).
    sketch: Vec<u64>,
    /// Counts per histogram bucket start (µs).
    hist: BTreeMap<i64, u64>,
}

impl Acc {
    fn new(interval: i64) -> Acc {
        Acc {
            interval,
            total: 0,
            by_type: HashMap::new(),
            by_status: HashMap::new(),
            by_level: HashMap::new(),
            users: HashSet::new(),
            dur_count: 0,
            dur_sum: 0.0,
            dur_min: f64::INFINITY,
            dur_max: f64::NEG_INFINITY,
            sketch: Vec::new(),
            hist: BTreeMap::new(),
        }
    }

    fn bucket(&self, ts: i64) -> i64 {
        ts.div_euclid(self.interval) * self.interval
    }

    fn duration(&mut self, d: f64) {
        if !d.is_finite() {
            return;
        }
        if self.sketch.is_empty() {
            self.sketch = vec![0; (u64::MAX >> SKETCH_SHIFT) as usize + 1];
        }
        self.dur_count += 1;
        self.dur_sum += d;
        self.dur_min = self.dur_min.min(d);
        self.dur_max = self.dur_max.max(d);
        // Durations are validated non-negative; a negative one counts as 0.
        let bits = if d > 0.0 { d.to_bits() } else { 0 };
        self.sketch[(bits >> SKETCH_SHIFT) as usize] += 1;
    }

    /// Every document of the segment matches, except `left_out` (sorted,
    /// few: the resolved ones under `resolved=false`), whose values are
    /// read one by one and subtracted.
    fn whole_segment(
        &mut self,
        r: &SegmentReader,
        f: &Fields,
        st: &SegmentTimes,
        left_out: &[DocId],
    ) -> Result<(), Error> {
        self.total += u64::from(r.num_docs()) - left_out.len() as u64;
        let ff = r.fast_fields();
        // Per field, the left-out documents per term.
        let mut less: [HashMap<Vec<u8>, u64>; 4] = Default::default();
        if !left_out.is_empty() {
            let mut ords = vec![None; left_out.len()];
            for (name, out) in ["event_type", "status", "level", "user_id"]
                .into_iter()
                .zip(less.iter_mut())
            {
                let Some(col) = ff.str(name).map_err(Error::tantivy)? else {
                    continue;
                };
                ords.fill(None);
                col.ords().first_vals(left_out, &mut ords);
                let mut per_ord: BTreeMap<u64, u64> = BTreeMap::new();
                for o in ords.iter().flatten() {
                    *per_ord.entry(*o).or_default() += 1;
                }
                // One pass over the dictionary (a lookup per ordinal would
                // decode a block each).
                let sorted: Vec<u64> = per_ord.keys().copied().collect();
                let mut counts = per_ord.values();
                col.dictionary()
                    .sorted_ords_to_term_cb(&sorted, |term| {
                        if let Some(n) = counts.next() {
                            out.insert(term.to_vec(), *n);
                        }
                    })
                    .map_err(|e| Error::io("index", e))?;
            }
        }
        let [less_type, less_status, less_level, less_users] = &less;
        for (field, out, less) in [
            (f.event_type, &mut self.by_type, less_type),
            (f.status, &mut self.by_status, less_status),
            (f.level, &mut self.by_level, less_level),
        ] {
            each_term(r, field, |term, n| {
                let n = n - less.get(term).copied().unwrap_or(0);
                if n > 0 {
                    *out.entry(String::from_utf8_lossy(term).into_owned())
                        .or_default() += n;
                }
            })?;
        }
        let users = &mut self.users;
        each_term(r, f.user_id, |term, n| {
            if n > less_users.get(term).copied().unwrap_or(0) && !users.contains(term) {
                users.insert(term.to_vec());
            }
        })?;
        let dur = ff.f64("duration_ms").map_err(Error::tantivy)?;
        // The value rows of the left-out documents, in order.
        let skip: Vec<u32> = left_out
            .iter()
            .flat_map(|&d| dur.index.value_row_ids(d))
            .collect();
        let mut skip = skip.into_iter().peekable();
        let n = dur.values.num_vals();
        let mut buf = vec![0f64; BATCH];
        let mut start = 0u32;
        while start < n {
            let len = (n - start).min(BATCH as u32) as usize;
            dur.values.get_range(u64::from(start), &mut buf[..len]);
            for (row, &d) in (start..).zip(&buf[..len]) {
                if skip.next_if_eq(&row).is_none() {
                    self.duration(d);
                }
            }
            start += len as u32;
        }
        let ts = st.timestamps();
        let full = ts.get_cardinality() == Cardinality::Full;
        let mut docs = Vec::with_capacity(timeline::BLOCK as usize);
        let mut rest = left_out;
        for (start, end, lo, hi) in st.blocks() {
            let (here, after) = rest.split_at(rest.partition_point(|&d| d < end));
            rest = after;
            if full && lo <= hi && self.bucket(lo) == self.bucket(hi) {
                let n = u64::from(end - start) - here.len() as u64;
                if n > 0 {
                    *self.hist.entry(self.bucket(lo)).or_default() += n;
                }
            } else {
                docs.clear();
                docs.extend((start..end).filter(|d| here.binary_search(d).is_err()));
                self.timestamps(ts, &docs);
            }
        }
        Ok(())
    }

    fn timestamps(&mut self, col: &Column<tantivy::DateTime>, docs: &[DocId]) {
        let mut vals = vec![None; docs.len()];
        col.first_vals(docs, &mut vals);
        for t in vals.into_iter().flatten() {
            *self
                .hist
                .entry(self.bucket(t.into_timestamp_micros()))
                .or_default() += 1;
        }
    }

    /// The documents of `weight` in the segment, read in batches.
    fn matching(
        &mut self,
        r: &SegmentReader,
        st: &SegmentTimes,
        weight: &dyn Weight,
    ) -> Result<(), Error> {
        let ff = r.fast_fields();
        let str_col = |name: &str| -> Result<Option<StrColumn>, Error> {
            ff.str(name).map_err(Error::tantivy)
        };
        let mut cols: Vec<(Option<StrColumn>, Vec<u64>)> =
            ["event_type", "status", "level", "user_id"]
                .iter()
                .map(|n| {
                    let c = str_col(n)?;
                    let terms = c.as_ref().map_or(0, |c| c.num_terms());
                    Ok((c, vec![0u64; terms]))
                })
                .collect::<Result<_, Error>>()?;
        let dur = ff.f64("duration_ms").map_err(Error::tantivy)?;
        let ts = st.timestamps();
        let alive = r.alive_bitset();
        let mut scorer = weight.scorer(r, 1.0).map_err(Error::tantivy)?;
        let mut docs: Vec<DocId> = Vec::with_capacity(BATCH);
        let mut ords = vec![None; BATCH];
        let mut durs = vec![None; BATCH];
        let mut doc = scorer.doc();
        loop {
            docs.clear();
            while doc != TERMINATED && docs.len() < BATCH {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    docs.push(doc);
                }
                doc = scorer.advance();
            }
            if docs.is_empty() {
                break;
            }
            self.total += docs.len() as u64;
            for (col, counts) in cols.iter_mut() {
                if let Some(col) = col {
                    // An empty column writes nothing: no stale ordinals.
                    ords[..docs.len()].fill(None);
                    col.ords().first_vals(&docs, &mut ords[..docs.len()]);
                    for o in ords[..docs.len()].iter().flatten() {
                        counts[*o as usize] += 1;
                    }
                }
            }
            durs[..docs.len()].fill(None);
            dur.first_vals(&docs, &mut durs[..docs.len()]);
            for d in durs[..docs.len()].iter().flatten() {
                self.duration(*d);
            }
            self.timestamps(ts, &docs);
        }
        let mut name = String::new();
        let [ty, status, level, users] = <[_; 4]>::try_from(cols).expect("four columns");
        for ((col, counts), out) in [
            (ty, &mut self.by_type),
            (status, &mut self.by_status),
            (level, &mut self.by_level),
        ] {
            let Some(col) = col else { continue };
            for (ord, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                col.ord_to_str(ord as u64, &mut name)
                    .map_err(|e| Error::io("index", e))?;
                *out.entry(name.clone()).or_default() += n;
            }
        }
        if let (Some(col), counts) = users {
            let present: Vec<u64> = (0..counts.len() as u64)
                .filter(|&o| counts[o as usize] > 0)
                .collect();
            let set = &mut self.users;
            col.dictionary()
                .sorted_ords_to_term_cb(&present, |term| {
                    if !set.contains(term) {
                        set.insert(term.to_vec());
                    }
                })
                .map_err(|e| Error::io("index", e))?;
        }
        Ok(())
    }

    /// The nearest-rank percentile `p` of the durations, clamped to the
    /// smallest and largest duration (a bucket's midpoint may lie outside).
    fn percentile(&self, p: f64) -> Option<f64> {
        if self.dur_count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.dur_count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &n) in self.sketch.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let lo = f64::from_bits((b as u64) << SKETCH_SHIFT);
                let hi = f64::from_bits(((b as u64) + 1) << SKETCH_SHIFT);
                let mid = if hi.is_finite() { (lo + hi) / 2.0 } else { lo };
                return Some(mid.clamp(self.dur_min, self.dur_max));
            }
        }
        Some(self.dur_max)
    }

    fn finish(
        self,
        hourly: bool,
        date: Option<String>,
        filters_applied: Map<String, Value>,
    ) -> StatsResponse {
        let sorted = |m: HashMap<String, u64>| -> BTreeMap<String, u64> { m.into_iter().collect() };
        let failures = self.by_status.get("failure").copied().unwrap_or(0);
        StatsResponse {
            total: self.total,
            unique_users: self.users.len() as u64,
            avg_duration_ms: (self.dur_count > 0).then(|| self.dur_sum / self.dur_count as f64),
            p50_duration_ms: self.percentile(50.0),
            p95_duration_ms: self.percentile(95.0),
            p99_duration_ms: self.percentile(99.0),
            error_rate: if self.total == 0 {
                0.0
            } else {
                failures as f64 / self.total as f64
            },
            histogram_interval: if hourly { "hour" } else { "day" }.into(),
            histogram: self
                .hist
                .iter()
                .filter_map(|(&start, &count)| {
                    Some(Bucket {
                        start: crate::event::format_timestamp(
                            &DateTime::<Utc>::from_timestamp_micros(start)?,
                        ),
                        count,
                    })
                })
                .collect(),
            by_type: sorted(self.by_type),
            by_status: sorted(self.by_status),
            by_level: sorted(self.by_level),
            date,
            filters_applied,
        }
    }
}

/// Calls `each(term, doc_freq)` for every term of `field` in the segment.
fn each_term(
    r: &SegmentReader,
    field: Field,
    mut each: impl FnMut(&[u8], u64),
) -> Result<(), Error> {
    let ix = r.inverted_index(field).map_err(Error::tantivy)?;
    let mut stream = ix.terms().stream().map_err(|e| Error::io("index", e))?;
    while stream.advance() {
        each(stream.key(), u64::from(stream.value().doc_freq));
    }
    Ok(())
}
