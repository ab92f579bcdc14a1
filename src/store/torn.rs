//! Torn-tail recovery: a writer that crashed mid-write leaves a final line
//! without its newline (never acknowledged). The next writer, or
//! maintenance through [`cut_torn_tail`], moves it to `<file>.torn` and cuts
//! the day file back to its last whole line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::error::Error;
use super::faults::Faults;
use super::lock::StorageLock;
use super::{DAY_FILE_MODE, Stats, reader};

/// Moves the torn final line of the day file `path` aside (see the module
/// docs), with the storage lock held by the caller. Returns the file's
/// length after: the end of its last whole line.
pub fn cut_torn_tail(path: &Path, _lock: &StorageLock) -> Result<u64, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    recover_torn_tail(&file, path, len, &Stats::default(), &Faults::default())
}

/// If the file does not end with a newline, moves the bytes after the last
/// newline to `<file>.torn` (appended, followed by a newline), truncates the
/// file and fsyncs both. Returns the new length. Called with the lock held.
pub(crate) fn recover_torn_tail(
    file: &File,
    path: &Path,
    len: u64,
    stats: &Stats,
    faults: &Faults,
) -> Result<u64, Error> {
    let io = |e| Error::io(path, e);
    let complete = reader::complete_len(file, len).map_err(io)?;
    if complete == len {
        return Ok(len);
    }
    let mut torn = vec![0u8; (len - complete) as usize];
    let mut f = file;
    f.seek(SeekFrom::Start(complete)).map_err(io)?;
    f.read_exact(&mut torn).map_err(io)?;
    let mut torn_path = path.as_os_str().to_owned();
    torn_path.push(".torn");
    let torn_path = PathBuf::from(torn_path);
    faults.check_open().map_err(|e| Error::io(&torn_path, e))?;
    let mut side = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(DAY_FILE_MODE)
        .open(&torn_path)
        .map_err(|e| Error::io(&torn_path, e))?;
    torn.push(b'\n');
    side.write_all(&torn)
        .and_then(|()| side.sync_all())
        .map_err(|e| Error::io(&torn_path, e))?;
    faults.set_len(file, complete).map_err(io)?;
    file.sync_all().map_err(io)?;
    stats.torn_tails.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        file = %path.display(),
        bytes = torn.len() - 1,
        moved_to = %torn_path.display(),
        "torn final line (a writer crashed mid-write) moved aside; it was never acknowledged"
    );
    Ok(complete)
}
