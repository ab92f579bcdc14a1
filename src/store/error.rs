//! Errors of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    /// Whether this error is the caller's (bad input) rather than the store's.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Error::Invalid(_) | Error::BatchRejected(_))
    }
}
