//! The store: the only code that writes day files.
//!
//! [`EventLog`] validates, filters and serializes events on the caller's
//! thread, then hands them to one committer thread per log, which gathers
//! whatever is waiting into one locked write and (under
//! [`Durability::Fsync`]) one `fdatasync` — group commit. An append returns
//! once its batch is written and, under `fsync`, durable.

pub mod appender;
pub mod chain;
mod commit;
pub mod day;
mod error;
pub mod faults;
pub mod lock;
pub mod reader;
#[cfg(test)]
mod tests;
mod torn;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::event::privacy::PrivacyConfig;
use crate::event::{Event, ValidationError};

pub use appender::Appender;
pub use day::DayRange;
pub use error::Error;
pub use faults::{Faults, StorageFault};
pub use lock::{LOCK_FILE, StorageLock};
pub use reader::{Record, Scan};
pub use torn::cut_torn_tail;
pub use verify::Report as VerifyReport;
pub use writer::{DAY_FILE_MODE, sync_dir, write_file_atomic};

/// Mode of a storage directory that `EventLog::open` creates (owner
/// writes, group reads, others nothing), like the day files in it (0640).
pub const STORAGE_DIR_MODE: u32 = 0o750;

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// An append returns after the `fdatasync` that covers it (group commit:
    /// concurrent appends share one). Nothing acknowledged is lost on power failure.
    #[default]
    Fsync,
    /// An append returns after `write`; the file is fsynced every
    /// `batch_interval`. A power failure can lose that window; a process crash cannot.
    Batch,
    /// An append returns after `write`; fsync only on flush and close.
    None,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "batch" => Ok(Durability::Batch),
            "none" => Ok(Durability::None),
            other => Err(format!(
                "`{other}` is not a durability mode: want fsync, batch or none"
            )),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Fsync => "fsync",
            Durability::Batch => "batch",
            Durability::None => "none",
        })
    }
}

/// Default storage directory.
pub const DEFAULT_STORAGE_PATH: &str = "./evlog-data";

/// How to open an [`EventLog`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the day files (created if missing).
    pub storage_path: PathBuf,
    /// When appends count as durable.
    pub durability: Durability,
    /// fsync period under [`Durability::Batch`].
    pub batch_interval: Duration,
    /// Privacy filters applied before writing.
    pub privacy: PrivacyConfig,
    /// Source of append times (and so of day files).
    pub clock: Arc<dyn Clock>,
    /// Storage failpoints (a testing aid; none by default).
    pub faults: Faults,
}

impl Config {
    /// Defaults for a storage directory: `fsync`, 100 ms batch interval,
    /// default privacy filters, the system clock.
    pub fn new(storage_path: impl Into<PathBuf>) -> Config {
        Config {
            storage_path: storage_path.into(),
            durability: Durability::Fsync,
            batch_interval: Duration::from_millis(100),
            privacy: PrivacyConfig::default(),
            clock: Arc::new(SystemClock),
            faults: Faults::none(),
        }
    }
    /// Sets the storage failpoints (tests keep a clone to switch them).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
    /// Sets the durability mode.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Sets the privacy filters.
    pub fn privacy(mut self, p: PrivacyConfig) -> Self {
        self.privacy = p;
        self
    }
}

/// Counters of one open log.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events written.
    pub appended: AtomicU64,
    /// Group commits (writes) done.
    pub group_commits: AtomicU64,
    /// Events whose write failed.
    pub write_failures: AtomicU64,
    /// Torn final lines moved aside.
    pub torn_tails: AtomicU64,
}

struct Inner {
    dir: PathBuf,
    privacy: crate::event::privacy::Privacy,
    clock: Arc<dyn Clock>,
    tx: Option<SyncSender<commit::Msg>>,
    committer: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    hooks: commit::Hooks,
    /// A slot for a higher layer's per-log state (the index reader), kept
    /// type-erased so that the store knows nothing of it.
    extension: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the committer, which fsyncs before it returns.
        self.tx.take();
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
    }
}

/// The outcome of a submission still being committed.
pub(crate) struct Pending(mpsc::Receiver<Result<()>>);

impl Pending {
    /// Blocks until the submission is committed.
    pub(crate) fn wait(self) -> Result<()> {
        self.0.recv().map_err(|_| Error::Closed)?
    }
}

