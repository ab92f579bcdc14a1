//! Group commit: the committer thread gathers every append waiting in its
//! channel into one locked write ([`Writer::write_batch`]); under `fsync`
//! durability the syncer thread fdatasyncs written batches back to back
//! (jobs that queue up meanwhile share the next one) and the acker answers
//! the callers.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::error::Error;
use super::faults::Faults;
use super::lock::LockGuard;
use super::writer::{SyncState, Writer};
use super::{Durability, Stats};

/// Callbacks run by the committer after every successful write.
pub(crate) type Hooks = Arc<std::sync::Mutex<Vec<Box<dyn Fn() + Send + Sync>>>>;

/// A request to the committer thread.
pub(crate) enum Msg {
    /// Append these bodies; reply when they are written (and durable under `fsync`).
    Append { bodies: Vec<Vec<u8>>, reply: Reply },
    /// fsync everything written so far, then reply.
    Flush(Reply),
    /// Write what is queued before it, stop: cut off lines whose write or
    /// fdatasync failed, fsync, then reply. Later appends fail (closed).
    Close(Reply),
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
    /// Events of the appends among `replies` (flushes have none).
    events: usize,
    /// The writer's epoch when written: a job of a poisoned epoch is failed
    /// without an fdatasync (its bytes are cut off by the committer).
    epoch: u64,
    /// The committer's number of the last write it covers.
    job: u64,
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
    if let Err(e) = &result {
        let events = jobs.iter().map(|j| j.events).sum();
        if events > 0 {
            write_failed(stats, events, e);
        }
    }
    let (replies, waiting): (Vec<Reply>, Vec<Reply>) = jobs
        .into_iter()
        .flat_map(|j| j.replies)
        .partition(|r| matches!(r, Reply::Async(_)));
    // Completing a future only queues its task: done here. Waking
    // blocked threads is slow with dozens of them: the acker does it.
    for r in replies {
        r.send(result.clone());
    }
    waiting.is_empty() || acks.send((result, waiting)).is_ok()
}

/// Spawns a store thread named `name` that logs through the subscriber of
/// whoever spawned it (a scoped subscriber, not only the global one).
pub(crate) fn spawn_logging<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _log_to = tracing::dispatcher::set_default(&dispatch);
            f()
        })
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
    let syncer = spawn_logging("evlog-sync", move || {
        run_syncer(sync_rx, ack_tx, syncer_stats, syncer_faults, syncer_state)
    })
    .expect("spawning the syncer thread");
    let acker = spawn_logging("evlog-ack", move || {
        for (result, replies) in ack_rx {
            for r in replies {
                r.send(result.clone());
            }
        }
    })
    .expect("spawning the acker thread");
    let fsync_mode = durability == Durability::Fsync;
    w.track_sync = fsync_mode;
    let mut last_sync = Instant::now();
    let mut closed: Option<Reply> = None;
    while closed.is_none() {
        let first = if w.dirty && durability == Durability::Batch {
            let wait = interval.saturating_sub(last_sync.elapsed());
            match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = w.sync() {
                        acknowledged_not_durable(&e, "periodic fsync");
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
        // Events of this group whose write succeeded (0 after a failed write).
        let mut written = 0;
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Msg::Append { bodies: b, reply } => {
                    bytes += b.iter().map(Vec::len).sum::<usize>();
                    bodies.extend(b);
                    replies.push(reply);
                }
                Msg::Flush(reply) => flushes.push(reply),
                Msg::Close(reply) => closed = Some(reply),
            }
            next = if closed.is_none() && bytes < MAX_GROUP_BYTES {
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
                    written = bodies.len();
                    if !fsync_mode {
                        for r in replies.drain(..) {
                            r.send(Ok(()));
                        }
                    }
                }
                Err(e) => {
                    write_failed(&w.stats, bodies.len(), &e);
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
                            events: written,
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
            if let Err(e) = &r {
                acknowledged_not_durable(e, "flush");
            }
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
    if let Err(e) = &cut {
        tracing::error!(error = %e, "lines whose fdatasync failed could not be cut off at close");
    }
    let synced = w.sync();
    if let Err(e) = &synced {
        acknowledged_not_durable(e, "final fsync");
    }
    if let Some(reply) = closed {
        reply.send(cut.and(synced));
    }
}

/// The key of the log line of every failed write, for alerts to match.
const WRITE_FAILED: &str = "EVENT_WRITE_FAILED";

/// A write of `events` events that failed (the write itself, or the
/// fdatasync that was to make it durable): counted, and logged as one line
/// `EVENT_WRITE_FAILED file=.. events=N error=..`. Every append of the
/// library, the CLI and the server goes through the committer, so this is
/// the one place that says so.
fn write_failed(stats: &Stats, events: usize, e: &Error) {
    stats
        .write_failures
        .fetch_add(events as u64, Ordering::Relaxed);
    tracing::error!(
        "{WRITE_FAILED} file={} events={events} error={e}",
        e.path().map_or("-".into(), |p| p.display().to_string()),
    );
}

/// An fsync failed after its events were acknowledged (durability `batch`
/// or `none`): they may be lost on power failure. Logged with the same key
/// as [`write_failed`], since an alert wants both.
fn acknowledged_not_durable(e: &Error, what: &str) {
    tracing::error!(
        "{WRITE_FAILED} file={} events=acknowledged error={what}: {e} (events acknowledged since the last fsync may be lost on power failure)",
        e.path().map_or("-".into(), |p| p.display().to_string()),
    );
}
