//! Thread-safe in-memory reference implementations of the backend traits.
//!
//! [`MemoryStore`] implements [`Store`](crate::store::Store) and [`MemoryQueue`] implements
//! [`QueueBackend`](crate::queue::QueueBackend), exactly as the traits document them, with nothing but
//! standard-library locks. They are what tests, examples and single-process deployments without
//! durability use, and the yardstick the conformance suite (`pop_core::testing`, feature `testing`) is
//! checked against.
//!
//! ```
//! use pop_core::memory::{MemoryQueue, MemoryStore};
//! use pop_core::model::{Customer, ReadyAgenda};
//! use pop_core::queue::QueueBackend;
//! use pop_core::store::StoreExt;
//!
//! # async fn demo() -> pop_core::Result<()> {
//! let store = MemoryStore::new();
//! let mut acme = Customer { id: Some("acme".into()), customer_id: Some("acme".into()), ..Default::default() };
//! store.create_obj(&mut acme).await?;
//! assert_eq!(acme.version, 1);
//!
//! let queue = MemoryQueue::new();
//! let item = ReadyAgenda { agenda_id: "a-1".into(), insight_id: "transcode".into(), ..Default::default() };
//! assert!(queue.push("transcode", item, 1_000).await?);
//! let leases = queue.receive("transcode", 10, 30_000, 1_000).await?;
//! queue.ack(&leases[0].token).await?;
//! # Ok(())
//! # }
//! ```

mod queue;
mod store;

pub use queue::MemoryQueue;
pub use store::MemoryStore;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `now + ttl_ms`, saturating instead of overflowing.
fn deadline(now: crate::model::Millis, ttl_ms: u64) -> crate::model::Millis {
    now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

// The state behind these locks is only changed by code that cannot panic half-way through an update,
// so a poisoned lock (a panic elsewhere while holding it) still guards consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
