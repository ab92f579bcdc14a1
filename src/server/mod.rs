//! The HTTP server: warp routes on tokio, over the event log and its index.
//!
//! [`Server::new`] starts the in-process tail indexer; [`Server::run`]
//! serves a listener until a shutdown future resolves, then stops
//! accepting, ends live streams and lets in-flight requests finish (an
//! append answers only once durable); [`Server::close`] flushes the server's
//! own events and makes the final index commit.
//!
//! - `append` — `POST /events`; `ingest` — request bodies → events;
//!   `events` — the other `/events` endpoints;
//!   `params` — query strings → [`Query`](crate::index::Query).
//! - `access` — keys, roles and recorded denials; `denials` — their rate
//!   limit per source address or key; `reject` — the JSON errors;
//!   `quota` — what appends in flight hold, in all and per key;
//!   `ratelimit` — requests per key (a token bucket by role).
//! - `ops` — `/health`, `/metrics`; `metrics` — the Prometheus registry.
//! - `admin` — `POST /admin/rotate`, `POST /admin/purge` and the daily rotation.
//! - `checkpoints` — signed checkpoints on a schedule, their sinks, and
//!   `GET /admin/checkpoints`.
//! - `streams` — what ends an open export or live stream: its key's
//!   revocation or expiry, a stalled client; the per-key cap.
//! - `console` — the web console's files at `/` and `/ui/`, `GET /whoami`,
//!   and the security headers of every response.
//! - `routes` — the table of routes ([`ROUTES`]) and the warp filter tree.
//! - `openapi` — the OpenAPI 3.1 document of all this, `GET /openapi.json`.
//!
//! The server sees event, store, index and auth, never tantivy types.

mod access;
mod admin;
mod append;
mod checkpoints;
mod console;
mod denials;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod ingest;
mod metrics;
mod openapi;
mod ops;
mod params;
mod quota;
mod ratelimit;
mod reject;
mod replication;
mod resolve;
mod routes;
mod sse;
mod streams;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

pub use access::ClientAddr;
pub use console::{CONTENT_SECURITY_POLICY, file_names as console_files};
pub use openapi::document as openapi_document;
pub use reject::{ApiError, EventReject};
pub use routes::ROUTES;
pub(crate) use routes::route_of;

pub use crate::limits::Limits;

use crate::auth::{KeyStore, Reload};
use crate::event::{Event, EventType, Level, Status};
use crate::index::{IndexConfig, IndexSearch, IndexerHandle};
use crate::store::{Appender, EventLog};

/// What every handler shares.
pub(crate) struct State {
    log: EventLog,
    search: IndexSearch,
    indexer: IndexerHandle,
    keys: KeyStore,
    /// The server's own events (budgeted denials of keyed requests, the
    /// summaries, start, stop): fire and forget. Keyless requests never
    /// reach this queue (see `denials`).
    appender: Appender,
    /// Rate limit of denials, and queue of those of keyless and bad-key requests.
    denials: denials::Denials,
    metrics: metrics::Metrics,
    limits: Limits,
    /// Append slots and request-body bytes held by appends in flight.
    quota: quota::Quota,
    /// Requests per key (429 `rate_limited`).
    rates: ratelimit::RateLimits,
    /// The `[[dedup]]` rules of `POST /events`, once set.
    dedup: std::sync::OnceLock<Arc<crate::dedup::Dedup>>,
    /// Client-supplied ids of the appends in flight (see `events::claim_ids`).
    /// Shared with the follower of `serve --follow`.
    claimed_ids: crate::replicate::follow::Claims,
    /// The indexer's commit count, bumped after each commit (wakes live streams).
    commits: watch::Receiver<u64>,
    /// Set once the server stops accepting (ends live streams).
    shutdown: watch::Sender<bool>,
    started_ms: u64,
    /// The settings of `POST /admin/rotate`, `POST /admin/purge` and the daily rotation.
    rotation: std::sync::Mutex<crate::settings::RotationSettings>,
    /// Live streams and exports open, per key id (`max_streams_per_key`).
    streams: streams::Open,
    /// The publisher and follower, once started.
    replication: std::sync::OnceLock<replication::Replication>,
    /// The signed checkpoints' schedule and sinks, once started.
    checkpoints: std::sync::OnceLock<checkpoints::Checkpoints>,
}

