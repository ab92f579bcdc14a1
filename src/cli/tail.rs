//! `evlog tail [-f]`: the latest matching events, oldest first, then (with
//! -f) new ones as they are indexed, like `journalctl -f`.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::filters::FilterArgs;
use super::{Context, search, term};
use crate::index::follow::{Follow, whole_history_unless_ranged};
use crate::index::indexer::{IndexConfig, Indexer};

/// Flags of `evlog tail`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filters: FilterArgs,
    /// How many of the latest events to print first.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    lines: usize,
    /// Keep printing new events as they arrive (until Ctrl-C).
    #[arg(short = 'f', long)]
    follow: bool,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut q = args.filters.to_query(&ctx.store.privacy);
    whole_history_unless_ranged(&mut q);
    q.limit = Some(args.lines.clamp(1, crate::index::query::MAX_LIMIT));
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let storage = &ctx.store.storage_path;
    let search = search::fresh_search(storage)?;
    let resp = search.query(&q)?;
    let terminal = io::stdout().is_terminal();
    let mut out = io::stdout().lock();
    for e in resp.events.iter().rev() {
        print(&mut out, e, terminal)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let printed = resp.events.iter().filter_map(|e| e["seq"].as_u64()).max();
    let mut follow = Follow::new(q, printed.map_or_else(|| search.max_seq(), Ok)?);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))?;
    // Index ourselves unless a server or `evlog index` already does.
    let mut own = Indexer::open(IndexConfig::new(storage)).ok();
    while !stop.load(Ordering::SeqCst) {
        if let Some(ix) = own.as_mut() {
            ix.catch_up_and_commit()?;
        }
        search.reload()?;
        loop {
            let batch = follow.next_batch(&search)?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                if print(&mut out, e, terminal)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as a JSON line; on a terminal through [`term::json`].
fn print(out: &mut impl Write, e: &serde_json::Value, terminal: bool) -> io::Result<()> {
    let line = e.to_string();
    if terminal {
        writeln!(out, "{}", term::json(&line))
    } else {
        writeln!(out, "{line}")
    }
}
