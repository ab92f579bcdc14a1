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

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits `backoff` (or until `stop` changes) after a failed attempt, and
/// doubles it for the next one, up to [`MAX_BACKOFF`].
async fn pause(backoff: &mut std::time::Duration, stop: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = stop.changed() => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}
