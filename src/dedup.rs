//! Per-emitter deduplication: `[[dedup]]` rules of the config file, such as
//! "at most 1 `login_failed` per (user_id, event_type) per 10 minutes".
//!
//! A [`Dedup`] decides, event by event, whether an event of a listed type
//! is admitted or suppressed: a window opens with the first admitted event
//! of a (user_id, event_type) and admits `max` events until `per` has passed
//! (by the [`Clock`], the time of arrival, not the event's `timestamp`);
//! the next event after that opens a new window. Types no rule lists are
//! always admitted: `auth_failure` only if a rule lists it. Suppressed
//! events are counted per type, and [`Dedup::summary`] turns the counts
//! into one `events_suppressed` event at most every [`SUMMARY_EVERY_SECS`].
//!
//! It is used by the library's [`Appender`](crate::store::Appender) (see
//! `Appender::with_dedup`) and by the server's `POST /events`. Nothing
//! about it is stored but the summaries: the on-disk format is unchanged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::clock::Clock;
use crate::event::{Event, EventType, Level, Status, format_timestamp};

/// Seconds between two summary events (when something was suppressed).
pub const SUMMARY_EVERY_SECS: i64 = 60;

/// The type of the summary events.
pub const SUMMARY_TYPE: &str = "events_suppressed";

/// (user_id, event_type) windows tracked at once; a new pair beyond (after
/// the expired windows are swept) is admitted without being tracked: the
/// rules never lose an event for lack of memory.
pub const MAX_TRACKED: usize = 100_000;

/// One `[[dedup]]` rule: at most `max` events per (user_id, event_type)
/// per `per`, for each of `event_types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupRule {
    /// The types it applies to (wire names).
    pub event_types: Vec<String>,
    /// The window.
    pub per: Duration,
    /// Events admitted per window (at least 1).
    pub max: u32,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    count: u32,
    per: Duration,
}

impl Window {
    fn open_at(&self, now: DateTime<Utc>) -> bool {
        // A clock stepped back before the window's start ends it too.
        now >= self.start && now - self.start < self.per
    }
}

#[derive(Debug, Default)]
struct Inner {
    windows: HashMap<(String, String), Window>,
    /// Suppressed per type since the last summary.
    pending: BTreeMap<String, u64>,
    /// When the first of `pending` was suppressed.
    since: Option<DateTime<Utc>>,
    last_summary: Option<DateTime<Utc>>,
    /// Suppressed per type since the start.
    totals: BTreeMap<String, u64>,
}

