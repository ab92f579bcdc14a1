//! `evlog verify`: walks the hash chain over a day range (plain and `.gz`)
//! and names the first line that was changed, inserted, removed or reordered.

use std::fmt;
use std::path::{Path, PathBuf};

use super::chain::{self, ChainHead, Tail};
use super::day::{self, DayFile, DayRange};
use super::error::Error;
use super::reader::{self, LineReader};

/// What is wrong at the first bad line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The line's content no longer matches its hash.
    Changed,
    /// The line is not part of the chain: the chain continues around it.
    Inserted,
    /// Lines are missing before this one.
    Removed,
    /// The line is out of order.
    Reordered,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Changed => "changed",
            Problem::Inserted => "inserted",
            Problem::Removed => "removed",
            Problem::Reordered => "reordered",
        })
    }
}

/// The first bad line found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// The kind of damage.
    pub problem: Problem,
    /// Details in words.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.problem,
            self.detail
        )
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Files checked.
    pub files: usize,
    /// Lines checked.
    pub lines: u64,
    /// The chain head after the last good line.
    pub last: Option<ChainHead>,
    /// The first bad line, if any.
    pub failure: Option<Failure>,
    /// Things worth knowing that are not damage (torn tails, where the chain starts).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Verifies the chain over the day files of `dir` in `range`.
pub fn verify(dir: &Path, range: DayRange) -> Result<Report, Error> {
    let all = day::list(dir, DayRange::all()).map_err(|e| Error::io(dir, e))?;
    let mut report = Report::default();
    let mut prev = start_head(dir, &all, range, &mut report)?;
    let retired = retired_days(dir, &all, &mut report)?;
    for file in all.iter().skip(retired).filter(|f| range.contains(f.day)) {
        report.files += 1;
        if let Some(failure) = verify_file(file, &mut prev, &mut report)? {
            report.failure = Some(failure);
            return Ok(report);
        }
    }
    report.last = Some(prev);
    Ok(report)
}

/// How many of the oldest files lie wholly before the retention anchor: a
/// deletion interrupted between writing `chain.anchor` and removing the day
/// (the next rotation finishes it). Their events are still there, but the
/// chain now starts after them, so they are passed over.
fn retired_days(dir: &Path, all: &[DayFile], report: &mut Report) -> Result<usize, Error> {
    let Some(anchor) =
        chain::read_anchor(dir).map_err(|e| Error::io(dir.join(chain::ANCHOR_FILE), e))?
    else {
        return Ok(0);
    };
    let mut n = 0;
    for f in all {
        let io = |e| Error::io(&f.path, e);
        let mut r = LineReader::open(f).map_err(io)?;
        let mut buf = Vec::new();
        let mut first = None;
        while let Some((_, line)) = r.next_line(&mut buf).map_err(io)? {
            if let Some(t) = chain::parse_tail(line) {
                first = Some(t.seq);
                break;
            }
        }
        match first {
            Some(seq) if seq <= anchor.seq => {
                report.notes.push(format!(
                    "{}: before the retention anchor (seq {}): a deletion was interrupted; the next `evlog rotate` removes it",
                    f.path.display(),
                    anchor.seq
                ));
                n += 1;
            }
            _ => break,
        }
    }
    Ok(n)
}

/// Where the chain of the first file in range must start: the last line of
/// the file before it, else the retention anchor, else genesis.
fn start_head(
    dir: &Path,
    all: &[DayFile],
    range: DayRange,
    report: &mut Report,
) -> Result<ChainHead, Error> {
    let before: Vec<&DayFile> = all
        .iter()
        .filter(|f| range.from.is_some_and(|d| f.day < d))
        .collect();
    for f in before.iter().rev() {
        if let Some(h) = reader::last_head(f).map_err(|e| Error::io(&f.path, e))? {
            report.notes.push(format!(
                "chain continues from {} (seq {})",
                f.path.display(),
                h.seq
            ));
            return Ok(h);
        }
    }
    match chain::read_anchor(dir).map_err(|e| Error::io(dir.join(chain::ANCHOR_FILE), e))? {
        Some(h) => {
            report.notes.push(format!(
                "chain starts at the retention anchor (seq {}): earlier days were deleted",
                h.seq
            ));
            Ok(h)
        }
        None => Ok(ChainHead::GENESIS),
    }
}

