//! Signed checkpoints in the server: the schedule and the sinks run as a
//! task beside it ([`crate::checkpoint::deliver`]), show their state in
//! `/health` and `/metrics`, and `GET /admin/checkpoints` lists them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use warp::reply::{Reply, Response};

use super::access::Ctx;
use super::metrics::{counter, mirror};
use super::reject::ApiError;
use super::{State, blocking};
use crate::checkpoint::deliver::Status;
use crate::checkpoint::{self, Checkpoint};

/// The checkpoint task of a server.
pub(crate) struct Checkpoints {
    status: Arc<Status>,
    /// Ends the task, which then writes a last checkpoint.
    stop: tokio::sync::watch::Sender<bool>,
    /// Says when the task has ended.
    done: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    interval_seconds: u64,
    metrics: CheckpointMetrics,
}

struct CheckpointMetrics {
    written: IntCounter,
    delivered: IntCounterVec,
    failures: IntCounterVec,
    pending: IntGaugeVec,
}

impl CheckpointMetrics {
    fn new(r: &Registry) -> CheckpointMetrics {
        let vec = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["sink"]).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let pending = IntGaugeVec::new(
            Opts::new(
                "evlog_checkpoint_pending",
                "Checkpoints not yet delivered to the sink",
            ),
            &["sink"],
        )
        .expect("valid metric");
        r.register(Box::new(pending.clone()))
            .expect("unique metric");
        CheckpointMetrics {
            written: counter(
                r,
                "evlog_checkpoints_written_total",
                "Signed checkpoints written by the server",
            ),
            delivered: vec(
                "evlog_checkpoint_delivered_total",
                "Checkpoints delivered to the sink",
            ),
            failures: vec(
                "evlog_checkpoint_delivery_failures_total",
                "Failed attempts to deliver checkpoints to the sink (retried)",
            ),
            pending,
        }
    }
}

/// The checkpoint part of `/health` (absent when checkpoints are off).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CheckpointHealth {
    /// Seconds between checkpoints (each only when something was appended).
    interval_seconds: u64,
    /// Checkpoints written since start.
    written: u64,
    /// `seq` of the newest checkpoint (`null` before the first).
    #[schema(required = true)]
    last_seq: Option<u64>,
    /// When it was made.
    #[schema(required = true, format = DateTime)]
    last_time: Option<String>,
    /// Why the last write failed (`null` when it did not).
    #[schema(required = true)]
    last_error: Option<String>,
    /// Each sink: `dir:PATH`, `post:URL` or `nats:STREAM`.
    sinks: Vec<SinkHealth>,
}

/// One sink in `/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SinkHealth {
    /// Its name.
    sink: String,
    /// Checkpoints delivered since start.
    delivered: u64,
    /// Checkpoints not yet delivered (retried every 10 s).
    pending: u64,
    /// The last failure (`null` once a delivery succeeds).
    #[schema(required = true)]
    last_error: Option<String>,
}

