//! Errors of the process runtime and of the handler helper.

use pop_handler_protocol::ProtocolError;
use std::io;

/// What can go wrong running a handler process or speaking the handler protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The handler protocol's input or output broke a rule (names the variable or line concerned).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Writing a protocol line failed.
    #[error("writing a {what} line to stdout: {source}")]
    Write {
        /// `POP_PROGRESS` or `POP_RESULT`.
        what: &'static str,
        /// The IO error.
        #[source]
        source: io::Error,
    },
}

impl From<ProcessError> for pop_core::Error {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Protocol(p) => p.into(),
            ProcessError::Write { .. } => pop_core::Error::backend("process", e),
        }
    }
}