fn verify_file(
    file: &DayFile,
    prev: &mut ChainHead,
    report: &mut Report,
) -> Result<Option<Failure>, Error> {
    let io = |e| Error::io(&file.path, e);
    let mut r = LineReader::open(file).map_err(io)?;
    let mut buf = Vec::new();
    let mut next: Option<(u64, Vec<u8>)> = r
        .next_line(&mut buf)
        .map_err(io)?
        .map(|(n, l)| (n, l.to_vec()));
    while let Some((line_no, cur)) = next.take() {
        next = r
            .next_line(&mut buf)
            .map_err(io)?
            .map(|(n, l)| (n, l.to_vec()));
        report.lines += 1;
        let next_tail = next.as_ref().and_then(|(_, l)| chain::parse_tail(l));
        // Whether the next line chains straight to `prev`, skipping this one.
        let skipped = next_tail.is_some_and(|t| t.seq == prev.seq + 1 && t.links_to(&prev.hash));
        let fail = |problem, detail: String| {
            Some(Failure {
                path: file.path.clone(),
                line: line_no,
                problem,
                detail,
            })
        };
        let Some(t) = chain::parse_tail(&cur) else {
            return Ok(if skipped {
                fail(
                    Problem::Inserted,
                    "line has no chain fields and the chain continues around it".into(),
                )
            } else {
                fail(
                    Problem::Changed,
                    "the seq/hash chain fields are missing or damaged".into(),
                )
            });
        };
        let expected = prev.seq + 1;
        if t.seq == expected && t.links_to(&prev.hash) {
            *prev = t.head();
            continue;
        }
        if t.seq == expected {
            return Ok(if skipped {
                fail(
                    Problem::Inserted,
                    format!(
                        "line claims seq {} but the chain continues around it",
                        t.seq
                    ),
                )
            } else {
                fail(
                    Problem::Changed,
                    format!("content of seq {} does not match its hash", t.seq),
                )
            });
        }
        if t.seq > expected {
            // The next line is already read: look for the missing seq there first.
            let later = match &next {
                Some((n, _)) if next_tail.is_some_and(|t| t.seq == expected) => Some(*n),
                _ => find_seq_later(&mut r, &mut buf, expected).map_err(io)?,
            };
            if let Some(at) = later {
                return Ok(fail(
                    Problem::Reordered,
                    format!(
                        "seq {} stands here but seq {expected} comes later, at line {at}",
                        t.seq
                    ),
                ));
            }
            let missing = t.seq - expected;
            return Ok(fail(
                Problem::Removed,
                format!(
                    "{missing} line(s) missing before this one (seq jumps from {} to {})",
                    prev.seq, t.seq
                ),
            ));
        }
        // t.seq < expected
        return Ok(if (t.seq == prev.seq && t.hash == prev.hash) || skipped {
            fail(
                Problem::Inserted,
                format!("seq {} repeats a line already in the chain", t.seq),
            )
        } else {
            fail(
                Problem::Reordered,
                format!("seq {} comes after seq {}", t.seq, prev.seq),
            )
        });
    }
    if r.torn_tail() > 0 {
        report.notes.push(format!(
            "{}: {} byte(s) after the last newline (a torn or in-progress write; not an event, moved aside by the next writer)",
            file.path.display(),
            r.torn_tail()
        ));
    }
    Ok(None)
}

fn find_seq_later(r: &mut LineReader, buf: &mut Vec<u8>, seq: u64) -> std::io::Result<Option<u64>> {
    while let Some((no, line)) = r.next_line(buf)? {
        if chain::parse_tail(line).is_some_and(|t: Tail<'_>| t.seq == seq) {
            return Ok(Some(no));
        }
    }
    Ok(None)
}
