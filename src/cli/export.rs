//! `evlog export`: every matching event as CSV or NDJSON, streamed page by
//! page through the cursor (no 1000 cap), with the columns and filters of
//! `GET /events/export`.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::filters::FilterArgs;
use super::{Context, search, term};
use crate::export::Format as ExportFormat;
use crate::index::query::MAX_LIMIT;
use crate::store::{DAY_FILE_MODE, sync_dir};

/// Output format of `evlog export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CSV with a header row (the columns of GET /events/export).
    Csv,
    /// One stored event per line, chain fields included.
    Ndjson,
}

impl From<Format> for ExportFormat {
    fn from(f: Format) -> ExportFormat {
        match f {
            Format::Csv => ExportFormat::Csv,
            Format::Ndjson => ExportFormat::Ndjson,
        }
    }
}

/// Flags of `evlog export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every match is written, newest first, however many there are: the index
is read a page of 1000 at a time (caught up with the day files first, as
query does). CSV cells that a spreadsheet would run as a formula (=, +, -,
@, tab, CR at the start) get a ' in front.

With --output, the events go to FILE.part, renamed to FILE once complete
(a failed export leaves no FILE that looks whole), with a progress bar on
a terminal.

Examples:
  evlog export --start 2026-11-01T00:00:00Z --end 2026-12-01T00:00:00Z \\
      --format csv --output november.csv
  evlog export --date 2026-11-23 --level error | jq .user_id")]
pub struct Args {
    #[command(flatten)]
    filters: FilterArgs,
    /// csv or ndjson.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Write to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut q = args.filters.to_query(&ctx.store.privacy);
    q.limit = Some(MAX_LIMIT);
    // "Today" is the day the export started, whatever the time of its last page.
    q.pin_default_day(chrono::Utc::now());
    if let Err(e) = q.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    let search = search::fresh_search(&ctx.store.storage_path)?;
    let format = ExportFormat::from(args.format);
    let Some(path) = args.output else {
        let terminal = io::stdout().is_terminal();
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        let written = export(&search, q, format, &mut out, terminal, |_, _| {})
            .and_then(|_| out.flush().map_err(anyhow::Error::from));
        return match written {
            Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(e),
            Ok(()) => Ok(ExitCode::SUCCESS),
        };
    };
    let part = part_path(&path);
    // Readable as the day files are (owner, group), not by everyone.
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DAY_FILE_MODE)
        .open(&part)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", part.display()))?;
    let bar = if io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta})")
                .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut out = io::BufWriter::new(file);
    let written = export(&search, q, format, &mut out, false, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .and_then(|n| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&part, &path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        sync_dir(dir.unwrap_or(Path::new(".")))?;
        Ok(n)
    });
    bar.finish_and_clear();
    match written {
        Ok(n) => {
            eprintln!("exported {n} event(s) to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e.context(format!("exporting to {}", path.display())))
        }
    }
}

/// Writes every match of `q` (its `limit` is the page size) to `out`,
/// header first; `progress(done, total)` after each page. Returns the
/// number of events written.
fn export(
    search: &crate::index::IndexSearch,
    mut q: crate::index::Query,
    format: ExportFormat,
    out: &mut impl Write,
    terminal: bool,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<u64> {
    let mut buf = Vec::new();
    format.write_header(&mut buf)?;
    let mut done = 0u64;
    loop {
        let page = search.query(&q)?;
        format.write_rows(&mut buf, &page.events)?;
        if terminal {
            // A terminal shows stored control characters, never obeys them.
            out.write_all(&term::json_bytes(&buf))?;
        } else {
            out.write_all(&buf)?;
        }
        buf.clear();
        done += page.events.len() as u64;
        progress(done, page.total.max(done));
        match page.next_cursor {
            Some(c) if !page.events.is_empty() => q.cursor = Some(c),
            _ => return Ok(done),
        }
    }
}

/// `FILE.part`, beside `FILE`.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
