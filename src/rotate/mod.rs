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
//!    so that `evlog verify` starts where the remaining days begin.
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

pub mod compress;
pub mod settings;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub use settings::{Policy, parse_age, parse_size, parse_time_of_day};

use crate::index::indexer::{self, Checkpoint, INDEX_DIR, IndexConfig, Indexer};
use crate::store::chain::{self, ChainHead};
use crate::store::day::{self, DayFile};
use crate::store::{DAY_FILE_MODE, reader, sync_dir, writer};

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

/// Progress of one file: `(file, bytes done, bytes in all)`.
pub type ProgressFn = Arc<dyn Fn(&Path, u64, u64) + Send + Sync>;

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
}

impl Report {
    /// Whether every file was handled.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
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

/// The files of one day.
#[derive(Debug, Clone, Default)]
struct Day {
    plain: Option<u64>,
    gz: Option<u64>,
}

impl Day {
    fn bytes(&self) -> u64 {
        self.plain.unwrap_or(0) + self.gz.unwrap_or(0)
    }
}

/// Day files by day, both forms.
fn scan(dir: &Path) -> Result<(BTreeMap<NaiveDate, Day>, Vec<PathBuf>), Error> {
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut tmps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(".gz.tmp") {
            if day::parse_name(base).is_some_and(|(_, c)| !c) {
                tmps.push(entry.path());
            }
            continue;
        }
        let Some((d, compressed)) = day::parse_name(name) else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(m) if m.is_file() => m.len(),
            // A directory or something odd with a day's name: report it below.
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(entry.path())(e)),
        };
        let slot = days.entry(d).or_default();
        if compressed {
            slot.gz = Some(len);
        } else {
            slot.plain = Some(len);
        }
    }
    Ok((days, tmps))
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

/// The writers' storage lock, held for one rename or deletion.
struct StorageLock {
    _guard: writer::LockGuard,
}

impl StorageLock {
    fn acquire(dir: &Path) -> Result<StorageLock, FileError> {
        let f = Arc::new(writer::open_lock(dir)?);
        Ok(StorageLock {
            _guard: writer::LockGuard::acquire(&f, dir)?,
        })
    }
}

