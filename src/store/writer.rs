//! Locked appends, the fsync policy and torn-tail recovery.
//!
//! Only this module opens day files for writing. Every write happens under an
//! exclusive `flock` on `<storage>/evlog.lock` (std's `File::lock`), held for
//! one batch: it serialises writers across threads *and* processes, keeps the
//! hash chain linear across day files, and is what rotation takes to exclude
//! writers. The lock file is never deleted while evlog runs; deleting it
//! between runs is harmless.
//!
//! Under the lock a writer (1) picks the day file of "now", (2) notices writes
//! by other processes by comparing the file length with the length it last
//! wrote, (3) if so re-reads the chain head from the file and moves a torn
//! final line aside, (4) seals and writes the batch with one `write`, and
//! (5) under `fsync` durability calls `fdatasync` before unlocking.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::chain::{self, ChainHead};
use super::day::{self, DayFile, DayRange};
use super::error::Error;
use super::reader;
use super::{Durability, Stats};
use crate::clock::Clock;

/// Name of the lock file in the storage directory.
pub const LOCK_FILE: &str = "evlog.lock";

/// Mode of new day files: owner read/write, group read.
pub const DAY_FILE_MODE: u32 = 0o640;

struct OpenDay {
    day: NaiveDate,
    path: PathBuf,
    file: File,
    /// Length after our last write; another writer changed the file if it differs.
    len: u64,
    head: ChainHead,
}

/// Holds the storage lock file and the current day file.
pub(crate) struct Writer {
    dir: PathBuf,
    lock: Arc<File>,
    current: Option<OpenDay>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    /// Written but not yet fsynced (batch and none modes).
    dirty: bool,
}

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

