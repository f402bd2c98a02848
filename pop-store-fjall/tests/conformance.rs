//! The whole `pop_core::testing` conformance suite against fjall, in two durability configurations:
//! no waits, and group commit (every mutating call waits for a sync of the journal).

use pop_store_fjall::{Config, FjallStore, FlushPolicy};
use std::sync::Arc;

/// A temporary database whose writes wait for the group-commit sync.
fn durable() -> pop_core::Result<FjallStore> {
    FjallStore::open(Config::temporary().flush_policy(FlushPolicy::GroupCommit { max_delay_ms: 1 }))
}

mod temporary {
    use super::*;
    pop_core::store_conformance!(async { FjallStore::temporary().map(Arc::new) });
    pop_core::queue_conformance!(async { FjallStore::temporary().map(|s| Arc::new(s.queue())) });
}

mod group_commit {
    use super::*;
    pop_core::store_conformance!(async { durable().map(Arc::new) });
    pop_core::queue_conformance!(async { durable().map(|s| Arc::new(s.queue())) });
}
