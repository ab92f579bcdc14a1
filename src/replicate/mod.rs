//! Replication through NATS JetStream (README "Running several nodes").
//!
//! An edge node publishes each committed line of its store to a stream,
//! with `Nats-Msg-Id` = the event's id, from a cursor kept beside the files
//! ([`publish`]). Any node can follow the stream into its own store
//! ([`follow`]), appending each event once, keeping its id and
//! timestamp. Ids are global; each node's hash chain is its own.

pub mod backlog;
pub mod cursor;
pub mod follow;
pub mod nats;
pub mod publish;

use std::time::{Duration, Instant};

/// First pause after a failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Waits `backoff` (or until `stop` changes) after an attempt begun at
/// `began` failed, and doubles it for the next one, up to
/// [`MAX_BACKOFF`]. An attempt that lasted longer than that (it was
/// connected) starts again from [`MIN_BACKOFF`].
async fn pause(
    backoff: &mut Duration,
    began: Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    if began.elapsed() > MAX_BACKOFF * 2 {
        *backoff = MIN_BACKOFF;
    }
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = stop.changed() => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}
