//! The open-day rule: retention (rotation's deletions, purge) keeps a day
//! file that still holds an open event of level warning, error or security,
//! unless told otherwise (`keep_open = false`, `force`). This module is the
//! one place that says which events keep a day ([`keeping`]); rotation asks
//! it through its `IndexState`, the index answering from its last commit.
//!
//! A day is judged by the events stored in its file (the `file_day`
//! filter), not by their `timestamp`: a client may send any timestamp, and
//! retention deletes files.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::event::{Level, MIN_TIMESTAMP};
use crate::index::{self, IndexSearch, Query};

/// The levels whose open events keep their day.
pub const KEEPING_LEVELS: [Level; 3] = [Level::Warning, Level::Error, Level::Security];

/// The query of the events of level `level` in the file of day `d` that
/// keep it from deletion.
fn keeping(d: NaiveDate, level: Level) -> Query {
    Query {
        file_day: Some(d),
        // Every timestamp the index holds: no default day.
        start: Some(MIN_TIMESTAMP),
        level: Some(level),
        resolved: Some(false),
        limit: Some(1),
        ..Query::default()
    }
}

/// Of `candidates` (days due for deletion), those whose file holds events
/// that keep it ([`KEEPING_LEVELS`]), with how many, counted by `search`.
pub fn open_days(
    search: &IndexSearch,
    candidates: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, u64>, index::Error> {
    let mut open = BTreeMap::new();
    for &d in candidates {
        let mut n = 0;
        for level in KEEPING_LEVELS {
            n += search.query(&keeping(d, level))?.total;
        }
        if n > 0 {
            open.insert(d, n);
        }
    }
    Ok(open)
}
