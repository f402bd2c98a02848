//! Errors of the process runtime and of the handler helper.

use std::io;

/// What can go wrong running a handler process or speaking the handler protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The payload could not be encoded or decoded (names the variable concerned).
    #[error("payload: {0}")]
    Payload(String),
    /// An environment variable of the protocol holds bad JSON.
    #[error("environment variable {var}: not valid JSON: {source}")]
    BadJson {
        /// The variable.
        var: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
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
            ProcessError::Payload(_) | ProcessError::BadJson { .. } => pop_core::Error::invalid(e.to_string()),
            ProcessError::Write { .. } => pop_core::Error::backend("process", e),
        }
    }
}
