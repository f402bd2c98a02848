//! Options for opening a fjall database: where, how much cache, and when writes become durable.

use std::path::{Path, PathBuf};

/// When a write's future completes relative to the disk.
///
/// Every mutating call of [`crate::FjallStore`] and [`crate::FjallQueue`] applies its change in
/// memory first (one fjall write transaction: other callers may read it at once) and then waits as
/// this policy says. If that wait fails (the journal's flush reports an IO error), the call returns
/// the error although the change stays applied in memory: treat it like a timeout, the outcome is
/// unknown (and fjall then refuses every later write: restart the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After each write, write the journal and `fdatasync` it before returning.
    ///
    /// Promise: when the future completes with `Ok`, the write survives a process crash or power
    /// loss (as far as the disk honours `fdatasync`). Each write pays for a sync of its own.
    FlushEveryWrite,
    /// Group commit: one background thread syncs the journal while writes are waiting, starting
    /// syncs at least `max_delay_ms` apart; a write's future completes only after a sync that *began
    /// after the write was applied* has finished.
    ///
    /// Promise: the same as [`FlushPolicy::FlushEveryWrite`] (an `Ok` means durable), with one
    /// `fdatasync` shared by every write of the interval.
    ///
    /// The default is `max_delay_ms: 0`: a sync starts as soon as the previous one has ended and a
    /// write waits, so every write that arrived during a sync shares the next one. A journal sync
    /// is a short `fdatasync` of one file, so waiting on purpose only adds latency (the engine bench
    /// runs 1-operation agendas 25–50 % faster than with 2 ms, see the README); on a disk whose
    /// syncs are slow the groups grow by themselves. A spacing caps the syncs per second, for a
    /// disk that charges for them.
    GroupCommit {
        /// The least time between the starts of two syncs, in milliseconds (0: sync as soon as the
        /// previous sync ends).
        max_delay_ms: u64,
    },
    /// Never wait: the journal is written when its buffer fills or another write syncs it.
    ///
    /// Promise: none across a crash beyond fjall's own (never half of an atomic batch). For tests
    /// and throwaway data.
    Never,
}

/// The default [`Config::stall_timeout`]: 30 seconds.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The default [`Config::write_buffer_bytes`]: 128 MiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: u64 = 128 << 20;

/// The default [`Config::memtable_bytes`]: 16 MiB.
pub const DEFAULT_MEMTABLE_BYTES: u32 = 16 << 20;

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy::GroupCommit { max_delay_ms: 0 }
    }
}

/// How to open a [`crate::FjallStore`]; build with [`Config::new`] or [`Config::temporary`].
///
/// ```
/// use pop_store_fjall::{Config, FlushPolicy};
/// let config = Config::new("/var/lib/pop-fjall")
///     .cache_capacity_bytes(256 << 20)
///     .flush_policy(FlushPolicy::GroupCommit { max_delay_ms: 5 });
/// assert_eq!(config.path().unwrap().to_str(), Some("/var/lib/pop-fjall"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) cache_capacity_bytes: u64,
    pub(crate) flush_policy: FlushPolicy,
    pub(crate) write_buffer_bytes: u64,
    pub(crate) memtable_bytes: u32,
    pub(crate) stall_timeout: std::time::Duration,
}

impl Config {
    /// A database in directory `path` (created if missing), 64 MiB of block cache, 128 MiB of write
    /// buffer in memtables of up to 16 MiB, group commit with syncs back to back ([`FlushPolicy::default`]).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: Some(path.as_ref().to_owned()),
            cache_capacity_bytes: 64 << 20,
            flush_policy: FlushPolicy::default(),
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            memtable_bytes: DEFAULT_MEMTABLE_BYTES,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }

    /// A database in a fresh temporary directory, removed when the store is dropped; writes never
    /// wait for the disk ([`FlushPolicy::Never`]).
    pub fn temporary() -> Self {
        Self {
            path: None,
            cache_capacity_bytes: 16 << 20,
            flush_policy: FlushPolicy::Never,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            memtable_bytes: DEFAULT_MEMTABLE_BYTES,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }

    /// The size of fjall's block cache.
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Self {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// The most memory the memtables of all partitions may hold (fjall's `max_write_buffer_size`).
    ///
    /// Past 90% of it fjall *stalls* every write (a 100 ms sleep inside the commit, under the
    /// single-writer lock) until its flush threads have written memtables out: too small a buffer
    /// for the write rate stops the whole engine in 100 ms steps. The engine bench at 40,000
    /// agendas ran 3,717/s with 64 MiB (fjall's default) and 6,096/s with 128 MiB (this crate's).
    pub fn write_buffer_bytes(mut self, bytes: u64) -> Self {
        self.write_buffer_bytes = bytes;
        self
    }

    /// The size at which a partition's memtable is sealed and flushed to disk.
    pub fn memtable_bytes(mut self, bytes: u32) -> Self {
        self.memtable_bytes = bytes;
        self
    }

    /// How long a sync of the journal may run before the store counts as stalled: the writes
    /// waiting on it, and every later one while it lasts, fail with [`crate::FjallError::Stalled`]
    /// instead of waiting for ever (default 30 s, at least 1 s: a shorter one would count healthy
    /// syncs as stuck).
    pub fn stall_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.stall_timeout = timeout.max(std::time::Duration::from_secs(1));
        self
    }

    /// When writes become durable (see [`FlushPolicy`]).
    pub fn flush_policy(mut self, policy: FlushPolicy) -> Self {
        self.flush_policy = policy;
        self
    }

    /// The database directory (`None` for a temporary database).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
