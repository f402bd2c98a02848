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
    /// A flush has been running for longer than the stall timeout ([`crate::Config::stall_timeout`]):
    /// sled 0.34 does not recover from this in-process (typically after the disk filled up). The
    /// writes waiting on it may or may not be durable; every write fails like this while it lasts.
    #[error(
        "the sled store is stalled: a flush of its log has not completed for {for_secs} s (stall timeout \
         {timeout_secs} s), typically after the disk filled up; writes are refused. sled cannot recover \
         from this in-process: free space, then restart the process (every acknowledged write is on disk)"
    )]
    Stalled {
        /// How long the stuck flush has been running, in seconds.
        for_secs: u64,
        /// The configured stall timeout, in seconds.
        timeout_secs: u64,
    },
    /// sled failed after an IO error in its log (typically a full disk) and fails every operation
    /// until the database is reopened.
    #[error(
        "the sled store has failed after an IO error in its log ({0}); sled cannot recover from this \
         in-process: free space (or fix the disk), then restart the process (every acknowledged write is on disk)"
    )]
    Failed(String),
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
