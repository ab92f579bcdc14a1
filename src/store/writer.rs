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
//!
//! ## After a failed fdatasync
//!
//! Linux reports a writeback error to `fsync` once and may then drop the
//! dirty pages ("fsyncgate"): a later `fsync` can succeed although the bytes
//! written before the failure never reached the disk. So a failed
//! `fdatasync` poisons everything written since the last one that
//! succeeded: the syncer fails those callers (and any batch written on top
//! of them meanwhile), and before its next write the committer cuts the day
//! files back to the last durable offset (truncate + fdatasync on a fresh
//! handle) and re-reads the chain head from the disk. Until that cut
//! succeeds every append fails; once it does, appends go on and nothing
//! acknowledged depends on bytes of unknown fate. A write that fails
//! (`ENOSPC`, `EROFS`, `EIO`) is cut back the same way.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::chain::{self, ChainHead};
use super::day::{self, DayFile, DayRange};
use super::error::Error;
use super::faults::Faults;
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
    faults: Faults,
    /// Shared with the syncer: which writes are durable, which are poisoned.
    sync: Arc<SyncState>,
    /// Writes of this epoch are valid; a failed fdatasync poisons its epoch.
    epoch: u64,
    /// Written and handed to the syncer, not yet known durable (fsync mode).
    unsynced: std::collections::VecDeque<Unsynced>,
    /// Regions of day files that must be cut off before the next write.
    cuts: Vec<Cut>,
    next_job: u64,
    /// Whether writes are tracked until the syncer makes them durable (fsync mode).
    track_sync: bool,
}

/// Between the committer and the syncer (fsync mode), behind one mutex so
/// that "acknowledge these writes" (syncer) and "cut everything not
/// acknowledged" (committer) never cross.
#[derive(Debug, Default)]
struct SyncState(std::sync::Mutex<Progress>);

#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// The newest poisoned epoch (0: none).
    failed_epoch: u64,
    /// Every job up to this number is durable and acknowledged.
    synced_job: u64,
}

impl SyncState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One write waiting for its fdatasync.
#[derive(Debug, Clone)]
struct Unsynced {
    job: u64,
    path: PathBuf,
    start: u64,
    end: u64,
}

