//! Step 0: what a crashed rotation left behind. Temporary `.gz.tmp` files
//! go; a day present both plain and `.gz` keeps the plain file unless the
//! `.gz` decompresses to exactly its bytes; a day wholly before the chain
//! anchor (an interrupted deletion) is deleted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::plan::Day;
use super::{Ctx, Error, FileError, Step, delete, file_name, io_err};
use crate::store::day;
use crate::store::{StorageLock, chain, reader, sync_dir};

/// Resolves the leftovers of a crashed rotation among `days` and `tmps`.
/// Returns whether deletions may go on (an interrupted deletion that fails
/// again stops them: later days must stay, or the chain would have a hole).
pub(super) fn resolve(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
    tmps: Vec<PathBuf>,
) -> Result<bool, Error> {
    let dir = cx.dir;
    for t in tmps {
        if cx.opts.dry_run {
            cx.report.notes.push(format!(
                "would remove {} (left by a crashed rotation)",
                file_name(&t)
            ));
        } else if let Err(e) = std::fs::remove_file(&t) {
            cx.fail(&t, format!("removing a leftover temporary file: {e}"));
        } else {
            cx.report.notes.push(format!(
                "removed {} (left by a crashed rotation)",
                file_name(&t)
            ));
        }
    }
    let both: Vec<NaiveDate> = days
        .iter()
        .filter(|(_, d)| d.plain.is_some() && d.gz.is_some())
        .map(|(d, _)| *d)
        .collect();
    for d in both {
        match resolve_both(cx, d) {
            Ok(kept_plain) => {
                let e = days.get_mut(&d).expect("listed");
                if !cx.opts.dry_run {
                    if kept_plain {
                        e.gz = None;
                    } else {
                        e.plain = None;
                    }
                }
            }
            Err(FileError::Crashed(s, p)) => return Err(Error::Crashed(s, p)),
            Err(FileError::Failed(msg)) => cx.fail(&day::gz_path(dir, d), msg),
        }
    }
    // A deletion interrupted after the anchor moved past its day.
    let anchor = chain::read_anchor(dir).map_err(io_err(dir.join(chain::ANCHOR_FILE)))?;
    if let Some(a) = anchor {
        let today = cx.opts.now.date_naive();
        let retired: Vec<NaiveDate> = days
            .iter()
            .take_while(|(d, e)| **d < today && first_seq(dir, **d, e).is_some_and(|s| s <= a.seq))
            .map(|(d, _)| *d)
            .collect();
        for d in retired {
            cx.report.notes.push(format!(
                "{} lies before the chain anchor (an interrupted deletion): deleting it",
                day::plain_name(d)
            ));
            if !delete::delete_day(cx, days, d)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The `seq` of the first chained line of a day (plain preferred).
fn first_seq(dir: &Path, d: NaiveDate, e: &Day) -> Option<u64> {
    let mut r = reader::LineReader::open(&e.file(dir, d)).ok()?;
    let mut buf = Vec::new();
    while let Ok(Some((_, line))) = r.next_line(&mut buf) {
        if let Some(t) = chain::parse_tail(line) {
            return Some(t.seq);
        }
    }
    None
}

/// A day both plain and compressed: keeps the plain file unless the `.gz`
/// holds exactly its bytes. Returns whether the plain file was kept.
fn resolve_both(cx: &mut Ctx<'_>, d: NaiveDate) -> Result<bool, FileError> {
    let plain = day::plain_path(cx.dir, d);
    let gz = day::gz_path(cx.dir, d);
    let same = same_content(&plain, &gz).unwrap_or(false);
    if cx.opts.dry_run {
        cx.report.notes.push(format!(
            "{} exists plain and compressed (an interrupted rotation): a real run removes the {}",
            day::plain_name(d),
            if same { "plain file" } else { "unverified .gz" }
        ));
        return Ok(true);
    }
    let _l = StorageLock::acquire(cx.dir)?;
    if same {
        std::fs::remove_file(&plain)?;
        cx.crash(Step::PlainRemoved, &plain)?;
        sync_dir(cx.dir)?;
        cx.report.notes.push(format!(
            "{}: finished an interrupted compression (the .gz is complete; the plain file is removed)",
            day::plain_name(d)
        ));
        Ok(false)
    } else {
        std::fs::remove_file(&gz)?;
        sync_dir(cx.dir)?;
        cx.report.notes.push(format!(
            "{}: removed an incomplete .gz left by an interrupted rotation (the plain file is kept)",
            day::plain_name(d)
        ));
        Ok(true)
    }
}

/// Whether the `.gz` decompresses to exactly the complete lines of `plain`.
fn same_content(plain: &Path, gz: &Path) -> io::Result<bool> {
    let f = File::open(plain)?;
    let len = f.metadata()?.len();
    let complete = reader::complete_len(&f, len)?;
    let mut p = io::BufReader::with_capacity(1 << 20, f).take(complete);
    let mut g =
        flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, File::open(gz)?));
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut p, &mut a)?;
        let m = read_full(&mut g, &mut b)?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
