//! Rotation and retention: compress old day files to `.jsonl.gz`, delete
//! expired ones, keep the index and the hash chain in step.
//!
//! [`run`] plans from the directory listing and an injected "now"
//! ([`Options::now`]), then executes, one day at a time:
//!
//! 0. Leftovers of a crashed run: `*.jsonl.gz.tmp` files are removed; a day
//!    present both plain and `.gz` keeps the plain file unless the `.gz`
//!    decompresses to exactly its bytes, in which case the plain one goes;
//!    a day wholly before the chain anchor (an interrupted deletion) is deleted.
//! 1. Compress each plain day older than `compress_after` (never today's,
//!    never one the index's last commit does not fully cover): write
//!    `events_D.jsonl.gz.tmp` in parallel gzip members ([`compress`]),
//!    fsync, read it back (bytes, line count, hash chain), then under the
//!    storage lock rename it to `.jsonl.gz`, fsync the directory, remove the
//!    plain file, fsync the directory.
//! 2. Delete days older than `delete_after`, then the oldest days while the
//!    day files take more than `max_total_size` — oldest first, never today,
//!    always a prefix of the days (a failure stops the deletions) — each after
//!    writing `chain.anchor` (the chain head at the end of the deleted day),
//!    so that `evlog verify` starts where the remaining days begin. Each
//!    deleted day's events are counted first (its lines). With
//!    [`Options::keep_open`] a day that still holds an open event of level
//!    warning or above ([`open`]) is kept, and so are the days after it (the
//!    deleted days stay a prefix: the chain has one start).
//! 3. The index drops the documents of deleted days: committed here when
//!    this process holds the index writer, else by the running indexer
//!    (woken, and waited for).
//!
//! A failure on one file is logged as `EVENT_ROTATE_FAILED file=.. error=..`
//! and reported; the other files are still processed. Compression runs
//! without the writers' lock (appends go on); only renames, removals and the
//! anchor take it. `rotate.lock` keeps two rotations apart.
//!
//! Readers never count a day twice: while a day exists both plain and
//! compressed, listings use only the plain file, and a reader that finds the
//! plain file gone (renamed under it) opens the `.gz` instead.

mod compress;
mod delete;
pub mod gzip;
mod leftovers;
pub mod open;
mod plan;
pub mod policy;
pub mod purge;
pub mod schedule;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use policy::{Policy, parse_age, parse_size, parse_time_of_day};

use crate::index::IndexSearch;
use crate::index::checkpoint::{self, Checkpoint};
use crate::index::indexer::{INDEX_DIR, IndexConfig, Indexer};
use plan::Day;

/// Lock file that keeps two rotations of one storage directory apart
/// (an flock, released when the rotation ends or its process dies; safe to
/// delete when no rotation runs).
pub const LOCK_FILE: &str = "rotate.lock";

/// The points between two steps of a rotation where a crash can be injected
/// (see [`Options::crash_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `events_D.jsonl.gz.tmp` is written and fsynced, not yet read back.
    TmpWritten,
    /// The temporary file read back correctly; not yet renamed.
    TmpChecked,
    /// Renamed to `events_D.jsonl.gz`; the directory is not yet fsynced.
    Renamed,
    /// The rename is durable; the plain file still exists.
    RenameSynced,
    /// The plain file is removed; the directory is not yet fsynced.
    PlainRemoved,
    /// `chain.anchor` points past a day that is not yet deleted.
    AnchorWritten,
    /// A day file is deleted; the index still holds its documents.
    Deleted,
}

impl Step {
    /// Every step, in the order a rotation passes them.
    pub const ALL: [Step; 7] = [
        Step::TmpWritten,
        Step::TmpChecked,
        Step::Renamed,
        Step::RenameSynced,
        Step::PlainRemoved,
        Step::AnchorWritten,
        Step::Deleted,
    ];
}

/// Decides, at each step, whether to simulate a crash there: return `true`
/// and [`run`] stops at once with [`Error::Crashed`], cleaning nothing up,
/// as if the process had died. For tests.
pub type CrashHook = Arc<dyn Fn(Step, &Path) -> bool + Send + Sync>;