/// The rules and their windows (shared by every thread that appends).
#[derive(Debug)]
pub struct Dedup {
    /// Rule (`max`, `per`) by type.
    rules: HashMap<String, (u32, Duration)>,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl Dedup {
    /// The rules, on `clock`. A type listed by several rules follows the
    /// first.
    pub fn new(rules: &[DedupRule], clock: Arc<dyn Clock>) -> Dedup {
        let mut by_type = HashMap::new();
        for r in rules {
            for t in &r.event_types {
                by_type.entry(t.clone()).or_insert((r.max.max(1), r.per));
            }
        }
        Dedup {
            rules: by_type,
            clock,
            inner: Mutex::default(),
        }
    }

    /// Whether a rule lists `event_type`.
    pub fn applies(&self, event_type: &str) -> bool {
        self.rules.contains_key(event_type)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an event of `user_id` and `event_type` is admitted now;
    /// a suppressed one is counted.
    pub fn admit(&self, user_id: &str, event_type: &str) -> bool {
        let Some(&(max, per)) = self.rules.get(event_type) else {
            return true;
        };
        let now = self.clock.now();
        let mut inner = self.lock();
        let key = (user_id.to_string(), event_type.to_string());
        if let Some(w) = inner.windows.get_mut(&key)
            && w.open_at(now)
        {
            if w.count < max {
                w.count += 1;
                return true;
            }
            *inner.pending.entry(key.1.clone()).or_default() += 1;
            *inner.totals.entry(key.1).or_default() += 1;
            inner.since.get_or_insert(now);
            return false;
        }
        if inner.windows.len() >= MAX_TRACKED && !inner.windows.contains_key(&key) {
            inner.windows.retain(|_, w| w.open_at(now));
            if inner.windows.len() >= MAX_TRACKED {
                return true;
            }
        }
        inner.windows.insert(
            key,
            Window {
                start: now,
                count: 1,
                per,
            },
        );
        true
    }

    /// Gives back the window slots of events admitted but then not written
    /// (a failed commit): a retry is admitted again.
    pub fn forget(&self, user_id: &str, event_type: &str) {
        if !self.rules.contains_key(event_type) {
            return;
        }
        let mut inner = self.lock();
        let key = (user_id.to_string(), event_type.to_string());
        if let Some(w) = inner.windows.get_mut(&key) {
            w.count = w.count.saturating_sub(1);
        }
    }

    /// Events suppressed per type since the start.
    pub fn suppressed(&self) -> BTreeMap<String, u64> {
        self.lock().totals.clone()
    }

    /// The summary of what was suppressed since the last one, if anything
    /// was and (unless `now_anyway`, e.g. at shutdown) the last one is at
    /// least [`SUMMARY_EVERY_SECS`] old. An `events_suppressed` event of
    /// user `evlog`: `metadata.suppressed` maps each type to its count.
    pub fn summary(&self, now_anyway: bool) -> Option<Event> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.pending.is_empty() {
            return None;
        }
        if !now_anyway
            && inner
                .last_summary
                .is_some_and(|t| now >= t && now - t < Duration::seconds(SUMMARY_EVERY_SECS))
        {
            return None;
        }
        let counts = std::mem::take(&mut inner.pending);
        let since = inner.since.take().unwrap_or(now);
        inner.last_summary = Some(now);
        drop(inner);
        let total: u64 = counts.values().sum();
        let named = counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(
            Event::new(
                EventType::Custom(SUMMARY_TYPE.into()),
                "evlog",
                format!("{total} event(s) suppressed by [[dedup]] rules: {named}"),
            )
            .status(Status::Success)
            .level(Level::Info)
            .metadata(json!({
                "summary": true,
                "suppressed": counts,
                "total": total,
                "since": format_timestamp(&since),
                "until": format_timestamp(&now),
            })),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn at(clock: &Arc<ManualClock>, rules: &[DedupRule]) -> Dedup {
        Dedup::new(rules, clock.clone())
    }

    fn rule(types: &[&str], minutes: i64, max: u32) -> DedupRule {
        DedupRule {
            event_types: types.iter().map(|t| t.to_string()).collect(),
            per: Duration::minutes(minutes),
            max,
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            "2026-03-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        ))
    }

    #[test]
    fn one_per_user_and_type_per_window_then_a_new_window() {
        let c = clock();
        let d = at(&c, &[rule(&["login_failed"], 10, 1)]);
        assert!(d.admit("alice", "login_failed"));
        assert!(!d.admit("alice", "login_failed"));
        // Another user, another type: their own windows / no rule.
        assert!(d.admit("bob", "login_failed"));
        assert!(d.admit("alice", "deploy"));
        assert!(d.admit("alice", "deploy"));
        c.advance(Duration::minutes(10) - Duration::seconds(1));
        assert!(!d.admit("alice", "login_failed"), "still in the window");
        c.advance(Duration::seconds(1));
        assert!(d.admit("alice", "login_failed"), "the window has passed");
        assert!(!d.admit("alice", "login_failed"));
        assert_eq!(d.suppressed()["login_failed"], 3);
    }

    #[test]
    fn max_events_per_window() {
        let c = clock();
        let d = at(&c, &[rule(&["a", "b"], 1, 3)]);
        for _ in 0..3 {
            assert!(d.admit("u", "a"));
        }
        assert!(!d.admit("u", "a"));
        assert!(d.admit("u", "b"), "each listed type has its own windows");
        // A commit that failed gives its slot back.
        d.forget("u", "a");
        assert!(d.admit("u", "a"));
        assert!(!d.admit("u", "a"));
    }

    #[test]
    fn auth_failure_is_never_suppressed_unless_listed() {
        let c = clock();
        let d = at(&c, &[rule(&["login_failed"], 10, 1)]);
        for _ in 0..5 {
            assert!(d.admit("u", "auth_failure"));
        }
        let d = at(&c, &[rule(&["auth_failure"], 10, 1)]);
        assert!(d.admit("u", "auth_failure"));
        assert!(!d.admit("u", "auth_failure"));
    }

    #[test]
    fn a_clock_stepped_back_opens_a_new_window() {
        let c = clock();
        let d = at(&c, &[rule(&["x"], 10, 1)]);
        assert!(d.admit("u", "x"));
        c.advance(-Duration::minutes(1));
        assert!(d.admit("u", "x"));
        assert!(!d.admit("u", "x"));
    }

    #[test]
    fn summaries_name_the_counts_per_type_at_most_once_a_minute() {
        let c = clock();
        let d = at(&c, &[rule(&["a", "b"], 10, 1)]);
        assert!(d.summary(false).is_none(), "nothing suppressed");
        d.admit("u", "a");
        d.admit("u", "a");
        d.admit("u", "a");
        d.admit("v", "b");
        d.admit("v", "b");
        let s = d.summary(false).expect("the first summary is due at once");
        assert_eq!(s.event_type.as_str(), SUMMARY_TYPE);
        assert_eq!(s.user_id, "evlog");
        let m = s.metadata.as_ref().unwrap();
        assert_eq!(m["suppressed"], json!({"a": 2, "b": 1}));
        assert_eq!(m["total"], 3);
        assert!(d.summary(false).is_none(), "counts were taken");
        d.admit("u", "a");
        c.advance(Duration::seconds(59));
        assert!(
            d.summary(false).is_none(),
            "less than a minute after the last"
        );
        c.advance(Duration::seconds(1));
        let s = d.summary(false).unwrap();
        assert_eq!(s.metadata.as_ref().unwrap()["suppressed"], json!({"a": 1}));
        d.admit("u", "a");
        assert!(d.summary(true).is_some(), "at shutdown, at once");
        assert_eq!(d.suppressed()["a"], 4);
    }
}
