//! Carrying out the [`FlushPolicy`] with `pop-store-kv`'s group commit: the journal's buffer
//! written under fjall's lock, the active journal file synced outside it.

use crate::config::FlushPolicy;
use crate::error::FjallError;
use pop_store_kv::durability::{DurabilityError, Policy};
use std::sync::{Arc, Mutex};

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
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // The journal open last is still the active one until its successor exists: one `stat` per
        // sync instead of listing the directory.
        let rotated = match open.as_ref() {
            Some((n, _)) => self.journals.join((n + 1).to_string()).exists(),
            None => true,
        };
        if rotated {
            let active = self.active()?;
            *open = Some((active, std::fs::File::open(self.journals.join(active.to_string()))?));
        }
        match open.as_ref() {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

impl pop_store_kv::durability::Syncer for Syncer {
    fn sync(&self) -> Result<(), String> {
        Syncer::sync(self).map_err(|e| e.to_string())
    }
}

/// The group-commit policy of a flush policy.
pub(crate) fn policy(p: FlushPolicy) -> Policy {
    match p {
        FlushPolicy::FlushEveryWrite => Policy::EveryWrite,
        FlushPolicy::GroupCommit { max_delay_ms } => Policy::Group { max_delay_ms },
        FlushPolicy::Never => Policy::None,
    }
}

/// A durability error as a core error.
pub(crate) fn core_err(e: DurabilityError) -> pop_core::Error {
    match e {
        DurabilityError::Failed(msg) => FjallError::Failed(msg).into(),
        DurabilityError::Stalled { for_secs, timeout_secs } => FjallError::Stalled { for_secs, timeout_secs }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyspace(dir: &std::path::Path) -> fjall::TxKeyspace {
        fjall::Config::new(dir).manual_journal_persist(true).open_transactional().expect("open fjall")
    }

    /// A keyspace in `dir` with one written partition, and a syncer of it that has synced once.
    fn synced(dir: &std::path::Path) -> (fjall::TxPartitionHandle, Arc<Syncer>) {
        let ks = keyspace(dir);
        let part = ks.open_partition("p", Default::default()).expect("partition");
        part.insert("k", "v").expect("insert");
        let syncer = Syncer::new(ks, dir);
        syncer.sync().expect("a healthy sync");
        (part, syncer)
    }

    #[test]
    fn the_active_journal_is_synced_through_its_own_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_part, syncer) = synced(dir.path());
        let (n, _) = syncer.open.lock().unwrap().take().expect("a journal was opened");
        assert_eq!(n, syncer.active().expect("the active journal"));
    }

    /// After fjall rotates its journal (a memtable sealed), the next sync finds and syncs the new one.
    #[test]
    fn a_rotated_journal_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (part, syncer) = synced(dir.path());
        let before = syncer.open.lock().unwrap().as_ref().map(|(n, _)| *n).expect("a journal was opened");
        assert!(part.inner().rotate_memtable().expect("rotate"), "the memtable was not rotated");
        part.insert("k2", "v2").expect("insert");
        syncer.sync().expect("a sync after the rotation");
        let after = syncer.open.lock().unwrap().as_ref().map(|(n, _)| *n).expect("a journal is open");
        assert_eq!(after, before + 1, "the sync did not move to the new journal");
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
