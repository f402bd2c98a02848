//! The conformance suite run against the in-memory reference backends.

use pop_core::memory::{MemoryQueue, MemoryStore};
use std::sync::Arc;

pop_core::store_conformance!(async { Arc::new(MemoryStore::new()) });
pop_core::queue_conformance!(async { Arc::new(MemoryQueue::new()) });

/// The suite again with DynamoDB's batch limit, so `batch_over_max_batch_is_unsupported` also runs
/// at 100 and everything else still passes with a small limit.
mod dynamo_sized {
    use super::*;
    pop_core::store_conformance!(async { Arc::new(MemoryStore::with_max_batch(100)) });
}
