//! Failpoints for the storage: a testing aid that makes the day-file writes
//! of one [`EventLog`](super::EventLog) fail the way a real disk does.
//!
//! - **disk full**: [`Faults::enospc_after`]`(n)` lets `n` more bytes reach
//!   the day files, then every write fails with `ENOSPC` (a write that
//!   crosses the limit is cut short first, like a real full disk);
//! - **fsync error**: [`Faults::fail_fsyncs`]`(n)` makes the next `n`
//!   `fdatasync`s of day files fail with `EIO`;
//! - **read-only**: [`Faults::read_only`]`(true)` makes every open for
//!   writing, write, truncate and fsync fail with `EROFS`.
//!
//! Tests keep a clone of the handle given to [`Config::faults`](super::Config::faults)
//! and switch faults on and off while the log runs; [`Faults::clear`] ends
//! them all. The `evlog` binary reads the same switches from the
//! environment variable `EVLOG_FAULTS` (e.g.
//! `EVLOG_FAULTS=enospc_after=4096,fsync_fail=2,erofs=1`) so that scripts can
//! use them; it is not meant for production. Without faults the cost is one
//! relaxed atomic load per write and per fsync.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// No byte limit.
const UNLIMITED: u64 = u64::MAX;

#[derive(Debug)]
struct State {
    /// Bytes that may still be written before `ENOSPC` (`UNLIMITED`: off).
    space: AtomicU64,
    /// fdatasyncs still to fail with `EIO`.
    fsync_failures: AtomicU64,
    /// Every write-side operation fails with `EROFS`.
    read_only: AtomicBool,
}

/// A shared set of storage failpoints (see the module docs). Cheap to clone;
/// clones switch the same faults.
#[derive(Debug, Clone)]
pub struct Faults(Arc<State>);

impl Default for Faults {
    fn default() -> Self {
        Faults(Arc::new(State {
            space: AtomicU64::new(UNLIMITED),
            fsync_failures: AtomicU64::new(0),
            read_only: AtomicBool::new(false),
        }))
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Parses `EVLOG_FAULTS` syntax: comma-separated `enospc_after=BYTES`,
    /// `fsync_fail=COUNT`, `erofs=0|1`. An empty string is no faults.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let f = Faults::none();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: want key=value"))?;
            let n: u64 = value
                .parse()
                .map_err(|_| format!("`{part}`: `{value}` is not a number"))?;
            match key {
                "enospc_after" => f.enospc_after(Some(n)),
                "fsync_fail" => f.fail_fsyncs(n),
                "erofs" => f.read_only(n != 0),
                other => {
                    return Err(format!(
                        "`{other}` is not a fault: want enospc_after, fsync_fail or erofs"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// From the environment variable `EVLOG_FAULTS` (no faults if unset).
    pub fn from_env() -> Result<Faults, String> {
        match std::env::var("EVLOG_FAULTS") {
            Ok(s) => Faults::parse(&s).map_err(|e| format!("EVLOG_FAULTS: {e}")),
            Err(_) => Ok(Faults::none()),
        }
    }

    /// Disk full after `bytes` more bytes (`None`: unlimited space again).
    pub fn enospc_after(&self, bytes: Option<u64>) {
        self.0
            .space
            .store(bytes.unwrap_or(UNLIMITED), Ordering::SeqCst);
    }

    /// The next `n` fdatasyncs of day files fail with `EIO` (0: none).
    pub fn fail_fsyncs(&self, n: u64) {
        self.0.fsync_failures.store(n, Ordering::SeqCst);
    }

    /// Whether the storage behaves as a read-only file system.
    pub fn read_only(&self, on: bool) {
        self.0.read_only.store(on, Ordering::SeqCst);
    }

    /// Ends every fault.
    pub fn clear(&self) {
        self.enospc_after(None);
        self.fail_fsyncs(0);
        self.read_only(false);
    }

    /// Whether any fault is armed.
    pub fn any(&self) -> bool {
        self.0.space.load(Ordering::Relaxed) != UNLIMITED
            || self.0.fsync_failures.load(Ordering::Relaxed) != 0
            || self.0.read_only.load(Ordering::Relaxed)
    }

    fn erofs(&self) -> io::Result<()> {
        if self.0.read_only.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        Ok(())
    }

    /// Before opening (or creating) a file for writing.
    pub(crate) fn check_open(&self) -> io::Result<()> {
        self.erofs()
    }

    /// `write_all` through the failpoints.
    pub(crate) fn write_all(&self, mut file: &File, buf: &[u8]) -> io::Result<()> {
        self.erofs()?;
        let space = self.0.space.load(Ordering::Relaxed);
        if space == UNLIMITED {
            return file.write_all(buf);
        }
        let fits = (space.min(buf.len() as u64)) as usize;
        // Not exact under concurrent writers of one handle; the store has one.
        self.0.space.store(space - fits as u64, Ordering::Relaxed);
        file.write_all(&buf[..fits])?;
        if fits < buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    /// `fdatasync` through the failpoints.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        self.erofs()?;
        let left = self.0.fsync_failures.load(Ordering::Relaxed);
        if left > 0 {
            self.0.fsync_failures.store(left - 1, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        file.sync_data()
    }

    /// `set_len` (a truncation) through the failpoints.
    pub(crate) fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.erofs()?;
        file.set_len(len)
    }
}

/// What kind of storage failure an I/O error is, for the caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space (or quota) left: `ENOSPC`, `EDQUOT`.
    Full,
    /// The file system is read-only (`EROFS`) or the storage is not
    /// writable by this process (`EACCES`, `EPERM`).
    ReadOnly,
    /// Any other I/O failure (e.g. `EIO`).
    Failed,
}

impl StorageFault {
    /// Classifies an I/O error.
    pub fn of(e: &io::Error) -> StorageFault {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageFault::Full,
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => StorageFault::ReadOnly,
            _ => StorageFault::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_syntax_and_rejects_unknown_faults() {
        let f = Faults::parse("enospc_after=10, fsync_fail=2,erofs=0").unwrap();
        assert!(f.any());
        assert_eq!(f.0.space.load(Ordering::Relaxed), 10);
        assert_eq!(f.0.fsync_failures.load(Ordering::Relaxed), 2);
        assert!(!Faults::parse("").unwrap().any());
        assert!(Faults::parse("disk_on_fire=1").is_err());
        assert!(Faults::parse("fsync_fail").is_err());
        assert!(Faults::parse("fsync_fail=x").is_err());
    }

    #[test]
    fn a_write_crossing_the_space_limit_is_cut_short_with_enospc() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let f = Faults::none();
        f.enospc_after(Some(5));
        let e = f.write_all(&file, b"0123456789").unwrap_err();
        assert_eq!(StorageFault::of(&e), StorageFault::Full);
        assert_eq!(file.metadata().unwrap().len(), 5);
        f.clear();
        f.write_all(&file, b"ab").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 7);
    }

    #[test]
    fn fsync_failures_are_counted_down() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let f = Faults::none();
        f.fail_fsyncs(2);
        assert!(f.sync_data(&file).is_err());
        assert!(f.sync_data(&file).is_err());
        f.sync_data(&file).unwrap();
        f.read_only(true);
        let e = f.sync_data(&file).unwrap_err();
        assert_eq!(StorageFault::of(&e), StorageFault::ReadOnly);
    }
}
