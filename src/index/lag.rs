//! How far the committed index is behind the day files: the complete lines
//! past each plain day file's checkpoint. Used by `GET /health` and by the
//! CLI while it waits for another process's indexer to catch up.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tantivy::Index;

use super::checkpoint::{Checkpoint, read_checkpoint};
use super::{Error, IndexSearch};
use crate::store::day::{self, DayRange};

/// What the last index commit does not cover yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Complete lines (events) not yet committed to the index: counted
    /// exactly up to [`COUNT_LIMIT`] bytes of backlog, estimated beyond.
    pub events: u64,
    /// Their bytes (exact).
    pub bytes: u64,
    /// Whether `events` was counted (not estimated).
    pub exact: bool,
}

/// Bytes of backlog whose lines are counted; beyond, the count is
/// extrapolated from them, so that `/health` stays cheap when the index is
/// gigabytes behind.
pub const COUNT_LIMIT: u64 = 4 << 20;

/// The lag of `index`'s last commit behind the day files of `storage`.
/// Compressed days are complete once in the checkpoint, so only plain files
/// are read, and only from their checkpoint on.
pub fn lag(storage: &Path, index: &Index) -> Result<Lag, Error> {
    lag_after(storage, &read_checkpoint(index)?)
}

/// The lag of `checkpoint` behind the day files of `storage`.
fn lag_after(storage: &Path, checkpoint: &Checkpoint) -> Result<Lag, Error> {
    let files = day::list(storage, DayRange::all()).map_err(|e| Error::io(storage, e))?;
    let mut lag = Lag {
        exact: true,
        ..Lag::default()
    };
    // Lines and bytes actually counted, for the estimate of the rest.
    let (mut counted_lines, mut counted_bytes) = (0u64, 0u64);
    for f in files.iter().filter(|f| !f.compressed) {
        let mut file = match std::fs::File::open(&f.path) {
            Ok(file) => file,
            // Compressed or deleted by rotation since the listing: nothing to index there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&f.path, e)),
        };
        let len = file.metadata().map_err(|e| Error::io(&f.path, e))?.len();
        // Bytes after the last newline are not an event yet.
        let len =
            crate::store::reader::complete_len(&file, len).map_err(|e| Error::io(&f.path, e))?;
        let done = checkpoint.files.get(&f.day).map_or(0, |m| m.offset);
        if done >= len {
            continue;
        }
        lag.bytes += len - done;
        let budget = COUNT_LIMIT.saturating_sub(counted_bytes).min(len - done);
        if budget == 0 {
            continue;
        }
        file.seek(SeekFrom::Start(done))
            .map_err(|e| Error::io(&f.path, e))?;
        let mut rest = file.take(budget);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = rest.read(&mut buf).map_err(|e| Error::io(&f.path, e))?;
            if n == 0 {
                break;
            }
            counted_lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            counted_bytes += n as u64;
        }
    }
    lag.events = counted_lines;
    if lag.bytes > counted_bytes {
        lag.exact = false;
        let rest = lag.bytes - counted_bytes;
        lag.events += (rest as f64 * counted_lines as f64 / counted_bytes.max(1) as f64) as u64;
    }
    Ok(lag)
}

impl IndexSearch {
    /// The lag of what this searcher shows behind the day files of
    /// `storage`. The reader is reloaded after reading the committed
    /// checkpoint, so a lag of 0 means every event is searchable here (an
    /// indexer's own reload may come a moment after its commit).
    pub fn lag(&self, storage: &Path) -> Result<Lag, Error> {
        let checkpoint = read_checkpoint(self.reader().searcher().index())?;
        self.reader().reload().map_err(Error::tantivy)?;
        lag_after(storage, &checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexConfig, Indexer};
    use crate::{Config, Event, EventLog, EventType};

    #[test]
    fn counts_the_lines_past_the_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let mut ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
        let none = Lag {
            exact: true,
            ..Lag::default()
        };
        assert_eq!(lag(dir.path(), ix.index()).unwrap(), none);
        for i in 0..3 {
            log.append(Event::new(EventType::Commit, "dev", format!("e{i}")))
                .unwrap();
        }
        let behind = lag(dir.path(), ix.index()).unwrap();
        assert_eq!(behind.events, 3);
        assert!(behind.bytes > 100);
        ix.catch_up().unwrap();
        assert_eq!(
            lag(dir.path(), ix.index()).unwrap().events,
            3,
            "documents added but not committed are still lag"
        );
        ix.commit().unwrap();
        assert_eq!(lag(dir.path(), ix.index()).unwrap(), none);
    }

    #[test]
    fn a_backlog_beyond_the_count_limit_is_estimated_from_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            EventLog::open(Config::new(dir.path()).durability(crate::Durability::None)).unwrap();
        let ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
        let line = "x".repeat(400);
        let n = (COUNT_LIMIT / 400) * 3;
        let events: Vec<Event> = (0..n)
            .map(|_| Event::new(EventType::Commit, "dev", line.clone()))
            .collect();
        log.append_batch(events).unwrap();
        let behind = lag(dir.path(), ix.index()).unwrap();
        assert!(!behind.exact);
        assert!(behind.bytes > 3 * COUNT_LIMIT);
        // Lines of nearly one size (seq grows a digit now and then): the
        // estimate is within 1%.
        assert!(
            behind.events.abs_diff(n) * 100 <= n,
            "estimated {} for {n}",
            behind.events
        );
    }
}
