//! Carrying out the [`FlushPolicy`]: what a mutating call waits for before its future completes.

use crate::config::FlushPolicy;
use crate::error::FjallError;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

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

/// Writes fjall's journal to the disk and `fdatasync`s it.
fn sync(ks: &fjall::TxKeyspace) -> Result<(), FjallError> {
    ks.persist(fjall::PersistMode::SyncData).map_err(|e| FjallError::Failed(format!("sync of the journal failed: {e}")))
}

/// Makes writes durable as the policy says.
pub(crate) struct Durability {
    policy: FlushPolicy,
    ks: fjall::TxKeyspace,
    group: Option<Arc<Group>>,
    syncer: Option<std::thread::JoinHandle<()>>,
}

impl Durability {
    /// Starts the syncing thread if the policy needs one.
    pub(crate) fn start(policy: FlushPolicy, ks: fjall::TxKeyspace) -> Result<Self, FjallError> {
        let mut handle = None;
        let group = match policy {
            FlushPolicy::GroupCommit { max_delay_ms } => {
                let (synced, _) = watch::channel((0, None));
                let group = Arc::new(Group { pending: Mutex::new(Pending::default()), wake: Condvar::new(), synced });
                let weak = Arc::downgrade(&group);
                let keyspace = ks.clone();
                handle = Some(
                    std::thread::Builder::new()
                        .name("pop-fjall-sync".into())
                        .spawn(move || syncer(weak, keyspace, Duration::from_millis(max_delay_ms)))
                        .map_err(|e| FjallError::Failed(format!("cannot start the group-commit thread: {e}")))?,
                );
                Some(group)
            }
            _ => None,
        };
        Ok(Self { policy, ks, group, syncer: handle })
    }

    /// Syncs now, whatever the policy, on a thread of its own (the async caller does not block on
    /// the disk).
    pub(crate) async fn sync_now(&self) -> Result<(), FjallError> {
        let (tx, rx) = oneshot::channel();
        let ks = self.ks.clone();
        std::thread::Builder::new()
            .name("pop-fjall-sync-now".into())
            .spawn(move || {
                let _ = tx.send(sync(&ks));
            })
            .map_err(|e| FjallError::Failed(format!("cannot start a sync thread: {e}")))?;
        rx.await.map_err(|_| FjallError::Failed("the sync thread ended without an outcome".into()))?
    }

    /// Waits until every write applied before this call is durable (per the policy).
    pub(crate) async fn wait(&self) -> pop_core::Result<()> {
        match self.policy {
            FlushPolicy::FlushEveryWrite => self.sync_now().await.map_err(Into::into),
            FlushPolicy::GroupCommit { .. } => {
                let Some(group) = &self.group else { return Ok(()) };
                let generation = {
                    let mut p = group.pending.lock().unwrap_or_else(|e| e.into_inner());
                    p.dirty = true;
                    p.current
                };
                group.wake.notify_one();
                let mut rx = group.synced.subscribe();
                let seen = rx
                    .wait_for(|(done, _)| *done > generation)
                    .await
                    .map_err(|_| FjallError::Failed("the group-commit thread stopped".into()))?;
                match &seen.1 {
                    Some(msg) => Err(FjallError::Failed(msg.to_string()).into()),
                    None => Ok(()),
                }
            }
            FlushPolicy::Never => Ok(()),
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            group.pending.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            group.wake.notify_one();
        }
        if let Some(handle) = self.syncer.take() {
            let _ = handle.join();
        }
    }
}

/// The group-commit loop: wait for a dirty write, respect the spacing, take the generation, sync,
/// publish. A write registered in generation `g` before the take is covered: its change was applied
/// (appended to the journal's buffer) before it registered, and the sync begins after the take.
fn syncer(group: Weak<Group>, ks: fjall::TxKeyspace, spacing: Duration) {
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
        let outcome = sync(&ks).err().map(|e| Arc::new(e.to_string()));
        if let Some(e) = &outcome {
            tracing::error!(error = %e, "fjall group-commit sync failed");
        }
        g.synced.send_replace((generation + 1, outcome));
        drop(g);
    }
}