/// What a file's progress is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Compressing a plain day file (bytes of the plain file).
    Compress,
    /// Counting the events of a day file due for deletion (bytes of the
    /// file as stored, compressed or not).
    Count,
}

/// Progress of one file: `(work, file, bytes done, bytes in all)`.
pub type ProgressFn = Arc<dyn Fn(Work, &Path, u64, u64) + Send + Sync>;

/// What runs: a rotation, or a purge ([`purge`]); it names the key of the
/// failure lines in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Rotation: failures logged as `EVENT_ROTATE_FAILED`.
    #[default]
    Rotation,
    /// Purge: failures logged as `EVENT_PURGE_FAILED`.
    Purge,
}

impl Kind {
    /// The key of this kind's failure lines, for alerts to match.
    pub fn failure_key(self) -> &'static str {
        match self {
            Kind::Rotation => "EVENT_ROTATE_FAILED",
            Kind::Purge => "EVENT_PURGE_FAILED",
        }
    }

    /// Logs one failure line: `EVENT_ROTATE_FAILED file=.. error=..` (or
    /// `EVENT_PURGE_FAILED`), as `EVENT_WRITE_FAILED` is logged. `file` is
    /// the file that failed, or the storage directory when the whole run did.
    pub fn log_failure(self, file: &Path, error: &dyn std::fmt::Display) {
        tracing::error!(
            "{} file={} error={error}",
            self.failure_key(),
            file.display()
        );
    }
}

/// How rotation learns what the index covers and keeps it in step.
#[derive(Clone)]
pub enum IndexMode {
    /// No indexer runs in this process (the CLI): catch the index up and
    /// commit (if no other process holds its writer; building the index
    /// from the files when there is none), compress what its last commit
    /// covers, commit the removal of deleted days.
    Open,
    /// An indexer runs in this process (the server): read its last commit;
    /// after deletions call `wake` and wait for the commit that drops them.
    Running {
        /// Wakes the indexer.
        wake: Arc<dyn Fn() + Send + Sync>,
    },
    /// Ignore the index (there is none): every old day may be compressed; a
    /// later `evlog index` or `reindex` reads `.gz` days whole.
    Without,
}

/// How to rotate.
#[derive(Clone)]
pub struct Options {
    /// What to compress and delete.
    pub policy: Policy,
    /// Plan only: report what would be done, change nothing.
    pub dry_run: bool,
    /// "Now": ages and "today" are measured from it.
    pub now: DateTime<Utc>,
    /// The index.
    pub index: IndexMode,
    /// Compression threads (default: the number of cores).
    pub threads: usize,
    /// Called while a file is compressed.
    pub progress: Option<ProgressFn>,
    /// Crash injection (tests).
    pub crash_at: Option<CrashHook>,
    /// How long to wait for another indexer to drop deleted days.
    pub index_wait: StdDuration,
    /// Keep every day due for deletion that still holds an open event of
    /// level warning, error or security ([`open`]), and the days after it
    /// (default `true`).
    pub keep_open: bool,
    /// Rotation or purge (the failure lines' key).
    pub kind: Kind,
}

impl Options {
    /// `policy` at `now`, with the index opened by this process, one
    /// compression thread per core.
    pub fn new(policy: Policy, now: DateTime<Utc>) -> Options {
        Options {
            policy,
            dry_run: false,
            now,
            index: IndexMode::Open,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: None,
            crash_at: None,
            index_wait: StdDuration::from_secs(10),
            keep_open: true,
            kind: Kind::Rotation,
        }
    }
}

/// A file rotation could not handle (the rest were still processed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RotationFailure)]
pub struct Failure {
    /// File name.
    pub file: String,
    /// What went wrong.
    pub error: String,
}

