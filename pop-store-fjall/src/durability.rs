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

/// Writes fjall's journal to the disk and `fdatasync`s it, without holding fjall's journal lock
/// through the `fdatasync`.
///
/// `persist(SyncData)` would keep the journal's lock while the disk syncs, and every commit needs
/// that lock: the whole engine would wait for each group commit's `fdatasync`. Instead the journal's
/// buffer is handed to the kernel under the lock (`persist(Buffer)`: a `write`), and the active
/// journal file — the one with the highest number in `journals/`, preallocated, so `fdatasync` is
/// enough — is synced through a descriptor of this crate's own. A journal that was rotated away in
/// between was synced by fjall when it sealed it (`rotate` persists with `SyncAll`).
pub(crate) struct Syncer {
    ks: fjall::TxKeyspace,
    /// `<dir>/journals`.
    journals: std::path::PathBuf,
    /// The active journal's number and a descriptor of it.
    open: Mutex<Option<(u64, std::fs::File)>>,
    /// The first failed sync: every later one fails too (after a failed `fdatasync` the kernel may
    /// have dropped the dirty pages; a later "successful" sync would not bring them back).
    failed: std::sync::OnceLock<String>,
}

impl Syncer {
    pub(crate) fn new(ks: fjall::TxKeyspace, dir: &std::path::Path) -> Arc<Self> {
        Arc::new(Self { ks, journals: dir.join("journals"), open: Mutex::new(None), failed: Default::default() })
    }

    /// The number of the active journal.
    fn active(&self) -> std::io::Result<u64> {
        let mut best = None;
        for entry in std::fs::read_dir(&self.journals)? {
            if let Some(n) = entry?.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                best = best.max(Some(n));
            }
        }
        best.ok_or_else(|| std::io::Error::other(format!("no journal in {}", self.journals.display())))
    }

    fn sync(&self) -> Result<(), FjallError> {
        if let Some(first) = self.failed.get() {
            return Err(FjallError::Failed(format!("an earlier sync of the journal failed: {first}")));
        }
        let outcome = self
            .ks
            .persist(fjall::PersistMode::Buffer)
            .map_err(|e| format!("write of the journal: {e}"))
            .and_then(|()| self.sync_active().map_err(|e| format!("fdatasync of the journal: {e}")));
        outcome.map_err(|e| {
            let first = self.failed.get_or_init(|| e.clone());
            FjallError::Failed(format!("sync of the journal failed: {first}"))
        })
    }

    fn sync_active(&self) -> std::io::Result<()> {
        let active = self.active()?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_ref().map(|(n, _)| *n) != Some(active) {
            *open = Some((active, std::fs::File::open(self.journals.join(active.to_string()))?));
        }
        match open.as_ref() {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// Makes writes durable as the policy says.
pub(crate) struct Durability {
    policy: FlushPolicy,
    syncer: Arc<Syncer>,
    group: Option<Arc<Group>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Durability {
    /// Starts the syncing thread if the policy needs one.
    pub(crate) fn start(policy: FlushPolicy, syncer: Arc<Syncer>) -> Result<Self, FjallError> {
        let mut handle = None;
        let group = match policy {
            FlushPolicy::GroupCommit { max_delay_ms } => {
                let (synced, _) = watch::channel((0, None));
                let group = Arc::new(Group { pending: Mutex::new(Pending::default()), wake: Condvar::new(), synced });
                let weak = Arc::downgrade(&group);
                let s = syncer.clone();
                handle = Some(
                    std::thread::Builder::new()
                        .name("pop-fjall-sync".into())
                        .spawn(move || sync_loop(weak, s, Duration::from_millis(max_delay_ms)))
                        .map_err(|e| FjallError::Failed(format!("cannot start the group-commit thread: {e}")))?,
                );
                Some(group)
            }
            _ => None,
        };
        Ok(Self { policy, syncer, group, thread: handle })
    }

    /// Syncs now, whatever the policy, on a thread of its own (the async caller does not block on
    /// the disk).
    pub(crate) async fn sync_now(&self) -> Result<(), FjallError> {
        let (tx, rx) = oneshot::channel();
        let syncer = self.syncer.clone();
        std::thread::Builder::new()
            .name("pop-fjall-sync-now".into())
            .spawn(move || {
                let _ = tx.send(syncer.sync());
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
        if let Some(handle) = self.thread.take() {
            let _ = handle.join();
        }
    }
}

/// The group-commit loop: wait for a dirty write, respect the spacing, take the generation, sync,
/// publish. A write registered in generation `g` before the take is covered: its change was applied
/// (appended to the journal's buffer) before it registered, and the sync begins after the take.
fn sync_loop(group: Weak<Group>, syncer: Arc<Syncer>, spacing: Duration) {
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
        let outcome = syncer.sync().err().map(|e| Arc::new(e.to_string()));
        if let Some(e) = &outcome {
            tracing::error!(error = %e, "fjall group-commit sync failed");
        }
        g.synced.send_replace((generation + 1, outcome));
        drop(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyspace(dir: &std::path::Path) -> fjall::TxKeyspace {
        fjall::Config::new(dir).manual_journal_persist(true).open_transactional().expect("open fjall")
    }

    #[test]
    fn the_active_journal_is_synced_through_its_own_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = keyspace(dir.path());
        let part = ks.open_partition("p", Default::default()).expect("partition");
        part.insert("k", "v").expect("insert");
        let syncer = Syncer::new(ks, dir.path());
        syncer.sync().expect("a healthy sync");
        let (n, _) = syncer.open.lock().unwrap().take().expect("a journal was opened");
        assert_eq!(n, syncer.active().expect("the active journal"));
    }

    /// A failed sync fails every later one: after a failed `fdatasync` the kernel may have dropped
    /// the dirty pages, and a later sync that "succeeds" would not have written them.
    #[test]
    fn a_failed_sync_fails_every_later_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let syncer = Syncer::new(keyspace(dir.path()), &dir.path().join("elsewhere"));
        let first = syncer.sync().expect_err("no journal there").to_string();
        assert!(first.contains("fdatasync of the journal"), "{first}");
        let later = syncer.sync().expect_err("still failed").to_string();
        assert!(later.contains("an earlier sync of the journal failed"), "{later}");
    }
}