fn get(m: &std::sync::Mutex<Option<String>>) -> Option<String> {
    m.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Checkpoints {
    /// Starts writing and delivering the checkpoints of `state`'s store.
    pub(crate) fn start(state: &State, settings: checkpoint::deliver::Settings) -> Checkpoints {
        let status = Arc::new(Status::new(&settings.sinks));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let interval_seconds = settings.interval.as_secs();
        let (done_tx, done) = std::sync::mpsc::channel();
        let run = checkpoint::deliver::run(
            state.log.storage_path().to_path_buf(),
            settings,
            status.clone(),
            stopped,
        );
        tokio::spawn(async move {
            run.await;
            let _ = done_tx.send(());
        });
        Checkpoints {
            status,
            stop,
            done: std::sync::Mutex::new(done),
            interval_seconds,
            metrics: CheckpointMetrics::new(state.metrics.registry()),
        }
    }

    /// Stops the task once it has signed the head as it is now and tried
    /// each sink once more; waits for that (10 s at most). Blocks: call it
    /// outside the runtime, whose workers run the task.
    pub(crate) fn finish(&self) {
        let _ = self.stop.send(true);
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if done
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_err()
        {
            tracing::warn!("the last checkpoint was not written within 10 s");
        }
    }

    /// The `/health` part.
    pub(crate) fn health(&self) -> CheckpointHealth {
        let s = &self.status;
        let last = s.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        CheckpointHealth {
            interval_seconds: self.interval_seconds,
            written: s.written.load(Ordering::Relaxed),
            last_seq: last.as_ref().map(|l| l.0),
            last_time: last.map(|l| l.1),
            last_error: get(&s.last_error),
            sinks: s
                .sinks
                .iter()
                .map(|k| SinkHealth {
                    sink: k.name.clone(),
                    delivered: k.delivered.load(Ordering::Relaxed),
                    pending: k.pending.load(Ordering::Relaxed),
                    last_error: get(&k.last_error),
                })
                .collect(),
        }
    }

    /// Brings the metrics up to date (before a scrape).
    pub(crate) fn mirror(&self) {
        let m = &self.metrics;
        mirror(&m.written, self.status.written.load(Ordering::Relaxed));
        for k in &self.status.sinks {
            let l = [k.name.as_str()];
            mirror(
                &m.delivered.with_label_values(&l),
                k.delivered.load(Ordering::Relaxed),
            );
            mirror(
                &m.failures.with_label_values(&l),
                k.failures.load(Ordering::Relaxed),
            );
            m.pending
                .with_label_values(&l)
                .set(k.pending.load(Ordering::Relaxed).min(i64::MAX as u64) as i64);
        }
    }
}

/// The body of `GET /admin/checkpoints`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CheckpointList {
    /// The public key of this server's signing key (`null` when it has
    /// none): the key `evlog verify --public-key` takes.
    #[schema(required = true)]
    public_key: Option<String>,
    /// Checkpoints in the storage directory, all files.
    total: usize,
    /// The newest `limit` of them, oldest first.
    checkpoints: Vec<CheckpointEntry>,
}

/// A checkpoint and where it is stored.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CheckpointEntry {
    #[serde(flatten)]
    checkpoint: Checkpoint,
    /// Its file in `checkpoints/`.
    file: String,
    /// Its 1-based line number.
    line: u64,
}

impl CheckpointEntry {
    fn of(s: checkpoint::Stored) -> CheckpointEntry {
        CheckpointEntry {
            file: s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            line: s.line,
            checkpoint: s.checkpoint,
        }
    }
}

/// Most checkpoints one answer lists.
const MAX_LIMIT: usize = 10_000;
/// Default of `limit`.
const DEFAULT_LIMIT: usize = 100;

#[utoipa::path(
    get,
    path = "/admin/checkpoints",
    operation_id = "checkpoints",
    tag = "admin",
    summary = "The signed checkpoints of this store",
    description = "Lists the newest signed checkpoints in `<storage>/checkpoints/` (oldest \
        first) and the public key that verifies them (README \"Tamper evidence\"). A copy kept \
        off the host is what `evlog verify --checkpoints` checks. All-tenants admin keys only.",
    params((
        "limit" = Option<u32>, Query,
        minimum = 1, maximum = 10000,
        description = "How many of the newest to list (default 100)"
    )),
    responses((status = 200, description = "The checkpoints", body = CheckpointList)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden"]))),
)]
/// `GET /admin/checkpoints[?limit=N]`: all-tenants admin only.
pub(crate) async fn list(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    let mut limit = None;
    for (name, value) in super::params::pairs(&raw)? {
        match name.as_str() {
            "limit" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::param(
                            &name,
                            format!("`{value}` is not a number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
                if limit.replace(n).is_some() {
                    return Err(ApiError::param(&name, "given twice"));
                }
            }
            _ => {
                return Err(ApiError::param(
                    &name,
                    "unknown parameter; this endpoint takes limit",
                ));
            }
        }
    }
    state.require_all_tenants(&ctx, &who, "list the checkpoints")?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let st = state.clone();
    let (all, public_key) = blocking(move || {
        let dir = st.log.storage_path();
        let public_key = checkpoint::key::load(dir)
            .ok()
            .map(|k| checkpoint::key::public_hex(&k));
        match checkpoint::read_dir(&dir.join(checkpoint::DIR)) {
            Ok(read) => Ok((read.checkpoints, public_key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), public_key)),
            Err(e) => Err(ApiError::internal("reading the checkpoints", e)),
        }
    })
    .await??;
    let total = all.len();
    let checkpoints = all
        .into_iter()
        .skip(total.saturating_sub(limit))
        .map(CheckpointEntry::of)
        .collect();
    Ok(warp::reply::json(&CheckpointList {
        public_key,
        total,
        checkpoints,
    })
    .into_response())
}
