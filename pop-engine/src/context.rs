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
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

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
    /// Writes waiting for [`Ctx::write_grouped`]'s next batch.
    pub grouped: Mutex<Grouped>,
}

/// The writes [`Ctx::write_grouped`] holds for its next batch, and whether a task is writing them.
#[derive(Default)]
pub(crate) struct Grouped {
    pending: Vec<(Vec<WriteOp>, oneshot::Sender<Result<()>>)>,
    draining: bool,
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

    /// Writes `writes` atomically, in one store batch with the writes of other callers that arrive
    /// meanwhile (group write: one task writes whatever is waiting when its previous batch returns,
    /// so many concurrent callers, e.g. submitters, share one transaction and one durable wait).
    /// Each caller's writes stay atomic and in order, and its `Ok` comes only after the batch holding
    /// them is written (durably, as the store promises). When a batch fails, each caller's writes are
    /// written again on their own, so that a caller fails only for its own writes. Writes too large
    /// to share a batch go through [`Ctx::write_ordered`].
    pub async fn write_grouped(self: &Arc<Self>, writes: Vec<WriteOp>) -> Result<()> {
        let max = self.store.max_batch().max(1);
        if writes.len() * 2 > max {
            return self.write_ordered(writes).await;
        }
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut g = self.grouped.lock().unwrap_or_else(PoisonError::into_inner);
            g.pending.push((writes, tx));
            !std::mem::replace(&mut g.draining, true)
        };
        if start {
            let ctx = self.clone();
            tokio::spawn(async move { ctx.drain_grouped().await });
        }
        rx.await.map_err(|_| {
            pop_core::Error::backend("engine", "the group write task stopped before writing (the outcome is unknown)")
        })?
    }

    /// Writes the waiting groups batch by batch until none is left.
    async fn drain_grouped(&self) {
        let max = self.store.max_batch().max(1);
        loop {
            let batch = {
                let mut g = self.grouped.lock().unwrap_or_else(PoisonError::into_inner);
                if g.pending.is_empty() {
                    g.draining = false;
                    return;
                }
                let mut total = 0;
                let mut n = 0;
                for (w, _) in &g.pending {
                    if n > 0 && total + w.len() > max {
                        break;
                    }
                    total += w.len();
                    n += 1;
                }
                g.pending.drain(..n).collect::<Vec<_>>()
            };
            if batch.len() == 1 {
                let Some((writes, reply)) = batch.into_iter().next() else { continue };
                let _ = reply.send(self.store.write(writes).await);
                continue;
            }
            let all: Vec<WriteOp> = batch.iter().flat_map(|(w, _)| w.iter().cloned()).collect();
            match self.store.write(all).await {
                Ok(()) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Ok(()));
                    }
                }
                // Refused as a whole (a condition failed: nothing was written): each on its own.
                Err(e) if refused(&e) => {
                    tracing::debug!(error = %e, callers = batch.len(), "a group write was refused; writing each caller's writes on its own");
                    for (writes, reply) in batch {
                        let _ = reply.send(self.store.write(writes).await);
                    }
                }
                // Otherwise (the disk, the network) the outcome is unknown: every caller is told.
                Err(e) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(e.copied()));
                    }
                }
            }
        }
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

/// Whether a failed atomic write was refused before anything was written (a condition or the
/// input), as opposed to failing in the backend with an unknown outcome.
pub(crate) fn refused(e: &pop_core::Error) -> bool {
    use pop_core::Error;
    matches!(
        e,
        Error::Conflict(_) | Error::NotFound { .. } | Error::Invalid(_) | Error::Unsupported(_) | Error::Corrupt { .. }
    )
}
