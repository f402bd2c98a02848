//! Options of the process runtime.

use pop_handler_protocol::output::OutputLimits;
use pop_handler_protocol::{EnvOptions, PayloadEncoding, PayloadMode, UnknownIds};
use std::path::PathBuf;
use std::time::Duration;

/// The default bound on one output line (16 MiB).
pub use pop_handler_protocol::output::DEFAULT_MAX_LINE_BYTES;
/// The default bound on one result's JSON (16 MiB).
pub use pop_handler_protocol::output::DEFAULT_MAX_RESULT_BYTES;
/// Payloads whose JSON is longer than this many bytes go through the compressed form by default.
pub use pop_handler_protocol::payload::DEFAULT_COMPRESS_THRESHOLD;
/// The original's `payload.compression.maxSegmentSize`: at most this many characters per
/// `POP_COMPRESSED_PAYLOAD_n` variable.
pub use pop_handler_protocol::payload::DEFAULT_MAX_CHUNK_CHARS as DEFAULT_CHUNK_SIZE;

/// Options of a [`ProcessRuntime`](crate::ProcessRuntime); every field has a sensible [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessRuntimeConfig {
    /// A payload whose JSON is longer than this (bytes) is passed as zlib+base64 chunks
    /// (`POP_PAYLOAD_TYPE=compressedEnvVar`); otherwise as `PAYLOAD` (`POP_PAYLOAD_TYPE=envVar`).
    /// Keep it below the kernel's limit on one environment string (128 KiB on Linux).
    pub compress_threshold: usize,
    /// The largest `POP_COMPRESSED_PAYLOAD_n` chunk, in characters.
    pub chunk_size: usize,
    /// The longest stdout/stderr line accepted, in bytes (without the newline). A longer line fails the
    /// operation and terminates the handler; it is never held in memory whole.
    pub max_line_bytes: usize,
    /// The largest `POP_RESULT` JSON accepted, in bytes; a larger result fails the operation.
    pub max_result_bytes: usize,
    /// After SIGTERM (timeout, cancel, cleanup), how long the process group gets before SIGKILL.
    pub kill_grace: Duration,
    /// After the handler exits, how long to wait for its output pipes to close (a leftover grandchild may
    /// hold them open) before the group is killed.
    pub drain_timeout: Duration,
    /// How many of the last output lines a failed operation's diagnostic carries.
    pub tail_lines: usize,
    /// Each line kept for the diagnostic is cut to this many bytes.
    pub tail_line_bytes: usize,
    /// The timeout of types whose `process.timeoutMs` is not set (`None`: no limit).
    pub default_timeout: Option<Duration>,
    /// How many events may wait unread in an operation's stream before the handler's output is paused.
    pub event_buffer: usize,
    /// The program that applies a type's `process.limits` (util-linux `prlimit`, looked up in `PATH`).
    pub prlimit_program: PathBuf,
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        Self {
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            kill_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(2),
            tail_lines: 20,
            tail_line_bytes: 2048,
            default_timeout: None,
            event_buffer: 256,
            prlimit_program: PathBuf::from("prlimit"),
        }
    }
}

impl ProcessRuntimeConfig {
    /// Sets [`compress_threshold`](Self::compress_threshold).
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.compress_threshold = bytes;
        self
    }

    /// Sets [`chunk_size`](Self::chunk_size) (at least 4).
    pub fn chunk_size(mut self, chars: usize) -> Self {
        self.chunk_size = chars.max(4);
        self
    }

    /// Sets [`max_line_bytes`](Self::max_line_bytes).
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// Sets [`max_result_bytes`](Self::max_result_bytes).
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes;
        self
    }

    /// Sets [`kill_grace`](Self::kill_grace).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`tail_lines`](Self::tail_lines).
    pub fn tail_lines(mut self, lines: usize) -> Self {
        self.tail_lines = lines;
        self
    }

    /// Sets [`default_timeout`](Self::default_timeout).
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Sets [`event_buffer`](Self::event_buffer) (at least 1).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Sets [`prlimit_program`](Self::prlimit_program).
    pub fn prlimit_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.prlimit_program = program.into();
        self
    }

    /// How the handler protocol's environment is built: the payload inline up to
    /// [`compress_threshold`](Self::compress_threshold), unknown ids as empty variables.
    pub fn env_options(&self) -> EnvOptions {
        EnvOptions::new(PayloadEncoding {
            mode: PayloadMode::Auto { threshold: self.compress_threshold },
            max_chunk_chars: self.chunk_size,
        })
        .unknown_ids(UnknownIds::Empty)
    }

    /// The bounds on what a handler may write.
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_line_bytes: self.max_line_bytes,
            max_result_bytes: self.max_result_bytes,
            tail_lines: self.tail_lines,
            tail_line_bytes: self.tail_line_bytes,
        }
    }
}
