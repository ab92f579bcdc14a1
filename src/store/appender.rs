//! A fire-and-forget [`Appender`]: enqueueing never blocks the caller's
//! request path. A bounded queue feeds a background thread that appends in
//! batches; when the queue is full the event is dropped and counted. Every
//! failed write is logged once with the key `EVENT_WRITE_FAILED`: an event
//! refused before the write as `EVENT_WRITE_FAILED user_id=.. event_type=..
//! error=..`; a failed write by the store's committer, which logs its own
//! `EVENT_WRITE_FAILED file=.. events=N` line (the appender then names the
//! events lost without the key); a write refused because the log is closed
//! as `EVENT_WRITE_FAILED events=N error=..`.
//!
//! With [`Appender::with_dedup`], `[[dedup]]` rules suppress events before
//! they are queued (counted in [`AppenderStats::suppressed`]), and the
//! appender queues an `events_suppressed` summary of the counts at most once
//! a minute, at the next append or flush after one is due, and at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::EventLog;
use crate::dedup::{Dedup, DedupRule};
use crate::event::Event;

/// Default queue capacity (events). Slots hold events inline (no allocation
/// per enqueue), about 300 bytes each, so the default reserves ~5 MB.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Most events one background batch takes from the queue.
const MAX_BATCH: usize = 4096;

// Events are stored inline: a `Box` per enqueue cost page faults on fresh
// heap pages and pushed the enqueue p99 to ~4 µs (see BENCHMARKS.md).
#[allow(clippy::large_enum_variant)]
enum Cmd {
    Event(Event),
    Flush(SyncSender<()>),
}

/// Counters of an [`Appender`].
#[derive(Debug, Default)]
pub struct AppenderStats {
    /// Events dropped because the queue was full or the appender closed.
    pub dropped: AtomicU64,
    /// Events that failed validation or whose write failed.
    pub failed: AtomicU64,
    /// Events written.
    pub written: AtomicU64,
    /// Events suppressed by the `[[dedup]]` rules (never queued).
    pub suppressed: AtomicU64,
}

/// Fire-and-forget appends over an [`EventLog`]. Flushes on [`Appender::flush`],
/// [`Appender::shutdown`] and drop.
pub struct Appender {
    tx: Option<SyncSender<Cmd>>,
    stats: Arc<AppenderStats>,
    worker: Option<JoinHandle<()>>,
    dedup: Option<Arc<Dedup>>,
}

impl Appender {
    /// An appender with the default queue capacity.
    pub fn new(log: EventLog) -> Appender {
        Appender::with_capacity(log, DEFAULT_CAPACITY)
    }

    /// An appender whose queue holds at most `capacity` events.
    pub fn with_capacity(log: EventLog, capacity: usize) -> Appender {
        Appender::spawn(log, capacity, None)
    }

    /// An appender (default capacity) that records `by` as the
    /// `appended_by` of every event that has none: the HTTP server's own
    /// events carry [`SERVER_APPENDER`](crate::event::SERVER_APPENDER).
    pub fn with_appended_by(log: EventLog, by: impl Into<String>) -> Appender {
        Appender::spawn(log, DEFAULT_CAPACITY, Some(by.into()))
    }

    /// An appender whose queue holds at most `capacity` events, recording
    /// `by` (if any) as the `appended_by` of every event that has none.
    pub(crate) fn spawn(log: EventLog, capacity: usize, by: Option<String>) -> Appender {
        let (tx, rx) = mpsc::sync_channel::<Cmd>(capacity.max(1));
        let stats = Arc::new(AppenderStats::default());
        let st = stats.clone();
        let worker = super::commit::spawn_logging("evlog-appender", move || {
            while let Ok(first) = rx.recv() {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(c) = next {
                    match c {
                        Cmd::Event(e) => batch.push(e),
                        Cmd::Flush(r) => flushes.push(r),
                    }
                    next = if batch.len() < MAX_BATCH {
                        rx.try_recv().ok()
                    } else {
                        None
                    };
                }
                if let Some(by) = &by {
                    for e in batch.iter_mut().filter(|e| e.appended_by.is_none()) {
                        e.appended_by = Some(by.clone());
                    }
                }
                write(&log, batch, &st);
                if !flushes.is_empty() {
                    if let Err(e) = log.flush() {
                        tracing::warn!(error = %e, "EVENT_FLUSH_FAILED");
                    }
                    for r in flushes {
                        let _ = r.send(());
                    }
                }
            }
        })
        .expect("spawning the appender thread");
        Appender {
            tx: Some(tx),
            stats,
            worker: Some(worker),
            dedup: None,
        }
    }

