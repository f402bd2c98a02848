//! Carrying out the [`FlushPolicy`]: what a mutating call waits for before its future completes.

use crate::config::FlushPolicy;
use crate::error::SledError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// The outcome of the latest finished group flush: its generation and its error, if it failed.
type Flushed = (u64, Option<Arc<String>>);

#[derive(Default)]
struct Pending {
    /// The generation that writes applied now belong to; a flush takes it and starts the next.
    current: u64,
    /// Whether a write is waiting for a flush.
    dirty: bool,
    /// The store was dropped: the flusher thread ends.
    closed: bool,
}

/// The shared state of group commit.
struct Group {
    pending: Mutex<Pending>,
    wake: Condvar,
    flushed: watch::Sender<Flushed>,
}

/// The flushes running now, by start time: how a stuck flush is told apart from a slow one.
///
/// sled 0.34 can leave a flush waiting for ever (after an ENOSPC, a log buffer that failed to write
/// is never made stable, and every later flush waits for it). A flush running for longer than the
/// stall timeout marks the store *stalled*: writes waiting for it and every later write get
/// [`SledError::Stalled`] at once instead of waiting for ever, and dropping the store does not wait
/// for the stuck thread. If the flush ever completes, the store is no longer stalled.
#[derive(Default)]
pub(crate) struct Stall {
    running: Mutex<BTreeMap<u64, Instant>>,
    next: AtomicU64,
}

impl Stall {
    /// Records a flush as running until the returned guard is dropped (also if the flush panics).
    fn begin(self: &Arc<Self>) -> Running {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Instant::now());
        Running { stall: self.clone(), id }
    }

    /// How long the oldest running flush has run, if one has run for `timeout` or longer.
    fn stuck_for(&self, timeout: Duration) -> Option<Duration> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = running.values().min()?.elapsed();
        (oldest >= timeout).then_some(oldest)
    }
}

/// A flush recorded as running in its [`Stall`] until dropped.
struct Running {
    stall: Arc<Stall>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stall.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// sled's flush, then an `fdatasync` of its data file.
///
/// On Linux, sled 0.34's flush writes its log buffers with `sync_file_range`, which waits for the
/// pages to be written but neither commits the file's metadata (its growth) nor flushes the disk's
/// write cache: enough for a process crash, not for a power loss. The `fdatasync` on the data file
/// makes the flush a real one.
#[derive(Clone)]
pub(crate) struct Syncer {
    db: sled::Db,
    /// sled's data file (`<dir>/db`); `None` for a temporary database.
    file: Option<Arc<std::fs::File>>,
    /// Tests: while set, a flush waits (a flush stuck like sled's after a full disk).
    #[cfg(test)]
    stuck: Arc<std::sync::atomic::AtomicBool>,
}

impl Syncer {
    pub(crate) fn new(db: sled::Db, dir: Option<&std::path::Path>) -> Result<Self, SledError> {
        let file = match dir {
            Some(dir) => {
                let path = dir.join("db");
                let f = std::fs::File::open(&path)
                    .map_err(|e| SledError::Flush(format!("cannot open sled's data file {}: {e}", path.display())))?;
                Some(Arc::new(f))
            }
            None => None,
        };
        Ok(Self {
            db,
            file,
            #[cfg(test)]
            stuck: Arc::default(),
        })
    }

    /// Flushes and syncs (blocking).
    pub(crate) fn sync(&self) -> Result<(), SledError> {
        #[cfg(test)]
        while self.stuck.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.db.flush().map_err(|e| SledError::sled("flush the sled log", e))?;
        if let Some(f) = &self.file {
            f.sync_data().map_err(|e| SledError::Flush(format!("fdatasync of sled's data file: {e}")))?;
        }
        Ok(())
    }
}

/// Makes writes durable as the policy says.
pub(crate) struct Durability {
    policy: FlushPolicy,
    syncer: Syncer,
    group: Option<Arc<Group>>,
    flusher: Option<std::thread::JoinHandle<()>>,
    stall: Arc<Stall>,
    stall_timeout: Duration,
    /// Set when the store has failed: dropping it must not wait for the flusher at all.
    abandoned: std::sync::atomic::AtomicBool,
}

impl Durability {
    /// Starts the flusher thread if the policy needs one.
    pub(crate) fn start(policy: FlushPolicy, syncer: Syncer, stall_timeout: Duration) -> Result<Self, SledError> {
        let mut handle = None;
        let stall = Arc::new(Stall::default());
        let group = match policy {
            FlushPolicy::GroupCommit { max_delay_ms } => {
                let (flushed, _) = watch::channel((0, None));
                let group = Arc::new(Group { pending: Mutex::new(Pending::default()), wake: Condvar::new(), flushed });
                let weak = Arc::downgrade(&group);
                let flush = syncer.clone();
                let tracked = stall.clone();
                handle = Some(
                    std::thread::Builder::new()
                        .name("pop-sled-flusher".into())
                        .spawn(move || flusher(weak, flush, tracked, Duration::from_millis(max_delay_ms)))
                        .map_err(|e| SledError::Flush(format!("cannot start the group-commit flusher thread: {e}")))?,
                );
                Some(group)
            }
            _ => None,
        };
        Ok(Self { policy, syncer, group, flusher: handle, stall, stall_timeout, abandoned: Default::default() })
    }

