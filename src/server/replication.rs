//! Replication in the server: the publisher (`serve --replicate-to`) and
//! the follower (`serve --follow`) run as tasks beside it, stop with it, and
//! show their state in `/health` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::{Gauge, IntCounter, IntGauge, Registry};
use serde::Serialize;

use super::metrics::{counter, gauge, mirror};
use crate::replicate::follow::{self, FollowConfig, FollowStatus};
use crate::replicate::nats::NatsConfig;
use crate::replicate::publish::{self, Status as PublishStatus};

/// The replication tasks of a server.
pub(crate) struct Replication {
    publish: Option<Arc<PublishStatus>>,
    follow: Option<Arc<FollowStatus>>,
    metrics: ReplicationMetrics,
}

/// What `/metrics` shows of replication.
struct ReplicationMetrics {
    lag_events: IntGauge,
    lag_seconds: Gauge,
    link_up: IntGauge,
    published: IntCounter,
    duplicates: IntCounter,
    followed: IntCounter,
    follow_duplicates: IntCounter,
    follow_link_up: IntGauge,
    follow_pending: IntGauge,
}

impl ReplicationMetrics {
    fn new(r: &Registry) -> ReplicationMetrics {
        let lag_seconds = Gauge::new(
            "evlog_replication_lag_seconds",
            "Age of the oldest event not yet acknowledged by the stream (0: none pending)",
        )
        .expect("valid metric");
        r.register(Box::new(lag_seconds.clone()))
            .expect("unique metric");
        ReplicationMetrics {
            lag_events: gauge(
                r,
                "evlog_replication_lag_events",
                "Events in the day files not yet acknowledged by the stream",
            ),
            lag_seconds,
            link_up: gauge(
                r,
                "evlog_replication_link_up",
                "1 while the publisher's last exchange with NATS succeeded",
            ),
            published: counter(
                r,
                "evlog_replication_published_total",
                "Events published and acknowledged by the stream",
            ),
            duplicates: counter(
                r,
                "evlog_replication_duplicates_total",
                "Of those, events the stream already had (re-published after a restart)",
            ),
            followed: counter(
                r,
                "evlog_follow_appended_total",
                "Events of the followed stream appended here",
            ),
            follow_duplicates: counter(
                r,
                "evlog_follow_duplicates_total",
                "Copies of events already stored here, acknowledged without a line",
            ),
            follow_link_up: gauge(
                r,
                "evlog_follow_link_up",
                "1 while the follower's last exchange with NATS succeeded",
            ),
            follow_pending: gauge(
                r,
                "evlog_follow_pending",
                "Messages of the stream not yet delivered to this follower",
            ),
        }
    }
}

/// The replication part of `/health` (absent when replication is off).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReplicationHealth {
    /// The publisher (`--replicate-to`), if on.
    #[schema(required = true)]
    publish: Option<PublishHealth>,
    /// The follower (`--follow`), if on.
    #[schema(required = true)]
    follow: Option<FollowHealth>,
}

/// The publisher's state.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PublishHealth {
    /// `up` while the last exchange with NATS succeeded, else `down`.
    #[schema(pattern = "^(up|down)$")]
    link: &'static str,
    /// Events in the day files not yet acknowledged by the stream.
    lag_events: u64,
    /// Age of the oldest of them (0 when none is pending).
    #[schema(minimum = 0)]
    lag_seconds: f64,
    /// `seq` of the last event acknowledged.
    acked_seq: u64,
    /// The last error, if any since start.
    #[schema(required = true)]
    last_error: Option<String>,
}

/// The follower's state.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FollowHealth {
    /// `up` while the last exchange with NATS succeeded, else `down`.
    #[schema(pattern = "^(up|down)$")]
    link: &'static str,
    /// Events appended here since start.
    appended: u64,
    /// Copies of events already here, acknowledged without a line.
    duplicates: u64,
    /// Messages of the stream not yet delivered to this follower.
    pending: u64,
    /// The last error, if any since start.
    #[schema(required = true)]
    last_error: Option<String>,
}

fn link(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

impl Replication {
    /// Starts the publisher (with `publish`: the stream and this node's
    /// name) and the follower (with `follow`) of the server whose state
    /// is given; both stop when `stop` turns true.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        log: &crate::store::EventLog,
        search: &crate::index::IndexSearch,
        claims: &follow::Claims,
        registry: &Registry,
        publish: Option<(NatsConfig, String)>,
        follow: Option<FollowConfig>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Replication {
        let publish = publish.map(|(cfg, node)| {
            let status = Arc::new(PublishStatus::default());
            publish::start(log, cfg, node, status.clone(), stop.clone());
            status
        });
        let follow = follow.map(|cfg| {
            let status = Arc::new(FollowStatus::default());
            tokio::spawn(follow::run(
                cfg,
                log.clone(),
                search.clone(),
                claims.clone(),
                status.clone(),
                stop.clone(),
            ));
            status
        });
        Replication {
            publish,
            follow,
            metrics: ReplicationMetrics::new(registry),
        }
    }

    /// The `/health` part.
    pub(crate) fn health(&self) -> ReplicationHealth {
        let now = chrono::Utc::now();
        ReplicationHealth {
            publish: self.publish.as_ref().map(|s| PublishHealth {
                link: link(s.link_up.load(Ordering::Relaxed)),
                lag_events: s.lag_events(),
                lag_seconds: s.lag_seconds(now),
                acked_seq: s.acked_seq.load(Ordering::Relaxed),
                last_error: s
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }),
            follow: self.follow.as_ref().map(|s| FollowHealth {
                link: link(s.link_up.load(Ordering::Relaxed)),
                appended: s.appended.load(Ordering::Relaxed),
                duplicates: s.duplicates.load(Ordering::Relaxed),
                pending: s.pending.load(Ordering::Relaxed),
                last_error: s
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }),
        }
    }

    /// The publisher's lag in seconds (0 without a publisher).
    pub(crate) fn lag_seconds(&self) -> f64 {
        self.publish
            .as_ref()
            .map_or(0.0, |s| s.lag_seconds(chrono::Utc::now()))
    }

    /// Brings the metrics up to date (before a scrape).
    pub(crate) fn mirror(&self) {
        let m = &self.metrics;
        if let Some(s) = &self.publish {
            m.lag_events.set(s.lag_events().min(i64::MAX as u64) as i64);
            m.lag_seconds.set(s.lag_seconds(chrono::Utc::now()));
            m.link_up.set(i64::from(s.link_up.load(Ordering::Relaxed)));
            mirror(&m.published, s.published.load(Ordering::Relaxed));
            mirror(&m.duplicates, s.duplicates.load(Ordering::Relaxed));
        }
        if let Some(s) = &self.follow {
            mirror(&m.followed, s.appended.load(Ordering::Relaxed));
            mirror(&m.follow_duplicates, s.duplicates.load(Ordering::Relaxed));
            m.follow_link_up
                .set(i64::from(s.link_up.load(Ordering::Relaxed)));
            m.follow_pending
                .set(s.pending.load(Ordering::Relaxed).min(i64::MAX as u64) as i64);
        }
    }
}
