//! `evlog verify --checkpoints DIR --public-key KEY`: the checkpoints of
//! DIR (kept off the host) against the store's files.
//!
//! Each checkpoint must be signed by one of the keys given, and name the
//! checkpoint before it (`previous_checkpoint_hash`). Then the line of the
//! store at its `seq` must carry its `hash`:
//!
//! - no such line, and the files end before it: `truncated` (a tail cut);
//! - a line with another hash: `rewritten` (a line changed and every hash
//!   after it recomputed, which the chain alone cannot see);
//! - no such line because retention deleted its day: accepted, through
//!   `chain.anchor` (as the chain check does).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::{Stored, read_dir};
use crate::store::Error;
use crate::store::chain;
use crate::store::day::{self, DayRange};
use crate::store::reader::LineReader;

/// What is wrong with a checkpoint, or with the files at its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The files end before its `seq`.
    Truncated,
    /// The line at its `seq` has another hash.
    Rewritten,
    /// Its `seq` is within the files but no line has it (the chain check
    /// names the removal too).
    Missing,
    /// Not signed by any key given.
    BadSignature,
    /// Its `previous_checkpoint_hash` is not the checkpoint before it.
    BrokenChain,
}

/// One finding, naming the checkpoint (file and line) and the `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What.
    pub problem: Problem,
    /// The checkpoint's `FILE:LINE`.
    pub at: String,
    /// Its `seq`.
    pub seq: u64,
    /// In words.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (checkpoint {})", self.detail, self.at)
    }
}

/// The outcome.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Checkpoints read.
    pub checkpoints: usize,
    /// Of those, at a `seq` retention deleted (accepted).
    pub retired: usize,
    /// The newest checkpoint that checked out: `seq` and time.
    pub last: Option<(u64, String)>,
    /// Everything wrong, in checkpoint order.
    pub findings: Vec<Finding>,
    /// Worth knowing, not wrong.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether every checkpoint checked out.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Where a `seq` is in the files, and its hash.
struct Line {
    hash: [u8; 32],
    path: PathBuf,
    line: u64,
}

/// Checks the checkpoints in `checkpoints` against the store in `dir`,
/// with the public keys `keys` (any of them may have signed each).
pub fn verify(dir: &Path, checkpoints: &Path, keys: &[VerifyingKey]) -> Result<Report, Error> {
    let (all, notes) = read_dir(checkpoints).map_err(|e| Error::io(checkpoints, e))?;
    let mut report = Report {
        checkpoints: all.len(),
        notes,
        ..Report::default()
    };
    if all.is_empty() {
        report.notes.push(format!(
            "{}: no checkpoints: nothing beyond the chain is checked",
            checkpoints.display()
        ));
        return Ok(report);
    }
    let mut good: Vec<&Stored> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let c = &s.checkpoint;
        let finding = |problem, detail: String| Finding {
            problem,
            at: s.at(),
            seq: c.seq,
            detail,
        };
        if !keys.iter().any(|k| c.signed_by(k)) {
            report.findings.push(finding(
                Problem::BadSignature,
                format!(
                    "bad signature: checkpoint seq {} is not signed by the public key{} given \
                     (it names key {})",
                    c.seq,
                    if keys.len() == 1 { "" } else { "s" },
                    c.key
                ),
            ));
            continue;
        }
        let expected = i.checked_sub(1).map(|p| all[p].checkpoint.digest());
        match (&c.previous_checkpoint_hash, &expected) {
            (Some(p), Some(e)) if p != e => report.findings.push(finding(
                Problem::BrokenChain,
                format!(
                    "broken checkpoint chain: checkpoint seq {} does not follow the checkpoint \
                     before it ({}): one was removed, changed or inserted",
                    c.seq,
                    all[i - 1].at()
                ),
            )),
            (None, Some(_)) => report.findings.push(finding(
                Problem::BrokenChain,
                format!(
                    "broken checkpoint chain: checkpoint seq {} starts a new chain after {}",
                    c.seq,
                    all[i - 1].at()
                ),
            )),
            (Some(_), None) => report.notes.push(format!(
                "the checkpoints start at {} (seq {}): earlier ones are not in {}",
                s.at(),
                c.seq,
                checkpoints.display()
            )),
            _ => {}
        }
        good.push(s);
    }
    let wanted: BTreeSet<u64> = good.iter().map(|s| s.checkpoint.seq).collect();
    let (lines, last_seq) = lines_at(dir, &wanted)?;
    let anchor = chain::read_anchor(dir).map_err(|e| Error::io(dir.join(chain::ANCHOR_FILE), e))?;
    for s in good {
        let c = &s.checkpoint;
        let finding = |problem, detail: String| Finding {
            problem,
            at: s.at(),
            seq: c.seq,
            detail,
        };
        let pinned = match lines.get(&c.seq) {
            Some(l) => Some((l.hash, format!("{}:{}", l.path.display(), l.line))),
            None => match anchor {
                Some(a) if a.seq == c.seq => Some((a.hash, chain::ANCHOR_FILE.to_string())),
                Some(a) if c.seq < a.seq => {
                    report.retired += 1;
                    continue;
                }
                _ => None,
            },
        };
        match pinned {
            Some((hash, _)) if hex::encode(hash) == c.hash => {
                report.last = Some((c.seq, c.time.clone()));
            }
            Some((hash, at)) => report.findings.push(finding(
                Problem::Rewritten,
                format!(
                    "rewritten: hash at seq {} differs from checkpoint ({at} has {}, the \
                     checkpoint of {} says {})",
                    c.seq,
                    hex::encode(hash),
                    c.time,
                    c.hash
                ),
            )),
            None if c.seq > last_seq => report.findings.push(finding(
                Problem::Truncated,
                format!(
                    "truncated: checkpoint seq {} is missing from the files (they end at seq \
                     {last_seq}; the checkpoint was made {})",
                    c.seq, c.time
                ),
            )),
            None => report.findings.push(finding(
                Problem::Missing,
                format!(
                    "missing: no line has seq {}, which the checkpoint of {} holds",
                    c.seq, c.time
                ),
            )),
        }
    }
    if report.retired > 0 {
        report.notes.push(format!(
            "{} checkpoint(s) are of days retention deleted (before the retention anchor)",
            report.retired
        ));
    }
    Ok(report)
}

/// The lines of the store with a `seq` in `wanted`, and the largest `seq`
/// in the files.
fn lines_at(dir: &Path, wanted: &BTreeSet<u64>) -> Result<(BTreeMap<u64, Line>, u64), Error> {
    let mut found = BTreeMap::new();
    let mut last = 0;
    let mut buf = Vec::new();
    for f in day::list(dir, DayRange::all()).map_err(|e| Error::io(dir, e))? {
        let io = |e| Error::io(&f.path, e);
        let mut r = LineReader::open(&f).map_err(io)?;
        while let Some((no, line)) = r.next_line(&mut buf).map_err(io)? {
            if let Some(t) = chain::parse_tail(line) {
                last = last.max(t.seq);
                if wanted.contains(&t.seq) {
                    found.insert(
                        t.seq,
                        Line {
                            hash: t.hash,
                            path: f.path.clone(),
                            line: no,
                        },
                    );
                }
            }
        }
    }
    Ok((found, last))
}