    /// `Err(Stalled)` if a flush has been running for the stall timeout or longer.
    pub(crate) fn check(&self) -> Result<(), SledError> {
        match self.stall.stuck_for(self.stall_timeout) {
            Some(for_) => {
                Err(SledError::Stalled { for_secs: for_.as_secs(), timeout_secs: self.stall_timeout.as_secs() })
            }
            None => Ok(()),
        }
    }

    /// Flushes and syncs now, whatever the policy, on a thread of its own rather than tokio's
    /// blocking pool (a flush stuck for ever must not keep the runtime from shutting down); fails
    /// with [`SledError::Stalled`] once it has run for the stall timeout.
    pub(crate) async fn flush_now(&self) -> Result<(), SledError> {
        self.check()?;
        let (tx, mut rx) = oneshot::channel();
        let syncer = self.syncer.clone();
        // Recorded as running from now (not from when the thread starts), so the first timeout
        // below already sees it.
        let running = self.stall.begin();
        std::thread::Builder::new()
            .name("pop-sled-flush".into())
            .spawn(move || {
                let outcome = syncer.sync();
                drop(running);
                let _ = tx.send(outcome);
            })
            .map_err(|e| SledError::Flush(format!("cannot start a flush thread: {e}")))?;
        loop {
            match tokio::time::timeout(self.stall_timeout, &mut rx).await {
                Ok(outcome) => {
                    return outcome
                        .map_err(|_| SledError::Flush("the flush thread ended without an outcome".into()))?;
                }
                Err(_) => self.check()?,
            }
        }
    }

