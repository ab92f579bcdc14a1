//! Recording denials without letting them flood the log.
//!
//! Every denied request is recorded as an `auth_failure` event, but anyone
//! can send requests without a key (or with a made-up one), as fast as the
//! network allows. So:
//!
//! - denials of requests **without a valid key** are recorded one by one
//!   only within a budget per source ([`Limits::auth_failures_per_minute`]:
//!   a token bucket per IPv4 address or IPv6 /64); the rest are counted, and
//!   each source with a count gets one summary `auth_failure` event (its
//!   `metadata.suppressed`) per [`Limits::auth_failure_summary_secs`];
//! - the sources are tracked in a table of at most
//!   [`Limits::auth_failure_sources`] entries; when it is full the one
//!   tracked longest is forgotten, its count going to one summary of
//!   forgotten sources;
//! - those budgeted events go through a queue of their own
//!   ([`ANONYMOUS_QUEUE`] events); one it cannot take is counted for its
//!   source's summary. Denials of requests **with a valid key** (a role
//!   refused) and the summaries go through the server's own queue, which
//!   keyless requests never reach: a flood cannot push them out.
//!
//! Stored paths are cut to [`MAX_PATH_BYTES`] (and the description to
//! [`MAX_DESCRIPTION_BYTES`]) on a character boundary.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::{IntCounter, IntGauge};
use serde_json::json;

use super::Limits;
use crate::event::{Event, EventType, Level, Status, format_timestamp};
use crate::store::{Appender, EventLog};

