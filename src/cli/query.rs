//! `evlog query`: filtered events from the index, newest first.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use super::filters::{FilterArgs, PageArgs};
use super::{Context, search, term};
use crate::export;
use crate::index::QueryResponse;

/// Output format of `evlog query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns (the default on a terminal).
    Table,
    /// Exactly the body of GET /events (the default otherwise).
    Json,
    /// One stored event per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

/// Flags of `evlog query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filters: FilterArgs,
    #[command(flatten)]
    page: PageArgs,
    /// table, json, ndjson or csv.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut q = args.filters.to_query(&ctx.store.privacy);
    q.limit = args.page.limit;
    q.offset = args.page.offset;
    q.cursor = args.page.cursor.clone();
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let search = search::fresh_search(&ctx.store.storage_path)?;
    let resp = search.query(&q)?;
    let terminal = io::stdout().is_terminal();
    let format = args.format.unwrap_or(if terminal {
        Format::Table
    } else {
        Format::Json
    });
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = write(&mut out, format, &resp, terminal);
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes `resp` as `format`; on a `terminal`, JSON, NDJSON and CSV go
/// through [`term::json`] (stored control characters shown as `\uXXXX`,
/// never obeyed; tables always show them visibly).
fn write(
    out: &mut impl Write,
    format: Format,
    resp: &QueryResponse,
    terminal: bool,
) -> io::Result<()> {
    let mut buf = Vec::new();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut buf, resp).map_err(io::Error::from)?;
            buf.push(b'\n');
        }
        Format::Ndjson => export::Format::Ndjson.write_rows(&mut buf, &resp.events)?,
        Format::Csv => {
            export::Format::Csv.write_header(&mut buf)?;
            export::Format::Csv.write_rows(&mut buf, &resp.events)?;
        }
        Format::Table => return write_table(out, resp),
    }
    if terminal {
        out.write_all(&term::json_bytes(&buf))
    } else {
        out.write_all(&buf)
    }
}

fn write_table(out: &mut impl Write, resp: &QueryResponse) -> io::Result<()> {
    writeln!(
        out,
        "{:<27} {:<16} {:<16} {:<11} {:<8} DESCRIPTION",
        "TIMESTAMP", "TYPE", "USER", "STATUS", "LEVEL"
    )?;
    for e in &resp.events {
        // Stored strings are shown, never obeyed, by the terminal.
        let s = |k: &str| term::visible(e[k].as_str().unwrap_or("")).into_owned();
        writeln!(
            out,
            "{:<27} {:<16} {:<16} {:<11} {:<8} {}",
            s("timestamp"),
            truncate(&s("event_type"), 16),
            truncate(&s("user_id"), 16),
            s("status"),
            s("level"),
            s("action_description")
        )?;
    }
    let shown = resp.events.len();
    write!(out, "-- {shown} of {} event(s)", resp.total)?;
    if let Some(c) = &resp.next_cursor {
        write!(out, "; next page: --cursor {c}")?;
    }
    writeln!(out)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
