//! `GET /metrics`: Prometheus text. Request counters and latency histograms
//! are observed per request; the store's, appender's and indexer's own
//! atomic counters are mirrored into the registry at each scrape, so the
//! lower layers need no metrics crate.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Time an append request waits for its group commit (write, and
    /// fdatasync under durability fsync).
    pub commit_wait: prometheus::Histogram,
    /// Events rejected by POST /events (every event of a rejected batch
    /// that was read: a refusal that ends the parse counts those up to it).
    pub rejected: IntCounter,
    /// Denials counted instead of recorded one by one (over the budget of
    /// their address or key, or their queue full).
    pub auth_failures_suppressed: IntCounter,
    /// Sources (addresses, keys) whose denials are tracked now.
    pub auth_failure_sources: IntGauge,
    /// Requests refused 429 `rate_limited`, by the key's role.
    pub rate_limited: IntCounterVec,
    /// Events of `POST /events` suppressed by `[[dedup]]` rules, by type.
    pub suppressed: IntCounterVec,
    /// Events deleted by retention, by what deleted them (`purge`, `rotation`).
    pub purged: IntCounterVec,
    appended: IntCounter,
    group_commits: IntCounter,
    write_failures: IntCounter,
    dropped: IntCounter,
    indexed: IntCounter,
    docs_examined: IntCounter,
    lag_events: IntGauge,
    lag_seconds: Gauge,
}

