//! `evlog index`: the tail indexer in the foreground (for deployments
//! without the server), until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use super::Context;
use crate::index::{IndexConfig, IndexerHandle};

/// Flags of `evlog index`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How often new events are committed (become searchable), in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    commit_interval_ms: u64,
    /// How often the day files are rescanned without a watch event, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    rescan_interval_ms: u64,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let storage = &ctx.store.storage_path;
    std::fs::create_dir_all(storage)?;
    let mut cfg = IndexConfig::new(storage);
    cfg.commit_interval = Duration::from_millis(args.commit_interval_ms.max(10));
    cfg.rescan_interval = Duration::from_millis(args.rescan_interval_ms.max(10));
    let handle = IndexerHandle::spawn(cfg)?;
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })?;
    eprintln!(
        "indexing {} into {} (Ctrl-C or SIGTERM to stop)",
        storage.display(),
        storage.join(crate::index::indexer::INDEX_DIR).display()
    );
    let _ = rx.recv();
    let stats = handle.stats();
    let (n, bad) = (
        stats.indexed.load(std::sync::atomic::Ordering::Relaxed),
        stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
    );
    handle.shutdown()?;
    eprintln!("stopped: {n} event(s) indexed, {bad} malformed line(s) skipped");
    Ok(ExitCode::SUCCESS)
}
