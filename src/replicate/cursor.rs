//! The publisher's cursor: the last line of this store whose publish the
//! stream acknowledged, and where that line ends in the day files, kept in
//! `replication.cursor` beside them.
//!
//! It is derived state like the index: deleting it makes the next start
//! publish the whole store again, which the stream's `Nats-Msg-Id`
//! de-duplication and the followers' id check turn into no new copies.

use std::io;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The cursor file, in the storage directory.
pub const CURSOR_FILE: &str = "replication.cursor";

/// The last acknowledged line, and where to read on from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `seq` of the last line the stream acknowledged (0: none yet).
    pub seq: u64,
    /// The day file that line is in (`None`: none yet).
    pub day: Option<NaiveDate>,
    /// Byte offset just after that line, in the file's uncompressed content.
    pub offset: u64,
    /// Its 1-based line number in the file.
    pub line: u64,
}

impl Cursor {
    /// Reads the cursor of the store in `dir`; none yet is the start.
    pub fn load(dir: &Path) -> io::Result<Cursor> {
        let path = dir.join(CURSOR_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: not a replication cursor ({e}); delete it to publish the store again \
                         from its first line (the stream drops the copies it already has)",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// Writes it atomically (a crash leaves the old cursor or the new one).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        crate::store::write_file_atomic(dir, CURSOR_FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_the_start_and_a_saved_cursor_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Cursor::load(dir.path()).unwrap(), Cursor::default());
        let c = Cursor {
            seq: 42,
            day: NaiveDate::from_ymd_opt(2026, 12, 5),
            offset: 9000,
            line: 17,
        };
        c.save(dir.path()).unwrap();
        assert_eq!(Cursor::load(dir.path()).unwrap(), c);
        assert!(!dir.path().join(format!("{CURSOR_FILE}.tmp")).exists());
    }

    #[test]
    fn a_damaged_cursor_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CURSOR_FILE), b"{\"seq\":").unwrap();
        let e = Cursor::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CURSOR_FILE) && e.contains("delete it"), "{e}");
    }
}
