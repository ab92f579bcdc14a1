//! The server's daily run: when it last ran, kept in `rotate.last` in the
//! storage directory, so that a run missed while the server was down is
//! caught up when it starts again within a grace (see
//! `server::admin::schedule`). A small file rather than the stored rotation
//! reports: it is read before the index is caught up, and a report event
//! may still sit in the appender's queue when the server stops.

use std::io;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveTime, Utc};

/// The file that records the start of the last daily run: one RFC 3339
/// line (written atomically; safe to delete: the next start then catches
/// up if within the grace of today's time).
pub const LAST_RUN_FILE: &str = "rotate.last";

/// Default of `[rotation] catch_up_grace`.
pub const DEFAULT_CATCH_UP_GRACE: &str = "1h";

/// When the daily run last started, if recorded (an unreadable file counts
/// as none, with a warning).
pub fn last_run(dir: &Path) -> Option<DateTime<Utc>> {
    let path = dir.join(LAST_RUN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable; taken as no run recorded");
                None
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "unreadable; taken as no run recorded");
            None
        }
    }
}

/// Records `at` as the start of the last daily run (temporary file, fsync,
/// rename, fsync of the directory).
pub fn record_run(dir: &Path, at: DateTime<Utc>) -> io::Result<()> {
    let line = format!(
        "{}\n",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    crate::store::write_file_atomic(dir, LAST_RUN_FILE, line.as_bytes())
}

/// The next `at` (UTC) strictly after `now`.
pub fn next_run(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

/// Whether a daily run is due at once, on start: the latest `at` at or
/// before `now` is at most `grace` ago and no run started at or after it
/// (`last`). Outside the grace the run waits for the next `at`.
pub fn missed(
    now: DateTime<Utc>,
    at: NaiveTime,
    last: Option<DateTime<Utc>>,
    grace: Option<Duration>,
) -> bool {
    let Some(grace) = grace else {
        return false;
    };
    let latest = next_run(now, at) - Duration::days(1);
    now - latest <= grace && last.is_none_or(|l| l < latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_run_is_today_or_tomorrow() {
        let at = NaiveTime::from_hms_opt(0, 15, 0).unwrap();
        assert_eq!(
            next_run(t("2026-11-23T00:10:00Z"), at),
            t("2026-11-23T00:15:00Z")
        );
        assert_eq!(
            next_run(t("2026-11-23T00:15:00Z"), at),
            t("2026-11-24T00:15:00Z")
        );
        assert_eq!(
            next_run(t("2026-11-23T23:59:00Z"), at),
            t("2026-11-24T00:15:00Z")
        );
    }

    /// Issue 15: a run missed while the server was down is caught up on
    /// start within the grace, and only then.
    #[test]
    fn a_missed_run_is_caught_up_within_the_grace() {
        let at = NaiveTime::from_hms_opt(0, 15, 0).unwrap();
        let hour = Some(Duration::hours(1));
        // Started at 00:40, nothing recorded today: run now.
        assert!(missed(t("2026-11-23T00:40:00Z"), at, None, hour));
        assert!(missed(
            t("2026-11-23T00:40:00Z"),
            at,
            Some(t("2026-11-22T00:15:01Z")),
            hour
        ));
        // At 01:15 exactly, still within the grace.
        assert!(missed(t("2026-11-23T01:15:00Z"), at, None, hour));
        // At 02:00: wait for tomorrow.
        assert!(!missed(t("2026-11-23T02:00:00Z"), at, None, hour));
        // Today's run happened (a restart at 00:40).
        assert!(!missed(
            t("2026-11-23T00:40:00Z"),
            at,
            Some(t("2026-11-23T00:15:00Z")),
            hour
        ));
        // Before today's time: yesterday's is long past the grace.
        assert!(!missed(t("2026-11-23T00:10:00Z"), at, None, hour));
        // A grace reaching back across midnight.
        let at = NaiveTime::from_hms_opt(23, 50, 0).unwrap();
        assert!(missed(t("2026-11-23T00:20:00Z"), at, None, hour));
        // Catching up turned off.
        assert!(!missed(t("2026-11-23T00:40:00Z"), at, None, None));
    }

    #[test]
    fn the_last_run_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_run(dir.path()), None);
        let when = t("2026-11-23T00:15:00.123456Z");
        record_run(dir.path(), when).unwrap();
        assert_eq!(last_run(dir.path()), Some(when));
        std::fs::write(dir.path().join(LAST_RUN_FILE), "garbage").unwrap();
        assert_eq!(last_run(dir.path()), None);
    }
}
