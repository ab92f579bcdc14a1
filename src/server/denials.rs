//! Recording denials without letting them flood the log.
//!
//! Every denied request is recorded as an `auth_failure` event, but anyone
//! can send requests without a key (or with a made-up one), as fast as the
//! network allows, and a key-holder can send refused ones just as fast. So
//! denials are recorded one by one only within a budget per source
//! ([`Limits::auth_failures_per_minute`], a token bucket):
//!
//! - a request **without a valid key** is of its address (an IPv4 address
//!   or an IPv6 /64);
//! - a request **with a valid key** (a role refused, or the hidden 404 of
//!   another user's event) is of its key, by id, with one budget for the
//!   denials stored under the key's user and one for those stored under
//!   `evlog` (the hidden 404s: sharing one budget would let the key tell
//!   them from a real 404 by the denials it can read).
//!
//! The rest are counted, and each source with a count gets one summary
//! `auth_failure` event (its `metadata.suppressed`) per
//! [`Limits::auth_failure_summary_secs`]. A count is cleared only once its
//! summary was queued: one the server's queue refuses is kept for the next
//! try. So each denial is either stored or counted.
//!
//! - The addresses are tracked in a table of at most
//!   [`Limits::auth_failure_sources`] entries; when it is full the one
//!   tracked longest is forgotten, its count going to one summary of
//!   forgotten sources, and a new address draws from one shared overflow
//!   bucket (the same size) instead of a budget of its own: many addresses
//!   together get at most about (`auth_failure_sources` + 1) budgets a
//!   minute. Keys are not in that bound: there are only as many as the
//!   keys file holds.
//! - Budgeted denials without a valid key go through a queue of their own
//!   ([`ANONYMOUS_QUEUE`] events); those of keys and the summaries go
//!   through the server's own queue, which keyless requests never reach: a
//!   flood cannot push them out. A denial a queue cannot take is counted
//!   for its source's summary.
//!
//! Stored paths are cut to [`MAX_PATH_BYTES`] (and the description to
//! [`MAX_DESCRIPTION_BYTES`]) on a character boundary.

use std::collections::{HashMap, HashSet, VecDeque};
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

/// Where denials come from: for requests without a valid key an IPv4
/// address, an IPv6 /64 (what one host is usually given), or unknown (no
/// peer address, e.g. `warp::test`); for requests with one, the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Net(u64),
    /// No peer address.
    Unknown,
    /// A valid key, by id, and the user its denials are stored under (the
    /// key's own for a refused role; `evlog` for the hidden 404 of another
    /// user's event): one budget each.
    Key {
        /// The key's id.
        key_id: String,
        /// The user the denials and their summary are stored under.
        user_id: String,
        /// The tenant they are stored under (`None`: the default tenant).
        tenant: Option<String>,
    },
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

    /// The source of the denials of key `key_id` stored under `user_id`
    /// of `tenant` (`None`: the default tenant).
    pub fn key(key_id: &str, user_id: &str, tenant: Option<&str>) -> Source {
        Source::Key {
            key_id: key_id.to_string(),
            user_id: user_id.to_string(),
            tenant: tenant.map(str::to_string),
        }
    }

    fn is_key(&self) -> bool {
        matches!(self, Source::Key { .. })
    }

    /// The address stored as `source_ip` of a summary (a /64's first address).
    fn ip(&self) -> Option<IpAddr> {
        match self {
            Source::V4(a) => Some(IpAddr::V4(*a)),
            Source::V6Net(n) => Some(IpAddr::V6(Ipv6Addr::from(u128::from(*n) << 64))),
            Source::Unknown | Source::Key { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::V4(a) => a.to_string(),
            Source::V6Net(_) => format!("{}/64", self.ip().expect("an address")),
            Source::Unknown => "an unknown address".into(),
            Source::Key { key_id, .. } => format!("key {key_id}"),
        }
    }
}

