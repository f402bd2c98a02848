//! The sled backend's errors, with context, and their conversion into [`pop_core::Error`].

use std::path::PathBuf;

/// What went wrong in the sled backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SledError {
    /// sled itself failed (IO, a bug report).
    #[error("{op}: {source}")]
    Sled {
        /// What was being done, e.g. `get agenda a-17 in tree obj/agenda`.
        op: String,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The database was written in an on-disk format this build does not read.
    #[error(
        "the sled database at {path} has on-disk format version {found}, but this build of pop-store-sled reads \
         format version {supported}: open it with a matching pop-store-sled, or export and re-import the data"
    )]
    UnknownFormat {
        /// The database directory.
        path: PathBuf,
        /// The version found in the `meta` tree.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// A background flush failed; the writes waiting on it may or may not be durable.
    #[error("flush of the sled log failed: {0}")]
    Flush(String),
}

impl SledError {
    /// A sled failure while doing `op`.
    pub fn sled(op: impl Into<String>, source: sled::Error) -> Self {
        SledError::Sled { op: op.into(), source }
    }
}

impl From<SledError> for pop_core::Error {
    fn from(e: SledError) -> Self {
        match e {
            SledError::UnknownFormat { .. } => pop_core::Error::Unsupported(e.to_string()),
            other => pop_core::Error::backend("sled", other),
        }
    }
}

/// Shorthand: a sled failure while doing `op`, as a core error.
pub(crate) fn sled_err(op: impl Into<String>, source: sled::Error) -> pop_core::Error {
    SledError::sled(op, source).into()
}
