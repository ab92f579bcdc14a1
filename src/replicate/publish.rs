//! The publisher: every committed line after the cursor, published to the
//! stream with `Nats-Msg-Id` = the event's id, acknowledgements awaited in
//! order, the cursor moved past what was acknowledged.
//!
//! It runs beside the server and never in its append path: appends go to
//! the files whatever NATS does, and the publisher reads them from there.
//! When NATS is down it retries with a growing pause (up to 5 s) and the
//! lag grows; `/health` and `/metrics` show it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use tokio::sync::{Notify, watch};

use super::backlog::{Backlog, Outgoing, Skipped};
use super::cursor::Cursor;
use super::nats::{self, NatsConfig};
use crate::store::day::{self, DayRange};

/// Lines read and published at a time.
const BATCH: usize = 512;
/// Batches whose acknowledgements may be awaited at once.
const IN_FLIGHT: usize = 8;
/// How often the cursor file is written while publishing (it is derived
/// state: a stale cursor only publishes again what the stream drops).
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// Bytes read per round, at most (about).
const BATCH_BYTES: usize = 4 << 20;
/// How often the files are looked at when nothing wakes the publisher.
const RESCAN: Duration = Duration::from_secs(1);

/// The header naming the node that published an event.
pub const NODE_HEADER: &str = "Evlog-Node";

