//! The `evlog` command line: one module per subcommand.

mod append;
mod cat;
mod checkpoint;
mod export;
mod filters;
mod follow;
mod index;
mod keys;
mod purge;
mod query;
mod reindex;
mod resolve;
mod rotate;
mod search;
mod serve;
mod stats;
mod tail;
mod term;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::{self, FileConfig, Overrides};
use crate::store::{self, Durability, EventLog};

/// evlog: an append-only, file-based event log.
///
/// Events are JSON lines in daily files `events_YYYY-MM-DD.jsonl` under the
/// storage directory, sealed into a hash chain. Configuration comes from
/// flags, then environment, then the TOML file, then defaults.
#[derive(Debug, Parser)]
#[command(name = "evlog", version, propagate_version = true)]
pub struct Cli {
    /// Storage directory of the day files.
    #[arg(long, global = true, env = "EVLOG_STORAGE_PATH", value_name = "DIR")]
    pub storage: Option<PathBuf>,

    /// When an append counts as durable: fsync (after fdatasync; group
    /// commit), batch (fsync every batch_interval_ms) or none.
    #[arg(long, global = true, env = "EVLOG_DURABILITY", value_name = "MODE")]
    pub durability: Option<Durability>,

    /// TOML configuration file (default: ./evlog.toml if it exists).
    #[arg(long, global = true, env = "EVLOG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (and the tail indexer) until SIGINT/SIGTERM.
    ///
    /// On a first start without keys it creates an admin key and prints it
    /// once with a curl example. Endpoints, roles and errors: see README.
    Serve(serve::Args),
    /// Manage API keys (stored hashed in the keys file).
    Keys(keys::Args),
    /// Append one event from flags (prints its id), or many as NDJSON from standard input.
    ///
    /// With --stdin, each input line is one JSON event (NDJSON; blank lines are
    /// skipped; a `timestamp` in the input is kept). Good events are appended and
    /// their ids printed, one per line, in input order, as soon as they are
    /// durable; each bad line is reported on standard error as
    /// `line N: field: rule`, and the exit code is 1 if any line was rejected.
    Append(Box<append::Args>),
    /// Print stored events as NDJSON (plain and .gz day files).
    ///
    /// One stored line per event, chain fields (`seq`, `hash`) included, oldest
    /// day first. A malformed line is reported on standard error and skipped.
    Cat(cat::Args),
    /// Check the hash chain; exit 1 naming the first bad file:line.
    ///
    /// Exits 0 when every line chains to the one before (across day files,
    /// plain and .gz), or 1 naming the first bad `file:line` and what is wrong:
    /// changed, inserted, removed or reordered. With --from, the chain must
    /// continue from the last line of the day before. With --checkpoints DIR
    /// --public-key KEY, also checks the signed checkpoints kept off the
    /// host: a cut tail (`truncated`), a line rewritten with its later
    /// hashes recomputed (`rewritten`), a bad signature or a broken chain of
    /// checkpoints, each naming the checkpoint file and seq.
    Verify(verify::Args),
    /// Query events from the index, newest first.
    ///
    /// The index is caught up with the day files first. Filters mirror the
    /// HTTP parameters; `--format json` prints exactly the body of GET /events.
    Query(query::Args),
    /// Every matching event as CSV or NDJSON (no 1000 cap), to standard
    /// output or --output FILE.
    ///
    /// The filters and columns of GET /events/export; the index is caught up
    /// first, as for query. With --output, a progress bar on a terminal.
    Export(export::Args),
    /// Statistics of the matching events: totals, by type/status/level,
    /// unique users, duration avg/p50/p95/p99, error rate and a histogram.
    ///
    /// `--format json` prints exactly the body of GET /events/stats.
    Stats(stats::Args),
    /// Print the latest matching events; with -f keep following, like `journalctl -f`.
    Tail(tail::Args),
    /// Run the tail indexer in the foreground until SIGINT/SIGTERM (for
    /// deployments without the server).
    Index(index::Args),
    /// Rebuild the index from every day file (plain and .gz) into a fresh
    /// directory and swap it in, with a progress bar.
    ///
    /// Stop the server or `evlog index` first: reindex refuses to run while
    /// another process holds the index.
    Reindex(reindex::Args),
    /// Compress old day files to .jsonl.gz and delete expired ones
    /// (retention), keeping the index and the hash chain in step.
    ///
    /// Plain days older than --compress-after become ordinary gzip files
    /// (`zcat | jq` and `gzip -t` work; queries and `evlog verify` read them);
    /// days older than --delete-after go, then the oldest days while the day
    /// files take more than --max-total-size. Today's file is never touched.
    /// Run it from cron or a systemd timer, or let `evlog serve` run it daily.
    /// Safe while the server or appenders run; a second rotation is refused.
    Rotate(rotate::Args),
    /// Mark an event resolved: appends an `event_resolved` event naming it
    /// (its own line is never changed).
    ///
    /// Queries then show it with `resolved: true`, `--resolved=false` leaves
    /// it out, and retention may delete its day (see `evlog rotate
    /// --keep-open`). Resolving a resolved event appends nothing.
    Resolve(resolve::Args),
    /// Reopen a resolved event: appends an `event_reopened` event naming it.
    Reopen(resolve::Args),
    /// Delete the whole days older than --retention-days and say how many
    /// events went (what POST /admin/purge does).
    ///
    /// Days holding open events of level warning or above are kept (and the
    /// days after them) unless --force; --dry-run prints the same counts and
    /// changes nothing. --retention-days below [rotation] min_retention_days
    /// (default 30) is refused.
    Purge(purge::Args),
    /// Copy the events of a NATS JetStream stream into this store, until
    /// SIGINT/SIGTERM (a central search node, or a read replica).
    ///
    /// Edges publish with `evlog serve --replicate-to`. Each event is
    /// appended once, keeping its id, timestamp and content, with `origin`
    /// set to the node that published it; a message is acknowledged only
    /// once its append is durable. Run `evlog serve --follow` instead to
    /// serve the copies while following. See README "Running several nodes".
    Follow(follow::Args),
    /// Signed checkpoints of the chain head: `init` creates the signing key,
    /// `public-key` prints it, `write` signs one now (README "Tamper
    /// evidence").
    Checkpoint(checkpoint::Args),
}

