//! The storage lock: an exclusive `flock` on `<storage>/evlog.lock` (std's
//! `File::lock`), held by a writer for one batch. It serialises writers
//! across threads *and* processes, keeps the hash chain linear across day
//! files, and is what maintenance (rotation) takes to exclude writers
//! ([`StorageLock`]). The lock file is never deleted while evlog runs;
//! deleting it between runs is harmless.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use super::error::Error;

/// Name of the lock file in the storage directory.
pub const LOCK_FILE: &str = "evlog.lock";

/// Holds the exclusive flock on the lock file; releases it when dropped.
pub(crate) struct LockGuard(Arc<File>);

impl LockGuard {
    /// Blocks until the exclusive lock is ours.
    pub(crate) fn acquire(lock: &Arc<File>, dir: &Path) -> Result<LockGuard, Error> {
        lock.lock().map_err(|e| Error::io(dir.join(LOCK_FILE), e))?;
        Ok(LockGuard(lock.clone()))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Opens (creating if needed) the lock file of `dir`.
pub(crate) fn open_lock(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .open(&path)
        .map_err(|e| Error::io(&path, e))
}

/// The writers' storage lock, for maintenance of the day files (rotation
/// renaming, deleting or cutting a day): no writer of any process appends
/// while it is held. Released when dropped.
pub struct StorageLock {
    _guard: LockGuard,
}

impl StorageLock {
    /// Blocks until no writer holds the lock of `dir`, then holds it.
    pub fn acquire(dir: &Path) -> Result<StorageLock, Error> {
        let f = Arc::new(open_lock(dir)?);
        Ok(StorageLock {
            _guard: LockGuard::acquire(&f, dir)?,
        })
    }
}