/// What the publisher has done, for `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// Whether the last exchange with the stream succeeded.
    pub link_up: AtomicBool,
    /// `seq` of the last line acknowledged.
    pub acked_seq: AtomicU64,
    /// `seq` of the last line in the files, when last looked at.
    pub head_seq: AtomicU64,
    /// Timestamp (µs) of the oldest line not yet acknowledged; 0 when none.
    pub oldest_pending_us: AtomicI64,
    /// Lines published and acknowledged since start.
    pub published: AtomicU64,
    /// Of those, how many the stream already had (duplicates dropped).
    pub duplicates: AtomicU64,
    /// Lines that could not be parsed and were passed over.
    pub skipped: AtomicU64,
    /// The last error, for `/health`.
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl Status {
    /// Events in the files not yet acknowledged by the stream.
    pub fn lag_events(&self) -> u64 {
        self.head_seq
            .load(Ordering::Relaxed)
            .saturating_sub(self.acked_seq.load(Ordering::Relaxed))
    }

    /// Age in seconds of the oldest event not yet acknowledged (0 when
    /// none is pending).
    pub fn lag_seconds(&self, now: chrono::DateTime<chrono::Utc>) -> f64 {
        match self.oldest_pending_us.load(Ordering::Relaxed) {
            0 => 0.0,
            t => ((now.timestamp_micros() - t) as f64 / 1e6).max(0.0),
        }
    }

    fn failed(&self, why: String) {
        self.link_up.store(false, Ordering::Relaxed);
        tracing::warn!(key = "REPLICATION_FAILED", "replication: {why}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// `seq` of the last line of the store (its newest day file).
pub fn head_seq(dir: &Path) -> u64 {
    let Ok(files) = day::list(dir, DayRange::all()) else {
        return 0;
    };
    files
        .iter()
        .rev()
        .find_map(|f| crate::store::reader::last_head(f).ok().flatten())
        .map_or(0, |h| h.seq)
}

/// Starts publishing `log`'s store as `node` on the current tokio runtime,
/// woken by each of its commits, until `stop` turns true.
pub fn start(
    log: &crate::store::EventLog,
    cfg: NatsConfig,
    node: String,
    status: Arc<Status>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    log.on_commit(move || w.notify_one());
    tokio::spawn(run(
        cfg,
        node,
        log.storage_path().to_path_buf(),
        wake,
        status,
        stop,
    ))
}

/// Publishes the store in `dir` until `stop` turns true. `wake` is
/// notified after appends (the store's commit hook); without it the files
/// are looked at every second.
pub async fn run(
    cfg: NatsConfig,
    node: String,
    dir: PathBuf,
    wake: Arc<Notify>,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = match Cursor::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            status.failed(format!("{e}; nothing is published"));
            return;
        }
    };
    status.acked_seq.store(cursor.seq, Ordering::Relaxed);
    let mut backlog = Some(Backlog::new(&dir, cursor));
    let mut backoff = super::MIN_BACKOFF;
    while !*stop.borrow() {
        let began = Instant::now();
        let attempt = publish_until_error(
            &cfg,
            &node,
            &dir,
            &mut cursor,
            &mut backlog,
            &wake,
            &status,
            &mut stop,
        );
        match attempt.await {
            Ok(()) => return,
            Err(why) => {
                status.failed(why);
                if let Some(b) = backlog.as_mut() {
                    b.rewind(cursor);
                }
                // The lag keeps growing while nothing is published.
                let (dir, status) = (dir.clone(), status.clone());
                let _ =
                    tokio::task::spawn_blocking(move || refresh_lag(&dir, cursor, &status)).await;
                super::pause(&mut backoff, began, &mut stop).await;
            }
        }
    }
}

/// Brings the lag of `status` up to date with the files while nothing is
/// published: the last `seq`, and the timestamp of the first line after
/// `cursor`.
fn refresh_lag(dir: &Path, cursor: Cursor, status: &Status) {
    let head = head_seq(dir).max(cursor.seq);
    status.head_seq.store(head, Ordering::Relaxed);
    if head > cursor.seq && status.oldest_pending_us.load(Ordering::Relaxed) == 0 {
        let first = Backlog::new(dir, cursor).read(1, usize::MAX, &mut Vec::new());
        if let Ok(Some(o)) = first.map(|v| v.into_iter().next()) {
            status
                .oldest_pending_us
                .store(o.timestamp.timestamp_micros(), Ordering::Relaxed);
        }
    }
}

/// One connection's worth of publishing: returns `Ok` when stopped, the
/// reason otherwise.
#[allow(clippy::too_many_arguments)]
async fn publish_until_error(
    cfg: &NatsConfig,
    node: &str,
    dir: &Path,
    cursor: &mut Cursor,
    backlog: &mut Option<Backlog>,
    wake: &Notify,
    status: &Status,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let client = nats::connect(cfg, &format!("evlog publisher {node}"))
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    nats::ensure_stream(&js, cfg)
        .await
        .map_err(|e| e.to_string())?;
    status.link_up.store(true, Ordering::Relaxed);
    // Batches published, their acknowledgements awaited oldest first while
    // the next ones are read and published.
    let mut in_flight: VecDeque<Sent> = VecDeque::new();
    let mut saved = *cursor;
    let mut last_save = Instant::now();
    loop {
        if *stop.borrow() {
            while let Some(s) = in_flight.pop_front() {
                settle(s, cursor, status).await?;
            }
            return save(dir, cursor, &mut saved);
        }
        let dir_ = dir.to_path_buf();
        let mut b = backlog
            .take()
            .expect("the backlog is put back after each read");
        let (b, read, head) = tokio::task::spawn_blocking(move || {
            let mut skipped: Vec<Skipped> = Vec::new();
            let read = b.read(BATCH, BATCH_BYTES, &mut skipped);
            (b, read.map(|r| (r, skipped)), head_seq(&dir_))
        })
        .await
        .map_err(|e| format!("reading the files: {e}"))?;
        *backlog = Some(b);
        status
            .head_seq
            .store(head.max(cursor.seq), Ordering::Relaxed);
        let (batch, skipped) = read.map_err(|e| format!("reading the files: {e}"))?;
        for Skipped(e) in &skipped {
            status.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                key = "REPLICATION_SKIPPED",
                "replication: not published: {e}"
            );
        }
        if batch.is_empty() {
            if let Some(s) = in_flight.pop_front() {
                settle(s, cursor, status).await?;
                status.oldest_pending_us.store(
                    in_flight.front().map_or(0, |s| s.first_us),
                    Ordering::Relaxed,
                );
                continue;
            }
            status.oldest_pending_us.store(0, Ordering::Relaxed);
            // Everything handed out is acknowledged; only copies (or
            // nothing) were read since: the cursor moves past them.
            let at = backlog.as_ref().map_or(*cursor, Backlog::position);
            if at.seq > cursor.seq {
                *cursor = at;
                status.acked_seq.store(at.seq, Ordering::Relaxed);
            }
            save(dir, cursor, &mut saved)?;
            last_save = Instant::now();
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(RESCAN) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        in_flight.push_back(send(&js, node, batch).await?);
        while in_flight.len() >= IN_FLIGHT {
            let s = in_flight.pop_front().expect("not empty");
            settle(s, cursor, status).await?;
        }
        status.oldest_pending_us.store(
            in_flight.front().map_or(0, |s| s.first_us),
            Ordering::Relaxed,
        );
        if last_save.elapsed() >= SAVE_EVERY {
            save(dir, cursor, &mut saved)?;
            last_save = Instant::now();
        }
    }
}

/// A published batch whose acknowledgements are awaited.
struct Sent {
    /// Timestamp (µs) of its first event.
    first_us: i64,
    /// The cursor once all are acknowledged.
    after: Cursor,
    /// Each line's `seq` and acknowledgement, in order.
    acks: Vec<(u64, PublishAckFuture)>,
}

/// Publishes `batch` (without awaiting the acknowledgements).
async fn send(js: &jetstream::Context, node: &str, batch: Vec<Outgoing>) -> Result<Sent, String> {
    let mut acks = Vec::with_capacity(batch.len());
    let first_us = batch[0].timestamp.timestamp_micros();
    let after = batch.last().expect("not empty").after;
    for o in batch {
        let msg = PublishMessage::build()
            .payload(o.line)
            .message_id(o.id.to_string())
            .header(NODE_HEADER, node);
        let ack = js
            .send_publish(o.subject, msg)
            .await
            .map_err(|e| format!("publishing seq {}: {e}", o.seq))?;
        acks.push((o.seq, ack));
    }
    Ok(Sent {
        first_us,
        after,
        acks,
    })
}

/// Awaits the acknowledgements of `sent`, in order, and moves the cursor
/// (in memory) past it.
async fn settle(sent: Sent, cursor: &mut Cursor, status: &Status) -> Result<(), String> {
    for (seq, ack) in sent.acks {
        let ack = ack
            .await
            .map_err(|e| format!("acknowledgement of seq {seq}: {e}"))?;
        status.published.fetch_add(1, Ordering::Relaxed);
        if ack.duplicate {
            status.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    *cursor = sent.after;
    status.acked_seq.store(sent.after.seq, Ordering::Relaxed);
    status.link_up.store(true, Ordering::Relaxed);
    Ok(())
}

/// Saves `cursor` when it moved since `saved`.
fn save(dir: &Path, cursor: &Cursor, saved: &mut Cursor) -> Result<(), String> {
    if cursor != saved {
        cursor
            .save(dir)
            .map_err(|e| format!("saving the cursor: {e}"))?;
        *saved = *cursor;
    }
    Ok(())
}
