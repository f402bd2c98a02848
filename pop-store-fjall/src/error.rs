//! The fjall backend's errors, with context, and their conversion into [`pop_core::Error`].

use std::path::PathBuf;

/// What went wrong in the fjall backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FjallError {
    /// fjall itself failed (IO, a corrupt journal or segment).
    #[error("{op}: {source}")]
    Fjall {
        /// What was being done, e.g. `get agenda a-17 in partition obj#agenda`.
        op: String,
        /// fjall's error.
        #[source]
        source: fjall::Error,
    },
    /// The database was written in an on-disk format this build does not read.
    #[error(
        "the fjall database at {path} has on-disk format version {found}, but this build of pop-store-fjall reads \
         format version {supported}: open it with a matching pop-store-fjall, or export and re-import the data"
    )]
    UnknownFormat {
        /// The database directory.
        path: PathBuf,
        /// The version found in the `meta` partition.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// A journal flush failed: the writes waiting on it may or may not be durable, and fjall refuses
    /// every later write (it is *poisoned*) until the process restarts.
    #[error(
        "the fjall store has failed: {0}; fjall accepts no more writes in this process: fix the disk (or free \
         space), then restart the process (every acknowledged write is on disk)"
    )]
    Failed(String),
    /// A sync of the journal has been running for longer than the stall timeout
    /// ([`crate::Config::stall_timeout`]): the writes waiting on it may or may not be durable, and
    /// every write fails like this while it lasts.
    #[error(
        "the fjall store is stalled: a sync of its journal has not completed for {for_secs} s (stall timeout \
         {timeout_secs} s); writes are refused until it completes (check the disk)"
    )]
    Stalled {
        /// How long the stuck sync has been running, in seconds.
        for_secs: u64,
        /// The configured stall timeout, in seconds.
        timeout_secs: u64,
    },
}

impl From<FjallError> for pop_core::Error {
    fn from(e: FjallError) -> Self {
        match e {
            FjallError::UnknownFormat { .. } => pop_core::Error::Unsupported(e.to_string()),
            other => pop_core::Error::backend("fjall", other),
        }
    }
}

/// Shorthand: a fjall failure while doing `op`, as a core error.
pub(crate) fn fjall_err(op: impl Into<String>, source: fjall::Error) -> pop_core::Error {
    match source {
        fjall::Error::Poisoned => FjallError::Failed(format!("{}: an earlier journal flush failed", op.into())).into(),
        source => FjallError::Fjall { op: op.into(), source }.into(),
    }
}
