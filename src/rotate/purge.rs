//! Purge: delete the whole days older than a retention, on request
//! (`POST /admin/purge`, `evlog purge`), answering how many events went.
//! It is rotation's deletion step alone — [`super::run`] with a policy that
//! only deletes by age — so files, chain anchor, index and the open-day
//! rule ([`super::open`]) are handled as rotation handles them.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use serde_json::json;

use super::{Error, Failure, Kind, Options, Policy, Report};
use crate::event::{Event, EventType, SERVER_APPENDER, Status};

/// Default of `[rotation] min_retention_days`: a purge keeps at least this
/// many days.
pub const DEFAULT_MIN_RETENTION_DAYS: u32 = 30;

/// Largest `retention_days` (100 years, the longest age rotation takes).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Checks a requested retention against the configured minimum; the error
/// says what is allowed.
pub fn check_retention(retention_days: u32, min: u32) -> Result<(), String> {
    if retention_days < min {
        return Err(format!(
            "{retention_days} is below the minimum retention of {min} days \
             ([rotation] min_retention_days)"
        ));
    }
    if retention_days > MAX_RETENTION_DAYS {
        return Err(format!(
            "{retention_days} is more than {MAX_RETENTION_DAYS} days"
        ));
    }
    Ok(())
}

/// The rotation options of a purge at `now`: delete the days older than
/// `retention_days` (counted from the end of each day, as rotation's
/// `delete_after`), compress nothing, no size limit; the open-day rule
/// unless `force`.
pub fn options(retention_days: u32, now: DateTime<Utc>, dry_run: bool, force: bool) -> Options {
    let policy = Policy {
        compress_after: None,
        delete_after: Some(Duration::days(i64::from(retention_days))),
        max_total_size: None,
    };
    let mut o = Options::new(policy, now);
    o.dry_run = dry_run;
    o.keep_open = !force;
    o.kind = Kind::Purge;
    o
}

/// What a purge did (or, with `dry_run`, would do): the body of
/// `POST /admin/purge` and of `evlog purge --format json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PurgeReport {
    /// Events deleted (would be, in a dry run): the lines of the deleted day files.
    pub deleted: u64,
    /// Days deleted, oldest first (`YYYY-MM-DD`).
    pub deleted_days: Vec<String>,
    /// Events of each deleted day.
    pub events_per_day: BTreeMap<String, u64>,
    /// Days older than the retention kept because they hold an open
    /// (unresolved) event of level warning, error or security (or the
    /// index could not tell: see `notes`); none with `force`.
    pub kept_open_days: Vec<String>,
    /// Days older than the retention kept because an older day is kept:
    /// deletions always take the oldest days (the hash chain has one start).
    pub kept_behind_open_days: Vec<String>,
    /// Days older than the retention kept because the replication
    /// publisher has not published all their events yet (and the days
    /// after them); `force` does not override this.
    pub kept_unpublished_days: Vec<String>,
    /// The retention asked for.
    pub retention_days: u32,
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// Whether the open-day rule was overridden.
    pub force: bool,
    /// Files that could not be deleted (later days were kept).
    pub failures: Vec<Failure>,
    /// Things worth knowing (why a day was kept, index state).
    pub notes: Vec<String>,
    /// One sentence for people: `Purged 1,234 events in 3 days (2 days kept: open warnings)`.
    pub message: String,
}

impl PurgeReport {
    /// The purge view of a rotation report.
    pub fn new(r: Report, retention_days: u32, force: bool) -> PurgeReport {
        let mut p = PurgeReport {
            deleted: r.deleted_event_count(),
            deleted_days: r.deleted_events.keys().cloned().collect(),
            events_per_day: r.deleted_events,
            kept_open_days: r.kept_open_days,
            kept_behind_open_days: r.kept_behind_open_days,
            kept_unpublished_days: r.kept_unpublished_days,
            retention_days,
            dry_run: r.dry_run,
            force,
            failures: r.failures,
            notes: r.notes,
            message: String::new(),
        };
        p.message = p.sentence();
        p
    }