/// The end of day `d` (the next midnight, UTC): the last moment it could be appended to.
fn day_end(d: NaiveDate) -> DateTime<Utc> {
    (d + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// Whether day `d` is older than `age` at `now` (counted from the end of the day).
fn older_than(d: NaiveDate, age: Option<chrono::Duration>, now: DateTime<Utc>) -> bool {
    age.is_some_and(|a| d < now.date_naive() && now - day_end(d) >= a)
}

/// Reads the checkpoint of the index's last commit without writing anything.
pub fn committed_checkpoint(storage: &Path) -> Result<Checkpoint, crate::index::Error> {
    let path = storage.join(INDEX_DIR);
    let index = tantivy::Index::open_in_dir(&path).map_err(|e| {
        crate::index::Error::Tantivy(format!(
            "{}: {e} (run `evlog reindex` to rebuild)",
            path.display()
        ))
    })?;
    indexer::read_checkpoint(&index)
}

/// Whether `storage` has an index.
pub fn has_index(storage: &Path) -> bool {
    storage.join(INDEX_DIR).join("meta.json").is_file()
}

struct Ctx<'a> {
    dir: &'a Path,
    opts: &'a Options,
    report: Report,
    checkpoint: Option<Checkpoint>,
    /// Days that would be indexed by the catch-up of a real run (dry run, `Open`).
    assume_covered: bool,
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
        tracing::error!("EVENT_ROTATE_FAILED file={} error={error}", file.display());
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
    let mut own: Option<Indexer> = None;
    let mut assume_covered = false;
    let mut notes = Vec::new();
    let had_index = has_index(dir);
    let checkpoint = match &opts.index {
        IndexMode::Without => None,
        IndexMode::Running { .. } if !had_index => {
            return Err(Error::NoIndex(dir.join(INDEX_DIR)));
        }
        IndexMode::Open if opts.dry_run => {
            assume_covered = true;
            if had_index {
                Some(committed_checkpoint(dir)?)
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
                ix.sync()?;
                if !had_index {
                    notes.push("built the index from the day files (there was none)".into());
                }
                let cp = ix.checkpoint().clone();
                own = Some(ix);
                Some(cp)
            }
            Err(crate::index::Error::Locked) => Some(committed_checkpoint(dir)?),
            Err(e) => return Err(e.into()),
        },
        IndexMode::Running { .. } => Some(committed_checkpoint(dir)?),
    };
    let mut cx = Ctx {
        dir,
        opts,
        report: Report {
            dry_run: opts.dry_run,
            notes,
            ..Report::default()
        },
        checkpoint,
        assume_covered,
    };
    let today = opts.now.date_naive();
    let (mut days, tmps) = scan(dir)?;
    cx.report.bytes_before = days.values().map(Day::bytes).sum();

    // 0. Leftovers of a crashed rotation.
    for t in tmps {
        if opts.dry_run {
            cx.report.notes.push(format!(
                "would remove {} (left by a crashed rotation)",
                file_name(&t)
            ));
        } else if let Err(e) = std::fs::remove_file(&t) {
            cx.fail(&t, format!("removing a leftover temporary file: {e}"));
        } else {
            cx.report.notes.push(format!(
                "removed {} (left by a crashed rotation)",
                file_name(&t)
            ));
        }
    }
    let both: Vec<NaiveDate> = days
        .iter()
        .filter(|(_, d)| d.plain.is_some() && d.gz.is_some())
        .map(|(d, _)| *d)
        .collect();
    for d in both {
        let res = resolve_both(&mut cx, d);
        match res {
            Ok(kept_plain) => {
                let e = days.get_mut(&d).expect("listed");
                if !opts.dry_run {
                    if kept_plain {
                        e.gz = None;
                    } else {
                        e.plain = None;
                    }
                }
            }
            Err(FileError::Crashed(s, p)) => return Err(Error::Crashed(s, p)),
            Err(FileError::Failed(msg)) => cx.fail(&day::gz_path(dir, d), msg),
        }
    }
    // A deletion interrupted after the anchor moved past its day.
    let anchor = chain::read_anchor(dir).map_err(io_err(dir.join(chain::ANCHOR_FILE)))?;
    let mut deleting_ok = true;
    if let Some(a) = anchor {
        let retired: Vec<NaiveDate> = days
            .iter()
            .take_while(|(d, e)| **d < today && first_seq(dir, **d, e).is_some_and(|s| s <= a.seq))
            .map(|(d, _)| *d)
            .collect();
        for d in retired {
            cx.report.notes.push(format!(
                "{} lies before the chain anchor (an interrupted deletion): deleting it",
                day::plain_name(d)
            ));
            if !delete_day(&mut cx, &mut days, d)? {
                deleting_ok = false;
                break;
            }
        }
    }

    // 1. Compress.
    let policy = opts.policy;
    let candidates: Vec<NaiveDate> = days
        .iter()
        .filter(|(d, e)| {
            e.plain.is_some()
                && e.gz.is_none()
                && older_than(**d, policy.compress_after, opts.now)
                && !older_than(**d, policy.delete_after, opts.now)
        })
        .map(|(d, _)| *d)
        .collect();
    for d in candidates {
        match compress_day(&mut cx, d) {
            Ok(Some(gz_len)) => {
                let e = days.get_mut(&d).expect("listed");
                cx.report.compressed.push(day::plain_name(d));
                if !opts.dry_run {
                    e.plain = None;
                    e.gz = Some(gz_len);
                }
            }
            Ok(None) => {}
            Err(FileError::Crashed(s, p)) => return Err(Error::Crashed(s, p)),
            Err(FileError::Failed(msg)) => cx.fail(&day::plain_path(dir, d), msg),
        }
    }

    // 2. Delete by age, then by total size; oldest first, never today.
    let expired: Vec<NaiveDate> = days
        .keys()
        .filter(|d| older_than(**d, policy.delete_after, opts.now))
        .copied()
        .collect();
    for d in expired {
        if !deleting_ok {
            break;
        }
        deleting_ok = delete_day(&mut cx, &mut days, d)?;
    }
    if let Some(max) = policy.max_total_size {
        let mut total: u64 = days.values().map(Day::bytes).sum();
        let oldest: Vec<NaiveDate> = days.keys().filter(|d| **d < today).copied().collect();
        for d in oldest {
            if total <= max || !deleting_ok {
                break;
            }
            let bytes = days[&d].bytes();
            deleting_ok = delete_day(&mut cx, &mut days, d)?;
            if deleting_ok {
                total -= bytes;
            }
        }
        if total > max && deleting_ok {
            cx.report.notes.push(format!(
                "the day files still take {} bytes, over max_total_size {max}: only today's file is left and it is never deleted",
                total
            ));
        }
        if opts.dry_run && !cx.report.compressed.is_empty() {
            cx.report.notes.push(
                "files to be compressed are counted at their plain size: a real run may delete fewer days for max_total_size".into(),
            );
        }
    }

    // 3. The index forgets deleted days.
    if !opts.dry_run && !cx.report.deleted.is_empty() {
        let gone: Vec<NaiveDate> = cx
            .report
            .deleted
            .iter()
            .filter_map(|n| day::parse_name(n).map(|(d, _)| d))
            .collect();
        match (&opts.index, own.as_mut()) {
            (IndexMode::Without, _) => {}
            (_, Some(ix)) => {
                ix.catch_up()?;
                ix.commit()?;
            }
            (mode, None) => {
                if let IndexMode::Running { wake } = mode {
                    wake();
                }
                if !wait_for_index(dir, &gone, opts.index_wait, mode) {
                    cx.report.notes.push(
                        "the running indexer has not yet dropped the deleted days; it will on its next pass".into(),
                    );
                }
            }
        }
    }
    drop(own);
    cx.report.bytes_after = days.values().map(Day::bytes).sum();
    Ok(cx.report)
}

/// Waits until the index's last commit no longer lists any of `gone`.
fn wait_for_index(dir: &Path, gone: &[NaiveDate], patience: StdDuration, mode: &IndexMode) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match committed_checkpoint(dir) {
            Ok(cp) if !gone.iter().any(|d| cp.files.contains_key(d)) => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the index checkpoint");
                return false;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let IndexMode::Running { wake } = mode {
            wake();
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
}

/// The `seq` of the first chained line of a day (plain preferred).
fn first_seq(dir: &Path, d: NaiveDate, e: &Day) -> Option<u64> {
    let file = if e.plain.is_some() {
        DayFile {
            day: d,
            path: day::plain_path(dir, d),
            compressed: false,
        }
    } else {
        DayFile {
            day: d,
            path: day::gz_path(dir, d),
            compressed: true,
        }
    };
    let mut r = reader::LineReader::open(&file).ok()?;
    let mut buf = Vec::new();
    while let Ok(Some((_, line))) = r.next_line(&mut buf) {
        if let Some(t) = chain::parse_tail(line) {
            return Some(t.seq);
        }
    }
    None
}

/// A day both plain and compressed: keeps the plain file unless the `.gz`
/// holds exactly its bytes. Returns whether the plain file was kept.
fn resolve_both(cx: &mut Ctx<'_>, d: NaiveDate) -> Result<bool, FileError> {
    let plain = day::plain_path(cx.dir, d);
    let gz = day::gz_path(cx.dir, d);
    let same = same_content(&plain, &gz).unwrap_or(false);
    if cx.opts.dry_run {
        cx.report.notes.push(format!(
            "{} exists plain and compressed (an interrupted rotation): a real run removes the {}",
            day::plain_name(d),
            if same { "plain file" } else { "unverified .gz" }
        ));
        return Ok(true);
    }
    let _l = StorageLock::acquire(cx.dir)?;
    if same {
        std::fs::remove_file(&plain)?;
        cx.crash(Step::PlainRemoved, &plain)?;
        sync_dir(cx.dir)?;
        cx.report.notes.push(format!(
            "{}: finished an interrupted compression (the .gz is complete; the plain file is removed)",
            day::plain_name(d)
        ));
        Ok(false)
    } else {
        std::fs::remove_file(&gz)?;
        sync_dir(cx.dir)?;
        cx.report.notes.push(format!(
            "{}: removed an incomplete .gz left by an interrupted rotation (the plain file is kept)",
            day::plain_name(d)
        ));
        Ok(true)
    }
}

/// Whether the `.gz` decompresses to exactly the complete lines of `plain`.
fn same_content(plain: &Path, gz: &Path) -> io::Result<bool> {
    let f = File::open(plain)?;
    let len = f.metadata()?.len();
    let complete = reader::complete_len(&f, len)?;
    let mut p = io::BufReader::with_capacity(1 << 20, f).take(complete);
    let mut g =
        flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, File::open(gz)?));
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut p, &mut a)?;
        let m = read_full(&mut g, &mut b)?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Compresses the plain file of day `d`. `Ok(Some(gz bytes))` when done (or
/// planned, in a dry run), `Ok(None)` when skipped.
fn compress_day(cx: &mut Ctx<'_>, d: NaiveDate) -> Result<Option<u64>, FileError> {
    let dir = cx.dir;
    let plain = day::plain_path(dir, d);
    let gz = day::gz_path(dir, d);
    let tmp = dir.join(format!("{}.gz.tmp", day::plain_name(d)));
    let file = File::open(&plain)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::Failed("not a regular file".into()));
    }
    let mut len = meta.len();
    let mut complete = reader::complete_len(&file, len)?;
    if complete < len && !cx.opts.dry_run {
        // A writer crashed mid-line on this day: move the torn tail aside
        // (as the next writer would), so the day ends with a whole line.
        let _l = StorageLock::acquire(dir)?;
        let rw = OpenOptions::new().read(true).write(true).open(&plain)?;
        len = rw.metadata()?.len();
        complete =
            writer::recover_torn_tail(&rw, &plain, len, &Default::default(), &Default::default())?;
        len = complete;
    }
    if let Some(cp) = &cx.checkpoint {
        let mark = cp.files.get(&d).copied().unwrap_or_default();
        let done = mark.offset;
        if done > complete || (done == complete && !indexer::mark_matches(&plain, &mark)) {
            // The index holds lines the file no longer has (cut back after a
            // failed write or fdatasync): the indexer must index the day
            // again before it is frozen into a .gz.
            cx.skip(
                &plain,
                format!(
                    "the index saw {done} bytes of a day file now {complete} bytes or changed \
                     (cut back after a storage error): compressed once re-indexed"
                ),
            );
            return Ok(None);
        }
        if done < complete {
            if cx.assume_covered {
                cx.report.notes.push(format!(
                    "{} is not fully indexed yet: a real run indexes it first",
                    day::plain_name(d)
                ));
            } else {
                cx.skip(
                    &plain,
                    format!(
                        "the index covers {done} of its {complete} bytes so far (compressed on a later run)"
                    ),
                );
                return Ok(None);
            }
        }
    }
    if cx.opts.dry_run {
        return Ok(Some(len));
    }
    let data = if complete == 0 {
        None
    } else {
        // SAFETY: a day file is only appended to, and a past day not at all;
        // the mapping covers complete lines only (see store::reader).
        Some(unsafe {
            memmap2::MmapOptions::new()
                .len(complete as usize)
                .map(&file)?
        })
    };
    let data: &[u8] = data.as_deref().unwrap_or(&[]);
    let result = write_and_check(cx, data, &plain, &tmp);
    let lines = match result {
        Ok(n) => n,
        Err(FileError::Failed(msg)) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(FileError::Failed(msg));
        }
        Err(crash) => return Err(crash),
    };
    let gz_len = std::fs::metadata(&tmp)?.len();
    let lock = StorageLock::acquire(dir)?;
    let now_len = std::fs::metadata(&plain)?.len();
    if now_len != len {
        drop(lock);
        let _ = std::fs::remove_file(&tmp);
        cx.skip(
            &plain,
            format!(
                "it changed during compression ({len} -> {now_len} bytes); compressed on a later run"
            ),
        );
        return Ok(None);
    }
    std::fs::rename(&tmp, &gz)?;
    cx.crash(Step::Renamed, &gz)?;
    sync_dir(dir)?;
    cx.crash(Step::RenameSynced, &gz)?;
    std::fs::remove_file(&plain)?;
    cx.crash(Step::PlainRemoved, &plain)?;
    sync_dir(dir)?;
    drop(lock);
    tracing::info!(file = %plain.display(), lines, bytes = complete, gz_bytes = gz_len, "compressed");
    Ok(Some(gz_len))
}

