//! What the services and loops of one engine share: the backends, the scheduling algorithms, the
//! configuration, the clock, and the signals they send each other.
//!
//! Nothing here is a loop's private state: the scheduler keeps its weight cache and leases, the timed
//! processes their counters, the engine its task handles. A [`Ctx`] is read-only after construction
//! but for the signals.

use crate::alerts::Alerts;
use crate::config::PopConfig;
use crate::signals::Signals;
use pop_core::Result;
use pop_core::clock::Clock;
use pop_core::model::{AgendaProgress, Insight, Millis, OperationProgress};
use pop_core::queue::QueueBackend;
use pop_core::runtime::PodRuntime;
use pop_core::store::{IndexField, Kind, PageRequest, Store, StoreExt, WriteOp};
use std::sync::Arc;

/// The shared dependencies of an engine's services and loops.
pub(crate) struct Ctx {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn QueueBackend>,
    pub runtime: Arc<dyn PodRuntime>,
    pub algorithms: pop_sched::Registry,
    pub config: PopConfig,
    pub clock: Arc<dyn Clock>,
    pub signals: Arc<Signals>,
    /// Where alerts are raised (a no-op without a sink).
    pub alerts: Alerts,
    /// Agenda costs recorded since the last flush (see [`crate::costs`]).
    pub costs: crate::costs::CostLedger,
}

impl Ctx {
    /// Now, from the engine's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The lease time-to-live in milliseconds.
    pub fn lease_ttl_ms(&self) -> u64 {
        self.config.lease_ttl.as_millis() as u64
    }

    /// Every insight, read page by page.
    pub async fn insights(&self) -> Result<Vec<Insight>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.scan(Kind::Insight, PageRequest { limit: 500, cursor }).await?;
            for r in &page.items {
                out.push(pop_core::store::from_record::<Insight>(r)?);
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Writes atomically when the store allows a batch this large; otherwise in chunks, in the given
    /// order (callers put what must come last, last: the ready entry after the rows, so a crash leaves
    /// no queued agenda without its rows).
    pub async fn write_ordered(&self, writes: Vec<WriteOp>) -> Result<()> {
        let max = self.store.max_batch().max(1);
        if writes.len() <= max {
            return self.store.write(writes).await;
        }
        let mut writes = writes;
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(max));
            self.store.write(std::mem::replace(&mut writes, rest)).await?;
        }
        Ok(())
    }

    /// An agenda progress with its operation progress joined.
    pub async fn progress_full(&self, progress_id: &str) -> Result<AgendaProgress> {
        let mut p: AgendaProgress = self.store.fetch(progress_id).await?;
        p.operation_progress = self.operation_progress(progress_id).await?;
        Ok(p)
    }

    /// The operation progress of an agenda progress, in the order the operations were added.
    pub async fn operation_progress(&self, progress_id: &str) -> Result<Vec<OperationProgress>> {
        let mut ops: Vec<OperationProgress> = self.store.query_all(IndexField::AgendaProgressId, progress_id).await?;
        ops.sort_by(|a, b| a.added_time.cmp(&b.added_time).then_with(|| a.id.cmp(&b.id)));
        Ok(ops)
    }
}
