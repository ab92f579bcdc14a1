//! `evlog rotate`: compresses old day files and deletes expired ones (see
//! [`crate::rotate`]), for cron jobs and systemd timers.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use super::{Context, EXIT_PROBLEM};
use crate::rotate::policy::{format_age, human_bytes, parse_age, parse_size};
use crate::rotate::purge::group;
use crate::rotate::{self, IndexMode, Kind, Options, Report};
use crate::settings::{self, RotationOverrides};

/// An age flag: `7d`, `12h`, `off`.
#[derive(Debug, Clone, Copy)]
pub struct Age(Option<chrono::Duration>);

/// A size flag: `500MB`, `2GiB`, `off`.
#[derive(Debug, Clone, Copy)]
pub struct Size(Option<u64>);

fn age_arg(s: &str) -> Result<Age, String> {
    parse_age(s).map(Age)
}

fn size_arg(s: &str) -> Result<Size, String> {
    parse_size(s).map(Size)
}

/// Output format of `evlog rotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per file, then a summary.
    Text,
    /// The body `POST /admin/rotate` answers.
    Json,
}

/// Flags of `evlog rotate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Ages count from the end of a file's day (UTC): with --compress-after 7d, the
file of Nov 15 is compressed from Nov 23 00:00 on. Today's file is never
touched, and a day is compressed only once the index covers all of it:
rotate catches the index up first (building it when there is none, e.g. a
store written only through the library or `evlog append`), as query does.

Retention keeps open days: a day due for deletion (by age or by size) that
still holds an open (unresolved) event of level warning, error or security
is kept, and so are the days after it (deletions always take the oldest
days, so the hash chain keeps one start). The report lists them. Pass
--keep-open=false to delete by age and size regardless.

Settings come from flags, then the environment, then [rotation] of the
config file, then the defaults. Exit codes: 0 done, 1 some file failed
(logged as EVENT_ROTATE_FAILED; the others were processed), 2 an error
(bad flags, another rotation running).

Examples:
  evlog rotate --dry-run
  evlog rotate --compress-after 2d --delete-after 30d --max-total-size 20GiB
  evlog rotate --delete-after 30d --keep-open=false
  EVLOG_DELETE_AFTER=off evlog rotate")]
pub struct Args {
    /// Compress plain day files older than AGE: a number with a unit
    /// (w, d, h, m, s; `0` = every day before today) or `off`
    /// [default: [rotation] compress_after, else 7d]
    #[arg(long, env = "EVLOG_COMPRESS_AFTER", value_name = "AGE", value_parser = age_arg)]
    compress_after: Option<Age>,
    /// Delete day files (plain or .gz) older than AGE, or `off`
    /// [default: [rotation] delete_after, else 90d]
    #[arg(long, env = "EVLOG_DELETE_AFTER", value_name = "AGE", value_parser = age_arg)]
    delete_after: Option<Age>,
    /// Then delete the oldest days (never today's) while the day files take
    /// more than SIZE: 500MB, 2GiB, 10G (K/M/G/T are powers of 1024, KB/MB/GB
    /// of 1000) or `off` [default: [rotation] max_total_size, else off]
    #[arg(long, env = "EVLOG_MAX_TOTAL_SIZE", value_name = "SIZE", value_parser = size_arg)]
    max_total_size: Option<Size>,
    /// Keep days that hold open events of level warning or above (and the
    /// days after them): `--keep-open=false` deletes them too
    /// [default: [rotation] keep_open, else true]
    #[arg(
        long,
        env = "EVLOG_KEEP_OPEN",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = settings::parse_bool
    )]
    keep_open: Option<bool>,
    /// Print what would be done; change nothing (not even the index).
    #[arg(long)]
    dry_run: bool,
    /// Rotate a storage directory that has no index: old days are compressed
    /// without checking what an index covers (a later `evlog index` or
    /// `reindex` reads .gz days whole). Refused when an index exists.
    #[arg(long)]
    no_index: bool,
    /// Report compression progress on standard error every 64 MiB even when
    /// it is not a terminal (on a terminal a progress bar is shown anyway).
    #[arg(long)]
    progress: bool,
    /// text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Files smaller than this get no progress report.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let over = RotationOverrides {
        compress_after: args.compress_after.map(|a| a.0),
        delete_after: args.delete_after.map(|a| a.0),
        max_total_size: args.max_total_size.map(|s| s.0),
        keep_open: args.keep_open,
        ..RotationOverrides::default()
    };
    let settings = settings::resolve_rotation(&over, &ctx.file)?;
    let dir = &ctx.store.storage_path;
    if !dir.is_dir() {
        anyhow::bail!("storage directory {} does not exist", dir.display());
    }
    let mut opts = Options::new(settings.policy, ctx.store.clock.now());
    opts.dry_run = args.dry_run;
    opts.keep_open = settings.keep_open;
    if args.no_index {
        if crate::index::checkpoint::exists(dir) {
            // The index would never read the rest of a day it has partly
            // read once that day is compressed.
            anyhow::bail!(
                "--no-index: {} has an index; rotate without --no-index, so that only days \
                 the index covers are compressed",
                dir.display()
            );
        }
        opts.index = IndexMode::Without;
    }
    let bar = std::io::stderr().is_terminal();
    if bar || args.progress {
        opts.progress = Some(progress_reporter(bar));
    }
    let p = settings.policy;
    if args.format == Format::Text {
        eprintln!(
            "rotating {}: compress after {}, delete after {}, max total size {}, keep open days {}{}",
            dir.display(),
            p.compress_after.map_or("off".into(), format_age),
            p.delete_after.map_or("off".into(), format_age),
            p.max_total_size.map_or("off".into(), human_bytes),
            if settings.keep_open { "on" } else { "off" },
            if args.dry_run { " (dry run)" } else { "" }
        );
    }
    let report = match rotate::run(dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            Kind::Rotation.log_failure(dir, &e);
            return Err(e.into());
        }
    };
    print_report(args.format, &report, report.ok(), write_text)
}

