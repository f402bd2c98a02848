//! Group commit: what a mutating call of an embedded backend waits for before its future
//! completes, over any [`Syncer`] (the backend's "make everything written so far durable").
//!
//! [`Policy::Group`]: one background thread syncs at most every `max_delay_ms` while writes are
//! waiting; a write's future completes only after a sync that *began after the write was applied*
//! has finished, so many concurrent writes share one `fsync`. [`Policy::EveryWrite`]: each write
//! syncs on a thread of its own. [`Policy::None`]: never wait.
//!
//! A sync stuck for good (sled 0.34 can leave one waiting for ever after a full disk) is told apart
//! from a slow one: a sync running for longer than the stall timeout makes the waiting writes, and
//! every later one, fail at once with [`DurabilityError::Stalled`] instead of waiting for ever, and
//! dropping the store does not wait for the stuck thread. If the sync ever completes, writes
//! succeed again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Makes everything written so far durable (blocking).
pub trait Syncer: Send + Sync + 'static {
    /// Syncs; the error says what failed.
    fn sync(&self) -> Result<(), String>;
}

/// When a write's future completes relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Each write syncs before it returns.
    EveryWrite,
    /// Group commit, syncs at least `max_delay_ms` apart.
    Group {
        /// The least time between the starts of two syncs, in milliseconds.
        max_delay_ms: u64,
    },
    /// Writes never wait.
    None,
}

/// Why a write could not be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurabilityError {
    /// The sync failed: the writes waiting on it may or may not be durable.
    Failed(String),
    /// A sync has been running for the stall timeout or longer.
    Stalled {
        /// How long the stuck sync has been running, in seconds.
        for_secs: u64,
        /// The stall timeout, in seconds.
        timeout_secs: u64,
    },
}

/// The outcome of the latest finished group sync: its generation and its error, if it failed.
type Synced = (u64, Option<Arc<String>>);

#[derive(Default)]
struct Pending {
    /// The generation that writes applied now belong to; a sync takes it and starts the next.
    current: u64,
    /// Whether a write is waiting for a sync.
    dirty: bool,
    /// The store was dropped: the syncing thread ends.
    closed: bool,
}

/// The shared state of group commit.
struct Group {
    pending: Mutex<Pending>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
}

/// The syncs running now, by start time: how a stuck sync is told apart from a slow one.
#[derive(Default)]
struct Stall {
    running: Mutex<BTreeMap<u64, Instant>>,
    next: AtomicU64,
}

impl Stall {
    /// Records a sync as running until the returned guard is dropped (also if the sync panics).
    fn begin(self: &Arc<Self>) -> Running {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Instant::now());
        Running { stall: self.clone(), id }
    }

    /// How long the oldest running sync has run, if one has run for `timeout` or longer.
    fn stuck_for(&self, timeout: Duration) -> Option<Duration> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = running.values().min()?.elapsed();
        (oldest >= timeout).then_some(oldest)
    }
}

/// A sync recorded as running in its [`Stall`] until dropped.
struct Running {
    stall: Arc<Stall>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stall.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// Makes writes durable as the policy says.
pub struct Durability {
    policy: Policy,
    syncer: Arc<dyn Syncer>,
    group: Option<Arc<Group>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stall: Arc<Stall>,
    stall_timeout: Duration,
    /// The backend's name for its threads and messages (`sled`, `fjall`).
    name: &'static str,
    /// Set when the store has failed: dropping it must not wait for the syncing thread at all.
    abandoned: AtomicBool,
}

impl Durability {
    /// Starts the syncing thread if the policy needs one (`pop-<name>-sync`).
    pub fn start(
        name: &'static str,
        policy: Policy,
        syncer: Arc<dyn Syncer>,
        stall_timeout: Duration,
    ) -> Result<Self, DurabilityError> {
        let mut thread = None;
        let stall = Arc::new(Stall::default());
        let group = match policy {
            Policy::Group { max_delay_ms } => {
                let (synced, _) = watch::channel((0, None));
                let group = Arc::new(Group { pending: Mutex::new(Pending::default()), wake: Condvar::new(), synced });
                let (weak, s, tracked) = (Arc::downgrade(&group), syncer.clone(), stall.clone());
                thread = Some(
                    std::thread::Builder::new()
                        .name(format!("pop-{name}-sync"))
                        .spawn(move || sync_loop(name, weak, s, tracked, Duration::from_millis(max_delay_ms)))
                        .map_err(|e| DurabilityError::Failed(format!("cannot start the group-commit thread: {e}")))?,
                );
                Some(group)
            }
            _ => None,
        };
        Ok(Self { policy, syncer, group, thread, stall, stall_timeout, name, abandoned: AtomicBool::new(false) })
    }

