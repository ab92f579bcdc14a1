//! `evlog stats`: statistics of the filtered events, from the index.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use super::filters::FilterArgs;
use super::{Context, search};
use crate::index::StatsResponse;

/// Output format of `evlog stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable (the default on a terminal).
    Table,
    /// Exactly the body of GET /events/stats (the default otherwise).
    Json,
}

/// Flags of `evlog stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filters: FilterArgs,
    /// table or json.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let q = args.filters.to_query(&ctx.store.privacy);
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let search = search::fresh_search(&ctx.store.storage_path)?;
    let st = search.stats(&q)?;
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &st)?;
            writeln!(out)?;
        }
        Format::Table => write_table(&mut out, &st)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, st: &StatsResponse) -> io::Result<()> {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    writeln!(out, "events        {}", st.total)?;
    writeln!(out, "unique users  {}", st.unique_users)?;
    writeln!(out, "error rate    {:.2}%", st.error_rate * 100.0)?;
    writeln!(
        out,
        "duration ms   avg {}  p50 {}  p95 {}  p99 {}",
        opt(st.avg_duration_ms),
        opt(st.p50_duration_ms),
        opt(st.p95_duration_ms),
        opt(st.p99_duration_ms)
    )?;
    for (title, map) in [
        ("by type", &st.by_type),
        ("by status", &st.by_status),
        ("by level", &st.by_level),
    ] {
        writeln!(out, "{title}:")?;
        for (k, v) in map {
            writeln!(out, "  {k:<24} {v}")?;
        }
    }
    writeln!(out, "per {}:", st.histogram_interval)?;
    for b in &st.histogram {
        writeln!(out, "  {}  {}", b.start, b.count)?;
    }
    Ok(())
}