/// A token bucket of `per_minute` tokens, refilled over the minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// Its tokens at `now` (at most `full`), refilled at `full` a minute.
    fn level(&self, now: Instant, full: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        (self.tokens + elapsed * full / 60.0).min(full)
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant, full: f64) -> bool {
        self.tokens = self.level(now, full);
        self.refilled = now;
        let took = self.tokens >= 1.0;
        if took {
            self.tokens -= 1.0;
        }
        took
    }
}

/// What the table knows of one source.
#[derive(Debug)]
struct Entry {
    /// Denials it may still have recorded one by one (refilled over time).
    /// An entry made while the table was full starts empty and draws from
    /// [`Table::overflow`] instead; its own bucket only says when it may
    /// be forgotten.
    bucket: Bucket,
    overflow: bool,
    /// Denials counted, not recorded, since `since`.
    suppressed: u64,
    since: Option<(Instant, DateTime<Utc>)>,
    /// Its place in [`Table::order`] (addresses only).
    generation: u64,
}

/// The sources being tracked, the addresses oldest first in `order`.
#[derive(Debug)]
struct Table {
    map: HashMap<Source, Entry>,
    /// Keys in `map` (the rest are addresses).
    keys: usize,
    /// `(address, generation)` in the order of tracking; stale pairs (the
    /// entry was dropped or tracked anew) are skipped.
    order: VecDeque<(Source, u64)>,
    next_generation: u64,
    /// The one budget of the addresses tracked while the table was full.
    overflow: Bucket,
    /// Denials counted for sources forgotten since `forgotten_since`.
    forgotten: u64,
    forgotten_sources: u64,
    forgotten_since: Option<(Instant, DateTime<Utc>)>,
}

impl Table {
    fn addresses(&self) -> usize {
        self.map.len() - self.keys
    }

    /// Counts a denial of `source` for its summary.
    fn count(&mut self, source: &Source, now: Instant) {
        match self.map.get_mut(source) {
            Some(e) => {
                e.suppressed += 1;
                e.since.get_or_insert((now, Utc::now()));
            }
            None => {
                self.forgotten += 1;
                self.forgotten_since.get_or_insert((now, Utc::now()));
            }
        }
    }
}

/// Counters of [`Denials`] (registered in `/metrics`).
#[derive(Debug, Clone)]
pub struct DenialStats {
    /// Denials counted instead of recorded one by one.
    pub suppressed: IntCounter,
    /// Sources (addresses and keys) tracked now.
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

/// The decision for one denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Record it.
    Record,
    /// Count it for the source's summary.
    Suppress,
}