/// Prints a maintenance report (rotation, purge) as `format` on standard
/// output: pretty JSON, or `text` for people. Exit 0 when `ok`, else 1.
pub(super) fn print_report<R: serde::Serialize>(
    format: Format,
    report: &R,
    ok: bool,
    text: fn(&mut dyn Write, &R) -> std::io::Result<()>,
) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        Format::Text => text(&mut out, report)?,
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    })
}

fn write_text(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let (c, d) = if r.dry_run {
        ("would compress", "would delete")
    } else {
        ("compressed", "deleted")
    };
    for f in &r.compressed {
        writeln!(out, "{c:<14} {f}")?;
    }
    for f in &r.deleted {
        let events = crate::store::day::parse_name(f)
            .and_then(|(day, _)| r.deleted_events.get(&day.to_string()));
        match events {
            Some(n) => writeln!(out, "{d:<14} {f} ({} events)", group(*n))?,
            None => writeln!(out, "{d:<14} {f}")?,
        }
    }
    for day in &r.kept_open_days {
        writeln!(
            out,
            "{:<14} {day}: holds open events of level warning or above",
            "kept open"
        )?;
    }
    for day in &r.kept_behind_open_days {
        writeln!(out, "{:<14} {day}: younger than a day kept open", "kept")?;
    }
    for day in &r.kept_unpublished_days {
        writeln!(
            out,
            "{:<14} {day}: not yet all published to the replication stream",
            "kept"
        )?;
    }
    for s in &r.skipped {
        writeln!(out, "{:<14} {}: {}", "skipped", s.file, s.reason)?;
    }
    for f in &r.failures {
        writeln!(out, "{:<14} {}: {}", "FAILED", f.file, f.error)?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(
        out,
        "{}{} compressed, {} deleted ({} events), {} kept open, {} failed; day files {} -> {}",
        if r.dry_run {
            "dry run, nothing changed: "
        } else {
            ""
        },
        r.compressed.len(),
        r.deleted.len(),
        group(r.deleted_event_count()),
        r.kept_open_days.len(),
        r.failures.len(),
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after)
    )
}

/// Progress of large files: a bar on a terminal, else a line every 64 MiB.
pub(super) fn progress_reporter(bar: bool) -> rotate::ProgressFn {
    struct State {
        file: String,
        bar: Option<ProgressBar>,
        next_line: u64,
    }
    let state = Mutex::new(State {
        file: String::new(),
        bar: None,
        next_line: 0,
    });
    Arc::new(
        move |work: rotate::Work, path: &Path, done: u64, total: u64| {
            let verb = match work {
                rotate::Work::Compress => "compressing",
                rotate::Work::Count => "counting the events of",
            };
            if total < PROGRESS_MIN_BYTES {
                return;
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            let name = path.display().to_string();
            if s.file != name {
                if let Some(b) = s.bar.take() {
                    b.finish_and_clear();
                }
                s.file = name.clone();
                s.next_line = PROGRESS_MIN_BYTES;
                if bar {
                    let b = ProgressBar::new(total).with_style(
                        ProgressStyle::with_template(
                            "{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                        )
                        .expect("valid template"),
                    );
                    b.set_message(format!("{verb} {name}"));
                    s.bar = Some(b);
                }
            }
            if let Some(b) = &s.bar {
                b.set_position(done);
                if done >= total {
                    b.finish_and_clear();
                }
            } else if done >= s.next_line || done >= total {
                eprintln!(
                    "{verb} {name}: {} of {}",
                    human_bytes(done),
                    human_bytes(total)
                );
                s.next_line = done + PROGRESS_MIN_BYTES;
            }
        },
    )
}
