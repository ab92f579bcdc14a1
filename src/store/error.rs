//! Errors of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::faults::StorageFault;
use crate::event::ValidationError;

/// What can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An I/O error on a file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// `fdatasync` of a day file failed: the events written since the last
    /// successful one are not acknowledged (and are cut off before the next
    /// write, since their fate on disk is unknown).
    #[error("{}: fdatasync failed: {source}; the events were not stored", path.display())]
    Sync {
        /// The day file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An event failed validation.
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// Some events of a batch failed validation; nothing was written.
    #[error("batch rejected, nothing written: {}", describe_rejects(.0))]
    BatchRejected(Vec<(usize, ValidationError)>),
    /// A stored line could not be parsed (reported, then skipped).
    #[error("{}:{line}: malformed line: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Why.
        reason: String,
    },
    /// The log was closed.
    #[error("the event log is closed")]
    Closed,
}

fn describe_rejects(r: &[(usize, ValidationError)]) -> String {
    let mut s: Vec<String> = r
        .iter()
        .take(5)
        .map(|(i, e)| format!("[{i}] {e}"))
        .collect();
    if r.len() > 5 {
        s.push(format!("and {} more", r.len() - 5));
    }
    s.join("; ")
}

impl Error {
    /// An I/O error with its path.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// A failed `fdatasync` with its path.
    pub fn sync(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Sync {
            path: path.as_ref().to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// What kind of storage failure this is (`None` for errors that are not
    /// the storage's: bad input, a closed log, a malformed line).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            Error::Io { source, .. } | Error::Sync { source, .. } => Some(StorageFault::of(source)),
            _ => None,
        }
    }

    /// For storage failures, what the caller should know and do.
    pub fn advice(&self) -> Option<&'static str> {
        Some(match (self.storage_fault()?, self) {
            (StorageFault::Full, _) => {
                "the disk holding the storage is full: nothing of this write was stored; free space and retry"
            }
            (StorageFault::ReadOnly, _) => {
                "the storage is read-only or not writable by this user: nothing of this write was stored"
            }
            (StorageFault::Failed, Error::Sync { .. }) => {
                "the disk could not make the events durable: they were not stored; retry"
            }
            (StorageFault::Failed, _) => {
                "the storage failed: nothing of this write was stored; retry"
            }
        })
    }

    /// The file or directory an I/O or fdatasync error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. } | Error::Sync { path, .. } | Error::Malformed { path, .. } => {
                Some(path)
            }
            _ => None,
        }
    }

    /// Whether this error is the caller's (bad input) rather than the store's.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Invalid(_) | Error::BatchRejected(_))
    }
}
