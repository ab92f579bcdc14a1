//! `evlog reindex`: rebuilds the index from every day file (plain and .gz)
//! into a fresh directory, then swaps it in.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::index::indexer::{self, INDEX_DIR, IndexConfig, Indexer};
use crate::store::day::{self, DayRange};

/// Flags of `evlog reindex`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let storage = &ctx.store.storage_path;
    if !storage.is_dir() {
        anyhow::bail!("storage directory {} does not exist", storage.display());
    }
    let live = storage.join(INDEX_DIR);
    // Hold the live index's writer lock so no indexer runs during the swap.
    let _guard = if live.exists() {
        match Indexer::open(IndexConfig::new(storage)) {
            Ok(ix) => Some(ix),
            Err(crate::index::Error::Locked) => anyhow::bail!(
                "another evlog process (server or `evlog index`) is indexing {}; stop it first",
                storage.display()
            ),
            // An unreadable index is exactly what reindex is for.
            Err(e) => {
                eprintln!("note: the current index is unusable ({e}); replacing it");
                None
            }
        }
    } else {
        None
    };
    let fresh = storage.join(format!("{INDEX_DIR}.new-{}", std::process::id()));
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    let files = day::list(storage, DayRange::all())?;
    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files, {msg}").expect("valid template"),
    );
    let (index, fields) = indexer::open_index(&fresh)?;
    let mut cfg = IndexConfig::new(storage);
    cfg.writer_memory = 256 << 20;
    let mut ix = Indexer::with_index(cfg, index, fields)?;
    let mut total = 0u64;
    ix.catch_up_with(|f, n| {
        total += n;
        bar.set_message(format!("{total} events ({})", f.path.display()));
        bar.inc(1);
    })?;
    ix.commit()?;
    let malformed = ix
        .stats()
        .malformed
        .load(std::sync::atomic::Ordering::Relaxed);
    drop(ix);
    bar.finish_and_clear();
    // Swap: the live index moves aside, the fresh one takes its name. A crash
    // between the two renames leaves no `index`; the next indexer then builds
    // one from the files, so nothing is lost either way.
    let old = storage.join(format!("{INDEX_DIR}.old-{}", std::process::id()));
    drop(_guard);
    if live.exists() {
        std::fs::rename(&live, &old)?;
    }
    std::fs::rename(&fresh, &live)?;
    crate::store::sync_dir(storage)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    eprintln!(
        "reindexed {total} event(s) from {} file(s){}",
        files.len(),
        if malformed > 0 {
            format!(", skipped {malformed} malformed line(s)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