/// Runs `f` on the blocking pool (the store and the index block).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("a request task", e))
}

/// How much lower the in-process indexer's CPU priority is than the
/// server's (nice increment, Linux): on a saturated machine appends and
/// queries come first and the index lags (see `/health`), catching up when
/// the load drops. Acknowledged events never wait for the index.
pub const INDEXER_NICE: i32 = 10;

/// The evlog HTTP server. Create it inside a tokio runtime.
pub struct Server {
    state: Arc<State>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The indexer could not start (another process indexes this storage?).
    #[error("starting the indexer: {0}")]
    Index(#[from] crate::index::Error),
}

impl Server {
    /// Starts the in-process indexer of `log`'s storage directory and the
    /// housekeeping task (reloads the keys file when it changes, wakes live
    /// streams after each index commit). Must run inside a tokio runtime.
    pub fn new(log: EventLog, keys: KeyStore, limits: Limits) -> Result<Server, StartError> {
        let mut index = IndexConfig::new(log.storage_path());
        index.nice = INDEXER_NICE;
        let indexer = log.start_indexer(index)?;
        let search = indexer.search().clone();
        let (commits_tx, commits) = watch::channel(0u64);
        let metrics = metrics::Metrics::new();
        let denial_stats = denials::DenialStats {
            suppressed: metrics.auth_failures_suppressed.clone(),
            sources: metrics.auth_failure_sources.clone(),
        };
        let rates = ratelimit::RateLimits::new(&limits, metrics.rate_limited.clone());
        let state = Arc::new(State {
            appender: Appender::with_appended_by(log.clone(), crate::event::SERVER_APPENDER),
            denials: denials::Denials::new(log.clone(), &limits, denial_stats),
            search,
            indexer,
            keys,
            metrics,
            quota: quota::Quota::new(&limits),
            rates,
            dedup: std::sync::OnceLock::new(),
            claimed_ids: Arc::default(),
            limits,
            commits,
            shutdown: watch::channel(false).0,
            started_ms: chrono::Utc::now().timestamp_millis().max(0) as u64,
            rotation: std::sync::Mutex::new(crate::settings::RotationSettings::default()),
            streams: streams::Open::default(),
            replication: std::sync::OnceLock::new(),
            checkpoints: std::sync::OnceLock::new(),
            log,
        });
        tokio::spawn(housekeeping(Arc::downgrade(&state), commits_tx));
        tokio::spawn(denials::summarise(Arc::downgrade(&state)));
        Ok(Server { state })
    }

    /// Sets the rotation settings (default:
    /// [`crate::settings::RotationSettings::default`], without the daily
    /// run) and, with `rotate_at`, starts the daily rotation at that time
    /// (UTC) — at once if the last one was missed within `catch_up_grace`.
    /// Call once, inside the runtime.
    pub fn set_rotation(&self, settings: crate::settings::RotationSettings) {
        *self
            .state
            .rotation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = settings;
        if let Some(at) = settings.rotate_at {
            tokio::spawn(admin::schedule(
                Arc::downgrade(&self.state),
                at,
                settings.catch_up_grace,
            ));
        }
    }

    /// Starts replication: with `publish` (the stream, this node's name),
    /// every committed event is published to the stream; with `follow`,
    /// the stream's events are appended here. Both stop with the server.
    /// Call once, inside the runtime; later calls are ignored.
    pub fn start_replication(
        &self,
        publish: Option<(crate::replicate::nats::NatsConfig, String)>,
        follow: Option<crate::replicate::follow::FollowConfig>,
    ) {
        if (publish.is_none() && follow.is_none()) || self.state.replication.get().is_some() {
            return;
        }
        let r = replication::Replication::start(
            &self.state.log,
            &self.state.search,
            &self.state.claimed_ids,
            self.state.metrics.registry(),
            publish,
            follow,
            self.state.shutdown.subscribe(),
        );
        let _ = self.state.replication.set(r);
    }