/// fsyncs a directory so that a new or renamed entry survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Writer {
    pub(crate) fn new(
        dir: PathBuf,
        clock: Arc<dyn Clock>,
        stats: Arc<Stats>,
    ) -> Result<Writer, Error> {
        let lock = Arc::new(open_lock(&dir)?);
        let mut w = Writer {
            dir,
            lock,
            current: None,
            clock,
            stats,
            dirty: false,
        };
        w.recover_all()?;
        Ok(w)
    }

    /// Torn-tail recovery of every plain day file, under the lock.
    fn recover_all(&mut self) -> Result<(), Error> {
        let _guard = LockGuard::acquire(&self.lock, &self.dir)?;
        let files = day::list(&self.dir, DayRange::all()).map_err(|e| Error::io(&self.dir, e))?;
        for f in files.iter().filter(|f| !f.compressed) {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&f.path)
                .map_err(|e| Error::io(&f.path, e))?;
            let len = file.metadata().map_err(|e| Error::io(&f.path, e))?.len();
            recover_torn_tail(&file, &f.path, len, &self.stats)?;
        }
        Ok(())
    }

    /// Seals and writes `bodies` (serialized events, each a JSON object) as one
    /// batch. With `sync`, returns only after `fdatasync`.
    pub(crate) fn write_batch(&mut self, bodies: &[Vec<u8>], sync: bool) -> Result<(), Error> {
        let _guard = LockGuard::acquire(&self.lock, &self.dir)?;
        let today = self.clock.now().date_naive();
        self.open_day(today)?;
        let cur = self.current.as_mut().expect("opened above");

        let total: usize = bodies.iter().map(|b| b.len() + 90).sum();
        let mut buf = Vec::with_capacity(total);
        let mut head = cur.head;
        for body in bodies {
            head = chain::seal(&head, body, &mut buf);
        }
        let result = cur
            .file
            .write_all(&buf)
            .and_then(|()| if sync { cur.file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Cut back whatever part of the batch reached the file: the batch
            // failed as a whole, and a half line must not stay for the next
            // append to glue onto.
            let _ = cur.file.set_len(cur.len);
            let _ = cur.file.sync_data();
            let path = cur.path.clone();
            self.current = None;
            return Err(Error::io(path, e));
        }
        cur.len += buf.len() as u64;
        cur.head = head;
        self.dirty = !sync;
        Ok(())
    }

    /// fsyncs the current day file if something was written since the last fsync.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(cur) = &self.current {
            cur.file.sync_data().map_err(|e| Error::io(&cur.path, e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Makes `self.current` the file of `today`, in step with the disk.
    /// Called with the lock held.
    fn open_day(&mut self, today: NaiveDate) -> Result<(), Error> {
        if let Some(cur) = &self.current {
            // Still the same file (rotation never touches today's file, but a
            // day left behind by the clock might have been compressed)?
            let same = cur.day == today
                && std::fs::metadata(&cur.path)
                    .map(|m| same_file(&m, &cur.file))
                    .unwrap_or(false);
            if !same {
                self.sync()?;
                self.current = None;
            }
        }
        if self.current.is_none() {
            let path = day::plain_path(&self.dir, today);
            let existed = path.exists();
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(DAY_FILE_MODE)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            if !existed {
                file.sync_all().map_err(|e| Error::io(&path, e))?;
                sync_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            }
            self.current = Some(OpenDay {
                day: today,
                path,
                file,
                len: u64::MAX, // forces a re-read of the head below
                head: ChainHead::GENESIS,
            });
        }
        let cur = self.current.as_mut().expect("set above");
        let len = cur
            .file
            .metadata()
            .map_err(|e| Error::io(&cur.path, e))?
            .len();
        if len != cur.len {
            // First use, or another process appended: find the chain head.
            let len = recover_torn_tail(&cur.file, &cur.path, len, &self.stats)?;
            let head =
                reader::last_head_plain(&cur.file, len).map_err(|e| Error::io(&cur.path, e))?;
            cur.head = match head {
                Some(h) => h,
                None => head_before(&self.dir, today)?,
            };
            cur.len = len;
        }
        Ok(())
    }
}

fn same_file(meta: &std::fs::Metadata, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .map(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
        .unwrap_or(false)
}

/// The chain head at the end of the newest day before `day`, else the
/// retention anchor, else genesis.
fn head_before(dir: &Path, day: NaiveDate) -> Result<ChainHead, Error> {
    let files = day::list(dir, DayRange::all()).map_err(|e| Error::io(dir, e))?;
    let earlier: Vec<&DayFile> = files.iter().filter(|f| f.day < day).collect();
    for f in earlier.iter().rev() {
        if let Some(h) = reader::last_head(f).map_err(|e| Error::io(&f.path, e))? {
            return Ok(h);
        }
    }
    // A later day can exist if the clock stepped backwards: continue from the
    // newest chained line anywhere rather than fork the chain.
    for f in files.iter().filter(|f| f.day > day).rev() {
        if let Some(h) = reader::last_head(f).map_err(|e| Error::io(&f.path, e))? {
            return Ok(h);
        }
    }
    Ok(chain::read_anchor(dir)
        .map_err(|e| Error::io(dir.join(chain::ANCHOR_FILE), e))?
        .unwrap_or(ChainHead::GENESIS))
}

/// If the file does not end with a newline, moves the bytes after the last
/// newline to `<file>.torn` (appended, followed by a newline), truncates the
/// file and fsyncs both. Returns the new length. Called with the lock held.
fn recover_torn_tail(file: &File, path: &Path, len: u64, stats: &Stats) -> Result<u64, Error> {
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
    file.set_len(complete).map_err(io)?;
    file.sync_all().map_err(io)?;
    stats
        .torn_tails
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        file = %path.display(),
        bytes = torn.len() - 1,
        moved_to = %torn_path.display(),
        "torn final line (a writer crashed mid-write) moved aside; it was never acknowledged"
    );
    Ok(complete)
}

/// Callbacks run by the committer after every successful write.
pub(crate) type Hooks = Arc<std::sync::Mutex<Vec<Box<dyn Fn() + Send + Sync>>>>;

/// A request to the committer thread.
pub(crate) enum Msg {
    /// Append these bodies; reply when they are written (and durable under `fsync`).
    Append {
        bodies: Vec<Vec<u8>>,
        reply: std::sync::mpsc::SyncSender<Result<(), Error>>,
    },
    /// fsync everything written so far, then reply.
    Flush(std::sync::mpsc::SyncSender<Result<(), Error>>),
}

/// Most bytes one group commit gathers before writing.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// The committer loop: gathers every request waiting in the channel into one
/// write and (under `fsync`) one `fdatasync`, then answers them all. Runs until
/// every sender is gone, then fsyncs and returns.
pub(crate) fn run_committer(
    mut w: Writer,
    rx: Receiver<Msg>,
    durability: Durability,
    interval: Duration,
    hooks: Hooks,
) {
    let mut last_sync = Instant::now();
    loop {
        let first = if w.dirty && durability == Durability::Batch {
            let wait = interval.saturating_sub(last_sync.elapsed());
            match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = w.sync() {
                        tracing::error!(error = %e, "periodic fsync failed");
                    }
                    last_sync = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut replies = Vec::new();
        let mut flushes = Vec::new();
        let mut bytes = 0usize;
        let mut take = |m: Msg, bodies: &mut Vec<Vec<u8>>, bytes: &mut usize| match m {
            Msg::Append { bodies: b, reply } => {
                *bytes += b.iter().map(Vec::len).sum::<usize>();
                let n = b.len();
                bodies.extend(b);
                replies.push((n, reply));
            }
            Msg::Flush(reply) => flushes.push(reply),
        };
        take(first, &mut bodies, &mut bytes);
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(m) => take(m, &mut bodies, &mut bytes),
                Err(_) => break,
            }
        }
        let sync = durability == Durability::Fsync;
        let result = if bodies.is_empty() {
            Ok(())
        } else {
            let r = w.write_batch(&bodies, sync);
            if r.is_ok() {
                for hook in hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    hook();
                }
                w.stats
                    .appended
                    .fetch_add(bodies.len() as u64, std::sync::atomic::Ordering::Relaxed);
                w.stats
                    .group_commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                w.stats
                    .write_failures
                    .fetch_add(bodies.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            r
        };
        if sync && result.is_ok() {
            last_sync = Instant::now();
        }
        for (_, reply) in replies {
            let _ = reply.send(result.clone());
        }
        if !flushes.is_empty() {
            let r = w.sync();
            last_sync = Instant::now();
            for reply in flushes {
                let _ = reply.send(r.clone());
            }
        }
    }
    if let Err(e) = w.sync() {
        tracing::error!(error = %e, "final fsync failed");
    }
}
