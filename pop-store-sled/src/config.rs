//! Options for opening a sled database: where, how much cache, and when writes become durable.

use std::path::{Path, PathBuf};

/// When a write's future completes relative to the disk.
///
/// Every mutating call of [`crate::SledStore`] and [`crate::SledQueue`] (`write`, lease calls, `push`,
/// `receive`, `extend`, `ack`, `release`, `remove`) applies its change in memory first (other callers
/// may read it at once) and then waits as this policy says before its future completes. If that wait
/// fails (the flush reports an IO error), the call returns the error although the change stays
/// applied in memory and may still reach the disk: treat it like a timeout, the outcome is unknown.
/// Reads never wait, so a reader may see a change whose writer has not been told it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After each write, flush sled's log and `fdatasync` its data file before returning.
    ///
    /// Promise: when the future completes with `Ok`, the write survives a process crash or power
    /// loss (as far as the disk honours `fdatasync`; sled's own flush alone, `sync_file_range` on
    /// Linux, would not survive a power loss, hence the extra `fdatasync`). Throughput is bounded by the disk's fsync rate,
    /// shared by all concurrent writers (each write pays for a flush of its own).
    FlushEveryWrite,
    /// Group commit: one background flusher thread flushes at most every `max_delay_ms` while there
    /// are writes waiting; a write's future completes only after a flush that *began after the
    /// write was applied* has finished.
    ///
    /// Promise: the same as [`FlushPolicy::FlushEveryWrite`] — an `Ok` means durable — but many
    /// concurrent writes share one `fsync`, so throughput grows with the number of concurrent
    /// writers, and each write waits up to `max_delay_ms` plus one flush. If the flush fails, every
    /// write waiting on it gets the error (the change may or may not be on disk).
    GroupCommit {
        /// The least time between the starts of two flushes, in milliseconds (0: flush as soon
        /// as the previous flush ends).
        max_delay_ms: u64,
    },
    /// Never wait: rely on sled's own background flush every `every_ms` milliseconds.
    ///
    /// Promise: only that a crash loses at most the writes of the last `every_ms` milliseconds or
    /// so, and never half of an atomic batch. For tests and throwaway data.
    Background {
        /// sled's `flush_every_ms`.
        every_ms: u64,
    },
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy::GroupCommit { max_delay_ms: 2 }
    }
}

/// How to open a [`crate::SledStore`]; build with [`Config::new`] or [`Config::temporary`].
///
/// ```
/// use pop_store_sled::{Config, FlushPolicy};
/// let config = Config::new("/var/lib/pop")
///     .cache_capacity_bytes(256 << 20)
///     .flush_policy(FlushPolicy::GroupCommit { max_delay_ms: 5 });
/// assert_eq!(config.path().unwrap().to_str(), Some("/var/lib/pop"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) cache_capacity_bytes: u64,
    pub(crate) flush_policy: FlushPolicy,
    pub(crate) stall_timeout: std::time::Duration,
    pub(crate) segment_cleaner: bool,
}

/// The default [`Config::stall_timeout`]: 30 seconds.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Config {
    /// A database in directory `path` (created if missing), 128 MiB of cache, group commit every 2 ms.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: Some(path.as_ref().to_owned()),
            cache_capacity_bytes: 128 << 20,
            flush_policy: FlushPolicy::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            segment_cleaner: true,
        }
    }

    /// A database in a temporary directory, removed when the store is dropped.
    pub fn temporary() -> Self {
        Self {
            path: None,
            cache_capacity_bytes: 64 << 20,
            flush_policy: FlushPolicy::Background { every_ms: 500 },
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            segment_cleaner: true,
        }
    }

    /// sled's page cache size in bytes.
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Self {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// When writes become durable.
    pub fn flush_policy(mut self, policy: FlushPolicy) -> Self {
        self.flush_policy = policy;
        self
    }

    /// How long a flush may run before the store counts as stalled (default
    /// [`DEFAULT_STALL_TIMEOUT`], at least 1 s).
    ///
    /// sled 0.34 can leave a flush waiting for ever after a write failed (typically when the disk
    /// filled up). Past this timeout, the writes waiting for it and every later write fail with
    /// [`crate::SledError::Stalled`] (a `Backend` error, HTTP 503) instead of waiting for ever, and
    /// dropping the store leaves the stuck thread behind instead of hanging: restart the process once
    /// the disk is healthy. Every write acknowledged before is on disk.
    pub fn stall_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.stall_timeout = timeout.max(std::time::Duration::from_secs(1));
        self
    }

    /// Whether sled's segment cleaner runs (default `true`).
    ///
    /// sled 0.34 rewrites and frees its log segments only in its own periodic flusher thread, which
    /// this crate runs once a second under every policy (beside its own flushes under
    /// [`FlushPolicy::GroupCommit`] and [`FlushPolicy::FlushEveryWrite`]). Without it the directory
    /// grows with every write even when the live data stays flat (the soak measured ≈4 MiB/min at 20
    /// agendas/s). Turning it off is for measurements only.
    pub fn segment_cleaner(mut self, on: bool) -> Self {
        self.segment_cleaner = on;
        self
    }

    /// The directory, or `None` for a temporary database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The cache size in bytes.
    pub fn cache_capacity(&self) -> u64 {
        self.cache_capacity_bytes
    }

    /// The flush policy.
    pub fn policy(&self) -> FlushPolicy {
        self.flush_policy
    }
}