    /// Starts the signed checkpoints: one at start, every
    /// `settings.interval` and at each UTC day end (each only when
    /// something was appended since the last), one at [`Server::close`]
    /// (which must then run outside the runtime); each delivered
    /// to `settings.sinks`, retried, never blocking an append. Call once,
    /// inside the runtime; later calls are ignored.
    pub fn start_checkpoints(&self, settings: crate::checkpoint::deliver::Settings) {
        if self.state.checkpoints.get().is_none() {
            let c = checkpoints::Checkpoints::start(&self.state, settings);
            let _ = self.state.checkpoints.set(c);
        }
    }

    /// Applies `rules` to the events of `POST /events` (see
    /// [`crate::dedup`]) and queues their summaries (each second, when one
    /// is due; the rest at [`Server::close`]). Call once, inside the
    /// runtime; later calls are ignored.
    pub fn set_dedup(&self, rules: &[crate::dedup::DedupRule]) {
        if rules.is_empty() {
            return;
        }
        let dedup = Arc::new(crate::dedup::Dedup::new(rules, self.state.log.clock()));
        if self.state.dedup.set(dedup).is_ok() {
            tokio::spawn(summarise_dedup(Arc::downgrade(&self.state)));
        }
    }

    /// Every route, errors rendered as JSON (also for `warp::test`).
    pub fn routes(&self) -> BoxedFilter<(Response,)> {
        routes::routes(self.state.clone())
    }

    /// Records a `system_start` or `system_stop` event (through the server's appender).
    pub fn record_system(&self, event_type: EventType, description: String) {
        self.state
            .appender
            .append(Event::new(event_type, "evlog", description));
    }

    /// Serves `listener` until `shutdown` resolves; then stops accepting,
    /// ends live streams and waits for the requests in flight.
    pub async fn run(&self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) {
        let svc = warp::service(self.routes());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let limits = &self.state.limits;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_millis(limits.header_timeout_ms.max(1)))
            .max_buf_size(limits.max_header_bytes.max(8192));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let state = self.state.clone();
            let svc = svc.clone();
            let hangup = streams::Hangup::default();
            let ours = hangup.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    let mut svc = svc.clone();
                    let state = state.clone();
                    req.extensions_mut().insert(ClientAddr(peer));
                    req.extensions_mut().insert(ours.clone());
                    async move {
                        let route = metrics::route_of(req.uri().path());
                        let method = method_label(req.method());
                        let start = Instant::now();
                        let budget = state.limits.request_timeout() * 2;
                        let resp = match tokio::time::timeout(budget, svc.call(req)).await {
                            Ok(Ok(r)) => r,
                            Ok(Err(never)) => match never {},
                            Err(_) => ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "timeout",
                                "the response did not start in time (limit request_timeout_ms)",
                            )
                            .into_response(),
                        };
                        state.metrics.observe(
                            route,
                            method,
                            resp.status().as_u16(),
                            start.elapsed(),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                },
            );
            // A write that makes no progress for write_timeout_ms fails, and
            // hyper closes the connection: a client that stops reading holds
            // nothing longer (no blocking thread ever waits for a client).
            let mut io = tokio_io_timeout::TimeoutStream::new(stream);
            io.set_write_timeout(Some(limits.write_timeout()));
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(Box::pin(io)), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                tokio::select! {
                    ended = conn => if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    // An export or stream whose key was revoked, or whose
                    // client stalled, closes its connection.
                    () = hangup.wait() => tracing::debug!("connection closed by the server"),
                }
            });
        }
        drop(listener);
        self.state.shutdown.send_replace(true);
        graceful.shutdown().await;
    }

    /// Flushes the server's own events, stops the indexer with a final
    /// commit and fsyncs the log; then signs a last checkpoint, if they
    /// are on. Waits (up to 10 s) for request tasks that
    /// still hold the server; after that the last of them does the final
    /// commit when it ends.
    pub fn close(self) -> Result<(), crate::index::Error> {
        let mut state = self.state;
        let deadline = Instant::now() + Duration::from_secs(10);
        let state = loop {
            match Arc::try_unwrap(state) {
                Ok(s) => break s,
                Err(shared) if Instant::now() < deadline => {
                    state = shared;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(shared) => {
                    tracing::warn!("request tasks still running; the index commits when they end");
                    if let Some(c) = shared.checkpoints.get() {
                        c.finish();
                    }
                    return Ok(());
                }
            }
        };
        // Budgeted denials first, then a summary of every count left.
        state.denials.shutdown_into(&state.appender);
        if let Some(s) = state.dedup.get().and_then(|d| d.summary(true)) {
            state.appender.append(s);
        }
        state.appender.shutdown();
        let indexed = state.indexer.shutdown();
        if let Err(e) = state.log.flush() {
            tracing::error!(error = %e, "final fsync failed");
        }
        // Signs the head with the server's last events in it.
        if let Some(c) = state.checkpoints.get() {
            c.finish();
        }
        indexed
    }
}

