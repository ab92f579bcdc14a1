//! The index's checkpoint: which part of which day file it covers. It is
//! the payload of each tantivy commit, so the documents and the checkpoint
//! move together (see [`super::indexer`]). Other layers (rotation, the CLI)
//! ask here what the index covers, without naming tantivy.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tantivy::Index;

use super::Error;
use super::indexer::INDEX_DIR;

/// How far one day file is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileMark {
    /// Byte offset (uncompressed) after the last indexed line.
    pub offset: u64,
    /// Lines consumed so far (indexed or malformed).
    pub lines: u64,
    /// A fingerprint of the bytes just before `offset` (plain files): if
    /// they change, the file was cut back and rewritten under the index (a
    /// failed write or fdatasync cuts off lines the indexer may have seen),
    /// and the day is indexed again. Absent in checkpoints of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u64>,
}

/// Bytes before a checkpoint offset that its fingerprint covers.
pub(super) const TAIL_BYTES: u64 = 128;

/// The fingerprint of the (up to) [`TAIL_BYTES`] bytes before `offset`.
pub(super) fn tail_print(path: &Path, offset: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let from = offset.saturating_sub(TAIL_BYTES);
    let mut buf = vec![0u8; (offset - from) as usize];
    std::fs::File::open(path)?.read_exact_at(&mut buf, from)?;
    Ok(fingerprint(&buf))
}

/// Whether the bytes before `mark.offset` of the plain file at `path` are
/// still those the index saw (marks without a fingerprint: assumed so).
pub(crate) fn mark_matches(path: &Path, mark: &FileMark) -> bool {
    mark.offset == 0
        || mark
            .tail
            .is_none_or(|t| tail_print(path, mark.offset).ok() == Some(t))
}

/// The fingerprint of the bytes before a checkpoint offset.
pub(super) fn fingerprint(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The commit payload: which part of which day file the index covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    /// Format version of the payload.
    pub v: u32,
    /// Per day file.
    pub files: BTreeMap<NaiveDate, FileMark>,
}

/// Reads the checkpoint of the last commit.
pub fn read_checkpoint(index: &Index) -> Result<Checkpoint, Error> {
    let metas = index.load_metas().map_err(Error::tantivy)?;
    match metas.payload {
        None => Ok(Checkpoint::default()),
        Some(p) => serde_json::from_str(&p).map_err(|e| {
            Error::Tantivy(format!(
                "unreadable index checkpoint ({e}); run `evlog reindex`"
            ))
        }),
    }
}

/// The checkpoint of the last commit of the index of `storage`, read
/// without opening a writer (another process may be indexing).
pub fn committed(storage: &Path) -> Result<Checkpoint, Error> {
    let path = storage.join(INDEX_DIR);
    let index = Index::open_in_dir(&path).map_err(|e| {
        Error::Tantivy(format!(
            "{}: {e} (run `evlog reindex` to rebuild)",
            path.display()
        ))
    })?;
    read_checkpoint(&index)
}

/// Whether `storage` has an index.
pub fn exists(storage: &Path) -> bool {
    storage.join(INDEX_DIR).join("meta.json").is_file()
}