    /// `Err(Stalled)` if a sync has been running for the stall timeout or longer.
    pub fn check(&self) -> Result<(), DurabilityError> {
        match self.stall.stuck_for(self.stall_timeout) {
            Some(for_) => {
                Err(DurabilityError::Stalled { for_secs: for_.as_secs(), timeout_secs: self.stall_timeout.as_secs() })
            }
            None => Ok(()),
        }
    }

    /// Syncs now, whatever the policy, on a thread of its own rather than tokio's blocking pool (a
    /// sync stuck for ever must not keep the runtime from shutting down); fails with `Stalled` once
    /// it has run for the stall timeout.
    pub async fn sync_now(&self) -> Result<(), DurabilityError> {
        self.check()?;
        let (tx, mut rx) = oneshot::channel();
        let syncer = self.syncer.clone();
        // Recorded as running from now (not from when the thread starts), so the first timeout
        // below already sees it.
        let running = self.stall.begin();
        std::thread::Builder::new()
            .name(format!("pop-{}-sync-now", self.name))
            .spawn(move || {
                let outcome = syncer.sync();
                drop(running);
                let _ = tx.send(outcome);
            })
            .map_err(|e| DurabilityError::Failed(format!("cannot start a sync thread: {e}")))?;
        loop {
            match tokio::time::timeout(self.stall_timeout, &mut rx).await {
                Ok(outcome) => {
                    return outcome
                        .map_err(|_| DurabilityError::Failed("the sync thread ended without an outcome".into()))?
                        .map_err(DurabilityError::Failed);
                }
                Err(_) => self.check()?,
            }
        }
    }