    /// Applies `rules` (see [`crate::dedup`]) to every event appended from
    /// now on, on `log`'s clock: at most `max` events per (user_id,
    /// event_type) per window for the listed types; the others are
    /// suppressed, counted, and summarised in `events_suppressed` events.
    pub fn with_dedup(mut self, log: &EventLog, rules: &[DedupRule]) -> Appender {
        self.dedup = (!rules.is_empty()).then(|| Arc::new(Dedup::new(rules, log.clock())));
        self
    }

    /// Enqueues `event` without blocking. Returns `false` (and counts a drop)
    /// when the queue is full; `true` when queued, or suppressed by a
    /// `[[dedup]]` rule (counted in [`AppenderStats::suppressed`]).
    pub fn append(&self, event: Event) -> bool {
        if let Some(d) = &self.dedup {
            let admitted = d.admit(&event.user_id, event.event_type.as_str());
            self.summarise(false);
            if !admitted {
                self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        self.enqueue(event)
    }

    /// Queues the summary of the `[[dedup]]` counts if one is due (or,
    /// with `now_anyway`, if anything was suppressed since the last).
    fn summarise(&self, now_anyway: bool) {
        if let Some(s) = self.dedup.as_ref().and_then(|d| d.summary(now_anyway)) {
            self.enqueue(s);
        }
    }

    fn enqueue(&self, event: Event) -> bool {
        let Some(tx) = &self.tx else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match tx.try_send(Cmd::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(Cmd::Event(e)) | TrySendError::Disconnected(Cmd::Event(e))) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    user_id = %e.user_id,
                    event_type = %e.event_type,
                    "EVENT_DROPPED appender queue full"
                );
                false
            }
            Err(_) => false,
        }
    }

    /// Waits until every event enqueued before this call is written (and, per
    /// the durability mode, fsynced).
    pub fn flush(&self) {
        self.summarise(false);
        if let Some(tx) = &self.tx {
            let (r, rx) = mpsc::sync_channel(1);
            if tx.send(Cmd::Flush(r)).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// Events dropped so far (queue full).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// The appender's counters.
    pub fn stats(&self) -> &AppenderStats {
        &self.stats
    }

    /// Flushes, stops the background thread and waits for it.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.summarise(true);
        self.flush();
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.close();
    }
}

fn write(log: &EventLog, batch: Vec<Event>, stats: &AppenderStats) {
    if batch.is_empty() {
        return;
    }
    let mut bodies = Vec::with_capacity(batch.len());
    let mut who = Vec::with_capacity(batch.len());
    for e in batch {
        let (user, ty) = (e.user_id.clone(), e.event_type.to_string());
        match log.prepare(e) {
            Ok((_, body)) => {
                bodies.push(body);
                who.push((user, ty));
            }
            Err(err) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("EVENT_WRITE_FAILED user_id={user} event_type={ty} error={err}");
            }
        }
    }
    if bodies.is_empty() {
        return;
    }
    let n = bodies.len() as u64;
    match log.submit(bodies) {
        Ok(()) => {
            stats.written.fetch_add(n, Ordering::Relaxed);
        }
        Err(err) => {
            stats.failed.fetch_add(n, Ordering::Relaxed);
            if matches!(err, crate::store::Error::Closed) {
                // Nothing reached the committer: this is the one line.
                tracing::warn!("EVENT_WRITE_FAILED events={n} error={err}");
            }
            // The committer logged the failed write with the key; these
            // name the events it lost.
            for (user, ty) in who {
                tracing::warn!("appender: event lost: user_id={user} event_type={ty} error={err}");
            }
        }
    }
}
