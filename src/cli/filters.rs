//! Flags shared by several subcommands: the event filters of `query`,
//! `export`, `stats` and `tail` (they mirror the HTTP parameter names), paging,
//! and the day range of `cat` and `verify`.

use chrono::{DateTime, NaiveDate, Utc};

use crate::event::privacy::PrivacyConfig;
use crate::event::{Level, Status, parse_timestamp};
use crate::index::Query;
use crate::store::DayRange;

/// Filters of the events (same names as the HTTP query parameters).
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// UTC day of the events' timestamp (YYYY-MM-DD); default today unless --start/--end.
    #[arg(long, value_parser = super::parse_day, value_name = "DAY")]
    pub date: Option<NaiveDate>,
    /// From this time, inclusive (RFC 3339).
    #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
    pub start: Option<DateTime<Utc>>,
    /// Until this time, exclusive (RFC 3339).
    #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
    pub end: Option<DateTime<Utc>>,
    /// Event type; repeat for any of several.
    #[arg(long = "event-type", value_name = "TYPE")]
    pub event_type: Vec<String>,
    /// success, failure, pending or in_progress (any case).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<Status>,
    /// info, warning, error or security (any case).
    #[arg(long, value_parser = parse_level)]
    pub level: Option<Level>,
    /// Exact user id (with `user_id_hash_key` set: the user, or the stored
    /// `uh_…` id).
    #[arg(long = "user-id", value_name = "USER")]
    pub user_id: Option<String>,
    /// Exact request id.
    #[arg(long = "request-id", value_name = "ID")]
    pub request_id: Option<String>,
    /// Exact emitting service (the events' `source`).
    #[arg(long, value_name = "SERVICE")]
    pub source: Option<String>,
    /// Resolved events only; `--resolved=false`: open ones only (see
    /// `evlog resolve`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub resolved: Option<bool>,
    /// Exact tenant (`_`: the default tenant's events, those without
    /// `tenant`); default: every tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Full text over description, comments, files and metadata values:
    /// terms are ANDed, "quoted words" are phrases, and a term with
    /// punctuation (src/lib.rs) matches as a phrase.
    #[arg(short = 'q', long = "q", value_name = "TEXT")]
    pub q: Option<String>,
}

/// Paging flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Events per page (1-1000, default 100).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Matches to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// The next_cursor of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl FilterArgs {
    /// The query of these filters (no paging). `--user-id` is matched as
    /// stored: hashed when the configuration sets `user_id_hash_key`
    /// (unless it already is a stored `uh_…` id), like the server's filters.
    pub fn to_query(&self, privacy: &PrivacyConfig) -> Query {
        Query {
            date: self.date,
            start: self.start,
            end: self.end,
            event_types: self.event_type.clone(),
            status: self.status,
            level: self.level,
            user_id: self
                .user_id
                .as_deref()
                .map(|u| privacy.compile().user_id_filter(u)),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            resolved: self.resolved,
            tenant: self.tenant.clone(),
            q: self.q.clone(),
            ..Query::default()
        }
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    parse_timestamp(s)
        .map_err(|e| format!("`{s}` is not RFC 3339 ({e}), e.g. 2026-11-23T08:00:00Z"))
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse::<Status>().map_err(|e| e.message)
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse::<Level>().map_err(|e| e.message)
}

/// Which day files (`cat`, `verify`): one day, or a range of days.
#[derive(Debug, Clone, clap::Args)]
pub struct DayRangeArgs {
    /// Only this day (YYYY-MM-DD, the UTC day of the append).
    #[arg(long, value_parser = super::parse_day, value_name = "DAY", conflicts_with_all = ["from", "to"])]
    pub date: Option<NaiveDate>,
    /// First day (YYYY-MM-DD, inclusive).
    #[arg(long, value_parser = super::parse_day, value_name = "DAY")]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD, inclusive).
    #[arg(long, value_parser = super::parse_day, value_name = "DAY")]
    pub to: Option<NaiveDate>,
}

impl DayRangeArgs {
    /// The days of `--date`, or of `--from`/`--to` (all days without either).
    pub fn range(&self) -> DayRange {
        match self.date {
            Some(d) => DayRange::day(d),
            None => DayRange {
                from: self.from,
                to: self.to,
            },
        }
    }
}
