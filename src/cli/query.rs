//! `evlog query`: filtered events from the index, newest first.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use serde_json::Value;

use super::filters::{FilterArgs, PageArgs};
use super::{Context, search};
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
    let mut q = args.filters.to_query();
    q.limit = args.page.limit;
    q.offset = args.page.offset;
    q.cursor = args.page.cursor.clone();
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let search = search::fresh_search(&ctx.store.storage_path)?;
    let resp = search.query(&q)?;
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = match format {
        Format::Json => serde_json::to_writer_pretty(&mut out, &resp)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out)),
        Format::Ndjson => resp.events.iter().try_for_each(|e| writeln!(out, "{e}")),
        Format::Csv => write_csv(&mut out, &resp.events),
        Format::Table => write_table(&mut out, &resp),
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Columns of the CSV output (and of `GET /events/export?format=csv`).
pub const CSV_COLUMNS: &[&str] = &[
    "timestamp",
    "id",
    "event_type",
    "user_id",
    "status",
    "level",
    "action_description",
    "request_id",
    "source_ip",
    "duration_ms",
    "files_changed",
    "comments",
    "metadata",
];

/// Writes events as CSV with a header row.
pub fn write_csv(out: &mut impl Write, events: &[Value]) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for e in events {
        let row: Vec<String> = CSV_COLUMNS.iter().map(|c| cell(&e[*c], c)).collect();
        w.write_record(&row)?;
    }
    w.flush()
}

fn cell(v: &Value, column: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if column == "files_changed" => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    }
}

fn write_table(out: &mut impl Write, resp: &QueryResponse) -> io::Result<()> {
    writeln!(
        out,
        "{:<27} {:<16} {:<16} {:<11} {:<8} DESCRIPTION",
        "TIMESTAMP", "TYPE", "USER", "STATUS", "LEVEL"
    )?;
    for e in &resp.events {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
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
