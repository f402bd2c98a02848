//! Wiring of the embedded default backends.

use pop_core::Result;
use pop_core::queue::QueueBackend;
use pop_core::store::Store;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the sled store and queue in `path`, sharing one database.
pub(crate) fn open_sled(path: &Path) -> Result<(Arc<dyn Store>, Arc<dyn QueueBackend>)> {
    let (store, queue) = pop_store_sled::open_both(pop_store_sled::Config::new(path))?;
    Ok((Arc::new(store), Arc::new(queue)))
}
