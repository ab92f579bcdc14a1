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
//! - no such line because retention deleted its day: accepted when the
//!   line lies before the oldest line still in the files, retention's
//!   `chain.anchor` exists, and it is not the newest checkpoint (which must
//!   always be found: a wiped store is not a retention).
//!
//! `chain.anchor` is a plain file that whoever writes the files can write
//! too, so nothing here trusts it further: every line still in the files,
//! also those of days before the anchor (which the chain check passes over
//! after an interrupted deletion), must follow the line before it; a line
//! that does not is `changed`.

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
    /// A line in the files does not follow the one before it (where the
    /// chain check does not look: before `chain.anchor`).
    Changed,
    /// A line of the checkpoint files that is not a checkpoint.
    Unreadable,
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

impl Finding {
    fn of(s: &Stored, problem: Problem, detail: String) -> Finding {
        Finding {
            problem,
            at: s.at(),
            seq: s.checkpoint.seq,
            detail,
        }
    }
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
    let read = read_dir(checkpoints).map_err(|e| Error::io(checkpoints, e))?;
    let all = read.checkpoints;
    let mut report = Report {
        checkpoints: all.len(),
        notes: read.notes,
        ..Report::default()
    };
    for (path, line, why) in read.unreadable {
        let at = format!("{}:{line}", path.display());
        report.findings.push(Finding {
            problem: Problem::Unreadable,
            at: at.clone(),
            seq: 0,
            detail: format!("unreadable: {at} is not a checkpoint ({why})"),
        });
    }
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
        let finding = |problem, detail| Finding::of(s, problem, detail);
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
    let files = lines_at(dir, &wanted)?;
    if let Some((at, seq)) = &files.unlinked {
        report.findings.push(Finding {
            problem: Problem::Changed,
            at: at.clone(),
            seq: *seq,
            detail: format!(
                "changed: the line at {at} (seq {seq}) does not follow the line before it"
            ),
        });
    }
    let (lines, last_seq) = (files.found, files.last);
    let anchor = chain::read_anchor(dir).map_err(|e| Error::io(dir.join(chain::ANCHOR_FILE), e))?;
    let newest = good.last().map(|s| s.checkpoint.seq);
    for s in good {
        let c = &s.checkpoint;
        let finding = |problem, detail| Finding::of(s, problem, detail);
        let pinned = match lines.get(&c.seq) {
            Some(l) => Some((l.hash, format!("{}:{}", l.path.display(), l.line))),
            // `chain.anchor` pins nothing here (whoever can write the files
            // can write it, the newest checkpoint's seq and hash included).
            None => match anchor {
                // Before the oldest line left, retention's anchor written,
                // and not the newest checkpoint: a day retention deleted.
                Some(_) if files.first.is_none_or(|f| c.seq < f) && Some(c.seq) != newest => {
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
            "{} checkpoint(s) are of days retention deleted (before the oldest line left)",
            report.retired
        ));
    }
    Ok(report)
}

/// What [`lines_at`] found in the files.
struct Files {
    /// The lines with a wanted `seq`.
    found: BTreeMap<u64, Line>,
    /// The smallest and largest `seq` in the files.
    first: Option<u64>,
    last: u64,
    /// The first line that does not follow the one before it: where, and its `seq`.
    unlinked: Option<(String, u64)>,
}

/// The lines of the store with a `seq` in `wanted`, the range of `seq`s in
/// the files, and whether each line follows the one before it (from the
/// oldest line left, whatever `chain.anchor` says).
fn lines_at(dir: &Path, wanted: &BTreeSet<u64>) -> Result<Files, Error> {
    let mut files = Files {
        found: BTreeMap::new(),
        first: None,
        last: 0,
        unlinked: None,
    };
    let mut prev: Option<[u8; 32]> = None;
    let mut buf = Vec::new();
    for f in day::list(dir, DayRange::all()).map_err(|e| Error::io(dir, e))? {
        let io = |e| Error::io(&f.path, e);
        let mut r = LineReader::open(&f).map_err(io)?;
        while let Some((no, line)) = r.next_line(&mut buf).map_err(io)? {
            let Some(t) = chain::parse_tail(line) else {
                continue;
            };
            if let Some(p) = prev
                && !t.links_to(&p)
                && files.unlinked.is_none()
            {
                files.unlinked = Some((format!("{}:{no}", f.path.display()), t.seq));
            }
            prev = Some(t.hash);
            files.first.get_or_insert(t.seq);
            files.last = files.last.max(t.seq);
            if wanted.contains(&t.seq) {
                files.found.insert(
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
    Ok(files)
}
