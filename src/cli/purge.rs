//! `evlog purge`: deletes the whole days older than a retention from a
//! storage directory and says how many events went — what
//! `POST /admin/purge` does (see [`crate::rotate::purge`]), for scripts
//! and for stores without a server.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use super::Context;
use super::rotate::{Format, print_report, progress_reporter};
use crate::rotate::purge::{self, PurgeReport, group};
use crate::rotate::{IndexMode, Kind};
use crate::settings::{self, RotationOverrides};

/// Flags of `evlog purge`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Days older than --retention-days (counted from the end of each UTC day, as
rotate's --delete-after) are deleted whole: the file, its index documents,
the chain anchor moved past it. Events are counted from the files before
they go.

A day that still holds an open (unresolved) event of level warning, error
or security is kept, and so is every day after it (deletions always take the
oldest days, so the hash chain keeps one start); the output lists them.
--force deletes them too.

--retention-days below the minimum ([rotation] min_retention_days, env
EVLOG_MIN_RETENTION_DAYS, flag --min-retention-days; default 30) is refused.
The index is caught up first, as rotate does. Safe while the server runs.
Exit codes: 0 done, 1 some file failed (logged as EVENT_PURGE_FAILED), 2 an
error (bad flags, another rotation or purge running).

Examples:
  evlog purge --retention-days 90 --dry-run
  evlog purge --retention-days 90
  evlog purge --retention-days 365 --force --format json")]
pub struct Args {
    /// Keep this many days; delete the days older than that.
    #[arg(long, value_name = "DAYS", value_parser = settings::parse_days)]
    retention_days: u32,
    /// Print what would be deleted, with the counts; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete days that hold open events of level warning or above too.
    #[arg(long)]
    force: bool,
    /// The least --retention-days accepted [default: [rotation]
    /// min_retention_days, else 30].
    #[arg(long, env = "EVLOG_MIN_RETENTION_DAYS", value_name = "DAYS", value_parser = settings::parse_days)]
    min_retention_days: Option<u32>,
    /// Report progress on standard error every 64 MiB even when it is not
    /// a terminal (on a terminal a progress bar is shown anyway).
    #[arg(long)]
    progress: bool,
    /// text or json (the body `POST /admin/purge` answers).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let over = RotationOverrides {
        min_retention_days: args.min_retention_days,
        ..RotationOverrides::default()
    };
    let settings = settings::resolve_rotation(&over, &ctx.file)?;
    purge::check_retention(args.retention_days, settings.min_retention_days)
        .map_err(|m| anyhow::anyhow!("--retention-days: {m}"))?;
    let dir = &ctx.store.storage_path;
    if !dir.is_dir() {
        anyhow::bail!("storage directory {} does not exist", dir.display());
    }
    let mut opts = purge::options(
        args.retention_days,
        ctx.store.clock.now(),
        args.dry_run,
        args.force,
    );
    opts.index = IndexMode::Open;
    let bar = std::io::stderr().is_terminal();
    if bar || args.progress {
        opts.progress = Some(progress_reporter(bar));
    }
    if args.format == Format::Text {
        eprintln!(
            "purging {}: days older than {} days{}{}",
            dir.display(),
            args.retention_days,
            if args.force {
                ", open days too (--force)"
            } else {
                ""
            },
            if args.dry_run { " (dry run)" } else { "" }
        );
    }
    let report = match purge::run(dir, &opts, args.retention_days) {
        Ok(r) => r,
        Err(e) => {
            Kind::Purge.log_failure(dir, &e);
            return Err(e.into());
        }
    };
    if !args.dry_run && (!report.deleted_days.is_empty() || !report.ok()) {
        // The audit trail of the deletion, as the server records its purges.
        let op = super::keys::operator();
        let log = ctx.open_log()?;
        log.append(report.event(&format!("`evlog purge` ({op})"), Some(&op), None))
            .map_err(super::store_error)?;
        log.close().map_err(super::store_error)?;
    }
    print_report(args.format, &report, report.ok(), write_text)
}

fn write_text(out: &mut dyn Write, r: &PurgeReport) -> std::io::Result<()> {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    for (day, n) in &r.events_per_day {
        writeln!(out, "{verb:<13} {day}  {:>12} events", group(*n))?;
    }
    for day in &r.kept_open_days {
        writeln!(
            out,
            "{:<13} {day}  holds open events of level warning or above",
            "kept open"
        )?;
    }
    for day in &r.kept_behind_open_days {
        writeln!(out, "{:<13} {day}  younger than a day kept open", "kept")?;
    }
    for day in &r.kept_unpublished_days {
        writeln!(
            out,
            "{:<13} {day}  not yet all published to the replication stream",
            "kept"
        )?;
    }
    for f in &r.failures {
        writeln!(out, "{:<13} {}: {}", "FAILED", f.file, f.error)?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(out, "{}", r.message)
}
