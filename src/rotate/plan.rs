//! The plan: which day files exist (both forms, and leftovers of a crashed
//! rotation), and which days are old enough to compress or delete.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Error, io_err};
use crate::store::day;

/// The files of one day.
#[derive(Debug, Clone, Default)]
pub(super) struct Day {
    pub(super) plain: Option<u64>,
    pub(super) gz: Option<u64>,
}

impl Day {
    pub(super) fn bytes(&self) -> u64 {
        self.plain.unwrap_or(0) + self.gz.unwrap_or(0)
    }

    /// The file to read day `d` from: the plain one when there is one
    /// (an interrupted rotation may leave both), else the `.gz`.
    pub(super) fn file(&self, dir: &Path, d: NaiveDate) -> day::DayFile {
        let compressed = self.plain.is_none();
        day::DayFile {
            day: d,
            path: if compressed {
                day::gz_path(dir, d)
            } else {
                day::plain_path(dir, d)
            },
            compressed,
        }
    }
}

/// Day files by day, both forms.
pub(super) fn scan(dir: &Path) -> Result<(BTreeMap<NaiveDate, Day>, Vec<PathBuf>), Error> {
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut tmps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(".gz.tmp") {
            if day::parse_name(base).is_some_and(|(_, c)| !c) {
                tmps.push(entry.path());
            }
            continue;
        }
        let Some((d, compressed)) = day::parse_name(name) else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(m) if m.is_file() => m.len(),
            // A directory or something odd with a day's name: report it below.
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(entry.path())(e)),
        };
        let slot = days.entry(d).or_default();
        if compressed {
            slot.gz = Some(len);
        } else {
            slot.plain = Some(len);
        }
    }
    Ok((days, tmps))
}

/// The events of day `d`: the complete lines of its file (the plain one
/// when both forms exist, as readers do). Counted from the file, not the
/// index: the file is what is deleted, and the index may lag behind it or
/// be rebuilding. `progress` gets the bytes of the file read so far (every
/// 64 MiB, and at the end).
pub(super) fn count_events(
    dir: &Path,
    d: NaiveDate,
    e: &Day,
    progress: &mut dyn FnMut(&Path, u64, u64),
) -> io::Result<u64> {
    const STEP: u64 = 64 << 20;
    let day::DayFile {
        path, compressed, ..
    } = e.file(dir, d);
    let mut f = File::open(&path)?;
    let len = f.metadata()?.len();
    // A plain file's complete lines only: what follows is a torn tail.
    let take = if compressed {
        len
    } else {
        crate::store::reader::complete_len(&f, len)?
    };
    f.seek(SeekFrom::Start(0))?;
    let done = Rc::new(Cell::new(0u64));
    let raw = Tally {
        inner: f.take(take),
        done: done.clone(),
    };
    let mut r: Box<dyn Read> = if compressed {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut next) = (0u64, STEP);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        if done.get() >= next {
            progress(&path, done.get(), take);
            next = done.get() + STEP;
        }
    }
    progress(&path, take, take);
    Ok(lines)
}

/// A reader that counts the bytes read through it.
struct Tally<R> {
    inner: R,
    done: Rc<Cell<u64>>,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.set(self.done.get() + n as u64);
        Ok(n)
    }
}

/// The end of day `d` (the next midnight, UTC): the last moment it could be appended to.
pub(super) fn day_end(d: NaiveDate) -> DateTime<Utc> {
    (d + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// Whether day `d` is older than `age` at `now` (counted from the end of the day).
pub(super) fn older_than(d: NaiveDate, age: Option<chrono::Duration>, now: DateTime<Utc>) -> bool {
    age.is_some_and(|a| d < now.date_naive() && now - day_end(d) >= a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn ages_count_from_the_end_of_the_day() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let week = Some(chrono::Duration::days(7));
        assert!(!older_than(d, week, at("2026-11-22T23:59:59Z")));
        assert!(older_than(d, week, at("2026-11-23T00:00:00Z")));
        // Today is never old, whatever the age.
        let zero = Some(chrono::Duration::zero());
        assert!(!older_than(d, zero, at("2026-11-15T23:00:00Z")));
        assert!(older_than(d, zero, at("2026-11-16T00:00:00Z")));
        assert!(!older_than(d, None, at("2030-01-01T00:00:00Z")));
    }
}
