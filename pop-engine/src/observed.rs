//! A memory store that records what the engine asks of it, for the engine's own tests.

use pop_core::memory::MemoryStore;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, Record, Store, WriteOp};
use pop_core::{Error, Result};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A [`MemoryStore`] that records the kind of every object read, counts batch writes (more than one
/// operation), and refuses the next batch when told to.
#[derive(Default)]
pub(crate) struct Observed {
    pub inner: MemoryStore,
    /// The kind of each `get`, in order.
    pub reads: Mutex<Vec<Kind>>,
    /// Writes of more than one operation.
    pub batches: AtomicUsize,
    /// Refuse the next batch write with `Conflict`.
    pub refuse_next_batch: AtomicBool,
}

#[async_trait::async_trait]
impl Store for Observed {
    fn backend_name(&self) -> &'static str {
        "observed"
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        self.reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(kind);
        self.inner.get(kind, id).await
    }
    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.len() > 1 {
            self.batches.fetch_add(1, Ordering::SeqCst);
            if self.refuse_next_batch.swap(false, Ordering::SeqCst) {
                return Err(Error::Conflict("refused by the test".into()));
            }
        }
        self.inner.write(ops).await
    }
    async fn query(&self, kind: Kind, field: IndexField, value: &str, page: PageRequest) -> Result<Page<Record>> {
        self.inner.query(kind, field, value, page).await
    }
    async fn scan(&self, kind: Kind, page: PageRequest) -> Result<Page<Record>> {
        self.inner.scan(kind, page).await
    }
    async fn ready_get(&self, agenda_id: &str) -> Result<Option<ReadyAgenda>> {
        self.inner.ready_get(agenda_id).await
    }
    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>> {
        self.inner.ready_list(insight_id, page).await
    }
    async fn ready_heads(&self, insight_id: &str, per_run: usize, limit: usize) -> Result<Vec<ReadyAgenda>> {
        self.inner.ready_heads(insight_id, per_run, limit).await
    }
    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool> {
        self.inner.lease_acquire(name, holder, ttl_ms, now).await
    }
    async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.lease_release(name, holder).await
    }
    async fn query_phase(
        &self,
        kind: Kind,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> Result<Page<Record>> {
        self.inner.query_phase(kind, phase, at, page).await
    }
}