/// A file left alone on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RotationSkipped)]
pub struct Skipped {
    /// File name.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// What a rotation did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = RotationReport)]
pub struct Report {
    /// Plain files compressed (their names before compression).
    pub compressed: Vec<String>,
    /// Files deleted.
    pub deleted: Vec<String>,
    /// Bytes of day files before.
    pub bytes_before: u64,
    /// Bytes of day files after (a dry run counts files it would compress
    /// at their current size).
    pub bytes_after: u64,
    /// Files that failed.
    pub failures: Vec<Failure>,
    /// Files left alone, with the reason.
    pub skipped: Vec<Skipped>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Things worth knowing (leftovers resolved, index state).
    pub notes: Vec<String>,
    /// Events of each deleted day (`YYYY-MM-DD`), counted from its file
    /// before deletion.
    pub deleted_events: BTreeMap<String, u64>,
    /// Days due for deletion kept because they hold an open event of level
    /// warning, error or security (or the index could not tell; see `notes`).
    pub kept_open_days: Vec<String>,
    /// Days due for deletion kept because an older day was kept: deletions
    /// always take the oldest days, so that the hash chain has one start.
    pub kept_behind_open_days: Vec<String>,
    /// Days due for deletion kept because the replication publisher has not
    /// published all their events yet (and the days after them).
    pub kept_unpublished_days: Vec<String>,
}

impl Report {
    /// Whether every file was handled.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Events in the deleted days.
    pub fn deleted_event_count(&self) -> u64 {
        self.deleted_events.values().sum()
    }
}

/// Why a rotation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another rotation holds `rotate.lock`.
    #[error("another rotation is running on {dir} (it holds rotate.lock)", dir = .0.display())]
    Busy(PathBuf),
    /// There is no index to tell which days it covers (only when an
    /// indexer of this process should have built it: [`IndexMode::Running`]).
    #[error(
        "no index at {}: rotation compresses only days the index covers; build it with \
         `evlog reindex` (or run the server or `evlog index`), or pass --no-index to rotate without one",
        .0.display()
    )]
    NoIndex(PathBuf),
    /// An I/O error outside any one file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// A crash injected by [`Options::crash_at`].
    #[error("injected crash at {step:?} ({path})", step = .0, path = .1.display())]
    Crashed(Step, PathBuf),
}

fn io_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
    let path = path.as_ref().to_path_buf();
    move |source| Error::Io { path, source }
}

/// A file-level failure, or a crash that must stop everything.
enum FileError {
    Failed(String),
    Crashed(Step, PathBuf),
}

impl<E: std::fmt::Display> From<E> for FileError {
    fn from(e: E) -> Self {
        FileError::Failed(e.to_string())
    }
}

/// Holds `rotate.lock`.
struct RotateLock(File);

impl RotateLock {
    fn acquire(dir: &Path) -> Result<RotateLock, Error> {
        let path = dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o640)
            .open(&path)
            .map_err(io_err(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(RotateLock(f)),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy(dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }
}

impl Drop for RotateLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

struct Ctx<'a> {
    dir: &'a Path,
    opts: &'a Options,
    report: Report,
    checkpoint: Option<Checkpoint>,
    /// Days that would be indexed by the catch-up of a real run (dry run, `Open`).
    assume_covered: bool,
    /// Events of the days counted so far (days due for deletion).
    counts: BTreeMap<chrono::NaiveDate, u64>,
}

impl Ctx<'_> {
    fn crash(&self, step: Step, path: &Path) -> Result<(), FileError> {
        match &self.opts.crash_at {
            Some(hook) if hook(step, path) => Err(FileError::Crashed(step, path.to_path_buf())),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, file: &Path, error: String) {
        let name = file_name(file);
        self.opts.kind.log_failure(file, &error);
        self.report.failures.push(Failure { file: name, error });
    }

    fn skip(&mut self, file: &Path, reason: String) {
        tracing::info!(file = %file.display(), "rotation skipped: {reason}");
        self.report.skipped.push(Skipped {
            file: file_name(file),
            reason,
        });
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Rotates the storage directory `dir` (see the module docs).
pub fn run(dir: &Path, opts: &Options) -> Result<Report, Error> {
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "storage directory does not exist"),
        });
    }
    let _lock = if opts.dry_run {
        None
    } else {
        Some(RotateLock::acquire(dir)?)
    };
    let mut index = IndexState::open(dir, opts)?;
    let mut cx = Ctx {
        dir,
        opts,
        report: Report {
            dry_run: opts.dry_run,
            notes: std::mem::take(&mut index.notes),
            ..Report::default()
        },
        checkpoint: index.checkpoint.take(),
        assume_covered: index.assume_covered,
        counts: BTreeMap::new(),
    };
    let (mut days, tmps) = plan::scan(dir)?;
    cx.report.bytes_before = days.values().map(Day::bytes).sum();
    // 0. Leftovers of a crashed rotation.
    let deleting_ok = leftovers::resolve(&mut cx, &mut days, tmps)?;
    // 1. Compress.
    compress::compress_due(&mut cx, &mut days)?;
    // 2. Delete by age, then by total size; oldest first, never today.
    if deleting_ok {
        delete::delete_due(&mut cx, &mut days, &mut index)?;
    }
    // 3. The index forgets deleted days.
    delete::forget_deleted(&mut cx, index.own.as_mut())?;
    drop(index);
    cx.report.bytes_after = days.values().map(Day::bytes).sum();
    Ok(cx.report)
}

