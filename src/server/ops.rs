//! `GET /health` and `GET /metrics`: open to anyone (no key), for load
//! balancers and Prometheus.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use warp::reply::{Reply, Response};

use super::metrics::Snapshot;
use super::reject::ApiError;
use super::{State, blocking};
use crate::index::lag::Lag;

/// Index lag above which `/health` says `lagging` (still 200: the server is alive).
const LAGGING_SECONDS: f64 = 30.0;

/// How far the index is behind, in events and seconds.
struct IndexLag {
    lag: Lag,
    seconds: f64,
    last_commit_ms: u64,
    documents: u64,
}

async fn index_lag(state: &Arc<State>) -> Result<IndexLag, ApiError> {
    let st = state.clone();
    let lag = blocking(move || st.search.lag(st.log.storage_path())).await??;
    let last_commit_ms = state.indexer.stats().last_commit_ms.load(Ordering::Relaxed);
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    // While events wait, the lag is the age of what the index shows: since
    // its last commit (or since the server started, before the first).
    let seconds = if lag.events == 0 {
        0.0
    } else {
        now_ms.saturating_sub(last_commit_ms.max(state.started_ms)) as f64 / 1000.0
    };
    Ok(IndexLag {
        lag,
        seconds,
        last_commit_ms,
        documents: state.search.num_docs(),
    })
}

/// `GET /health`: `status` is `degraded` while no key is accepted (the
/// keys file is missing or cannot be used), else `lagging` while the index
/// is 30 s or more behind, else `ok`; 200 in every case (the server is up).
pub(crate) async fn health(state: Arc<State>) -> Result<Response, ApiError> {
    let now = chrono::Utc::now();
    let keys = state.keys.status(now);
    let ix = index_lag(&state).await?;
    let last_commit = (ix.last_commit_ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ix.last_commit_ms as i64))
        .flatten()
        .map(|t| crate::event::format_timestamp(&t));
    Ok(warp::reply::json(&json!({
        "status": if keys.state != "ok" {
            "degraded"
        } else if ix.seconds >= LAGGING_SECONDS {
            "lagging"
        } else {
            "ok"
        },
        "index": {
            "lag_events": ix.lag.events,
            "lag_events_exact": ix.lag.exact,
            "lag_bytes": ix.lag.bytes,
            "lag_seconds": ix.seconds,
            "last_commit": last_commit,
            "documents": ix.documents,
            "rebuilds": state.indexer.stats().rebuilds.load(Ordering::Relaxed),
        },
        "keys": {
            "state": keys.state,
            "active": keys.active,
            "message": keys.message,
            "since": crate::event::format_timestamp(&keys.since),
        },
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response())
}

/// `GET /metrics`.
pub(crate) async fn metrics(state: Arc<State>) -> Result<Response, ApiError> {
    let ix = index_lag(&state).await?;
    let counters = state.log.counters();
    let text = state.metrics.render(&Snapshot {
        appended: counters.appended.load(Ordering::Relaxed),
        group_commits: counters.group_commits.load(Ordering::Relaxed),
        write_failures: counters.write_failures.load(Ordering::Relaxed),
        dropped: state.appender.dropped(),
        indexed: state.indexer.stats().indexed.load(Ordering::Relaxed),
        docs_examined: state.search.docs_examined(),
        lag_events: ix.lag.events,
        lag_seconds: ix.seconds,
    });
    Ok(warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response())
}
