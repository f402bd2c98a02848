//! Carrying out the [`FlushPolicy`] with `pop-store-kv`'s group commit: sled's flush, then an
//! `fdatasync` of its data file.

use crate::config::FlushPolicy;
use crate::error::SledError;
use pop_store_kv::durability::{DurabilityError, Policy};
use std::sync::Arc;

/// sled's flush, then an `fdatasync` of its data file.
///
/// On Linux, sled 0.34's flush writes its log buffers with `sync_file_range`, which waits for the
/// pages to be written but neither commits the file's metadata (its growth) nor flushes the disk's
/// write cache: enough for a process crash, not for a power loss. The `fdatasync` on the data file
/// makes the flush a real one.
pub(crate) struct Syncer {
    db: sled::Db,
    /// sled's data file (`<dir>/db`); `None` for a temporary database.
    file: Option<std::fs::File>,
}

impl Syncer {
    pub(crate) fn new(db: sled::Db, dir: Option<&std::path::Path>) -> Result<Arc<Self>, SledError> {
        let file = match dir {
            Some(dir) => {
                let path = dir.join("db");
                let f = std::fs::File::open(&path)
                    .map_err(|e| SledError::Flush(format!("cannot open sled's data file {}: {e}", path.display())))?;
                Some(f)
            }
            None => None,
        };
        Ok(Arc::new(Self { db, file }))
    }
}

impl pop_store_kv::durability::Syncer for Syncer {
    fn sync(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| SledError::sled("flush the sled log", e).to_string())?;
        if let Some(f) = &self.file {
            f.sync_data().map_err(|e| format!("fdatasync of sled's data file: {e}"))?;
        }
        Ok(())
    }
}

/// The group-commit policy of a flush policy (sled's own background flush waits for nothing).
pub(crate) fn policy(p: FlushPolicy) -> Policy {
    match p {
        FlushPolicy::FlushEveryWrite => Policy::EveryWrite,
        FlushPolicy::GroupCommit { max_delay_ms } => Policy::Group { max_delay_ms },
        FlushPolicy::Background { .. } => Policy::None,
    }
}

impl From<DurabilityError> for SledError {
    fn from(e: DurabilityError) -> Self {
        match e {
            DurabilityError::Failed(msg) => SledError::Flush(msg),
            DurabilityError::Stalled { for_secs, timeout_secs } => SledError::Stalled { for_secs, timeout_secs },
        }
    }
}

/// A durability error as a core error.
pub(crate) fn core_err(e: DurabilityError) -> pop_core::Error {
    SledError::from(e).into()
}