    /// The store has failed: dropping it will not wait for the syncing thread.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Waits until every write applied before this call is durable (per the policy).
    ///
    /// Never waits for ever: a sync stuck for the stall timeout makes this (and every later call,
    /// while it stays stuck) fail with `Stalled`.
    pub async fn wait(&self) -> Result<(), DurabilityError> {
        self.check()?;
        match self.policy {
            Policy::EveryWrite => self.sync_now().await,
            Policy::Group { .. } => {
                let Some(group) = &self.group else { return Ok(()) };
                let generation = {
                    let mut p = group.pending.lock().unwrap_or_else(|e| e.into_inner());
                    p.dirty = true;
                    p.current
                };
                group.wake.notify_one();
                let mut rx = group.synced.subscribe();
                loop {
                    let waited =
                        tokio::time::timeout(self.stall_timeout, rx.wait_for(|(done, _)| *done > generation)).await;
                    let seen = match waited {
                        Ok(seen) => {
                            seen.map_err(|_| DurabilityError::Failed("the group-commit thread stopped".into()))?
                        }
                        Err(_) => {
                            self.check()?;
                            continue;
                        }
                    };
                    return match &seen.1 {
                        Some(msg) => Err(DurabilityError::Failed(msg.to_string())),
                        None => Ok(()),
                    };
                }
            }
            Policy::None => Ok(()),
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            group.pending.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            group.wake.notify_one();
        }
        // Wait for the syncing thread to finish its last sync and drop its handle on the database,
        // so that the directory can be opened again as soon as the store is dropped — unless a sync
        // is stuck: then the thread is left behind (reopening the directory needs a new process).
        let Some(handle) = self.thread.take() else { return };
        if self.abandoned.load(Ordering::SeqCst) {
            return;
        }
        // A sync in progress normally ends within milliseconds; one that has not ended by the stall
        // timeout is stuck.
        let until = Instant::now() + self.stall_timeout;
        while !handle.is_finished() {
            if self.check().is_err() {
                tracing::error!(backend = self.name, "dropping a stalled store: its syncing thread is left behind");
                return;
            }
            if Instant::now() >= until {
                tracing::error!(
                    backend = self.name,
                    "dropping a store whose syncing thread did not end: it is left behind"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = handle.join();
    }
}

/// The group-commit loop: wait for a dirty write, respect the spacing, take the generation, sync,
/// publish. A write registered in generation `g` before the take is covered: its change was applied
/// before it registered, and the sync begins after the take.
fn sync_loop(name: &'static str, group: Weak<Group>, syncer: Arc<dyn Syncer>, stall: Arc<Stall>, spacing: Duration) {
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
        let outcome = syncer.sync().err().map(Arc::new);
        drop(running);
        if let Some(e) = &outcome {
            tracing::error!(backend = name, error = %e, "group-commit sync failed");
        }
        g.synced.send_replace((generation + 1, outcome));
        drop(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syncer that waits while `stuck` is set (a sync stuck like sled's after a full disk).
    #[derive(Default)]
    struct Stuckable {
        stuck: AtomicBool,
    }

    impl Syncer for Stuckable {
        fn sync(&self) -> Result<(), String> {
            while self.stuck.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
    }

    fn durability(policy: Policy) -> (Durability, Arc<Stuckable>) {
        let syncer = Arc::new(Stuckable::default());
        let d = Durability::start("test", policy, syncer.clone(), Duration::from_secs(1)).expect("start");
        (d, syncer)
    }

    /// A stuck sync turns into `Stalled` for the waiting write after the timeout and at once for
    /// later writes; once the sync completes, writes succeed again; dropping a stalled store returns.
    async fn stalls_and_recovers(policy: Policy) {
        let (d, s) = durability(policy);
        d.wait().await.expect("a healthy sync");
        s.stuck.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let err = d.wait().await.expect_err("a stuck sync must not wait for ever");
        assert!(started.elapsed() >= Duration::from_secs(1), "failed before the stall timeout: {err:?}");
        assert!(matches!(err, DurabilityError::Stalled { .. }), "{err:?}");
        let started = Instant::now();
        let again = d.wait().await.expect_err("still stalled");
        assert!(started.elapsed() < Duration::from_millis(500), "a later write waited: {again:?}");
        assert!(d.check().is_err());
        s.stuck.store(false, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(5);
        while d.check().is_err() {
            assert!(Instant::now() < until, "the store stayed stalled after the sync completed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        d.wait().await.expect("writes succeed once the sync completes");
        // Stalled again, then dropped: the drop must not wait for the stuck thread.
        s.stuck.store(true, Ordering::SeqCst);
        let _ = d.wait().await.expect_err("stalled again");
        let started = Instant::now();
        drop(d);
        assert!(started.elapsed() < Duration::from_millis(500), "dropping a stalled store waited for the sync");
        s.stuck.store(false, Ordering::SeqCst);
    }

    /// A sync gets stuck just before the store is dropped (within the stall timeout): the drop waits
    /// at most the timeout, and not at all once the store was marked failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_never_waits_for_a_stuck_sync_past_the_timeout() {
        for abandoned in [false, true] {
            let (d, s) = durability(Policy::Group { max_delay_ms: 2 });
            d.wait().await.expect("a healthy sync");
            s.stuck.store(true, Ordering::SeqCst);
            let waited = tokio::time::timeout(Duration::from_millis(100), d.wait()).await;
            assert!(waited.is_err(), "the sync should be stuck");
            if abandoned {
                d.abandon();
            }
            let started = Instant::now();
            drop(d);
            let took = started.elapsed();
            s.stuck.store(false, Ordering::SeqCst);
            let limit = if abandoned { Duration::from_millis(200) } else { Duration::from_millis(1_500) };
            assert!(took < limit, "abandoned {abandoned}: the drop took {took:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_group_commit_sync_fails_writes_instead_of_hanging() {
        stalls_and_recovers(Policy::Group { max_delay_ms: 2 }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_sync_per_write_fails_writes_instead_of_hanging() {
        stalls_and_recovers(Policy::EveryWrite).await;
    }

    /// A failed sync reaches every write waiting on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_group_sync_fails_the_writes_waiting_on_it() {
        struct Failing;
        impl Syncer for Failing {
            fn sync(&self) -> Result<(), String> {
                Err("the disk is gone".into())
            }
        }
        let d = Durability::start("test", Policy::Group { max_delay_ms: 1 }, Arc::new(Failing), Duration::from_secs(5))
            .expect("start");
        let (a, b) = tokio::join!(d.wait(), d.wait());
        for r in [a, b] {
            assert_eq!(r, Err(DurabilityError::Failed("the disk is gone".into())));
        }
    }
}
