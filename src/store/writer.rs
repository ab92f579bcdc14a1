//! The day-file writer: locked appends and the fsync policy.
//!
//! Only this module opens day files for appending. Every write happens under
//! the storage lock ([`super::lock`]), held for one batch. The group commit
//! that feeds it runs in [`super::commit`]; a torn final line is moved aside
//! by [`super::torn`].
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
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use super::Stats;
use super::chain::{self, ChainHead};
use super::day::{self, DayFile, DayRange};
use super::error::Error;
use super::faults::Faults;
use super::lock::{LockGuard, open_lock};
use super::reader;
use super::torn::recover_torn_tail;
use crate::clock::Clock;

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
    pub(super) dir: PathBuf,
    pub(super) lock: Arc<File>,
    current: Option<OpenDay>,
    clock: Arc<dyn Clock>,
    pub(super) stats: Arc<Stats>,
    /// Written but not yet fsynced (batch and none modes).
    pub(super) dirty: bool,
    pub(super) faults: Faults,
    /// Shared with the syncer: which writes are durable, which are poisoned.
    pub(super) sync: Arc<SyncState>,
    /// Writes of this epoch are valid; a failed fdatasync poisons its epoch.
    pub(super) epoch: u64,
    /// Written and handed to the syncer, not yet known durable (fsync mode).
    unsynced: std::collections::VecDeque<Unsynced>,
    /// Regions of day files that must be cut off before the next write.
    cuts: Vec<Cut>,
    pub(super) next_job: u64,
    /// Whether writes are tracked until the syncer makes them durable (fsync mode).
    pub(super) track_sync: bool,
}

/// Between the committer and the syncer (fsync mode), behind one mutex so
/// that "acknowledge these writes" (syncer) and "cut everything not
/// acknowledged" (committer) never cross.
#[derive(Debug, Default)]
pub(super) struct SyncState(std::sync::Mutex<Progress>);

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Progress {
    /// The newest poisoned epoch (0: none).
    pub(super) failed_epoch: u64,
    /// Every job up to this number is durable and acknowledged.
    pub(super) synced_job: u64,
}

impl SyncState {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One write waiting for its fdatasync.
#[derive(Debug, Clone)]
pub(super) struct Unsynced {
    pub(super) job: u64,
    pub(super) path: PathBuf,
    pub(super) start: u64,
    pub(super) end: u64,
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

/// fsyncs a directory so that a new or renamed entry survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces the small file `dir/name` with `bytes` atomically: a temporary
/// file (mode 0640), fsync, rename, fsync of the directory. After a crash
/// the file holds the old bytes or the new ones, never a mix.
pub fn write_file_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
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
    pub(super) fn recover_from_failures(&mut self) -> Result<(), Error> {
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

impl Writer {
    /// The current day file, for the syncer.
    pub(super) fn current_file(&self) -> Option<(Arc<File>, PathBuf)> {
        self.current
            .as_ref()
            .map(|c| (c.file.clone(), c.path.clone()))
    }
}
