//! The crate's error type: each room's errors folded into one.

/// Any evlog error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the store.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl From<crate::event::ValidationError> for Error {
    fn from(e: crate::event::ValidationError) -> Self {
        Error::Store(crate::store::Error::Invalid(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
