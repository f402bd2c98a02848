//! Pulling leases: receive from the queue, mark the agendas EXECUTING (one batch for the pull when
//! nothing changed them since they were read), hand out the agenda with its progress.

use super::{AgendaLease, MAX_PULL, ResourcePoolService};
use pop_core::lifecycle::mark_started;
use pop_core::model::{Agenda, AgendaProgress, ProcessingState};
use pop_core::queue::{Lease, LeaseToken};
use pop_core::store::{StoreExt, update_op};
use pop_core::{Error, Result};

impl ResourcePoolService {
    /// [`Self::get_agendas`] for this instance's own workers, which need no authorization check (and
    /// so no read of the insight on every poll).
    pub(crate) async fn pull(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        let ctx = &self.ctx;
        ctx.signals.pulls.record(insight_id, ctx.now());
        let leases = ctx.queue.receive(insight_id, count.clamp(1, MAX_PULL), ctx.lease_ttl_ms(), ctx.now()).await?;
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let started = self.start_all(&leases).await;
        let mut out = Vec::with_capacity(leases.len());
        for (lease, result) in leases.into_iter().zip(started) {
            let agenda_id = lease.token.agenda_id.clone();
            match result {
                Ok(Some((agenda, progress))) => out.push(AgendaLease { lease, agenda, progress }),
                Ok(None) => {
                    if let Err(e) = ctx.queue.ack(&lease.token).await {
                        tracing::warn!(agenda_id, error = %e, "could not drop a finished or deleted agenda from the queue; it comes back when its lease expires");
                    }
                }
                Err(e) => {
                    tracing::warn!(agenda_id, error = %e, "could not start a leased agenda; releasing it");
                    if let Err(e) = ctx.queue.release(&lease.token, ctx.now()).await {
                        tracing::warn!(agenda_id, error = %e, "could not release the lease; the agenda comes back when it expires");
                    }
                }
            }
        }
        Ok(out)
    }

    /// Puts a pulled agenda back: its progress WAITING again with `reason` (after
    /// [`crate::worker::HELD_BACK`]) as its message, no attempt counted, then the queue item visible
    /// at once. `Conflict` when the lease is no longer the current one.
    pub(crate) async fn release_unstarted(&self, token: &LeaseToken, reason: &str) -> Result<()> {
        let ctx = &self.ctx;
        let agenda_id = &token.agenda_id;
        if let Some(agenda) = ctx.store.get_obj::<Agenda>(agenda_id).await? {
            if let Some(progress_id) = agenda.progress_id.as_deref() {
                loop {
                    let mut p: AgendaProgress = ctx.store.fetch(progress_id).await?;
                    if p.lease_epoch.is_some_and(|e| e > token.epoch) {
                        return Err(Error::Conflict(format!("agenda {agenda_id}: a newer lease exists")));
                    }
                    if p.processing_state != ProcessingState::Executing {
                        break;
                    }
                    p.processing_state = ProcessingState::Waiting;
                    p.processing_state_message = Some(format!("{}{reason}", crate::worker::HELD_BACK));
                    p.updated_time = Some(ctx.now());
                    match ctx.store.update_obj(&mut p).await {
                        Ok(()) => break,
                        Err(e) if e.is_conflict() => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        ctx.queue.release(token, ctx.now()).await.map_err(|e| super::lost(token, e))
    }

    /// Marks leased agendas EXECUTING: all of them in one atomic batch when nothing changed them since
    /// they were read (the common case: one write for a whole pull), otherwise each on its own.
    async fn start_all(&self, leases: &[Lease]) -> Vec<Result<Option<(Agenda, AgendaProgress)>>> {
        let ctx = &self.ctx;
        if leases.len() > 1 && leases.len() <= ctx.store.max_batch() {
            let loaded = futures_util::future::join_all(leases.iter().map(|l| self.load(l))).await;
            if loaded.iter().all(|r| matches!(r, Ok(Some(_)))) {
                let rows = leases.iter().zip(loaded.into_iter().flatten().flatten()).collect();
                match self.start_batch(rows).await {
                    Ok(started) => return started.into_iter().map(|s| Ok(Some(s))).collect(),
                    // (a conflict is an agenda changed since it was read, e.g. cancelled: expected)
                    Err(e) if e.is_conflict() => {
                        tracing::debug!(error = %e, "starting a pull in one batch failed; starting each on its own")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "starting a pull in one batch failed; starting each on its own")
                    }
                }
            }
        }
        // One at a time, concurrently (their writes share a group commit); each retries its own conflicts.
        futures_util::future::join_all(leases.iter().map(|l| self.start(l))).await
    }

    /// Marks every leased agenda EXECUTING in one batch, then reads their operation rows.
    async fn start_batch(
        &self,
        rows: Vec<(&Lease, (Agenda, AgendaProgress))>,
    ) -> Result<Vec<(Agenda, AgendaProgress)>> {
        let ctx = &self.ctx;
        let now = ctx.now();
        let mut started = Vec::with_capacity(rows.len());
        let mut writes = Vec::with_capacity(rows.len());
        for (lease, (agenda, mut p)) in rows {
            mark_started(&mut p, lease.token.epoch, now);
            writes.push(update_op(&mut p)?);
            started.push((agenda, p));
        }
        ctx.store.write(writes).await?;
        let ops = futures_util::future::join_all(started.iter().map(|(_, p)| self.operation_rows(p))).await;
        started
            .into_iter()
            .zip(ops)
            .map(|((agenda, mut p), ops)| {
                p.operation_progress = ops?;
                Ok((agenda, p))
            })
            .collect()
    }

    async fn operation_rows(&self, p: &AgendaProgress) -> Result<Vec<pop_core::model::OperationProgress>> {
        let id = p.id.as_deref().ok_or_else(|| Error::invalid("an agenda progress without an id"))?;
        self.ctx.operation_progress(id).await
    }

    /// A leased agenda and its progress, if it is still to run; `Conflict` if a newer lease exists.
    async fn load(&self, lease: &Lease) -> Result<Option<(Agenda, AgendaProgress)>> {
        let ctx = &self.ctx;
        let agenda_id = &lease.token.agenda_id;
        let Some(agenda) = ctx.store.get_obj::<Agenda>(agenda_id).await? else {
            tracing::warn!(agenda_id, "queued agenda no longer exists; dropped");
            return Ok(None);
        };
        let Some(progress_id) = agenda.progress_id.as_deref() else {
            tracing::warn!(agenda_id, "queued agenda has no progress id; dropped");
            return Ok(None);
        };
        let p: AgendaProgress = ctx.store.fetch(progress_id).await?;
        if p.processing_state == ProcessingState::Complete {
            tracing::info!(agenda_id, "queued agenda already complete; dropped");
            return Ok(None);
        }
        if p.lease_epoch.is_some_and(|e| e > lease.token.epoch) {
            return Err(Error::Conflict(format!("agenda {agenda_id}: a newer lease exists")));
        }
        Ok(Some((agenda, p)))
    }

    /// Marks one leased agenda EXECUTING, retrying its own conflicts.
    async fn start(&self, lease: &Lease) -> Result<Option<(Agenda, AgendaProgress)>> {
        let ctx = &self.ctx;
        loop {
            let Some((agenda, mut p)) = self.load(lease).await? else { return Ok(None) };
            mark_started(&mut p, lease.token.epoch, ctx.now());
            match ctx.store.update_obj(&mut p).await {
                Ok(()) => {
                    p.operation_progress = self.operation_rows(&p).await?;
                    return Ok(Some((agenda, p)));
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
