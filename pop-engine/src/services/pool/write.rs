//! The one path by which an executor's progress reaches the store.
//!
//! The executor's state machine tracks what changed (its dirty set) and reports the agenda's progress
//! with the changed operation rows. Here, under the lease:
//!
//! 1. the lease is extended when less than half of it is left (and so checked);
//! 2. the stored agenda progress (cached from this lease's last write, else read) is fenced: a newer
//!    epoch or a finished (cancelled) agenda refuses the write with `Conflict`;
//! 3. the report is merged into it by [`pop_core::lifecycle::apply_report`], the reported rows are
//!    checked to belong to this agenda ([`pop_core::lifecycle::check_reported_row`]);
//! 4. the rows are upserted together with the agenda progress's compare-and-set in one atomic batch,
//!    so the fence covers them (a store that caps batches gets the progress first, then the rows).
//!
//! Nothing here diffs rows: a row is written because the machine says it changed. A heartbeat with
//! nothing to report reads the progress instead of writing (so a cancel made elsewhere still stops the
//! executor), except that a progress untouched for half a lease is rewritten: its `updatedTime` is
//! how the repair pass tells a live execution from a lost one; and the first report after the pull
//! (an executor's "executing", which the pull already wrote) neither reads nor writes.

use super::{ResourcePoolService, lost};
use pop_core::lifecycle::{self, apply_report, check_reported_row, finished_reason};
use pop_core::model::{Agenda, AgendaProgress, Millis, Operation, OperationProgress, Params, ProcessingState};
use pop_core::queue::LeaseToken;
use pop_core::store::{StoreExt, put_op, update_op};
use pop_core::{Error, Result};

/// What a writer knows of its lease between writes: the lease's deadline (after its last extension)
/// and, in this process, the agenda progress as last written under the lease (so it is not read
/// again). A remote pool keeps only the deadline it was last given; the server then reads the
/// progress on each write.
#[derive(Debug, Clone, Default)]
pub struct LeaseState {
    deadline: Option<Millis>,
    stored: Option<AgendaProgress>,
    /// `stored` is what the pull itself wrote, and no report came since: the first report with
    /// nothing to write (an executor's "executing") need not read it again.
    just_pulled: bool,
}

impl LeaseState {
    /// The state of a lease whose deadline is known (a remote pool's).
    pub fn with_deadline(deadline: Option<Millis>) -> Self {
        Self { deadline, stored: None, just_pulled: false }
    }

    /// The state of a lease just pulled: its deadline and the progress the pull returned (without its
    /// operation rows, which the executor takes over).
    pub fn started(deadline: Millis, mut progress: AgendaProgress) -> Self {
        progress.operation_progress = Vec::new();
        Self { deadline: Some(deadline), stored: Some(progress), just_pulled: true }
    }

    /// The lease's deadline after the last extension, if known.
    pub fn deadline(&self) -> Option<Millis> {
        self.deadline
    }
}

/// One agenda's final write, for [`crate::PoolApi::finish_many`]: what [`crate::PoolApi::finish`]
/// takes, owned.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The lease.
    pub token: LeaseToken,
    /// What the writer knows of the lease.
    pub state: LeaseState,
    /// The final (COMPLETE) progress.
    pub progress: AgendaProgress,
    /// The operation rows that changed since the previous write.
    pub rows: Vec<OperationProgress>,
}

impl ResourcePoolService {
    /// Extends the lease when less than half of it is left (or its deadline is unknown).
    async fn keep_lease(&self, token: &LeaseToken, state: &mut LeaseState) -> Result<()> {
        let ctx = &self.ctx;
        let ttl = ctx.lease_ttl_ms() as i64;
        if state.deadline.is_none_or(|d| ctx.now() + ttl / 2 >= d) {
            let deadline = ctx.queue.extend(token, ttl as u64, ctx.now()).await.map_err(|e| lost(token, e))?;
            state.deadline = Some(deadline);
        }
        Ok(())
    }

    /// The stored agenda progress for a write under `token`, fenced: `Conflict` when a newer epoch wrote
    /// it or the agenda is finished; `Forbidden` when the progress is not this agenda's.
    async fn fenced(
        &self,
        token: &LeaseToken,
        progress_id: &str,
        cached: Option<AgendaProgress>,
    ) -> Result<AgendaProgress> {
        let agenda_id = &token.agenda_id;
        let stored = match cached {
            Some(s) if s.id.as_deref() == Some(progress_id) => s,
            _ => self.ctx.store.fetch(progress_id).await?,
        };
        if stored.agenda_id.as_deref() != Some(agenda_id.as_str()) {
            return Err(Error::Forbidden(format!("progress {progress_id} does not belong to agenda {agenda_id}")));
        }
        if let Some(e) = stored.lease_epoch.filter(|e| *e > token.epoch) {
            return Err(Error::Conflict(format!(
                "agenda {agenda_id}: lease epoch {} is stale (progress was written by epoch {e})",
                token.epoch
            )));
        }
        if stored.processing_state == ProcessingState::Complete {
            return Err(Error::Conflict(format!("agenda {agenda_id} {}; progress refused", finished_reason(&stored))));
        }
        Ok(stored)
    }