/// Writes `tmp` (fsynced) and reads it back; returns the line count.
fn write_and_check(cx: &Ctx<'_>, data: &[u8], plain: &Path, tmp: &Path) -> Result<u64, FileError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DAY_FILE_MODE)
        .open(tmp)?;
    let total = data.len() as u64;
    let progress = cx.opts.progress.clone();
    let mut report = |done: u64| {
        if let Some(p) = &progress {
            p(plain, done, total);
        }
    };
    let members = compress::compress_file(data, &mut out, cx.opts.threads, &mut report)?;
    drop(out);
    cx.crash(Step::TmpWritten, tmp)?;
    let back = File::open(tmp)?;
    let gz_len = back.metadata()?.len();
    let map = if gz_len == 0 {
        None
    } else {
        // SAFETY: the temporary file is ours (rotate.lock) and no longer written.
        Some(unsafe { memmap2::Mmap::map(&back)? })
    };
    let lines = compress::check(
        data,
        map.as_deref().unwrap_or(&[]),
        &members,
        cx.opts.threads,
    )?;
    let expected = memchr::memchr_iter(b'\n', data).count() as u64;
    if lines != expected {
        return Err(FileError::Failed(format!(
            "read back {lines} events, the day file has {expected}"
        )));
    }
    cx.crash(Step::TmpChecked, tmp)?;
    Ok(lines)
}

