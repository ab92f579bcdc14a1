//! Statistics for the query filters, computed in the index with tantivy
//! aggregations over fast fields (never by loading events).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tantivy::Searcher;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::Count;

use super::Error;
use super::query::Query;
use super::schema::Fields;

/// One histogram bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (RFC 3339 UTC).
    pub start: String,
    /// Events in it.
    pub count: u64,
}

/// The body of `GET /events/stats` and `evlog stats --format json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsResponse {
    /// Matching events.
    pub total: u64,
    /// Count per event type.
    pub by_type: BTreeMap<String, u64>,
    /// Count per status.
    pub by_status: BTreeMap<String, u64>,
    /// Count per level.
    pub by_level: BTreeMap<String, u64>,
    /// Distinct users (HyperLogLog: exact for small counts, ~1% beyond).
    pub unique_users: u64,
    /// Mean `duration_ms` of the events that have one; null if none has.
    pub avg_duration_ms: Option<f64>,
    /// Median `duration_ms`.
    pub p50_duration_ms: Option<f64>,
    /// 95th percentile of `duration_ms`.
    pub p95_duration_ms: Option<f64>,
    /// 99th percentile of `duration_ms`.
    pub p99_duration_ms: Option<f64>,
    /// Failures / total (0 when there are no events).
    pub error_rate: f64,
    /// `hour` or `day`.
    pub histogram_interval: String,
    /// Counts per interval, oldest first.
    pub histogram: Vec<Bucket>,
    /// The day queried, when the range is a day.
    pub date: Option<String>,
    /// The filters in effect.
    pub filters_applied: Map<String, Value>,
}

/// Computes the statistics of the events matching `query` (paging ignored).
pub fn stats(
    searcher: &Searcher,
    f: &Fields,
    query: &Query,
    now: DateTime<Utc>,
) -> Result<StatsResponse, Error> {
    query.validate()?;
    let q = query.to_tantivy(f, now);
    let (from, to, day) = query.range(now);
    let span = match (from, to) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::days(30),
    };
    let hourly = span <= Duration::days(2);
    let interval = if hourly { "1h" } else { "1d" };
    let req: Aggregations = serde_json::from_value(json!({
        "by_type": {"terms": {"field": "event_type", "size": 10000}},
        "by_status": {"terms": {"field": "status", "size": 16}},
        "by_level": {"terms": {"field": "level", "size": 16}},
        "users": {"cardinality": {"field": "user_id"}},
        "dur": {"stats": {"field": "duration_ms"}},
        "pct": {"percentiles": {"field": "duration_ms", "percents": [50.0, 95.0, 99.0], "keyed": true}},
        "hist": {"date_histogram": {"field": "timestamp", "fixed_interval": interval}},
    }))
    .map_err(|e| Error::Tantivy(format!("aggregation request: {e}")))?;
    let collector = AggregationCollector::from_aggs(
        req,
        AggContextParams::new(
            AggregationLimitsGuard::default(),
            searcher.index().tokenizers().clone(),
        ),
    );
    let (total, aggs) = searcher
        .search(&*q, &(Count, collector))
        .map_err(Error::tantivy)?;
    let v = serde_json::to_value(&aggs).map_err(|e| Error::Tantivy(e.to_string()))?;
    let terms = |name: &str| -> BTreeMap<String, u64> {
        v[name]["buckets"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(|x| {
                        Some((x["key"].as_str()?.to_string(), x["doc_count"].as_u64()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let by_status = terms("by_status");
    let dur_count = v["dur"]["count"].as_u64().unwrap_or(0);
    let num = |x: &Value| x.as_f64().filter(|f| f.is_finite());
    // The sketch answers within 1% of a value, which can fall outside the
    // values themselves (one duration of 0.25 gave a p50 of 0.249): clamp.
    let (dur_min, dur_max) = (num(&v["dur"]["min"]), num(&v["dur"]["max"]));
    let pct = |p: &str| {
        if dur_count == 0 {
            None
        } else {
            num(&v["pct"]["values"][p]).map(|x| match (dur_min, dur_max) {
                (Some(lo), Some(hi)) if lo <= hi => x.clamp(lo, hi),
                _ => x,
            })
        }
    };
    let histogram = v["hist"]["buckets"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|x| {
                    let ms = x["key"].as_f64()?;
                    let start = DateTime::<Utc>::from_timestamp_millis(ms as i64)?;
                    Some(Bucket {
                        start: crate::event::format_timestamp(&start),
                        count: x["doc_count"].as_u64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let total = total as u64;
    let failures = by_status.get("failure").copied().unwrap_or(0);
    Ok(StatsResponse {
        total,
        by_type: terms("by_type"),
        by_status,
        by_level: terms("by_level"),
        unique_users: v["users"]["value"].as_f64().map_or(0, |x| x.round() as u64),
        avg_duration_ms: if dur_count == 0 {
            None
        } else {
            num(&v["dur"]["avg"])
        },
        p50_duration_ms: pct("50.0"),
        p95_duration_ms: pct("95.0"),
        p99_duration_ms: pct("99.0"),
        error_rate: if total == 0 {
            0.0
        } else {
            failures as f64 / total as f64
        },
        histogram_interval: if hourly { "hour" } else { "day" }.into(),
        histogram,
        date: day.map(|d| d.to_string()),
        filters_applied: query.filters_applied(now),
    })
}
