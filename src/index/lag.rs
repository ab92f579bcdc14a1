//! How far the committed index is behind the day files: the complete lines
//! past each plain day file's checkpoint. Used by `GET /health` and by the
//! CLI while it waits for another process's indexer to catch up.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tantivy::Index;

use super::indexer::read_checkpoint;
use super::{Error, IndexSearch};
use crate::store::day::{self, DayRange};

/// What the last index commit does not cover yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Complete lines (events) not yet committed to the index.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The lag of `index`'s last commit behind the day files of `storage`.
/// Compressed days are complete once in the checkpoint, so only plain files
/// are read, and only from their checkpoint on.
pub fn lag(storage: &Path, index: &Index) -> Result<Lag, Error> {
    let checkpoint = read_checkpoint(index)?;
    let files = day::list(storage, DayRange::all()).map_err(|e| Error::io(storage, e))?;
    let mut lag = Lag::default();
    for f in files.iter().filter(|f| !f.compressed) {
        let mut file = std::fs::File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&f.path, e))?.len();
        // Bytes after the last newline are not an event yet.
        let len =
            crate::store::reader::complete_len(&file, len).map_err(|e| Error::io(&f.path, e))?;
        let done = checkpoint.files.get(&f.day).map_or(0, |m| m.offset);
        if done >= len {
            continue;
        }
        lag.bytes += len - done;
        file.seek(SeekFrom::Start(done))
            .map_err(|e| Error::io(&f.path, e))?;
        let mut rest = file.take(len - done);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = rest.read(&mut buf).map_err(|e| Error::io(&f.path, e))?;
            if n == 0 {
                break;
            }
            lag.events += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
    }
    Ok(lag)
}

impl IndexSearch {
    /// The lag of this searcher's index behind the day files of `storage`.
    pub fn lag(&self, storage: &Path) -> Result<Lag, Error> {
        lag(storage, self.reader.searcher().index())
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
        assert_eq!(lag(dir.path(), ix.index()).unwrap(), Lag::default());
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
        assert_eq!(lag(dir.path(), ix.index()).unwrap(), Lag::default());
    }
}