/// Values of the lower layers at scrape time.
pub(crate) struct Snapshot {
    pub appended: u64,
    pub group_commits: u64,
    pub write_failures: u64,
    pub dropped: u64,
    pub indexed: u64,
    pub docs_examined: u64,
    pub lag_events: u64,
    pub lag_seconds: f64,
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

/// A registered gauge.
pub(crate) fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// Raises a mirrored counter to `value` (counters only go up).
pub(crate) fn mirror(c: &IntCounter, value: u64) {
    let cur = c.get();
    if value > cur {
        c.inc_by(value - cur);
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "evlog_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "evlog_http_request_duration_seconds",
                "Time to the response head, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        let commit_wait = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "evlog_append_commit_seconds",
                "Time an append request waits for its group commit (write, and fdatasync under durability fsync)",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit_wait.clone()))
            .expect("unique metric");
        let lag_events = IntGauge::new(
            "evlog_index_lag_events",
            "Events on disk not yet searchable",
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag_events.clone()))
            .expect("unique metric");
        let lag_seconds = Gauge::new(
            "evlog_index_lag_seconds",
            "Age of the last index commit while events wait (0 when caught up)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag_seconds.clone()))
            .expect("unique metric");
        let auth_failure_sources = IntGauge::new(
            "evlog_auth_failure_sources",
            "Sources (addresses, keys) whose denials are being rate-limited",
        )
        .expect("valid metric");
        registry
            .register(Box::new(auth_failure_sources.clone()))
            .expect("unique metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "evlog_rate_limited_total",
                "Requests refused 429 rate_limited (over their key's rate), by the key's role",
            ),
            &["role"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(rate_limited.clone()))
            .expect("unique metric");
        let suppressed = IntCounterVec::new(
            Opts::new(
                "evlog_events_suppressed_total",
                "Events of POST /events acknowledged but not stored by a [[dedup]] rule, by event type",
            ),
            &["event_type"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(suppressed.clone()))
            .expect("unique metric");
        let purged = IntCounterVec::new(
            Opts::new(
                "evlog_purged_events_total",
                "Events deleted with their day files by POST /admin/purge or by rotation (the daily run, POST /admin/rotate), by what deleted them",
            ),
            &["by"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(purged.clone()))
            .expect("unique metric");
        Metrics {
            rate_limited,
            suppressed,
            purged,
            auth_failures_suppressed: counter(
                &registry,
                "evlog_auth_failures_suppressed_total",
                "Denials counted in a summary event instead of recorded one by one",
            ),
            auth_failure_sources,
            rejected: counter(
                &registry,
                "evlog_events_rejected_total",
                "Events refused by POST /events (invalid, too large or forbidden)",
            ),
            appended: counter(
                &registry,
                "evlog_events_appended_total",
                "Events written by this server",
            ),
            group_commits: counter(
                &registry,
                "evlog_group_commits_total",
                "Writes to the day file, each carrying every append waiting at the time (and under durability fsync, one fdatasync each at most)",
            ),
            write_failures: counter(
                &registry,
                "evlog_write_failures_total",
                "Events whose write to the day file failed",
            ),
            dropped: counter(
                &registry,
                "evlog_events_dropped_total",
                "Server events (auth_failure, ...) dropped because the appender queue was full",
            ),
            indexed: counter(
                &registry,
                "evlog_events_indexed_total",
                "Documents added to the index by this server's indexer",
            ),
            docs_examined: counter(
                &registry,
                "evlog_index_docs_examined_total",
                "Documents whose timestamp or seq columns this server's queries, exports and live tails read (about one per event returned)",
            ),
            registry,
            requests,
            latency,
            commit_wait,
            lag_events,
            lag_seconds,
        }
    }

    /// Counts one request.
    pub(crate) fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The registry (for metrics registered later, as replication's).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text of every metric, after mirroring `s`.
    pub(crate) fn render(&self, s: &Snapshot) -> String {
        mirror(&self.appended, s.appended);
        mirror(&self.group_commits, s.group_commits);
        mirror(&self.write_failures, s.write_failures);
        mirror(&self.dropped, s.dropped);
        mirror(&self.indexed, s.indexed);
        mirror(&self.docs_examined, s.docs_examined);
        self.lag_events
            .set(s.lag_events.min(i64::MAX as u64) as i64);
        self.lag_seconds.set(s.lag_seconds);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of valid metrics");
        String::from_utf8(buf).expect("text format is UTF-8")
    }
}

/// The route template of a path, for labels (bounded cardinality): one
/// of [`super::ROUTES`], or `other`.
pub(crate) fn route_of(path: &str) -> &'static str {
    super::route_of(path).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_histograms_and_mirrored_counters() {
        let m = Metrics::new();
        m.observe("/events", "POST", 201, Duration::from_millis(3));
        m.observe("/events", "POST", 201, Duration::from_millis(30));
        m.rejected.inc_by(2);
        m.commit_wait.observe(0.0007);
        let snap = Snapshot {
            appended: 7,
            group_commits: 3,
            write_failures: 0,
            dropped: 1,
            indexed: 5,
            docs_examined: 11,
            lag_events: 2,
            lag_seconds: 0.5,
        };
        let text = m.render(&snap);
        assert!(text.contains(
            "evlog_http_requests_total{method=\"POST\",route=\"/events\",status=\"201\"} 2"
        ));
        assert!(text.contains(
            "evlog_http_request_duration_seconds_bucket{route=\"/events\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("evlog_events_appended_total 7"));
        assert!(text.contains("evlog_events_rejected_total 2"));
        assert!(text.contains("evlog_group_commits_total 3"));
        assert!(text.contains("evlog_append_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("evlog_append_commit_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("evlog_index_lag_events 2"));
        assert!(text.contains("evlog_index_docs_examined_total 11"));
        // Mirroring twice does not double count.
        assert!(m.render(&snap).contains("evlog_events_appended_total 7"));
        assert_eq!(
            route_of("/events/0190a1b2-0000-7000-8000-000000000000"),
            "/events/{id}"
        );
        assert_eq!(route_of("/events/stats"), "/events/stats");
        assert_eq!(route_of("/events/a/b"), "other");
        // Labelled `other` before the labels came from the route table.
        assert_eq!(route_of("/admin/rotate"), "/admin/rotate");
        assert_eq!(route_of("/openapi.json"), "/openapi.json");
    }
}
