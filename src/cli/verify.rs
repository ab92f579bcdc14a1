//! `evlog verify`: checks the hash chain of plain and `.gz` day files, and
//! with `--checkpoints` the signed checkpoints kept off the host.

use std::path::PathBuf;
use std::process::ExitCode;

use super::filters::DayRangeArgs;
use super::{Context, EXIT_PROBLEM};
use crate::checkpoint::{self, key};
use crate::store::verify;

/// Flags of the subcommand (documented on `Command`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The days to check; the chain of the first must continue from the day before.
    #[command(flatten)]
    days: DayRangeArgs,
    /// Also check the signed checkpoints in DIR (a copy kept off this host;
    /// see README "Tamper evidence"): finds a cut tail and a line rewritten
    /// with every later hash recomputed. Checks the whole store.
    #[arg(long, value_name = "DIR", requires = "public_key", conflicts_with_all = ["date", "from", "to"])]
    checkpoints: Option<PathBuf>,
    /// The public key the checkpoints are signed with (64 hex digits, or a
    /// file holding them); repeat it for the keys before a rotation.
    #[arg(long, value_name = "KEY", requires = "checkpoints")]
    public_key: Vec<String>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = &ctx.store.storage_path;
    if !dir.is_dir() {
        anyhow::bail!("storage directory {} does not exist", dir.display());
    }
    let keys = args
        .public_key
        .iter()
        .map(|k| key::parse_public(k))
        .collect::<Result<Vec<_>, _>>()?;
    let report = verify::verify(dir, args.days.range())?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let mut ok = true;
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
        }
        Some(f) => {
            println!("FAILED: {f}");
            ok = false;
        }
    }
    if let Some(cdir) = &args.checkpoints {
        let c = checkpoint::verify::verify(dir, cdir, &keys)?;
        for note in &c.notes {
            eprintln!("note: {note}");
        }
        for f in &c.findings {
            println!("FAILED: {f}");
        }
        if c.ok() {
            let last = c
                .last
                .as_ref()
                .map(|(seq, time)| format!(", the newest at seq {seq} ({time})"))
                .unwrap_or_default();
            println!(
                "ok: {} checkpoint(s) signed and chained, the files hold each{last}",
                c.checkpoints
            );
        } else {
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    })
}