/// Capacity of the queue of budgeted keyless denials.
pub const ANONYMOUS_QUEUE: usize = 4096;
/// Longest request path stored in an `auth_failure` event, in bytes.
pub const MAX_PATH_BYTES: usize = 256;
/// Longest description of an `auth_failure` event, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 512;

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary, and whether it is shorter than `s`.
pub fn truncated(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Where denials come from: an IPv4 address, an IPv6 /64 (what one host
/// is usually given), or unknown (no peer address, e.g. `warp::test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Net(u64),
    /// No peer address.
    Unknown,
}

impl Source {
    /// The source of a peer address.
    pub fn of(ip: Option<IpAddr>) -> Source {
        match ip {
            None => Source::Unknown,
            Some(IpAddr::V4(a)) => Source::V4(a),
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }

    /// The address stored as `source_ip` of a summary (a /64's first address).
    fn ip(self) -> Option<IpAddr> {
        match self {
            Source::V4(a) => Some(IpAddr::V4(a)),
            Source::V6Net(n) => Some(IpAddr::V6(Ipv6Addr::from(u128::from(n) << 64))),
            Source::Unknown => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Source::V4(a) => a.to_string(),
            Source::V6Net(_) => format!("{}/64", self.ip().expect("an address")),
            Source::Unknown => "an unknown address".into(),
        }
    }
}

/// What the table knows of one source.
#[derive(Debug)]
struct Entry {
    /// Denials it may still have recorded one by one (refilled over time).
    tokens: f64,
    refilled: Instant,
    /// Denials counted, not recorded, since `since`.
    suppressed: u64,
    since: Option<(Instant, DateTime<Utc>)>,
    /// Its place in [`Table::order`].
    generation: u64,
}

/// The sources being tracked, oldest first in `order`.
#[derive(Debug, Default)]
struct Table {
    map: HashMap<Source, Entry>,
    /// `(source, generation)` in the order of tracking; stale pairs (the
    /// entry was dropped or tracked anew) are skipped.
    order: VecDeque<(Source, u64)>,
    next_generation: u64,
    /// Denials counted for sources forgotten since `forgotten_since`.
    forgotten: u64,
    forgotten_sources: u64,
    forgotten_since: Option<(Instant, DateTime<Utc>)>,
}

/// Counters of [`Denials`] (registered in `/metrics`).
#[derive(Debug, Clone)]
pub struct DenialStats {
    /// Keyless and bad-key denials counted instead of recorded one by one.
    pub suppressed: IntCounter,
    /// Sources tracked now.
    pub sources: IntGauge,
}

/// Counters registered nowhere (tests).
impl Default for DenialStats {
    fn default() -> Self {
        DenialStats {
            suppressed: IntCounter::new("suppressed", "suppressed").expect("valid metric"),
            sources: IntGauge::new("sources", "sources").expect("valid metric"),
        }
    }
}

/// The decision for one keyless denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Record it.
    Record,
    /// Count it for the source's summary.
    Suppress,
}

/// The rate limiter and queue of keyless denials (see the module docs).
pub struct Denials {
    per_minute: u32,
    summary_every: Duration,
    max_sources: usize,
    table: Mutex<Table>,
    queue: Appender,
    stats: DenialStats,
}

impl Denials {
    /// A limiter over `limits`, with its own queue into `log`, counting into `stats`.
    pub fn new(log: EventLog, limits: &Limits, stats: DenialStats) -> Denials {
        Denials {
            per_minute: limits.auth_failures_per_minute,
            summary_every: Duration::from_secs(limits.auth_failure_summary_secs.max(1)),
            max_sources: limits.auth_failure_sources.max(1),
            table: Mutex::new(Table::default()),
            queue: Appender::spawn(
                log,
                ANONYMOUS_QUEUE,
                Some(crate::event::SERVER_APPENDER.into()),
            ),
            stats,
        }
    }

    /// The counters.
    #[cfg(test)]
    pub fn stats(&self) -> &DenialStats {
        &self.stats
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the next keyless denial from `source` is recorded (taking
    /// one of its tokens) or counted.
    pub fn admit(&self, source: Source, now: Instant) -> Admit {
        let mut t = self.table();
        let rate = f64::from(self.per_minute) / 60.0;
        if !t.map.contains_key(&source) {
            while t.map.len() >= self.max_sources {
                self.forget_oldest(&mut t, now);
            }
            let generation = t.next_generation;
            t.next_generation += 1;
            t.order.push_back((source, generation));
            t.map.insert(
                source,
                Entry {
                    tokens: f64::from(self.per_minute),
                    refilled: now,
                    suppressed: 0,
                    since: None,
                    generation,
                },
            );
        }
        let e = t.map.get_mut(&source).expect("inserted");
        let elapsed = now.saturating_duration_since(e.refilled).as_secs_f64();
        e.tokens = (e.tokens + elapsed * rate).min(f64::from(self.per_minute));
        e.refilled = now;
        let admit = if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            Admit::Record
        } else {
            e.suppressed += 1;
            e.since.get_or_insert((now, Utc::now()));
            self.stats.suppressed.inc();
            Admit::Suppress
        };
        self.stats.sources.set(t.map.len() as i64);
        admit
    }

    /// Drops the source tracked longest, its count going to the summary of
    /// forgotten sources.
    fn forget_oldest(&self, t: &mut Table, now: Instant) {
        while let Some((source, generation)) = t.order.pop_front() {
            if t.map
                .get(&source)
                .is_some_and(|e| e.generation == generation)
            {
                let e = t.map.remove(&source).expect("present");
                if e.suppressed > 0 {
                    t.forgotten += e.suppressed;
                    t.forgotten_sources += 1;
                    t.forgotten_since.get_or_insert((now, Utc::now()));
                }
                return;
            }
        }
    }

    /// Queues a budgeted keyless denial; one the queue cannot take is
    /// counted for its source's summary instead.
    pub fn record(&self, source: Source, event: Event, now: Instant) {
        if self.queue.append(event) {
            return;
        }
        let mut t = self.table();
        self.stats.suppressed.inc();
        match t.map.get_mut(&source) {
            Some(e) => {
                e.suppressed += 1;
                e.since.get_or_insert((now, Utc::now()));
            }
            None => {
                t.forgotten += 1;
                t.forgotten_since.get_or_insert((now, Utc::now()));
            }
        }
    }

    /// The summaries due at `now` (every count older than the summary
    /// interval, or every count when `all`); forgets sources that have
    /// nothing to report and a full budget again.
    pub fn summaries(&self, now: Instant, all: bool) -> Vec<Event> {
        let mut t = self.table();
        let due = |since: Option<(Instant, DateTime<Utc>)>| {
            since.is_some_and(|(at, _)| {
                all || now.saturating_duration_since(at) >= self.summary_every
            })
        };
        let mut out = Vec::new();
        let rate = f64::from(self.per_minute) / 60.0;
        let full = f64::from(self.per_minute);
        t.map.retain(|source, e| {
            if due(e.since) && e.suppressed > 0 {
                let (_, since) = e.since.take().expect("due");
                out.push(self.summary(Some(*source), e.suppressed, 1, since));
                e.suppressed = 0;
            }
            let refilled =
                e.tokens + now.saturating_duration_since(e.refilled).as_secs_f64() * rate;
            e.suppressed > 0 || refilled < full
        });
        if due(t.forgotten_since) && t.forgotten > 0 {
            let (_, since) = t.forgotten_since.take().expect("due");
            out.push(self.summary(None, t.forgotten, t.forgotten_sources, since));
            t.forgotten = 0;
            t.forgotten_sources = 0;
        }
        let live: std::collections::HashSet<(Source, u64)> =
            t.map.iter().map(|(s, e)| (*s, e.generation)).collect();
        t.order.retain(|p| live.contains(p));
        self.stats.sources.set(t.map.len() as i64);
        out
    }

    /// A summary of `count` denials from `source` (`None`: from `sources`
    /// forgotten sources).
    fn summary(
        &self,
        source: Option<Source>,
        count: u64,
        sources: u64,
        since: DateTime<Utc>,
    ) -> Event {
        let until = Utc::now();
        let from = match source {
            Some(s) => s.describe(),
            None => format!("{sources} address(es) no longer tracked"),
        };
        let mut e = Event::new(
            EventType::AuthFailure,
            "anonymous",
            format!(
                "{count} more denied request(s) without a valid key from {from}, counted but not recorded one by one (limit auth_failures_per_minute = {})",
                self.per_minute
            ),
        )
        .status(Status::Failure)
        .level(Level::Security)
        .metadata(json!({
            "summary": true,
            "suppressed": count,
            "sources": sources,
            "source": source.map(Source::describe),
            "since": format_timestamp(&since),
            "until": format_timestamp(&until),
            "limit_per_minute": self.per_minute,
        }));
        if let Some(ip) = source.and_then(Source::ip) {
            e = e.source_ip(ip.to_string());
        }
        e
    }

    /// Writes what the queue holds and stops it.
    #[cfg(test)]
    pub fn shutdown(self) {
        self.queue.shutdown();
    }

    /// Writes what the queue holds, stops it, and hands a summary of every
    /// count left to `appender` (at the server's shutdown).
    pub fn shutdown_into(self, appender: &Appender) {
        let summaries = self.summaries(Instant::now(), true);
        self.queue.shutdown();
        for e in summaries {
            appender.append(e);
        }
    }
}

/// Every second, until the server is gone: hands the summaries that are due
/// to the server's queue.
pub(crate) async fn summarise(state: std::sync::Weak<super::State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        for e in state.denials.summaries(Instant::now(), false) {
            state.appender.append(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn limits(per_minute: u32, sources: usize) -> Limits {
        Limits {
            auth_failures_per_minute: per_minute,
            auth_failure_summary_secs: 60,
            auth_failure_sources: sources,
            ..Limits::default()
        }
    }

    fn v4(i: u32) -> Source {
        Source::of(Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))))
    }

    #[test]
    fn a_source_records_its_budget_then_counts_and_is_summarised_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let d = Denials::new(log, &limits(10, 100), DenialStats::default());
        let t0 = Instant::now();
        let decisions: Vec<Admit> = (0..1000).map(|_| d.admit(v4(1), t0)).collect();
        assert_eq!(
            decisions.iter().filter(|a| **a == Admit::Record).count(),
            10
        );
        assert_eq!(d.stats().suppressed.get(), 990);
        // Another source has its own budget.
        assert_eq!(d.admit(v4(2), t0), Admit::Record);
        // Six seconds refill one token (10 per minute).
        let t6 = t0 + Duration::from_secs(6);
        assert_eq!(d.admit(v4(1), t6), Admit::Record);
        assert_eq!(d.admit(v4(1), t6), Admit::Suppress);
        assert!(d.summaries(t0 + Duration::from_secs(59), false).is_empty());
        let s = d.summaries(t0 + Duration::from_secs(60), false);
        assert_eq!(s.len(), 1);
        let m = s[0].metadata.as_ref().unwrap();
        assert_eq!(m["suppressed"], 991);
        assert_eq!(s[0].source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(s[0].user_id, "anonymous");
        assert!(d.summaries(t0 + Duration::from_secs(120), false).is_empty());
        // A full budget again; at shutdown every count is summarised.
        let t2 = t0 + Duration::from_secs(121);
        for _ in 0..10 {
            assert_eq!(d.admit(v4(1), t2), Admit::Record);
        }
        assert_eq!(d.admit(v4(1), t2), Admit::Suppress);
        let s = d.summaries(t2, true);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metadata.as_ref().unwrap()["suppressed"], 1);
        d.shutdown();
    }

    #[test]
    fn the_table_of_sources_stays_bounded_and_forgotten_counts_are_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let d = Denials::new(log, &limits(1, 1000), DenialStats::default());
        let t0 = Instant::now();
        for i in 0..50_000 {
            // Each address: one recorded, one counted.
            assert_eq!(d.admit(v4(i), t0), Admit::Record);
            assert_eq!(d.admit(v4(i), t0), Admit::Suppress);
            assert!(d.table().map.len() <= 1000);
            assert!(d.table().order.len() <= 1000);
        }
        assert_eq!(d.stats().sources.get(), 1000);
        let s = d.summaries(t0 + Duration::from_secs(60), false);
        // 1000 tracked sources, plus one summary for the 49,000 forgotten.
        assert_eq!(s.len(), 1001);
        let total: u64 = s
            .iter()
            .map(|e| e.metadata.as_ref().unwrap()["suppressed"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 50_000);
        let forgotten = s.iter().find(|e| e.source_ip.is_none()).unwrap();
        assert_eq!(forgotten.metadata.as_ref().unwrap()["sources"], 49_000);
        // Idle sources with a full budget are forgotten by the sweep.
        assert!(d.summaries(t0 + Duration::from_secs(600), false).is_empty());
        assert_eq!(d.table().map.len(), 0);
        assert_eq!(d.table().order.len(), 0);
        d.shutdown();
    }

    #[test]
    fn ipv6_sources_are_per_64_and_v4_mapped_are_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(Some(a)), Source::of(Some(b)));
        assert_ne!(Source::of(Some(a)), Source::of(Some(c)));
        assert_eq!(Source::of(Some(a)).describe(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Source::of(Some(mapped)), v4(1));
    }

    #[test]
    fn truncation_stops_on_a_character_boundary() {
        assert_eq!(truncated("abc", 256), ("abc", false));
        let s = "é".repeat(200); // 400 bytes
        let (t, cut) = truncated(&s, 255);
        assert!(cut);
        assert_eq!(t.len(), 254);
        assert_eq!(t.chars().count(), 127);
    }
}
