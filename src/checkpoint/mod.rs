//! Signed checkpoints (README "Tamper evidence"): the chain head — `seq`
//! and `hash` of the last line — signed with the node's Ed25519 key and
//! kept where the writer of the files cannot rewrite it.
//!
//! The hash chain alone finds an edited, removed, inserted or reordered
//! line, but not a cut tail, nor a line rewritten with every hash after it
//! recomputed. A checkpoint kept off the host pins the chain at its `seq`:
//! `evlog verify --checkpoints DIR --public-key KEY` finds the cut
//! (`truncated`) and the rewrite (`rewritten`).
//!
//! - [`key`]: the signing key (`<storage>/checkpoint.key`, 0600).
//! - [`Checkpoint`]: the signed record, one JSON line; each names the hash
//!   of the one before (`previous_checkpoint_hash`), so checkpoints are a
//!   chain of their own.
//! - [`write`]: appends a checkpoint of the store's head to
//!   `<storage>/checkpoints/YYYY-MM-DD.jsonl`.
//! - [`verify`]: checks a directory of checkpoints against the store.
//! - [`deliver`]: the server's schedule, and the sinks off the host.

pub mod deliver;
pub mod key;
pub mod verify;

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::chain::ChainHead;
use crate::store::day::{self, DayRange};

/// The directory of the checkpoints, in the storage directory.
pub const DIR: &str = "checkpoints";
/// Serializes the writers of checkpoints (the server and the CLI).
const LOCK: &str = ".lock";

/// What a checkpoint says, in the order it is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    seq: u64,
    hash: String,
    day: NaiveDate,
    time: String,
    node: String,
    previous_checkpoint_hash: Option<String>,
    key: String,
}

/// A signed checkpoint of the chain head: one JSON line
/// `{"seq","hash","day","time","node","previous_checkpoint_hash","key","signature"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// `seq` of the last line at the time.
    pub seq: u64,
    /// Its hash (64 hex digits).
    pub hash: String,
    /// The day file that line is in.
    pub day: NaiveDate,
    /// When the checkpoint was made (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub time: String,
    /// The node that made it.
    pub node: String,
    /// The hash of the checkpoint before it ([`Checkpoint::digest`]);
    /// `null` for the first.
    #[schema(required = true)]
    pub previous_checkpoint_hash: Option<String>,
    /// The public key that signs it (64 hex digits).
    pub key: String,
    /// Ed25519 signature of the fields before it, as JSON in this order
    /// (128 hex digits).
    pub signature: String,
}

impl Checkpoint {
    fn signed(&self) -> Signed {
        Signed {
            seq: self.seq,
            hash: self.hash.clone(),
            day: self.day,
            time: self.time.clone(),
            node: self.node.clone(),
            previous_checkpoint_hash: self.previous_checkpoint_hash.clone(),
            key: self.key.clone(),
        }
    }

    /// Makes and signs a checkpoint of `head`.
    pub fn sign(
        head: ChainHead,
        day: NaiveDate,
        time: DateTime<Utc>,
        node: &str,
        previous: Option<&Checkpoint>,
        key: &SigningKey,
    ) -> Checkpoint {
        let signed = Signed {
            seq: head.seq,
            hash: head.hash_hex(),
            day,
            time: crate::event::format_timestamp(&time),
            node: node.to_string(),
            previous_checkpoint_hash: previous.map(Checkpoint::digest),
            key: hex::encode(key.verifying_key().as_bytes()),
        };
        let message = serde_json::to_vec(&signed).expect("a checkpoint serializes");
        let signature = hex::encode(key.sign(&message).to_bytes());
        Checkpoint {
            seq: signed.seq,
            hash: signed.hash,
            day: signed.day,
            time: signed.time,
            node: signed.node,
            previous_checkpoint_hash: signed.previous_checkpoint_hash,
            key: signed.key,
            signature,
        }
    }