/// What rotation knows of the index: its checkpoint (which days it covers),
/// and the index itself when this process catches it up ([`IndexMode::Open`]).
struct IndexState {
    own: Option<Indexer>,
    checkpoint: Option<Checkpoint>,
    assume_covered: bool,
    notes: Vec<String>,
    /// Whether there is an index to search (not with `Without`, nor in a
    /// dry run that would build it first).
    searchable: bool,
    /// The index's last commit, opened when first asked (see [`IndexState::open_days`]).
    search: Option<IndexSearch>,
}

impl IndexState {
    fn open(dir: &Path, opts: &Options) -> Result<IndexState, Error> {
        let had_index = checkpoint::exists(dir);
        let mut st = IndexState {
            own: None,
            checkpoint: None,
            assume_covered: false,
            notes: Vec::new(),
            searchable: match opts.index {
                IndexMode::Without => false,
                IndexMode::Open => had_index || !opts.dry_run,
                IndexMode::Running { .. } => true,
            },
            search: None,
        };
        st.checkpoint = match &opts.index {
            IndexMode::Without => None,
            IndexMode::Running { .. } if !had_index => {
                return Err(Error::NoIndex(dir.join(INDEX_DIR)));
            }
            IndexMode::Open if opts.dry_run => {
                st.assume_covered = true;
                if had_index {
                    Some(checkpoint::committed(dir)?)
                } else {
                    // A real run builds the index from the files first.
                    Some(Checkpoint::default())
                }
            }
            // Catch the index up (building it when there is none, as `evlog
            // query` does), so a store written only by the library or the CLI
            // rotates from a plain cron line.
            IndexMode::Open => match Indexer::open(IndexConfig::new(dir)) {
                Ok(mut ix) => {
                    ix.catch_up_and_commit()?;
                    if !had_index {
                        st.notes
                            .push("built the index from the day files (there was none)".into());
                    }
                    let cp = ix.checkpoint().clone();
                    st.own = Some(ix);
                    Some(cp)
                }
                Err(crate::index::Error::Locked) => Some(checkpoint::committed(dir)?),
                Err(e) => return Err(e.into()),
            },
            IndexMode::Running { .. } => Some(checkpoint::committed(dir)?),
        };
        Ok(st)
    }

    /// Of `candidates`, the days that hold open events of level warning
    /// or above, with their counts, by [`open::open_days`] on the index's
    /// last commit; `None` when there is no index to ask.
    fn open_days(
        &mut self,
        dir: &Path,
        candidates: &[chrono::NaiveDate],
    ) -> Result<Option<BTreeMap<chrono::NaiveDate, u64>>, Error> {
        if !self.searchable {
            return Ok(None);
        }
        let search = match (&self.own, &mut self.search) {
            (Some(ix), _) => ix.search(),
            (None, Some(s)) => s.clone(),
            (None, slot) => {
                let s = IndexSearch::open(dir)?;
                *slot = Some(s.clone());
                s
            }
        };
        search.reload()?;
        Ok(Some(open::open_days(&search, candidates)?))
    }
}