    /// Writes an executor's report under the lease (see the module docs).
    pub(crate) async fn write_progress(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        report: &AgendaProgress,
        rows: &[OperationProgress],
    ) -> Result<()> {
        let ctx = &self.ctx;
        self.keep_lease(token, state).await?;
        let progress_id = report.id.as_deref().ok_or_else(|| Error::invalid("a progress report without its id"))?;
        let half_lease = ctx.lease_ttl_ms() as i64 / 2;
        let just_pulled = std::mem::take(&mut state.just_pulled);
        loop {
            let cached = state.stored.take();
            let from_cache = cached.is_some();
            let mut stored = self.fenced(token, progress_id, cached).await?;
            for row in rows {
                check_reported_row(row, &stored)?;
            }
            let now = ctx.now();
            let fresh = stored.updated_time.is_some_and(|t| now - t < half_lease);
            let applied = apply_report(&mut stored, report, token.epoch, now);
            if rows.is_empty() && !applied.changed && fresh {
                if from_cache && !just_pulled {
                    // Nothing to write (a heartbeat): read the progress instead, so that a cancel or a
                    // newer lease made elsewhere stops this executor as a write would. (Not for the
                    // first report after the pull, which read and wrote the progress moments ago: a
                    // cancel since is seen at the next write or heartbeat.)
                    continue;
                }
                state.stored = Some(stored);
                return Ok(());
            }
            stored.updated_time = Some(now);
            // The progress's compare-and-set first: when the store splits the batch, the fence is
            // checked before any row is written.
            let mut writes = Vec::with_capacity(rows.len() + 1);
            writes.push(update_op(&mut stored)?);
            for row in rows {
                writes.push(put_op(row)?);
            }
            match ctx.write_ordered(writes).await {
                Ok(()) => {
                    state.stored = Some(stored);
                    return Ok(());
                }
                // Changed meanwhile (a cancel, a reclaim): read again and decide.
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the final report and acknowledges the lease.
    pub(crate) async fn finish(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        report: &AgendaProgress,
        rows: &[OperationProgress],
    ) -> Result<()> {
        if report.processing_state != ProcessingState::Complete {
            return Err(Error::invalid(format!(
                "agenda {}: a final progress must be COMPLETE, got {}",
                token.agenda_id, report.processing_state
            )));
        }
        self.write_progress(token, state, report, rows).await?;
        self.finished(token, state).await;
        self.ctx.queue.ack(token).await.map_err(|e| lost(token, e))?;
        self.ctx.signals.wake.notify_waiters();
        Ok(())
    }

    /// What follows a final write: the agenda's cost, an alert when it failed for good.
    async fn finished(&self, token: &LeaseToken, state: &LeaseState) {
        if let Some(stored) = &state.stored {
            let cost = stored.cost_ms.or_else(|| {
                let (s, c) = (stored.started_time?, stored.completed_time?);
                Some((c - s).max(0) as u64)
            });
            if let (Some(customer), Some(cost)) = (stored.customer_id.as_deref(), cost) {
                self.ctx.costs.record(&token.insight_id, customer, cost);
            }
            crate::alerts::agenda_finished(&self.ctx, stored).await;
        }
    }

    /// Group completion: the final progress of every agenda of `batch` (with its changed rows) in one
    /// atomic store batch, then every lease acked in one queue call ([`QueueBackend::ack_many`]) —
    /// one durable write of each kind for the batch instead of two per agenda. Each agenda is fenced
    /// as [`Self::finish`] fences it (lease kept, epoch and state checked, its progress written by
    /// compare-and-set): one that fails a check fails alone, and when the batch write fails (an
    /// agenda changed since its last write, e.g. cancelled) every agenda of it is finished on its
    /// own, as [`Self::finish`] does. The progress is durable before its lease is acked.
    ///
    /// [`QueueBackend::ack_many`]: pop_core::queue::QueueBackend::ack_many
    pub(crate) async fn finish_many(&self, mut batch: Vec<Finish>) -> Vec<Result<()>> {
        let ctx = &self.ctx;
        if batch.len() <= 1 {
            let mut out = Vec::with_capacity(1);
            for f in &mut batch {
                out.push(self.finish(&f.token, &mut f.state, &f.progress, &f.rows).await);
            }
            return out;
        }
        let mut results: Vec<Option<Result<()>>> = batch.iter().map(|_| None).collect();
        // Each agenda's checks and writes; the progress written replaces the cached one only once
        // the batch is durable.
        let mut prepared: Vec<(usize, AgendaProgress)> = Vec::with_capacity(batch.len());
        let mut writes = Vec::new();
        for (i, f) in batch.iter_mut().enumerate() {
            match self.prepare_final(f).await {
                Ok((stored, ops)) => {
                    prepared.push((i, stored));
                    writes.extend(ops);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let in_one = !prepared.is_empty() && writes.len() <= ctx.store.max_batch();
        let written = if in_one {
            match ctx.store.write(writes).await {
                Ok(()) => true,
                // refused as a whole (e.g. one agenda was cancelled since its last write): each on its own
                Err(e) if crate::context::refused(&e) => {
                    tracing::debug!(error = %e, agendas = prepared.len(), "finishing a batch in one write was refused; finishing each on its own");
                    false
                }
                // the outcome is unknown: no ack (the leases expire and recovery decides)
                Err(e) => {
                    for (i, _) in &prepared {
                        results[*i] = Some(Err(e.copied()));
                    }
                    return results
                        .into_iter()
                        .map(|r| r.unwrap_or_else(|| Err(Error::invalid("a finish left without an outcome"))))
                        .collect();
                }
            }
        } else {
            false
        };
        if !written {
            for (i, _) in prepared {
                let f = &mut batch[i];
                results[i] = Some(self.finish(&f.token, &mut f.state, &f.progress, &f.rows).await);
            }
        } else {
            let mut tokens = Vec::with_capacity(prepared.len());
            for (i, stored) in &prepared {
                let f = &mut batch[*i];
                f.state.stored = Some(stored.clone());
                self.finished(&f.token, &f.state).await;
                tokens.push(f.token.clone());
            }
            let acked = ctx.queue.ack_many(&tokens).await;
            for ((i, _), (r, token)) in prepared.iter().zip(acked.into_iter().zip(&tokens)) {
                results[*i] = Some(r.map_err(|e| lost(token, e)));
            }
        }
        ctx.signals.wake.notify_waiters();
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invalid("a finish left without an outcome"))))
            .collect()
    }

    /// One agenda's final write for a batch, checked as [`Self::write_progress`] checks it: the
    /// progress as it will be stored and the writes (its compare-and-set first, then the rows).
    /// `f.state` keeps the progress as it was cached, for a finish on its own if the batch fails.
    async fn prepare_final(&self, f: &mut Finish) -> Result<(AgendaProgress, Vec<pop_core::store::WriteOp>)> {
        let (token, report) = (&f.token, &f.progress);
        if report.processing_state != ProcessingState::Complete {
            return Err(Error::invalid(format!(
                "agenda {}: a final progress must be COMPLETE, got {}",
                token.agenda_id, report.processing_state
            )));
        }
        self.keep_lease(token, &mut f.state).await?;
        let progress_id = report.id.as_deref().ok_or_else(|| Error::invalid("a progress report without its id"))?;
        let mut stored = self.fenced(token, progress_id, f.state.stored.clone()).await?;
        for row in &f.rows {
            check_reported_row(row, &stored)?;
        }
        let now = self.ctx.now();
        apply_report(&mut stored, report, token.epoch, now);
        stored.updated_time = Some(now);
        let mut writes = Vec::with_capacity(f.rows.len() + 1);
        writes.push(update_op(&mut stored)?);
        for row in &f.rows {
            writes.push(put_op(row)?);
        }
        Ok((stored, writes))
    }

    /// Adds generated operations (idempotent by name) and params to the agenda under the lease, with
    /// their WAITING progress rows.
    pub(crate) async fn append(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<Agenda> {
        let ctx = &self.ctx;
        self.keep_lease(token, state).await?;
        loop {
            let mut agenda: Agenda = ctx.store.fetch(&token.agenda_id).await?;
            let new: Vec<Operation> =
                operations.iter().filter(|o| agenda.operation(&o.name).is_none()).cloned().collect();
            if new.is_empty() && params.is_none() {
                return Ok(agenda);
            }
            pop_core::validate::validate_generated(&agenda.operations, &new, &ctx.config.validation)?;
            let progress_id = agenda
                .progress_id
                .clone()
                .ok_or_else(|| Error::invalid(format!("agenda {} has no progress id", token.agenda_id)))?;
            let now = ctx.now();
            let mut writes = Vec::with_capacity(new.len() + 1);
            for op in &new {
                // (an upsert: a leftover row of a name the agenda no longer has is replaced)
                writes.push(put_op(&lifecycle::new_operation_progress(&agenda, &progress_id, op, now))?);
            }
            agenda.operations.extend(new);
            if let Some(p) = params {
                lifecycle::merge_params(agenda.params.get_or_insert_with(Params::new), p);
            }
            agenda.updated_time = Some(now);
            writes.push(update_op(&mut agenda)?);
            match ctx.write_ordered(writes).await {
                Ok(()) => return Ok(agenda),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