/// An open event log. Cheap to clone; all clones share one committer.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl EventLog {
    /// Opens (creating if needed) the storage directory, recovers torn tails
    /// and starts the committer thread.
    pub fn open(config: Config) -> Result<EventLog> {
        let dir = config.storage_path.clone();
        std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            STORAGE_DIR_MODE,
        )
        .create(&dir)
        .map_err(|e| Error::io(&dir, e))?;
        let stats = Arc::new(Stats::default());
        let w = writer::Writer::new(
            dir.clone(),
            config.clock.clone(),
            stats.clone(),
            config.faults.clone(),
        )?;
        let (tx, rx) = mpsc::sync_channel(4096);
        let durability = config.durability;
        let interval = config.batch_interval;
        let hooks = commit::Hooks::default();
        let committer_hooks = hooks.clone();
        let committer = commit::spawn_logging("evlog-commit", move || {
            commit::run_committer(w, rx, durability, interval, committer_hooks)
        })
        .map_err(|e| Error::io(&dir, e))?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                dir,
                privacy: config.privacy.compile(),
                clock: config.clock,
                tx: Some(tx),
                committer: Some(committer),
                stats,
                hooks,
                extension: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The storage directory.
    pub fn storage_path(&self) -> &Path {
        &self.inner.dir
    }

    /// The log's clock (what "now" and "today" are for its appends).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The `user_id` under which events of `user_id` are stored: its keyed
    /// hash when `user_id_hash_key` is set (see [`Privacy::stored_user_id`](crate::event::privacy::Privacy::stored_user_id)),
    /// else `user_id`. Filters on `user_id` must use this.
    pub fn stored_user_id(&self, user_id: &str) -> String {
        self.inner.privacy.stored_user_id(user_id)
    }

    /// What a `user_id` filter should match (see
    /// [`Privacy::user_id_filter`](crate::event::privacy::Privacy::user_id_filter)).
    pub fn user_id_filter(&self, user_id: &str) -> String {
        self.inner.privacy.user_id_filter(user_id)
    }

    /// Whether events are stored with a hashed `user_id`.
    pub fn hashes_user_ids(&self) -> bool {
        self.inner.privacy.hashes_user_ids()
    }

    /// The log's counters (appended, group commits, write failures, torn tails).
    pub fn counters(&self) -> &Stats {
        &self.inner.stats
    }

    /// Applies privacy filters, validates, assigns `id` and `timestamp`, and
    /// serializes. Returns the id and the JSON body.
    pub(crate) fn prepare(
        &self,
        mut event: Event,
    ) -> std::result::Result<(Uuid, Vec<u8>), ValidationError> {
        self.inner.privacy.apply(&mut event);
        self.seal_body(event)
    }

    /// Validates, assigns `id` and `timestamp` when absent, and serializes.
    fn seal_body(&self, mut event: Event) -> std::result::Result<(Uuid, Vec<u8>), ValidationError> {
        event.validate()?;
        let id = *event.id.get_or_insert_with(Uuid::now_v7);
        if event.timestamp.is_none() {
            event = event.timestamp(self.inner.clock.now());
        }
        event._seq = None;
        event._hash = None;
        let mut body = Vec::with_capacity(512);
        serde_json::to_writer(&mut body, &event)
            .map_err(|e| ValidationError::new("event", e.to_string()))?;
        Ok((id, body))
    }

    /// Appends one event; returns its id once durable (per the durability mode).
    pub fn append(&self, event: Event) -> Result<Uuid> {
        let (id, body) = self.prepare(event)?;
        self.submit(vec![body])?;
        Ok(id)
    }

    /// Appends many events as one all-or-nothing batch: if any is invalid,
    /// nothing is written and every bad index is reported.
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Vec<Uuid>> {
        let (ids, bodies) = self.prepare_batch(events)?;
        if !bodies.is_empty() {
            self.submit(bodies)?;
        }
        Ok(ids)
    }

    /// Appends copies of events stored elsewhere (replication: `evlog
    /// follow`), as one all-or-nothing batch. They are kept as they are:
    /// each must have its `id` and `timestamp`, and this store's privacy
    /// filters are not applied again (the origin applied its own; hashing a
    /// hashed user id again would lose it). `seq` and `hash` are this
    /// store's.
    pub fn append_copies(&self, events: Vec<Event>) -> Result<Vec<Uuid>> {
        let (ids, bodies) = self.prepare_all(events, |log, e| {
            if e.id.is_none() || e.timestamp.is_none() {
                return Err(ValidationError::new(
                    "id",
                    "a copy keeps the id and timestamp of its original",
                ));
            }
            log.seal_body(e)
        })?;
        if !bodies.is_empty() {
            self.submit(bodies)?;
        }
        Ok(ids)
    }

    /// [`EventLog::append_batch`] for async callers: the events are prepared
    /// on the calling thread, then the future waits for the group commit
    /// without holding a thread (many concurrent appends cost tasks, not
    /// threads). Preparing costs a few microseconds per event: run large
    /// batches on a blocking thread, or call [`EventLog::append_batch`] there.
    pub async fn append_batch_async(&self, events: Vec<Event>) -> Result<Vec<Uuid>> {
        let (ids, bodies) = self.prepare_batch(events)?;
        if !bodies.is_empty() {
            self.submit_future(bodies)?.await?;
        }
        Ok(ids)
    }

    /// Prepares every event of a batch (see [`EventLog::prepare`]); any
    /// invalid event rejects the whole batch, naming each bad index.
    pub(crate) fn prepare_batch(&self, events: Vec<Event>) -> Result<(Vec<Uuid>, Vec<Vec<u8>>)> {
        self.prepare_all(events, Self::prepare)
    }

    /// Prepares every event of a batch with `one`; any invalid event
    /// rejects the whole batch, naming each bad index.
    fn prepare_all(
        &self,
        events: Vec<Event>,
        one: impl Fn(&Self, Event) -> std::result::Result<(Uuid, Vec<u8>), ValidationError>,
    ) -> Result<(Vec<Uuid>, Vec<Vec<u8>>)> {
        let mut ids = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        let mut rejects = Vec::new();
        for (i, e) in events.into_iter().enumerate() {
            match one(self, e) {
                Ok((id, body)) => {
                    ids.push(id);
                    bodies.push(body);
                }
                Err(err) => rejects.push((i, err)),
            }
        }
        if !rejects.is_empty() {
            return Err(Error::BatchRejected(rejects));
        }
        Ok((ids, bodies))
    }

    /// Hands prepared bodies to the committer and waits for the outcome.
    pub(crate) fn submit(&self, bodies: Vec<Vec<u8>>) -> Result<()> {
        self.submit_async(bodies)?.wait()
    }

    /// Hands prepared bodies to the committer without waiting; the returned
    /// [`Pending`] resolves when they are written (and durable per the mode).
    /// Submissions are written in the order they are made.
    pub(crate) fn submit_async(&self, bodies: Vec<Vec<u8>>) -> Result<Pending> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(commit::Msg::Append {
            bodies,
            reply: commit::Reply::Blocking(reply),
        })?;
        Ok(Pending(rx))
    }

    /// Hands prepared bodies to the committer; the future resolves when they
    /// are written (and durable per the mode). Never blocks the calling
    /// thread: when the committer's queue is full, a blocking thread waits
    /// for room instead.
    pub(crate) fn submit_future(
        &self,
        bodies: Vec<Vec<u8>>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let msg = commit::Msg::Append {
            bodies,
            reply: commit::Reply::Async(reply),
        };
        let tx = self.inner.tx.as_ref().ok_or(Error::Closed)?;
        let queued = match tx.try_send(msg) {
            Ok(()) => None,
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(Error::Closed),
            Err(mpsc::TrySendError::Full(msg)) => {
                let tx = tx.clone();
                Some(tokio::task::spawn_blocking(move || tx.send(msg)))
            }
        };
        Ok(async move {
            if let Some(q) = queued {
                match q.await {
                    Ok(Ok(())) => {}
                    _ => return Err(Error::Closed),
                }
            }
            rx.await.map_err(|_| Error::Closed)?
        })
    }

    fn send(&self, msg: commit::Msg) -> Result<()> {
        let tx = self.inner.tx.as_ref().ok_or(Error::Closed)?;
        tx.send(msg).map_err(|_| Error::Closed)
    }

    /// The per-log value of type `T`, created by `init` on first use.
    pub(crate) fn extension<T, E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
    {
        if let Some(v) = self
            .inner
            .extension
            .get()
            .and_then(|b| b.downcast_ref::<T>())
        {
            return Ok(v.clone());
        }
        let v = init()?;
        let _ = self.inner.extension.set(Box::new(v.clone()));
        Ok(v)
    }

    /// Registers a callback run (on the committer thread) after every
    /// successful write: the in-process indexer uses it to wake up at once
    /// instead of waiting for the file watcher. Keep it cheap and non-blocking.
    pub fn on_commit(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Closes the log for every clone: what was submitted before is written,
    /// lines whose write or fdatasync failed are cut off the day files (as at
    /// the last clone's drop), everything is fsynced; later appends fail with
    /// [`Error::Closed`]. For a process about to exit while other threads
    /// still hold clones (a failed `evlog append --stdin`), so that no line
    /// of unknown fate is left for the next process, which could not tell.
    pub fn close(&self) -> Result<()> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(commit::Msg::Close(commit::Reply::Blocking(reply)))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// fsyncs everything appended so far (useful under `batch` and `none`).
    pub fn flush(&self) -> Result<()> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(commit::Msg::Flush(commit::Reply::Blocking(reply)))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Reads the events of a day range, oldest file first (see [`Scan`]).
    pub fn scan(&self, range: DayRange) -> Result<Scan> {
        Scan::new(&self.inner.dir, range)
    }

    /// Verifies the hash chain over a day range.
    pub fn verify(&self, range: DayRange) -> Result<VerifyReport> {
        verify::verify(&self.inner.dir, range)
    }
}