/// Deletes every file of day `d` after moving the chain anchor past it.
/// Returns `Ok(false)` if it failed (reported; later days must stay, or the
/// chain would have a hole), `Err` only for an injected crash.
fn delete_day(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
    d: NaiveDate,
) -> Result<bool, Error> {
    let Some(e) = days.get(&d).cloned() else {
        return Ok(true);
    };
    let mut names = Vec::new();
    if e.plain.is_some() {
        names.push(day::plain_name(d));
    }
    if e.gz.is_some() {
        names.push(format!("{}.gz", day::plain_name(d)));
    }
    if cx.opts.dry_run {
        cx.report.deleted.extend(names);
        days.remove(&d);
        return Ok(true);
    }
    match delete_files(cx, d, &e) {
        Ok(()) => {
            cx.report.deleted.extend(names);
            days.remove(&d);
            Ok(true)
        }
        Err(FileError::Crashed(s, p)) => Err(Error::Crashed(s, p)),
        Err(FileError::Failed(msg)) => {
            let path = if e.plain.is_some() {
                day::plain_path(cx.dir, d)
            } else {
                day::gz_path(cx.dir, d)
            };
            cx.fail(
                &path,
                format!("{msg} (younger days are kept until it can be deleted)"),
            );
            Ok(false)
        }
    }
}

