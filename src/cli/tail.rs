//! `evlog tail [-f]`: the latest matching events, oldest first, then (with
//! -f) new ones as they are indexed, like `journalctl -f`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::filters::FilterArgs;
use super::{Context, search};
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
    let mut q = args.filters.to_query();
    if q.date.is_none() && q.start.is_none() && q.end.is_none() {
        // All time, not just today.
        q.start = Some(DateTime::<Utc>::UNIX_EPOCH);
    }
    q.limit = Some(args.lines.clamp(1, crate::index::query::MAX_LIMIT));
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let storage = &ctx.store.storage_path;
    let search = search::fresh_search(storage)?;
    let resp = search.query(&q)?;
    let mut last_seq = resp
        .events
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0);
    let mut out = io::stdout().lock();
    for e in resp.events.iter().rev() {
        writeln!(out, "{e}")?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    if last_seq == 0 {
        last_seq = search
            .query(&crate::index::Query {
                start: Some(DateTime::<Utc>::UNIX_EPOCH),
                limit: Some(1),
                ..Default::default()
            })?
            .events
            .first()
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))?;
    // Index ourselves unless a server or `evlog index` already does.
    let mut own = Indexer::open(IndexConfig::new(storage)).ok();
    q.limit = Some(crate::index::query::MAX_LIMIT);
    while !stop.load(Ordering::SeqCst) {
        if let Some(ix) = own.as_mut() {
            ix.sync()?;
        }
        search.reload()?;
        q.after_seq = Some(last_seq);
        let resp = search.query(&q)?;
        for e in resp.events.iter().rev() {
            if writeln!(out, "{e}").and_then(|()| out.flush()).is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if let Some(m) = resp.events.iter().filter_map(|e| e["seq"].as_u64()).max() {
            last_seq = m;
        }
        if resp.events.len() < crate::index::query::MAX_LIMIT {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    Ok(ExitCode::SUCCESS)
}
