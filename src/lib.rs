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
//! - [`config`]: configuration from flags, environment, TOML file, defaults.
//! - [`clock`]: where "now" comes from (injectable for tests).
//! - [`error`]: the crate's error type.
//! - [`cli`]: the `evlog` command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod index;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use event::privacy::PrivacyConfig;
pub use event::{Event, EventType, Level, Status, ValidationError};
pub use store::{Appender, Config, DayRange, Durability, EventLog, Record};