/// Exit code for a command that ran but found a problem (rejected events, broken chain).
pub const EXIT_PROBLEM: u8 = 1;
/// Exit code for a usage or operational error.
pub const EXIT_ERROR: u8 = 2;

/// Resolved settings handed to subcommands.
pub struct Context {
    /// The store configuration.
    pub store: store::Config,
    /// The configuration file (for settings beyond the store's).
    pub file: FileConfig,
}

impl Context {
    /// Opens the event log.
    pub fn open_log(&self) -> anyhow::Result<EventLog> {
        EventLog::open(self.store.clone())
            .map_err(|e| store_error(e).context("opening the event log"))
    }
}

/// A store error for the terminal, with advice for storage failures (disk
/// full, read-only, failed fsync).
pub(crate) fn store_error(e: store::Error) -> anyhow::Error {
    match e.advice() {
        Some(advice) => anyhow::anyhow!("{advice} ({e})"),
        None => e.into(),
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let over = Overrides {
        storage_path: cli.storage.clone(),
        durability: cli.durability,
        user_id_hash_key: std::env::var("EVLOG_USER_ID_HASH_KEY")
            .ok()
            .filter(|s| !s.is_empty()),
    };
    let mut store = settings::resolve(&over, &file);
    // A testing aid for fault scripts (see store::faults).
    store.faults = store::Faults::from_env().map_err(anyhow::Error::msg)?;
    let ctx = Context { store, file };
    match cli.command {
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Keys(a) => keys::run(&ctx, a),
        Command::Append(a) => append::run(&ctx, *a),
        Command::Cat(a) => cat::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Query(a) => query::run(&ctx, a),
        Command::Export(a) => export::run(&ctx, a),
        Command::Stats(a) => stats::run(&ctx, a),
        Command::Tail(a) => tail::run(&ctx, a),
        Command::Index(a) => index::run(&ctx, a),
        Command::Reindex(a) => reindex::run(&ctx, a),
        Command::Rotate(a) => rotate::run(&ctx, a),
        Command::Resolve(a) => resolve::run(&ctx, a, crate::resolution::Action::Resolve),
        Command::Reopen(a) => resolve::run(&ctx, a, crate::resolution::Action::Reopen),
        Command::Purge(a) => purge::run(&ctx, a),
        Command::Follow(a) => follow::run(&ctx, a),
        Command::Checkpoint(a) => checkpoint::run(&ctx, a),
    }
}

/// Parses `YYYY-MM-DD` for clap.
pub(crate) fn parse_day(s: &str) -> Result<chrono::NaiveDate, String> {
    store::day::parse_day(s)
}
