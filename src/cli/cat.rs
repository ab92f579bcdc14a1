//! `evlog cat`: prints stored events as NDJSON, plain and `.gz` days alike.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use super::filters::DayRangeArgs;
use super::{Context, term};
use crate::store::day;
use crate::store::reader::{LineReader, parse_record};

/// Flags of the subcommand (documented on `Command`): the days to print.
pub type Args = DayRangeArgs;

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = &ctx.store.storage_path;
    let range = args.range();
    let files = day::list(dir, range)?;
    let stdout = io::stdout();
    // Piped, the stored lines as they are; on a terminal, their DEL, C1 and
    // bidirectional controls escaped (the same JSON).
    let terminal = stdout.is_terminal();
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut buf = Vec::new();
    let mut malformed = 0u64;
    for f in &files {
        let mut r = match LineReader::open(f) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("warning: {}: {e}", f.path.display());
                continue;
            }
        };
        loop {
            let (no, line) = match r.next_line(&mut buf) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("warning: {}: {e}", f.path.display());
                    break;
                }
            };
            if let Err(e) = parse_record(&f.path, no, line) {
                malformed += 1;
                eprintln!("warning: {e}");
                continue;
            }
            let line = if terminal {
                term::json_bytes(line)
            } else {
                line.into()
            };
            let w = out.write_all(&line).and_then(|()| out.write_all(b"\n"));
            if let Err(e) = w {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(ExitCode::SUCCESS);
                }
                return Err(e.into());
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if malformed > 0 {
        eprintln!("warning: {malformed} malformed line(s) skipped");
    }
    Ok(ExitCode::SUCCESS)
}