    /// Whether `key` signed it (and it names `key`).
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        if self.key != hex::encode(key.as_bytes()) {
            return false;
        }
        let mut sig = [0u8; 64];
        if hex::decode_to_slice(&self.signature, &mut sig).is_err() {
            return false;
        }
        let message = serde_json::to_vec(&self.signed()).expect("a checkpoint serializes");
        key.verify(&message, &Signature::from_bytes(&sig)).is_ok()
    }

    /// Its line, as stored (no newline).
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serializes")
    }

    /// SHA-256 of its line, in hex: what the next checkpoint names as
    /// `previous_checkpoint_hash`.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.line().as_bytes()))
    }
}

/// A checkpoint read from a file, with where it was.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its file.
    pub path: PathBuf,
    /// Its 1-based line number.
    pub line: u64,
}

impl Stored {
    /// `FILE:LINE`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.path.display(), self.line)
    }
}

/// What [`read_dir`] found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The checkpoints, oldest file first, in file order.
    pub checkpoints: Vec<Stored>,
    /// Lines that are not checkpoints: file, 1-based line and why.
    pub unreadable: Vec<(PathBuf, u64, String)>,
    /// Worth knowing: an unfinished last line (a crash while writing it),
    /// passed over.
    pub notes: Vec<String>,
}

/// The `*.jsonl` files of `dir`, by name (oldest day first).
fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads the checkpoints of `path` into `out`.
fn read_file(path: &Path, out: &mut Listing) -> io::Result<()> {
    let text = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let complete = whole_len(&text);
    if complete < text.len() {
        out.notes.push(format!(
            "{}: an unfinished last line (a crash while writing it) is passed over",
            path.display()
        ));
    }
    for (i, line) in text[..complete].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Checkpoint>(line) {
            Ok(checkpoint) => out.checkpoints.push(Stored {
                checkpoint,
                path: path.to_path_buf(),
                line: i as u64 + 1,
            }),
            Err(e) => out
                .unreadable
                .push((path.to_path_buf(), i as u64 + 1, e.to_string())),
        }
    }
    Ok(())
}

/// The checkpoints of the `*.jsonl` files of `dir` (oldest file first, by
/// name), the lines that are not checkpoints, and notes (a last line
/// without its newline, left by a crash while writing it, is passed over).
pub fn read_dir(dir: &Path) -> io::Result<Listing> {
    let mut out = Listing::default();
    for path in files(dir)? {
        read_file(&path, &mut out)?;
    }
    Ok(out)
}

/// The newest checkpoint of `dir` (the last line of its newest file), if
/// any; an error when that line is not a checkpoint (nothing can chain to it).
fn last_checkpoint(dir: &Path) -> io::Result<Option<Checkpoint>> {
    for path in files(dir)?.iter().rev() {
        let mut read = Listing::default();
        read_file(path, &mut read)?;
        let last_ok = read.checkpoints.last().map_or(0, |s| s.line);
        if let Some((p, line, why)) = read.unreadable.last()
            && *line > last_ok
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}:{line}: the last checkpoint is not one ({why}): a new one cannot chain to it",
                    p.display()
                ),
            ));
        }
        if let Some(s) = read.checkpoints.pop() {
            return Ok(Some(s.checkpoint));
        }
    }
    Ok(None)
}

/// The chain head of the store in `dir` (its newest line, or with `upto`
/// the newest line of that day or before) and its day. Read under the
/// writers' storage lock (between two batches: a batch that fails is cut
/// back before the lock is let go) and after an fdatasync of the file: a
/// checkpoint must not sign a line a power loss could still take back.
pub fn store_head(
    dir: &Path,
    upto: Option<NaiveDate>,
) -> io::Result<Option<(ChainHead, NaiveDate)>> {
    let _writers = crate::store::StorageLock::acquire(dir).map_err(io::Error::other)?;
    for f in day::list(dir, DayRange::all())?
        .iter()
        .rev()
        .filter(|f| upto.is_none_or(|u| f.day <= u))
    {
        if !f.compressed {
            File::open(&f.path)?.sync_data()?;
        }
        if let Some(h) = crate::store::reader::last_head(f)? {
            return Ok(Some((h, f.day)));
        }
    }
    Ok(None)
}

