//! `evlog verify`: checks the hash chain of plain and `.gz` day files.

use std::process::ExitCode;

use super::filters::DayRangeArgs;
use super::{Context, EXIT_PROBLEM};
use crate::store::verify;

/// Flags of the subcommand (documented on `Command`): the days to check;
/// the chain of the first must continue from the day before.
pub type Args = DayRangeArgs;

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = &ctx.store.storage_path;
    if !dir.is_dir() {
        anyhow::bail!("storage directory {} does not exist", dir.display());
    }
    let range = args.range();
    let report = verify::verify(dir, range)?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    match &report.failure {
        None => {
            let last = report
                .last
                .map(|h| format!(", last seq {}", h.seq))
                .unwrap_or_default();
            println!(
                "ok: {} line(s) in {} file(s), hash chain intact{last}",
                report.lines, report.files
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("FAILED: {f}");
            Ok(ExitCode::from(EXIT_PROBLEM))
        }
    }
}