    /// Whether every due day was handled (kept days are not failures).
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report event of this purge, as rotations are reported: a
    /// `system_config` event of the user `evlog`, run by `run_by` (said in
    /// the description), with the counts and who ran it in `metadata`.
    pub fn event(&self, run_by: &str, operator: Option<&str>, key_id: Option<&str>) -> Event {
        Event::new(
            EventType::SystemConfig,
            SERVER_APPENDER,
            format!("purge by {run_by}: {}", self.message),
        )
        .status(if self.ok() {
            Status::Success
        } else {
            Status::Failure
        })
        .metadata(json!({
            "purge": true,
            "retention_days": self.retention_days,
            "force": self.force,
            "deleted": self.deleted,
            "events_per_day": self.events_per_day,
            "kept_open_days": self.kept_open_days,
            "kept_behind_open_days": self.kept_behind_open_days,
            "kept_unpublished_days": self.kept_unpublished_days,
            "failures": self.failures,
            "operator": operator,
            "key_id": key_id,
        }))
        .appended_by(SERVER_APPENDER)
    }

    fn sentence(&self) -> String {
        let verb = if self.dry_run {
            "Would purge"
        } else {
            "Purged"
        };
        let mut s = format!(
            "{verb} {} in {}",
            plural(self.deleted, "event"),
            plural(self.deleted_days.len() as u64, "day")
        );
        let mut kept = Vec::new();
        if !self.kept_open_days.is_empty() {
            kept.push(format!(
                "{} kept: open warnings",
                plural(self.kept_open_days.len() as u64, "day")
            ));
        }
        if !self.kept_behind_open_days.is_empty() {
            kept.push(format!(
                "{} kept behind them",
                plural(self.kept_behind_open_days.len() as u64, "younger day")
            ));
        }
        if !self.kept_unpublished_days.is_empty() {
            kept.push(format!(
                "{} kept: not yet published to the stream",
                plural(self.kept_unpublished_days.len() as u64, "day")
            ));
        }
        if !self.failures.is_empty() {
            kept.push(format!(
                "{} failed",
                plural(self.failures.len() as u64, "file")
            ));
        }
        if !kept.is_empty() {
            s.push_str(&format!(" ({})", kept.join("; ")));
        }
        if self.deleted_days.is_empty() && kept.is_empty() {
            s.push_str(&format!(
                ": no day is older than {} days",
                group(u64::from(self.retention_days))
            ));
        }
        s
    }
}

/// `1 event`, `1,234 events`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", group(n))
    }
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Purges `dir` with `opts` (from [`options`], perhaps with another index
/// mode or progress): [`super::run`], seen as a purge.
pub fn run(dir: &Path, opts: &Options, retention_days: u32) -> Result<PurgeReport, Error> {
    let r = super::run(dir, opts)?;
    Ok(PurgeReport::new(r, retention_days, !opts.keep_open))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1234), "1,234");
        assert_eq!(group(1_234_567), "1,234,567");
        let mut r = Report::default();
        r.deleted_events.insert("2026-01-01".into(), 1000);
        r.deleted_events.insert("2026-01-02".into(), 234);
        r.kept_open_days = vec!["2026-01-03".into(), "2026-01-05".into()];
        r.kept_behind_open_days = vec!["2026-01-04".into()];
        let p = PurgeReport::new(r, 30, false);
        assert_eq!(
            p.message,
            "Purged 1,234 events in 2 days (2 days kept: open warnings; 1 younger day kept behind them)"
        );
        assert_eq!(p.deleted, 1234);
        assert_eq!(p.deleted_days, ["2026-01-01", "2026-01-02"]);
        let p = PurgeReport::new(
            Report {
                dry_run: true,
                ..Report::default()
            },
            45,
            false,
        );
        assert_eq!(
            p.message,
            "Would purge 0 events in 0 days: no day is older than 45 days"
        );
    }

    #[test]
    fn retention_below_the_minimum_is_refused() {
        assert!(check_retention(30, 30).is_ok());
        let e = check_retention(29, 30).unwrap_err();
        assert!(e.contains("30") && e.contains("min_retention_days"), "{e}");
        assert!(check_retention(MAX_RETENTION_DAYS + 1, 0).is_err());
    }
}