/// Bytes `start..end` of a day file whose fate is unknown (a failed write or
/// fdatasync): cut off before anything else is written.
#[derive(Debug, Clone)]
struct Cut {
    path: PathBuf,
    start: u64,
    /// The file's length when we left it; longer means another process
    /// appended after us, and the cut would remove their lines.
    end: u64,
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
        faults: Faults,
    ) -> Result<Writer, Error> {
        let lock = Arc::new(open_lock(&dir)?);
        let mut w = Writer {
            dir,
            lock,
            current: None,
            clock,
            stats,
            dirty: false,
            faults,
            sync: Arc::default(),
            epoch: 1,
            unsynced: Default::default(),
            cuts: Vec::new(),
            next_job: 0,
            track_sync: false,
        };
        w.recover_all()?;
        Ok(w)
    }

    /// Torn-tail recovery of every plain day file, under the lock.
    fn recover_all(&mut self) -> Result<(), Error> {
        let _guard = LockGuard::acquire(&self.lock, &self.dir)?;
        let files = day::list(&self.dir, DayRange::all()).map_err(|e| Error::io(&self.dir, e))?;
        for f in files.iter().filter(|f| !f.compressed) {
            self.faults
                .check_open()
                .map_err(|e| Error::io(&f.path, e))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&f.path)
                .map_err(|e| Error::io(&f.path, e))?;
            let len = file.metadata().map_err(|e| Error::io(&f.path, e))?.len();
            recover_torn_tail(&file, &f.path, len, &self.stats, &self.faults)?;
        }
        Ok(())
    }

    /// Seals and writes `bodies` (serialized events, each a JSON object) as one
    /// batch. With `sync`, returns only after `fdatasync`.
    pub(crate) fn write_batch(&mut self, bodies: &[Vec<u8>], sync: bool) -> Result<(), Error> {
        let _guard = LockGuard::acquire(&self.lock, &self.dir)?;
        self.recover_from_failures()?;
        let today = self.append_day()?;
        self.open_day(today)?;
        let cur = self.current.as_mut().expect("opened above");

        let total: usize = bodies.iter().map(|b| b.len() + 90).sum();
        let mut buf = Vec::with_capacity(total);
        let mut head = cur.head;
        for body in bodies {
            head = chain::seal(&head, body, &mut buf);
        }
        let faults = &self.faults;
        let result = faults.write_all(&cur.file, &buf).map_err(|e| (e, false));
        let result = result.and_then(|()| {
            if sync {
                faults.sync_data(&cur.file).map_err(|e| (e, true))
            } else {
                Ok(())
            }
        });
        if let Err((e, sync_failed)) = result {
            // Cut back whatever part of the batch reached the file: the batch
            // failed as a whole, and a half line must not stay for the next
            // append to glue onto. If even that fails, the cut waits for the
            // next write, which cannot happen before it.
            let start = cur.len;
            let end = cur.len + buf.len() as u64;
            let cut = faults
                .set_len(&cur.file, start)
                .and_then(|()| faults.sync_data(&cur.file));
            let path = cur.path.clone();
            if let Err(cut_err) = &cut {
                tracing::error!(file = %path.display(), error = %cut_err, "cutting back a failed write failed; retried before the next write");
                self.cuts.push(Cut {
                    path: path.clone(),
                    start,
                    end,
                });
            }
            self.current = None;
            if sync_failed || cut.is_err() {
                // Whatever was written before on this file is in doubt too.
                self.poison();
            }
            return Err(if sync_failed {
                Error::sync(path, e)
            } else {
                Error::io(path, e)
            });
        }
        let start = cur.len;
        cur.len += buf.len() as u64;
        cur.head = head;
        self.dirty = !sync;
        let end = cur.len;
        let path = cur.path.clone();
        self.next_job += 1;
        if self.track_sync && !sync {
            self.unsynced.push_back(Unsynced {
                job: self.next_job,
                path,
                start,
                end,
            });
        }
        Ok(())
    }

    /// The day file to append to: today's, unless the clock is behind the
    /// newest day file (it stepped backwards, e.g. across midnight), which
    /// then stays the file appended to: the chain runs through the day files
    /// in day order, so a line must never go into a day before the newest
    /// one. A day that exists only compressed is closed: appends go to a
    /// later day (else a new plain file would hide its `.gz` from readers
    /// and fork the chain). Lists the directory only when no file is open.
    fn append_day(&self) -> Result<NaiveDate, Error> {
        let today = self.clock.now().date_naive();
        let newest = match &self.current {
            Some(cur) => cur.day,
            None => {
                let files =
                    day::list(&self.dir, DayRange::all()).map_err(|e| Error::io(&self.dir, e))?;
                // (A day with both forms is listed once, as plain.)
                let open = files.iter().filter(|f| !f.compressed).map(|f| f.day).max();
                let closed = files
                    .iter()
                    .filter(|f| f.compressed)
                    .map(|f| f.day.succ_opt().unwrap_or(f.day))
                    .max();
                open.max(closed).unwrap_or(today)
            }
        };
        if newest > today {
            tracing::debug!(%today, %newest, "clock behind the newest day file: appending to it");
        }
        Ok(today.max(newest))
    }

    /// Marks everything not yet durable as of unknown fate.
    fn poison(&self) {
        let mut p = self.sync.lock();
        p.failed_epoch = p.failed_epoch.max(self.epoch);
    }

    /// After a failed write or fdatasync: cuts the day files back to what is
    /// known durable and starts a new epoch. Called with the lock held; an
    /// error means nothing may be written yet.
    fn recover_from_failures(&mut self) -> Result<(), Error> {
        let Progress {
            synced_job: synced,
            failed_epoch: failed,
        } = *self.sync.lock();
        while self.unsynced.front().is_some_and(|u| u.job <= synced) {
            self.unsynced.pop_front();
        }
        if failed >= self.epoch {
            // Everything written since the last good fdatasync is in doubt.
            for u in self.unsynced.drain(..) {
                match self.cuts.iter_mut().find(|c| c.path == u.path) {
                    Some(c) => {
                        c.start = c.start.min(u.start);
                        c.end = c.end.max(u.end);
                    }
                    None => self.cuts.push(Cut {
                        path: u.path,
                        start: u.start,
                        end: u.end,
                    }),
                }
            }
            self.current = None;
        }
        while let Some(cut) = self.cuts.last().cloned() {
            self.apply_cut(&cut)?;
            self.cuts.pop();
        }
        if failed >= self.epoch {
            self.epoch = failed + 1;
            tracing::warn!(
                epoch = self.epoch,
                "storage recovered: day files cut back to their last durable offset"
            );
        }
        Ok(())
    }

    fn apply_cut(&self, cut: &Cut) -> Result<(), Error> {
        let io = |e| Error::io(&cut.path, e);
        self.faults.check_open().map_err(io)?;
        let file = match OpenOptions::new().write(true).open(&cut.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        if len <= cut.start {
            return Ok(());
        }
        if len > cut.end {
            tracing::error!(
                file = %cut.path.display(),
                from = cut.start,
                "lines of unknown durability stay: another process appended after them"
            );
            return Ok(());
        }
        self.faults.set_len(&file, cut.start).map_err(io)?;
        self.faults.sync_data(&file).map_err(io)?;
        tracing::warn!(
            file = %cut.path.display(),
            bytes = len - cut.start,
            offset = cut.start,
            "cut off lines whose write or fdatasync failed (never acknowledged)"
        );
        Ok(())
    }

    /// fsyncs the current day file if something was written since the last fsync.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(cur) = &self.current
            && let Err(e) = self.faults.sync_data(&cur.file)
        {
            // The handle's pages are of unknown fate: start over from
            // the disk with a fresh one.
            let path = cur.path.clone();
            self.current = None;
            return Err(Error::sync(path, e));
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
            self.faults.check_open().map_err(|e| Error::io(&path, e))?;
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
            let len = recover_torn_tail(&cur.file, &cur.path, len, &self.stats, &self.faults)?;
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
    /// The writer's epoch when written: a job of a poisoned epoch is failed
    /// without an fdatasync (its bytes are cut off by the committer).
    epoch: u64,
    /// The committer's number of the last write it covers.
    job: u64,
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
    faults: Faults,
    state: Arc<SyncState>,
) {
    // The error that poisoned the current epoch, told to its later jobs.
    let mut poison: Option<Error> = None;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let failed = state.lock().failed_epoch;
        // Jobs written on top of bytes whose fdatasync failed: never
        // acknowledged, whatever a new fdatasync would say.
        let (doomed, jobs): (Vec<SyncJob>, Vec<SyncJob>) =
            jobs.into_iter().partition(|j| j.epoch <= failed);
        if !doomed.is_empty() {
            let err = poison.clone().unwrap_or_else(|| in_doubt(&doomed[0].path));
            if !answer(doomed, Err(err), &acks, &stats) {
                return;
            }
        }
        if jobs.is_empty() {
            continue;
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
            if let Err(e) = faults.sync_data(&j.file) {
                result = Err(Error::sync(&j.path, e));
                break;
            }
        }
        let epoch = jobs.iter().map(|j| j.epoch).max().unwrap_or(0);
        let last = jobs.iter().map(|j| j.job).max().unwrap_or(0);
        {
            let mut p = state.lock();
            match &result {
                // The committer poisoned the epoch meanwhile (a failed
                // write it could not cut back): it cuts these bytes too.
                Ok(()) if p.failed_epoch >= epoch => result = Err(in_doubt(&jobs[0].path)),
                Ok(()) => p.synced_job = p.synced_job.max(last),
                Err(e) => {
                    tracing::error!(error = %e, "fdatasync failed: the events written since the last one are not acknowledged and will be cut off");
                    poison = Some(e.clone());
                    p.failed_epoch = p.failed_epoch.max(epoch);
                }
            }
        }
        if !answer(jobs, result, &acks, &stats) {
            return;
        }
    }
}