/// What [`write`] did.
#[derive(Debug)]
pub enum Written {
    /// A new checkpoint, at this place.
    New(Stored),
    /// With `only_if_moved`: nothing was appended since this checkpoint.
    Unchanged(Checkpoint),
    /// The store holds no line yet.
    Empty,
}

/// Signs the head of the store in `dir` with `key` as node `node` at
/// `now`, and appends it to `<dir>/checkpoints/<day of now>.jsonl`
/// (fsynced). With `only_if_moved`, nothing is written when the head is the
/// last checkpoint's.
pub fn write(
    dir: &Path,
    key: &SigningKey,
    node: &str,
    now: DateTime<Utc>,
    only_if_moved: bool,
) -> io::Result<Written> {
    write_upto(dir, key, node, now, only_if_moved, None)
}

/// As [`write`], signing the head as it was at the end of `upto` (its
/// newest line of that day or before) when given: the day-end checkpoint
/// pins the day that just ended, whatever came after midnight.
pub fn write_upto(
    dir: &Path,
    key: &SigningKey,
    node: &str,
    now: DateTime<Utc>,
    only_if_moved: bool,
    upto: Option<NaiveDate>,
) -> io::Result<Written> {
    let cdir = dir.join(DIR);
    let created = !cdir.exists();
    std::fs::create_dir_all(&cdir)?;
    if created {
        crate::store::sync_dir(dir)?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cdir.join(LOCK))?;
    lock.lock()?;
    let Some((head, day)) = store_head(dir, upto)? else {
        return Ok(Written::Empty);
    };
    let last = last_checkpoint(&cdir)?;
    let previous = last.as_ref();
    if let Some(p) = previous
        && only_if_moved
        && p.seq == head.seq
        && p.hash == head.hash_hex()
    {
        return Ok(Written::Unchanged(p.clone()));
    }
    let checkpoint = Checkpoint::sign(head, day, now, node, previous, key);
    let path = cdir.join(format!("{}.jsonl", now.date_naive()));
    let line = append_line(&path, checkpoint.line().as_bytes())?;
    Ok(Written::New(Stored {
        checkpoint,
        path,
        line,
    }))
}

/// The length of the whole lines of `b` (up to its last newline).
fn whole_len(b: &[u8]) -> usize {
    b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1)
}

/// The number of lines (newlines) in `b`.
fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// Appends to `path` what `add` makes of its whole lines, first cutting an
/// unfinished last line (a crash while writing it), and fsyncs (the
/// directory too when the file is new); writes nothing, and creates no
/// file, when there is nothing to add or cut. Returns the number of whole
/// lines the file held before.
fn append_whole(path: &Path, add: impl FnOnce(&[u8]) -> io::Result<Vec<u8>>) -> io::Result<u64> {
    let text = match std::fs::read(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let new = text.is_none();
    let text = text.unwrap_or_default();
    let whole = whole_len(&text);
    let more = add(&text[..whole])?;
    if !more.is_empty() || whole < text.len() {
        let mut f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        f.set_len(whole as u64)?;
        f.seek(SeekFrom::Start(whole as u64))?;
        f.write_all(&more)?;
        f.sync_data()?;
        if new && let Some(parent) = path.parent() {
            crate::store::sync_dir(parent)?;
        }
    }
    Ok(count_lines(&text[..whole]))
}

/// Appends `line` and a newline to `path`, first cutting an unfinished
/// last line (a crash while writing it), and fsyncs; returns its 1-based
/// line number.
pub fn append_line(path: &Path, line: &[u8]) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    append_whole(path, |_| Ok(buf)).map(|before| before + 1)
}
