//! `GET /health` and `GET /metrics`: open to anyone (no key), for load
//! balancers and Prometheus.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
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

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "ops",
    summary = "Health: index lag and the state of the keys",
    responses((status = 200, description = "Always 200 while the server is up", body = Health)),
)]
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
    let replication = state.replication.get();
    let replication_lag = replication.map_or(0.0, |r| r.lag_seconds());
    Ok(warp::reply::json(&Health {
        status: if keys.state != "ok" {
            HealthStatus::Degraded
        } else if ix.seconds >= LAGGING_SECONDS || replication_lag >= LAGGING_SECONDS {
            HealthStatus::Lagging
        } else {
            HealthStatus::Ok
        },
        replication: replication.map(|r| r.health()),
        checkpoints: state.checkpoints.get().map(|c| c.health()),
        index: IndexHealth {
            lag_events: ix.lag.events,
            lag_events_exact: ix.lag.exact,
            lag_bytes: ix.lag.bytes,
            lag_seconds: ix.seconds,
            last_commit,
            documents: ix.documents,
            rebuilds: state.indexer.stats().rebuilds.load(Ordering::Relaxed),
        },
        keys: KeysHealth {
            state: keys.state,
            active: keys.active,
            message: keys.message,
            since: crate::event::format_timestamp(&keys.since),
        },
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response())
}

/// The body of `GET /health` (always 200: the server is up).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `degraded` while no key is accepted, else `lagging` while the index
    /// or the replication (the oldest event not yet published) is 30 s or
    /// more behind, else `ok`.
    status: HealthStatus,
    /// How far the index is behind the day files.
    index: IndexHealth,
    /// The state of the keys file.
    keys: KeysHealth,
    /// Replication through NATS (absent when off).
    #[serde(skip_serializing_if = "Option::is_none")]
    replication: Option<super::replication::ReplicationHealth>,
    /// Signed checkpoints and their delivery (absent when off).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoints: Option<super::checkpoints::CheckpointHealth>,
    /// The server's version.
    version: &'static str,
}

/// The overall state in `/health`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthStatus {
    /// Keys accepted, index within 30 s.
    Ok,
    /// The index, or the replication, is 30 s or more behind.
    Lagging,
    /// No key is accepted (the keys file is missing or unusable).
    Degraded,
}

/// The index part of `/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct IndexHealth {
    /// Events on disk not yet searchable (extrapolated past the first 4
    /// MiB of backlog: see `lag_events_exact`).
    lag_events: u64,
    /// Whether `lag_events` was counted rather than extrapolated.
    lag_events_exact: bool,
    /// Bytes of day files not yet indexed (exact).
    lag_bytes: u64,
    /// 0 when caught up, else the age of the last index commit.
    #[schema(minimum = 0)]
    lag_seconds: f64,
    /// When the index last committed (`null` before its first commit).
    #[schema(required = true, format = DateTime)]
    last_commit: Option<String>,
    /// Events in the index.
    documents: u64,
    /// Times the indexer rebuilt a deleted or outdated index.
    rebuilds: u64,
}

/// The keys part of `/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeysHealth {
    /// `ok`, `missing` (the keys file does not exist) or `unavailable`
    /// (it cannot be used).
    #[schema(pattern = "^(ok|missing|unavailable)$")]
    state: &'static str,
    /// Keys that authenticate now.
    active: usize,
    /// What is wrong (without the file's path); `null` when `ok`.
    #[schema(required = true)]
    message: Option<String>,
    /// When the keys in force, or the failure, were loaded.
    #[schema(format = DateTime)]
    since: String,
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content((String = "text/plain")))),
)]
pub(crate) async fn metrics(state: Arc<State>) -> Result<Response, ApiError> {
    let ix = index_lag(&state).await?;
    let counters = state.log.counters();
    if let Some(r) = state.replication.get() {
        r.mirror();
    }
    if let Some(c) = state.checkpoints.get() {
        c.mirror();
    }
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
