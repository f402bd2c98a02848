//! Options of the process runtime.

use std::time::Duration;

/// Payloads whose JSON is longer than this many bytes go through the compressed form by default.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 100_000;
/// The original's `payload.compression.maxSegmentSize`: at most this many characters per
/// `POP_COMPRESSED_PAYLOAD_n` variable.
pub const DEFAULT_CHUNK_SIZE: usize = 100_000;
/// The default bound on one output line (16 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

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
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        Self {
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            kill_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(2),
            tail_lines: 20,
            tail_line_bytes: 2048,
            default_timeout: None,
            event_buffer: 256,
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
}
