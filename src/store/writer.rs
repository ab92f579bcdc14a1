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
    /// Shared with the syncer thread, which fsyncs it after the lock is released.
    file: Arc<File>,
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
        let result = (&*cur.file)
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
                file: Arc::new(file),
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
pub(crate) fn recover_torn_tail(
    file: &File,
    path: &Path,
    len: u64,
    stats: &Stats,
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
    Append { bodies: Vec<Vec<u8>>, reply: Reply },
    /// fsync everything written so far, then reply.
    Flush(Reply),
}

/// Where the outcome of a request goes: a blocked thread, or a future (an
/// async caller waits without holding a thread).
pub(crate) enum Reply {
    Blocking(std::sync::mpsc::SyncSender<Result<(), Error>>),
    Async(tokio::sync::oneshot::Sender<Result<(), Error>>),
}

impl Reply {
    /// Delivers the outcome; a caller that stopped waiting is not an error.
    fn send(self, r: Result<(), Error>) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// Most bytes one group commit gathers before writing.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Written data waiting for its fdatasync, with the callers to answer after it.
struct SyncJob {
    file: Arc<File>,
    path: PathBuf,
    replies: Vec<Reply>,
}

impl Writer {
    /// The current day file, for the syncer.
    fn current_file(&self) -> Option<(Arc<File>, PathBuf)> {
        self.current
            .as_ref()
            .map(|c| (c.file.clone(), c.path.clone()))
    }
}

/// The syncer: fdatasyncs written batches back to back. Jobs that queue up
/// while one fdatasync runs share the next one (a second level of group
/// commit), and the answers go to the acker thread so that waking dozens of
/// callers never delays the next fdatasync.
fn run_syncer(
    rx: Receiver<SyncJob>,
    acks: std::sync::mpsc::Sender<(Result<(), Error>, Vec<Reply>)>,
    stats: Arc<Stats>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        // Usually one file; two around midnight.
        let mut result = Ok(());
        let mut done: Vec<*const File> = Vec::new();
        for j in &jobs {
            let key = Arc::as_ptr(&j.file);
            if done.contains(&key) {
                continue;
            }
            done.push(key);
            if let Err(e) = j.file.sync_data() {
                result = Err(Error::io(&j.path, e));
            }
        }
        let (replies, waiting): (Vec<Reply>, Vec<Reply>) = jobs
            .into_iter()
            .flat_map(|j| j.replies)
            .partition(|r| matches!(r, Reply::Async(_)));
        if result.is_err() {
            stats.write_failures.fetch_add(
                (replies.len() + waiting.len()) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        // Completing a future only queues its task: done here. Waking
        // blocked threads is slow with dozens of them: the acker does it.
        for r in replies {
            r.send(result.clone());
        }
        if !waiting.is_empty() && acks.send((result, waiting)).is_err() {
            return;
        }
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a store thread")
}

/// The committer loop: gathers every request waiting in the channel into one
/// locked write, then (under `fsync`) hands the batch to the syncer thread and
/// goes on to the next batch while the fdatasync runs. Runs until every
/// sender is gone, then drains the syncer, fsyncs and returns.
pub(crate) fn run_committer(
    mut w: Writer,
    rx: Receiver<Msg>,
    durability: Durability,
    interval: Duration,
    hooks: Hooks,
) {
    let (sync_tx, sync_rx) = std::sync::mpsc::channel::<SyncJob>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<(Result<(), Error>, Vec<Reply>)>();
    let syncer_stats = w.stats.clone();
    let syncer = spawn_named("evlog-sync", move || {
        run_syncer(sync_rx, ack_tx, syncer_stats)
    });
    let acker = spawn_named("evlog-ack", move || {
        for (result, replies) in ack_rx {
            for r in replies {
                r.send(result.clone());
            }
        }
    });
    let fsync_mode = durability == Durability::Fsync;
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
        let mut replies: Vec<Reply> = Vec::new();
        let mut flushes: Vec<Reply> = Vec::new();
        let mut bytes = 0usize;
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Msg::Append { bodies: b, reply } => {
                    bytes += b.iter().map(Vec::len).sum::<usize>();
                    bodies.extend(b);
                    replies.push(reply);
                }
                Msg::Flush(reply) => flushes.push(reply),
            }
            next = if bytes < MAX_GROUP_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !bodies.is_empty() {
            match w.write_batch(&bodies, false) {
                Ok(()) => {
                    for hook in hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        hook();
                    }
                    w.stats
                        .appended
                        .fetch_add(bodies.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    w.stats
                        .group_commits
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !fsync_mode {
                        for r in replies.drain(..) {
                            r.send(Ok(()));
                        }
                    }
                }
                Err(e) => {
                    w.stats
                        .write_failures
                        .fetch_add(bodies.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    for r in replies.drain(..) {
                        r.send(Err(e.clone()));
                    }
                }
            }
        }
        if fsync_mode {
            // Everything written is queued for the syncer, flushes included:
            // they are answered after the fdatasync that follows all writes so far.
            replies.append(&mut flushes);
            if !replies.is_empty() {
                match w.current_file() {
                    Some((file, path)) => {
                        w.dirty = false;
                        let _ = sync_tx.send(SyncJob {
                            file,
                            path,
                            replies,
                        });
                    }
                    None => {
                        for r in replies {
                            r.send(Ok(()));
                        }
                    }
                }
            }
        } else if !flushes.is_empty() {
            let r = w.sync();
            last_sync = Instant::now();
            for reply in flushes {
                reply.send(r.clone());
            }
        }
    }
    drop(sync_tx);
    let _ = syncer.join();
    let _ = acker.join();
    if let Err(e) = w.sync() {
        tracing::error!(error = %e, "final fsync failed");
    }
}
