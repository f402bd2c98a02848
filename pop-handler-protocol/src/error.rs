//! What can be wrong with the protocol's input (the environment) or output (the lines).

use crate::env::{COMPRESSED_PAYLOAD_PREFIX, PAYLOAD, PAYLOAD_TYPE, PAYLOAD_TYPE_COMPRESSED, PAYLOAD_TYPE_PLAIN};
use crate::output::{PROGRESS_MARKER, RESULT_MARKER};
use std::io;

/// A broken rule of the handler protocol, naming the variable or line concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The plain form was announced (or nothing was) but `PAYLOAD` is not set.
    #[error("{PAYLOAD} is not set (is this program running as a POP handler?)")]
    PayloadMissing,
    /// `POP_PAYLOAD_TYPE=compressedEnvVar` but `POP_COMPRESSED_PAYLOAD_0` is not set.
    #[error("{PAYLOAD_TYPE}={PAYLOAD_TYPE_COMPRESSED} but {COMPRESSED_PAYLOAD_PREFIX}0 is not set")]
    ChunksMissing,
    /// `POP_PAYLOAD_TYPE` names a form this protocol does not know.
    #[error(
        "{PAYLOAD_TYPE}={found:?} is not a known payload form (expected {PAYLOAD_TYPE_PLAIN} or {PAYLOAD_TYPE_COMPRESSED})"
    )]
    UnknownPayloadType {
        /// The value found.
        found: String,
    },
    /// The concatenated chunks are not base64.
    #[error("{COMPRESSED_PAYLOAD_PREFIX}0..{last}: not valid base64: {source}")]
    Base64 {
        /// The index of the last chunk read.
        last: usize,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The decoded chunks are not zlib data (or not UTF-8 text once inflated).
    #[error("{COMPRESSED_PAYLOAD_PREFIX}0..{last}: not valid zlib data: {source}")]
    Zlib {
        /// The index of the last chunk read.
        last: usize,
        /// The inflater's error.
        #[source]
        source: io::Error,
    },
    /// Compressing a payload failed.
    #[error("compressing a payload of {bytes} bytes: {source}")]
    Compress {
        /// The payload's size.
        bytes: usize,
        /// The deflater's error.
        #[source]
        source: io::Error,
    },
    /// A variable of the protocol holds text that is not the JSON it should be.
    #[error("environment variable {var}: not valid JSON: {source}")]
    BadJson {
        /// The variable.
        var: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as the JSON of a variable.
    #[error("cannot encode environment variable {var}: {source}")]
    Encode {
        /// The variable.
        var: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A `POP_PROGRESS` line whose JSON is not a progress update (logged and ignored).
    #[error("malformed {PROGRESS_MARKER} line: {source}")]
    MalformedProgress {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A `POP_RESULT` line whose JSON does not parse (fails the operation).
    #[error("malformed {RESULT_MARKER} line: {source}")]
    MalformedResult {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A `POP_RESULT` larger than the configured limit (fails the operation).
    #[error("{RESULT_MARKER} of {bytes} bytes is larger than the limit of {max} bytes")]
    ResultTooLarge {
        /// The size of the result's JSON text.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An output line longer than the configured limit (fails the operation; never held whole).
    #[error("a {stream} line longer than the limit of {max} bytes; it began: {start}")]
    LineTooLong {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The limit.
        max: usize,
        /// The line's first bytes.
        start: String,
    },
}

impl ProtocolError {
    /// Whether this error, seen in a handler's output, fails the operation (a malformed progress line
    /// does not: it is logged and ignored).
    pub fn fails_operation(&self) -> bool {
        !matches!(self, Self::MalformedProgress { .. })
    }
}

impl From<ProtocolError> for pop_core::Error {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Compress { .. } => pop_core::Error::backend("handler protocol", e),
            other => pop_core::Error::invalid(other.to_string()),
        }
    }
}