    /// The store has failed: dropping it will not wait for the flusher.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Waits until every write applied before this call is durable (per the policy).
    ///
    /// Never waits for ever: a flush stuck for the stall timeout makes this (and every later call,
    /// while it stays stuck) fail with [`SledError::Stalled`].
    pub(crate) async fn wait(&self) -> pop_core::Result<()> {
        self.check()?;
        match self.policy {
            FlushPolicy::FlushEveryWrite => self.flush_now().await.map_err(Into::into),
            FlushPolicy::GroupCommit { .. } => {
                let Some(group) = &self.group else { return Ok(()) };
                let generation = {
                    let mut p = group.pending.lock().unwrap_or_else(|e| e.into_inner());
                    p.dirty = true;
                    p.current
                };
                group.wake.notify_one();
                let mut rx = group.flushed.subscribe();
                loop {
                    let seen =
                        match tokio::time::timeout(self.stall_timeout, rx.wait_for(|(done, _)| *done > generation))
                            .await
                        {
                            Ok(seen) => {
                                seen.map_err(|_| SledError::Flush("the group-commit flusher stopped".into()))?
                            }
                            Err(_) => {
                                self.check()?;
                                continue;
                            }
                        };
                    return match &seen.1 {
                        Some(msg) => Err(SledError::Flush(msg.to_string()).into()),
                        None => Ok(()),
                    };
                }
            }
            FlushPolicy::Background { .. } => Ok(()),
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            group.pending.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            group.wake.notify_one();
        }
        // Wait for the flusher to finish its last flush and drop its handle on the database, so that
        // the directory can be opened again as soon as the store is dropped — unless a flush is stuck:
        // then the thread is left behind (it keeps sled's files locked: reopening the directory needs a
        // new process).
        let Some(handle) = self.flusher.take() else { return };
        if self.abandoned.load(Ordering::SeqCst) {
            return;
        }
        // A flush in progress normally ends within milliseconds; one that has not ended by the
        // stall timeout is stuck.
        let until = Instant::now() + self.stall_timeout;
        while !handle.is_finished() {
            if let Err(e) = self.check() {
                tracing::error!(error = %e, "dropping a stalled sled store: its flusher thread is left behind");
                return;
            }
            if Instant::now() >= until {
                tracing::error!("dropping a sled store whose flusher did not end: it is left behind");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = handle.join();
    }
}

/// The group-commit loop: wait for a dirty write, respect the spacing, take the generation, flush,
/// publish. A write registered in generation `g` before the take is covered: its change was applied
/// before it registered, and the flush begins after the take.
fn flusher(group: Weak<Group>, flush: Syncer, stall: Arc<Stall>, spacing: Duration) {
    let mut last_start: Option<Instant> = None;
    loop {
        let Some(g) = group.upgrade() else { return };
        {
            let mut p = g.pending.lock().unwrap_or_else(|e| e.into_inner());
            while !p.dirty && !p.closed {
                let (guard, _) = g.wake.wait_timeout(p, Duration::from_millis(200)).unwrap_or_else(|e| e.into_inner());
                p = guard;
            }
            if p.closed && !p.dirty {
                return;
            }
        }
        if let Some(t) = last_start {
            let next = t + spacing;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        let generation = {
            let mut p = g.pending.lock().unwrap_or_else(|e| e.into_inner());
            let taken = p.current;
            p.current += 1;
            p.dirty = false;
            taken
        };
        last_start = Some(Instant::now());
        let running = stall.begin();
        let outcome = flush.sync().err().map(|e| Arc::new(e.to_string()));
        drop(running);
        if let Some(e) = &outcome {
            tracing::error!(error = %e, "sled group-commit flush failed");
        }
        g.flushed.send_replace((generation + 1, outcome));
        drop(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durability(policy: FlushPolicy) -> (Durability, Arc<std::sync::atomic::AtomicBool>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().expect("open sled");
        let syncer = Syncer::new(db, Some(dir.path())).expect("syncer");
        let stuck = syncer.stuck.clone();
        let d = Durability::start(policy, syncer, Duration::from_secs(1)).expect("start");
        (d, stuck, dir)
    }

    /// A stuck flush turns into `Stalled` for the waiting write after the timeout and at once for
    /// later writes; once the flush completes, writes succeed again; dropping a stalled store returns.
    async fn stalls_and_recovers(policy: FlushPolicy) {
        let (d, stuck, _dir) = durability(policy);
        d.wait().await.expect("a healthy flush");
        stuck.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let err = d.wait().await.expect_err("a stuck flush must not wait for ever");
        assert!(started.elapsed() >= Duration::from_secs(1), "failed before the stall timeout: {err}");
        assert!(err.to_string().contains("stalled"), "{err}");
        let started = Instant::now();
        let again = d.wait().await.expect_err("still stalled");
        assert!(started.elapsed() < Duration::from_millis(500), "a later write waited: {again}");
        assert!(d.check().is_err());
        stuck.store(false, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(5);
        while d.check().is_err() {
            assert!(Instant::now() < until, "the store stayed stalled after the flush completed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        d.wait().await.expect("writes succeed once the flush completes");
        // Stalled again, then dropped: the drop must not wait for the stuck flusher.
        stuck.store(true, Ordering::SeqCst);
        let _ = d.wait().await.expect_err("stalled again");
        let started = Instant::now();
        drop(d);
        assert!(started.elapsed() < Duration::from_millis(500), "dropping a stalled store waited for the flush");
        stuck.store(false, Ordering::SeqCst);
    }

    /// A flush gets stuck just before the store is dropped (within the stall timeout): the drop
    /// waits at most the timeout, and not at all once the store was marked failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_never_waits_for_a_stuck_flusher_past_the_timeout() {
        for abandoned in [false, true] {
            let (d, stuck, _dir) = durability(FlushPolicy::GroupCommit { max_delay_ms: 2 });
            d.wait().await.expect("a healthy flush");
            stuck.store(true, Ordering::SeqCst);
            let waited = tokio::time::timeout(Duration::from_millis(100), d.wait()).await;
            assert!(waited.is_err(), "the flush should be stuck");
            if abandoned {
                d.abandon();
            }
            let started = Instant::now();
            drop(d);
            let took = started.elapsed();
            stuck.store(false, Ordering::SeqCst);
            let limit = if abandoned { Duration::from_millis(200) } else { Duration::from_millis(1_500) };
            assert!(took < limit, "abandoned {abandoned}: the drop took {took:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_group_commit_flush_fails_writes_instead_of_hanging() {
        stalls_and_recovers(FlushPolicy::GroupCommit { max_delay_ms: 2 }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_flush_per_write_fails_writes_instead_of_hanging() {
        stalls_and_recovers(FlushPolicy::FlushEveryWrite).await;
    }
}