/// The error of writes made on top of bytes of unknown fate.
fn in_doubt(path: &Path) -> Error {
    Error::sync(
        path,
        io::Error::other("an earlier write or fdatasync of this file failed"),
    )
}

/// Answers the callers of `jobs`; false when the acker is gone.
fn answer(
    jobs: Vec<SyncJob>,
    result: Result<(), Error>,
    acks: &std::sync::mpsc::Sender<(Result<(), Error>, Vec<Reply>)>,
    stats: &Stats,
) -> bool {
    let (replies, waiting): (Vec<Reply>, Vec<Reply>) = jobs
        .into_iter()
        .flat_map(|j| j.replies)
        .partition(|r| matches!(r, Reply::Async(_)));
    if result.is_err() {
        stats
            .write_failures
            .fetch_add((replies.len() + waiting.len()) as u64, Ordering::Relaxed);
    }
    // Completing a future only queues its task: done here. Waking
    // blocked threads is slow with dozens of them: the acker does it.
    for r in replies {
        r.send(result.clone());
    }
    waiting.is_empty() || acks.send((result, waiting)).is_ok()
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
    let syncer_faults = w.faults.clone();
    let syncer_state = w.sync.clone();
    let syncer = spawn_named("evlog-sync", move || {
        run_syncer(sync_rx, ack_tx, syncer_stats, syncer_faults, syncer_state)
    });
    let acker = spawn_named("evlog-ack", move || {
        for (result, replies) in ack_rx {
            for r in replies {
                r.send(result.clone());
            }
        }
    });
    let fsync_mode = durability == Durability::Fsync;
    w.track_sync = fsync_mode;
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
                        .fetch_add(bodies.len() as u64, Ordering::Relaxed);
                    w.stats.group_commits.fetch_add(1, Ordering::Relaxed);
                    if !fsync_mode {
                        for r in replies.drain(..) {
                            r.send(Ok(()));
                        }
                    }
                }
                Err(e) => {
                    w.stats
                        .write_failures
                        .fetch_add(bodies.len() as u64, Ordering::Relaxed);
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
                            epoch: w.epoch,
                            job: w.next_job,
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
    // A failed fdatasync in the last moments: cut its lines now rather than
    // leave them for the next process, which could not tell.
    let cut = LockGuard::acquire(&w.lock, &w.dir).and_then(|_guard| w.recover_from_failures());
    if let Err(e) = cut {
        tracing::error!(error = %e, "lines whose fdatasync failed could not be cut off at close");
    }
    if let Err(e) = w.sync() {
        tracing::error!(error = %e, "final fsync failed");
    }
}