/// The rate limiter of denials and the queue of keyless ones (see the
/// module docs).
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
        let per_minute = limits.auth_failures_per_minute;
        Denials {
            per_minute,
            summary_every: Duration::from_secs(limits.auth_failure_summary_secs.max(1)),
            max_sources: limits.auth_failure_sources.max(1),
            table: Mutex::new(Table {
                map: HashMap::new(),
                keys: 0,
                order: VecDeque::new(),
                next_generation: 0,
                overflow: Bucket {
                    tokens: f64::from(per_minute),
                    refilled: Instant::now(),
                },
                forgotten: 0,
                forgotten_sources: 0,
                forgotten_since: None,
            }),
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

    /// Whether the next denial from `source` is recorded (taking one of
    /// its tokens, or of the overflow bucket) or counted.
    pub fn admit(&self, source: &Source, now: Instant) -> Admit {
        let mut guard = self.table();
        let t = &mut *guard;
        let full = f64::from(self.per_minute);
        if !t.map.contains_key(source) {
            let mut overflow = false;
            if source.is_key() {
                t.keys += 1;
            } else {
                while t.addresses() >= self.max_sources && self.forget_oldest(t, now) {
                    overflow = true;
                }
                t.order.push_back((source.clone(), t.next_generation));
            }
            t.map.insert(
                source.clone(),
                Entry {
                    bucket: Bucket {
                        tokens: if overflow { 0.0 } else { full },
                        refilled: now,
                    },
                    overflow,
                    suppressed: 0,
                    since: None,
                    generation: t.next_generation,
                },
            );
            t.next_generation += 1;
        }
        let e = t.map.get_mut(source).expect("inserted");
        let bucket = if e.overflow {
            &mut t.overflow
        } else {
            &mut e.bucket
        };
        let admit = if bucket.take(now, full) {
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

    /// Drops the address tracked longest, its count going to the summary
    /// of forgotten sources; `false` if none is tracked.
    fn forget_oldest(&self, t: &mut Table, now: Instant) -> bool {
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
                return true;
            }
        }
        false
    }

    /// Queues a budgeted denial of `source`: a key's on `server` (the
    /// server's own queue), an address's on the keyless queue. One the
    /// queue cannot take is counted for the source's summary instead.
    pub fn record(&self, source: &Source, event: Event, now: Instant, server: &Appender) {
        let queue = if source.is_key() { server } else { &self.queue };
        if queue.append(event) {
            return;
        }
        self.stats.suppressed.inc();
        self.table().count(source, now);
    }

    /// Hands `appender` the summaries due at `now` (see [`Self::summarise_with`]).
    pub fn summarise_into(&self, appender: &Appender, now: Instant, all: bool) {
        self.summarise_with(now, all, |e| appender.append(e));
    }

    /// Offers `take` the summaries due at `now` (every count older than the
    /// summary interval, or every count when `all`). A count is cleared
    /// only once `take` accepted its summary; after a refusal (a full
    /// queue) nothing more is offered, and the counts wait for the next
    /// call. Forgets sources that have nothing to report and a full budget
    /// again.
    fn summarise_with(&self, now: Instant, all: bool, mut take: impl FnMut(Event) -> bool) {
        let mut guard = self.table();
        let t = &mut *guard;
        let due = |since: Option<(Instant, DateTime<Utc>)>| {
            since.is_some_and(|(at, _)| {
                all || now.saturating_duration_since(at) >= self.summary_every
            })
        };
        let mut open = true;
        let full = f64::from(self.per_minute);
        let mut keys_left = t.keys;
        t.map.retain(|source, e| {
            if open && due(e.since) && e.suppressed > 0 {
                let (_, since) = e.since.expect("due");
                open = take(self.summary(Some(source), e.suppressed, 1, since));
                if open {
                    e.suppressed = 0;
                    e.since = None;
                }
            }
            let keep = e.suppressed > 0 || e.bucket.level(now, full) < full;
            if !keep && source.is_key() {
                keys_left -= 1;
            }
            keep
        });
        t.keys = keys_left;
        if open && due(t.forgotten_since) && t.forgotten > 0 {
            let (_, since) = t.forgotten_since.expect("due");
            if take(self.summary(None, t.forgotten, t.forgotten_sources, since)) {
                t.forgotten = 0;
                t.forgotten_sources = 0;
                t.forgotten_since = None;
            }
        }
        let live: HashSet<(&Source, u64)> = t.map.iter().map(|(s, e)| (s, e.generation)).collect();
        t.order.retain(|(s, g)| live.contains(&(s, *g)));
        self.stats.sources.set(t.map.len() as i64);
    }

    /// A summary of `count` denials from `source` (`None`: from `sources`
    /// forgotten sources).
    fn summary(
        &self,
        source: Option<&Source>,
        count: u64,
        sources: u64,
        since: DateTime<Utc>,
    ) -> Event {
        let until = Utc::now();
        let (user, from) = match source {
            Some(Source::Key {
                key_id, user_id, ..
            }) => (user_id.as_str(), format!("of key {key_id}")),
            Some(s) => (
                "anonymous",
                format!("without a valid key from {}", s.describe()),
            ),
            None => (
                "anonymous",
                format!("without a valid key from {sources} address(es) no longer tracked"),
            ),
        };
        let mut meta = json!({
            "summary": true,
            "suppressed": count,
            "sources": sources,
            "source": source.map(Source::describe),
            "since": format_timestamp(&since),
            "until": format_timestamp(&until),
            "limit_per_minute": self.per_minute,
        });
        if let Some(Source::Key { key_id, .. }) = source {
            meta["key_id"] = key_id.as_str().into();
        }
        let mut e = Event::new(
            EventType::AuthFailure,
            user,
            format!(
                "{count} more denied request(s) {from}, counted but not recorded one by one (limit auth_failures_per_minute = {})",
                self.per_minute
            ),
        )
        .status(Status::Failure)
        .level(Level::Security)
        .metadata(meta);
        if let Some(ip) = source.and_then(Source::ip) {
            e = e.source_ip(ip.to_string());
        }
        if let Some(Source::Key {
            tenant: Some(t), ..
        }) = source
        {
            e = e.tenant(t.clone());
        }
        e
    }

    /// Writes what the queue holds and stops it.
    #[cfg(test)]
    pub fn shutdown(self) {
        self.queue.shutdown();
    }

    /// Hands a summary of every count left to `appender`, then writes what
    /// the queue holds and stops it (at the server's shutdown).
    pub fn shutdown_into(self, appender: &Appender) {
        self.summarise_into(appender, Instant::now(), true);
        self.queue.shutdown();
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
        state
            .denials
            .summarise_into(&state.appender, Instant::now(), false);
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

    /// The summaries [`Denials::summarise_with`] offers, all taken.
    fn summaries(d: &Denials, now: Instant, all: bool) -> Vec<Event> {
        let mut out = Vec::new();
        d.summarise_with(now, all, |e| {
            out.push(e);
            true
        });
        out
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
        let decisions: Vec<Admit> = (0..1000).map(|_| d.admit(&v4(1), t0)).collect();
        assert_eq!(
            decisions.iter().filter(|a| **a == Admit::Record).count(),
            10
        );
        assert_eq!(d.stats().suppressed.get(), 990);
        // Another source has its own budget.
        assert_eq!(d.admit(&v4(2), t0), Admit::Record);
        // Six seconds refill one token (10 per minute).
        let t6 = t0 + Duration::from_secs(6);
        assert_eq!(d.admit(&v4(1), t6), Admit::Record);
        assert_eq!(d.admit(&v4(1), t6), Admit::Suppress);
        assert!(summaries(&d, t0 + Duration::from_secs(59), false).is_empty());
        let s = summaries(&d, t0 + Duration::from_secs(60), false);
        assert_eq!(s.len(), 1);
        let m = s[0].metadata.as_ref().unwrap();
        assert_eq!(m["suppressed"], 991);
        assert_eq!(s[0].source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(s[0].user_id, "anonymous");
        assert!(summaries(&d, t0 + Duration::from_secs(120), false).is_empty());
        // A full budget again; at shutdown every count is summarised.
        let t2 = t0 + Duration::from_secs(121);
        for _ in 0..10 {
            assert_eq!(d.admit(&v4(1), t2), Admit::Record);
        }
        assert_eq!(d.admit(&v4(1), t2), Admit::Suppress);
        let s = summaries(&d, t2, true);
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
        let mut recorded = 0;
        for i in 0..50_000 {
            // Two denials of each address.
            for _ in 0..2 {
                recorded += usize::from(d.admit(&v4(i), t0) == Admit::Record);
            }
            assert!(d.table().map.len() <= 1000);
            assert!(d.table().order.len() <= 1000);
        }
        // A budget for each of the first 1000, then one shared by the rest.
        assert_eq!(recorded, 1001);
        assert_eq!(d.stats().sources.get(), 1000);
        let s = summaries(&d, t0 + Duration::from_secs(60), false);
        // 1000 tracked sources, plus one summary for the 49,000 forgotten.
        assert_eq!(s.len(), 1001);
        let total: u64 = s
            .iter()
            .map(|e| e.metadata.as_ref().unwrap()["suppressed"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 100_000 - 1001);
        let forgotten = s.iter().find(|e| e.source_ip.is_none()).unwrap();
        assert_eq!(forgotten.metadata.as_ref().unwrap()["sources"], 49_000);
        // Idle sources with a full budget are forgotten by the sweep.
        assert!(summaries(&d, t0 + Duration::from_secs(600), false).is_empty());
        assert_eq!(d.table().map.len(), 0);
        assert_eq!(d.table().order.len(), 0);
        d.shutdown();
    }

    /// Review of issue 12, finding 5: an address forgotten because the
    /// table was full came back with a full budget, so a client cycling
    /// through more addresses than the table holds (a /48 has 65,536 /64s)
    /// had every denial stored: 50,000 here. Now, while the table is full,
    /// new addresses share one overflow bucket.
    #[test]
    fn addresses_beyond_a_full_table_share_one_budget() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let d = Denials::new(log, &limits(10, 1000), DenialStats::default());
        let t0 = Instant::now();
        let mut recorded = 0;
        for i in 0..5000 {
            for _ in 0..10 {
                recorded += usize::from(d.admit(&v4(i), t0) == Admit::Record);
            }
        }
        assert_eq!(recorded, 1000 * 10 + 10);
        // Every other denial is counted, forgotten addresses' included.
        let counted: u64 = summaries(&d, t0, true)
            .iter()
            .map(|e| e.metadata.as_ref().unwrap()["suppressed"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, 50_000 - 10_010);
        d.shutdown();
    }

    /// Review of issue 12, finding 1: denials of requests with a valid key
    /// were all stored, so a key-holder could flood the log. Now each key
    /// has a budget (one for what is stored under its user, one for what
    /// is stored under `evlog`), outside the table of addresses.
    #[test]
    fn a_key_has_its_own_budgets_and_summaries_under_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let d = Denials::new(log, &limits(10, 2), DenialStats::default());
        let t0 = Instant::now();
        let alice = Source::key("k_alice", "alice", None);
        let hidden = Source::key("k_alice", "evlog", None);
        let admitted = |s: &Source, n| (0..n).filter(|_| d.admit(s, t0) == Admit::Record).count();
        assert_eq!(admitted(&alice, 1000), 10);
        // Her hidden 404s are not told apart by a budget she spent.
        assert_eq!(admitted(&hidden, 30), 10);
        // Addresses filling the table neither evict nor share with keys.
        for i in 0..100 {
            d.admit(&v4(i), t0);
        }
        assert_eq!(d.table().keys, 2);
        assert_eq!(d.table().addresses(), 2);
        let s = summaries(&d, t0 + Duration::from_secs(60), false);
        let of = |user: &str| {
            s.iter()
                .find(|e| e.user_id == user)
                .unwrap_or_else(|| panic!("no summary under {user}: {s:?}"))
        };
        let m = of("alice").metadata.as_ref().unwrap();
        assert_eq!(
            (m["suppressed"].as_u64(), m["key_id"].as_str()),
            (Some(990), Some("k_alice"))
        );
        assert!(of("alice").source_ip.is_none());
        assert_eq!(of("evlog").metadata.as_ref().unwrap()["suppressed"], 20);
        d.shutdown();
    }

    /// Review of issue 12, finding 1: a summary's count was cleared before
    /// the server's queue took it, so with that queue full the count was
    /// lost. Now a refused summary keeps its count for the next try.
    #[test]
    fn a_count_whose_summary_is_refused_is_kept_for_the_next_try() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let d = Denials::new(log, &limits(1, 1), DenialStats::default());
        let t0 = Instant::now();
        for i in 0..3 {
            for _ in 0..5 {
                d.admit(&v4(i), t0);
            }
        }
        for _ in 0..5 {
            d.admit(&Source::key("k_1", "bob", None), t0);
        }
        let mut offered = 0;
        d.summarise_with(t0, true, |_| {
            offered += 1;
            false
        });
        assert_eq!(offered, 1, "nothing more is offered after a refusal");
        let s = summaries(&d, t0, true);
        let total: u64 = s
            .iter()
            .map(|e| e.metadata.as_ref().unwrap()["suppressed"].as_u64().unwrap())
            .sum();
        // 4 of the first address's 5 (forgotten), 4 of the second's (it
        // took the overflow bucket's token; forgotten), all 5 of the
        // third's, 4 of the key's.
        assert_eq!(total, 4 + 4 + 5 + 4, "{s:?}");
        assert!(summaries(&d, t0, true).is_empty());
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
