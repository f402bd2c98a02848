//! The whole `pop_core::testing` conformance suite against sled, in two durability configurations:
//! sled's background flush and group commit (every mutating call waits for a flush), both on
//! temporary databases (sled puts those on /dev/shm when it exists, so no test leaves files behind).

use pop_store_sled::{Config, FlushPolicy, SledStore};
use std::sync::Arc;

/// A temporary database whose writes wait for the group-commit flusher.
fn durable() -> pop_core::Result<SledStore> {
    SledStore::open(Config::temporary().flush_policy(FlushPolicy::GroupCommit { max_delay_ms: 1 }))
}

mod temporary {
    use super::*;
    pop_core::store_conformance!(async { SledStore::temporary().map(Arc::new) });
    pop_core::queue_conformance!(async { SledStore::temporary().map(|s| Arc::new(s.queue())) });
}

mod group_commit {
    use super::*;
    pop_core::store_conformance!(async { durable().map(Arc::new) });
    pop_core::queue_conformance!(async { durable().map(|s| Arc::new(s.queue())) });
}
