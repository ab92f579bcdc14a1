//! Day files: names, paths and listing. `events_YYYY-MM-DD.jsonl` for a day
//! being (or last) appended to, `events_YYYY-MM-DD.jsonl.gz` once rotated.

use std::io;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

/// One day's file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    /// The UTC day of the appends it holds.
    pub day: NaiveDate,
    /// Full path.
    pub path: PathBuf,
    /// Whether it is gzip-compressed.
    pub compressed: bool,
}

impl DayFile {
    /// The `.jsonl.gz` form of a plain day file (where rotation renames its
    /// compressed copy before it removes the plain file); `None` for a file
    /// already compressed.
    pub fn compressed_form(&self) -> Option<DayFile> {
        if self.compressed {
            return None;
        }
        let mut gz = self.path.clone().into_os_string();
        gz.push(".gz");
        Some(DayFile {
            day: self.day,
            path: PathBuf::from(gz),
            compressed: true,
        })
    }
}

/// An inclusive range of days; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayRange {
    /// First day (inclusive).
    pub from: Option<NaiveDate>,
    /// Last day (inclusive).
    pub to: Option<NaiveDate>,
}

impl DayRange {
    /// Every day.
    pub fn all() -> Self {
        DayRange::default()
    }
    /// A single day.
    pub fn day(d: NaiveDate) -> Self {
        DayRange {
            from: Some(d),
            to: Some(d),
        }
    }
    /// Whether `d` is inside.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }
}

/// `events_YYYY-MM-DD.jsonl`.
pub fn plain_name(day: NaiveDate) -> String {
    format!("events_{}.jsonl", day.format("%Y-%m-%d"))
}

/// Path of the plain file of `day` under `dir`.
pub fn plain_path(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(plain_name(day))
}

/// Path of the compressed file of `day` under `dir`.
pub fn gz_path(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(format!("{}.gz", plain_name(day)))
}

/// Parses a day file name: `Some((day, compressed))` for
/// `events_YYYY-MM-DD.jsonl` and `events_YYYY-MM-DD.jsonl.gz`, else `None`.
pub fn parse_name(name: &str) -> Option<(NaiveDate, bool)> {
    let rest = name.strip_prefix("events_")?;
    let (date, compressed) = if let Some(d) = rest.strip_suffix(".jsonl.gz") {
        (d, true)
    } else {
        (rest.strip_suffix(".jsonl")?, false)
    };
    if date.len() != 10 {
        return None;
    }
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((day, compressed))
}

/// Parses a `YYYY-MM-DD` day given by a user, with a message that says what is wanted.
pub fn parse_day(s: &str) -> Result<NaiveDate, String> {
    if s.len() != 10 {
        return Err(format!("`{s}` is not a day: want YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a day ({e}): want YYYY-MM-DD"))
}

/// Lists the day files under `dir` in `range`, oldest first. When a day exists
/// both plain and compressed (a rotation interrupted between its rename and
/// the removal of the plain file), only the plain file is listed: it is the
/// original, and listing both would read every event of that day twice.
pub fn list(dir: &Path, range: DayRange) -> io::Result<Vec<DayFile>> {
    let mut files: Vec<DayFile> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((day, compressed)) = parse_name(name) else {
            continue;
        };
        if !range.contains(day) {
            continue;
        }
        files.push(DayFile {
            day,
            path: entry.path(),
            compressed,
        });
    }
    // Plain sorts before compressed for the same day; keep the first of each day.
    files.sort_by_key(|f| (f.day, f.compressed));
    files.dedup_by_key(|f| f.day);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap();
        assert_eq!(plain_name(d), "events_2026-01-09.jsonl");
        assert_eq!(parse_name("events_2026-01-09.jsonl"), Some((d, false)));
        assert_eq!(parse_name("events_2026-01-09.jsonl.gz"), Some((d, true)));
        for bad in [
            "events_2026-1-9.jsonl",
            "events_2026-01-09.jsonl.torn",
            "events_2026-01-09.jsonl.gz.tmp",
            "x_2026-01-09.jsonl",
            "events_2026-02-30.jsonl",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_day_rejects_traversal_and_junk() {
        assert!(parse_day("2026-11-23").is_ok());
        for bad in ["../../etc", "2026-11-23/..", "2026-13-01", "", "20261123"] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listing_prefers_plain_and_filters_range() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "events_2026-01-01.jsonl.gz",
            "events_2026-01-02.jsonl",
            "events_2026-01-02.jsonl.gz",
            "events_2026-01-03.jsonl",
            "events_2026-01-03.jsonl.torn",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let all = list(dir.path(), DayRange::all()).unwrap();
        let names: Vec<_> = all
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "events_2026-01-01.jsonl.gz",
                "events_2026-01-02.jsonl",
                "events_2026-01-03.jsonl"
            ]
        );
        let d2 = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(list(dir.path(), DayRange::day(d2)).unwrap().len(), 1);
        assert!(
            list(&dir.path().join("missing"), DayRange::all())
                .unwrap()
                .is_empty()
        );
    }
}