/// Every second, until the server is gone: queues the summary of the
/// `[[dedup]]` counts when one is due.
async fn summarise_dedup(state: Weak<State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        if let Some(s) = state.dedup.get().and_then(|d| d.summary(false)) {
            state.appender.append(s);
        }
    }
}

/// A bounded set of method labels.
fn method_label(m: &warp::http::Method) -> &'static str {
    use warp::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Every 100 ms: tell live streams about new index commits; every 200 ms:
/// reload the keys file if it changed (open streams and exports also check
/// it before each page or batch they queue). Ends with the server.
async fn housekeeping(state: Weak<State>, commits: watch::Sender<u64>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        if *state.shutdown.borrow() {
            return;
        }
        let c = state
            .indexer
            .stats()
            .commits
            .load(std::sync::atomic::Ordering::Relaxed);
        commits.send_if_modified(|v| std::mem::replace(v, c) != c);
        if n % 2 == 0 {
            state.reload_keys();
        }
    }
}

impl State {
    /// Reloads the keys file if it changed; logs (and records as a
    /// `system_config` event of user `evlog`) each change of its state
    /// once: unusable or removed (no key is accepted), loaded again.
    pub(crate) fn reload_keys(&self) {
        let file = self.keys.path().display();
        let reload = self.keys.reload_if_changed();
        let st = self.keys.status(chrono::Utc::now());
        let message = st.message.as_deref().unwrap_or("");
        let (description, level, status) = match reload {
            Reload::Unchanged => return,
            Reload::Loaded {
                active,
                recovered: false,
            } => {
                tracing::info!(keys = active, file = %file, "keys file reloaded");
                return;
            }
            Reload::Loaded {
                active,
                recovered: true,
            } => {
                tracing::warn!(keys = active, file = %file, "keys file loaded again: keys are accepted again");
                (
                    format!("keys file {file} loaded again: {active} key(s) accepted"),
                    Level::Warning,
                    Status::Success,
                )
            }
            Reload::Missing => {
                tracing::error!(file = %file, "keys file removed: no key is accepted until it exists again");
                (
                    format!("keys file {file} removed: {message}"),
                    Level::Error,
                    Status::Failure,
                )
            }
            Reload::Unusable(why) => {
                tracing::error!(error = %why, "keys file unusable: no key is accepted until it loads again");
                (
                    format!("keys file {file} unusable: {message}"),
                    Level::Error,
                    Status::Failure,
                )
            }
        };
        self.appender.append(
            Event::new(EventType::SystemConfig, "evlog", description)
                .level(level)
                .status(status)
                .metadata(serde_json::json!({
                    "change": "keys file",
                    "keys_file": self.keys.path().display().to_string(),
                    "state": st.state,
                    "active_keys": st.active,
                })),
        );
    }
}