fn delete_files(cx: &Ctx<'_>, d: NaiveDate, e: &Day) -> Result<(), FileError> {
    let dir = cx.dir;
    let plain = day::plain_path(dir, d);
    let gz = day::gz_path(dir, d);
    let file = if e.plain.is_some() {
        DayFile {
            day: d,
            path: plain.clone(),
            compressed: false,
        }
    } else {
        DayFile {
            day: d,
            path: gz.clone(),
            compressed: true,
        }
    };
    if std::fs::metadata(&file.path).is_ok_and(|m| !m.is_file()) {
        return Err(FileError::Failed("not a regular file".into()));
    }
    let head = reader::last_head(&file)?;
    let _l = StorageLock::acquire(dir)?;
    if let Some(h) = head {
        let current = chain::read_anchor(dir)?;
        if current.is_none_or(|a| a.seq < h.seq) {
            write_anchor(dir, &h)?;
            cx.crash(Step::AnchorWritten, &file.path)?;
        }
    }
    for p in [&plain, &gz] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(FileError::Failed(err.to_string())),
        }
    }
    let mut torn = plain.into_os_string();
    torn.push(".torn");
    let _ = std::fs::remove_file(torn);
    cx.crash(Step::Deleted, &file.path)?;
    sync_dir(dir)?;
    Ok(())
}

/// Writes `chain.anchor` atomically (temporary file, fsync, rename, fsync dir).
fn write_anchor(dir: &Path, head: &ChainHead) -> io::Result<()> {
    let path = dir.join(chain::ANCHOR_FILE);
    let tmp = dir.join(format!("{}.tmp", chain::ANCHOR_FILE));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    io::Write::write_all(&mut f, &serde_json::to_vec(head).map_err(io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_from_the_end_of_the_day() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let week = Some(chrono::Duration::days(7));
        assert!(!older_than(d, week, at("2026-11-22T23:59:59Z")));
        assert!(older_than(d, week, at("2026-11-23T00:00:00Z")));
        // Today is never old, whatever the age.
        let zero = Some(chrono::Duration::zero());
        assert!(!older_than(d, zero, at("2026-11-15T23:00:00Z")));
        assert!(older_than(d, zero, at("2026-11-16T00:00:00Z")));
        assert!(!older_than(d, None, at("2030-01-01T00:00:00Z")));
    }
}
