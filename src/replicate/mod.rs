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
