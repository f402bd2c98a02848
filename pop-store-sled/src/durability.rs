//! Carrying out the [`FlushPolicy`]: what a mutating call waits for before its future completes.

use crate::config::FlushPolicy;
use crate::error::SledError;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
        Ok(Self { db, file })
    }

    /// Flushes and syncs (blocking).
    pub(crate) fn sync(&self) -> Result<(), SledError> {
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
}

impl Durability {
    /// Starts the flusher thread if the policy needs one.
    pub(crate) fn start(policy: FlushPolicy, syncer: Syncer) -> Result<Self, SledError> {
        let mut handle = None;
        let group = match policy {
            FlushPolicy::GroupCommit { max_delay_ms } => {
                let (flushed, _) = watch::channel((0, None));
                let group = Arc::new(Group { pending: Mutex::new(Pending::default()), wake: Condvar::new(), flushed });
                let weak = Arc::downgrade(&group);
                let flush = syncer.clone();
                handle = Some(
                    std::thread::Builder::new()
                        .name("pop-sled-flusher".into())
                        .spawn(move || flusher(weak, flush, Duration::from_millis(max_delay_ms)))
                        .map_err(|e| SledError::Flush(format!("cannot start the group-commit flusher thread: {e}")))?,
                );
                Some(group)
            }
            _ => None,
        };
        Ok(Self { policy, syncer, group, flusher: handle })
    }

    /// Waits until every write applied before this call is durable (per the policy).
    pub(crate) async fn wait(&self) -> pop_core::Result<()> {
        match self.policy {
            FlushPolicy::FlushEveryWrite => {
                let syncer = self.syncer.clone();
                tokio::task::spawn_blocking(move || syncer.sync())
                    .await
                    .map_err(|e| SledError::Flush(format!("the flush task failed: {e}")))??;
                Ok(())
            }
            FlushPolicy::GroupCommit { .. } => {
                let Some(group) = &self.group else { return Ok(()) };
                let generation = {
                    let mut p = group.pending.lock().unwrap_or_else(|e| e.into_inner());
                    p.dirty = true;
                    p.current
                };
                group.wake.notify_one();
                let mut rx = group.flushed.subscribe();
                let seen = rx
                    .wait_for(|(done, _)| *done > generation)
                    .await
                    .map_err(|_| SledError::Flush("the group-commit flusher stopped".into()))?;
                match &seen.1 {
                    Some(msg) => Err(SledError::Flush(msg.to_string()).into()),
                    None => Ok(()),
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
        // the directory can be opened again as soon as the store is dropped.
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
    }
}

/// The group-commit loop: wait for a dirty write, respect the spacing, take the generation, flush,
/// publish. A write registered in generation `g` before the take is covered: its change was applied
/// before it registered, and the flush begins after the take.
fn flusher(group: Weak<Group>, flush: Syncer, spacing: Duration) {
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
        let outcome = flush.sync().err().map(|e| Arc::new(e.to_string()));
        if let Some(e) = &outcome {
            tracing::error!(error = %e, "sled group-commit flush failed");
        }
        g.flushed.send_replace((generation + 1, outcome));
        drop(g);
    }
}
