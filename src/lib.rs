//! evlog: an append-only, file-based event log.
//!
//! Services append structured events (who did what, when, with what result);
//! the events land as JSON lines in daily files `events_YYYY-MM-DD.jsonl`
//! under a storage directory, each line sealed into a hash chain. The files
//! are the source of truth: plain JSONL that `grep` and `jq` read.
//!
//! ```no_run
//! use evlog::{Config, Event, EventLog, EventType};
//! use serde_json::json;
//!
//! let log = EventLog::open(Config::new("./evlog-data"))?;
//! let id = log.append(
//!     Event::new(EventType::Commit, "dev", "Updated config")
//!         .files_changed(["config.toml"])
//!         .metadata(json!({"branch": "main"})),
//! )?;
//! println!("appended {id}");
//! # Ok::<(), evlog::Error>(())
//! ```
//!
//! # Layout
//!
//! - [`event`]: the event model, validation, privacy filters; no I/O.
//! - [`store`]: day files, group commit, hash chain, reader, verify, [`Appender`].
//! - [`index`]: the tantivy index fed by tailing the day files; queries, statistics, live tails.
//! - [`rotate`]: compression and deletion of old day files (retention).
//! - [`auth`]: API keys, roles, the keys file.
//! - [`server`]: the HTTP API (warp on tokio).
//! - [`middleware`]: request logging middleware for other warp services.
//! - [`export`]: events as CSV / NDJSON.
//! - [`settings`]: configuration from flags, environment, TOML file, defaults.
//! - [`limits`]: the server's request limits (a settings type below server and settings).
//! - [`clock`]: where "now" comes from (injectable for tests).
//! - [`dedup`]: `[[dedup]]` rules, at most N events per (user, type) per window (used by the [`Appender`] and the server).
//! - [`error`]: the crate's error type.
//! - [`cli`]: the `evlog` command line.

pub mod auth;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod dedup;
pub mod error;
pub mod event;
pub mod export;
pub mod index;
pub mod limits;
pub mod middleware;
pub mod replicate;
pub mod resolution;
pub mod rotate;
pub mod server;
pub mod settings;
pub mod store;
#[cfg(test)]
mod test_alloc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use event::privacy::PrivacyConfig;
pub use event::{Event, EventType, Level, Status, ValidationError};
pub use store::{Appender, Config, DayRange, Durability, EventLog, Record};
