//! Resource-pool services: what a pool worker (in this process or, later, over HTTP) calls.
//!
//! Every call after `get_agendas` carries the lease's [`LeaseToken`]; a call whose lease is no longer
//! current (another worker received the agenda since) or whose epoch is older than the one the
//! progress was last written with is refused with `Conflict`, so a zombie executor can change nothing.

use super::forbidden;
use crate::instance::Inner;
use crate::services::agenda_internals::{new_operation_progress, write_ordered};
use pop_core::authz::Principal;
use pop_core::model::{
    Agenda, AgendaProgress, Conclusion, Insight, Operation, OperationProgress, Params, ProcessingState,
    RUNNING_OPERATIONS,
};
use pop_core::queue::{Lease, LeaseToken};
use pop_core::store::{StoreExt, create_op, update_op};
use pop_core::visibility::owns;
use pop_core::{Error, Problem, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An agenda handed to a pool worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgendaLease {
    /// The lease (token, item, deadline).
    pub lease: Lease,
    /// The agenda.
    pub agenda: Agenda,
    /// Its progress with operation progress (prior attempts' outcomes for resume).
    pub progress: AgendaProgress,
}

/// Resource-pool services.
#[derive(Clone)]
pub struct ResourcePoolService {
    pub(crate) inner: Arc<Inner>,
}

impl ResourcePoolService {
    async fn check_insight(&self, principal: &Principal, insight_id: &str) -> Result<Insight> {
        let insight: Insight =
            self.inner.store.get_obj(insight_id).await?.ok_or_else(|| Error::not_found("insight", insight_id))?;
        if !owns(principal, &insight) {
            return Err(forbidden(principal, &format!("pull from insight {insight_id}")));
        }
        Ok(insight)
    }

    /// Leases up to `count` agendas of an insight and marks them EXECUTING. Agendas that were deleted or
    /// already finished (cancelled while queued) are dropped from the queue instead.
    pub async fn get_agendas(&self, principal: &Principal, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        if count == 0 || count > 100 {
            return Err(Error::problems(vec![
                Problem::new(format!("count must be 1..=100, got {count}")).field("count"),
            ]));
        }
        self.check_insight(principal, insight_id).await?;
        let inner = &self.inner;
        let ttl = inner.config.lease_ttl.as_millis() as u64;
        let leases = inner.queue.receive(insight_id, count, ttl, inner.now()).await?;
        let mut out = Vec::with_capacity(leases.len());
        // Starting the leased agendas runs concurrently (their writes share a group commit).
        let started = futures_util::future::join_all(leases.iter().map(|l| self.start(l))).await;
        for (lease, result) in leases.into_iter().zip(started) {
            match result {
                Ok(Some((agenda, progress))) => out.push(AgendaLease { lease, agenda, progress }),
                Ok(None) => {
                    let _ = inner.queue.ack(&lease.token).await;
                }
                Err(e) => {
                    tracing::warn!(agenda_id = %lease.token.agenda_id, error = %e, "could not start a leased agenda; releasing it");
                    let _ = inner.queue.release(&lease.token, inner.now()).await;
                }
            }
        }
        Ok(out)
    }

    async fn start(&self, lease: &Lease) -> Result<Option<(Agenda, AgendaProgress)>> {
        let inner = &self.inner;
        let agenda_id = &lease.token.agenda_id;
        let Some(agenda) = inner.store.get_obj::<Agenda>(agenda_id).await? else {
            tracing::warn!(agenda_id, "queued agenda no longer exists; dropped");
            return Ok(None);
        };
        let Some(progress_id) = agenda.progress_id.clone() else { return Ok(None) };
        loop {
            let mut p: AgendaProgress = inner.store.fetch(&progress_id).await?;
            if p.processing_state == ProcessingState::Complete {
                tracing::info!(agenda_id, "queued agenda already complete; dropped");
                return Ok(None);
            }
            if p.lease_epoch.is_some_and(|e| e > lease.token.epoch) {
                return Err(Error::Conflict(format!("agenda {agenda_id}: a newer lease exists")));
            }
            let now = inner.now();
            p.processing_state = ProcessingState::Executing;
            p.processing_state_message = Some(RUNNING_OPERATIONS.into());
            p.started_time = Some(now);
            p.updated_time = Some(now);
            p.lease_epoch = Some(lease.token.epoch);
            match inner.store.update_obj(&mut p).await {
                Ok(()) => {
                    let full = inner.progress_full(&progress_id).await?;
                    return Ok(Some((agenda, full)));
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Extends the lease; `Conflict` when it is no longer held.
    pub async fn heartbeat(&self, principal: &Principal, token: &LeaseToken) -> Result<i64> {
        self.check_insight(principal, &token.insight_id).await?;
        let inner = &self.inner;
        inner
            .queue
            .extend(token, inner.config.lease_ttl.as_millis() as u64, inner.now())
            .await
            .map_err(|e| lost(token, e))
    }

    /// Writes progress (the agenda's and the changed operations'), fenced by the lease.
    pub async fn update_progress(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        self.check_insight(principal, &token.insight_id).await?;
        self.write_progress(token, progress, operations).await
    }

    pub(crate) async fn write_progress(
        &self,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        let inner = &self.inner;
        inner
            .queue
            .extend(token, inner.config.lease_ttl.as_millis() as u64, inner.now())
            .await
            .map_err(|e| lost(token, e))?;
        let agenda_id = &token.agenda_id;
        let progress_id = progress.id.clone().ok_or_else(|| Error::invalid("progress update without an id"))?;
        loop {
            let mut stored: AgendaProgress = inner.store.fetch(&progress_id).await?;
            if stored.agenda_id.as_deref() != Some(agenda_id.as_str()) {
                return Err(Error::Forbidden(format!("progress {progress_id} does not belong to agenda {agenda_id}")));
            }
            if stored.lease_epoch.is_some_and(|e| e > token.epoch) {
                return Err(Error::Conflict(format!(
                    "agenda {agenda_id}: lease epoch {} is stale (progress was written by epoch {})",
                    token.epoch,
                    stored.lease_epoch.unwrap_or_default()
                )));
            }
            if stored.processing_state == ProcessingState::Complete {
                let why = match stored.conclusion() {
                    Some(Conclusion::Cancelled) => "was cancelled",
                    _ => "is already complete",
                };
                return Err(Error::Conflict(format!("agenda {agenda_id} {why}; progress refused")));
            }
            let now = inner.now();
            let completing = progress.processing_state == ProcessingState::Complete;
            stored.processing_state = progress.processing_state;
            stored.processing_state_message = progress.processing_state_message.clone();
            stored.percent_complete = progress.percent_complete;
            stored.diagnostic_events = progress.diagnostic_events.clone();
            if progress.started_time.is_some() {
                stored.started_time = progress.started_time;
            }
            stored.completed_time = if completing { progress.completed_time.or(Some(now)) } else { None };
            if let Some(params) = &progress.params {
                let merged = stored.params.get_or_insert_with(Params::new);
                for (k, v) in params {
                    merged.insert(k.clone(), v.clone());
                }
            }
            if completing {
                stored.attempts_completed += 1;
            }
            stored.lease_epoch = Some(token.epoch);
            stored.updated_time = Some(now);
            let mut writes = Vec::with_capacity(operations.len() + 1);
            for op in operations {
                let name = op.operation.clone().unwrap_or_default();
                let id = OperationProgress::make_id(&progress_id, &name);
                let mut row = op.clone();
                row.id = Some(id.clone());
                row.agenda_progress_id = Some(progress_id.clone());
                row.customer_id = stored.customer_id.clone();
                row.cid = stored.cid.clone();
                row.updated_time = Some(now);
                match inner.store.get_obj::<OperationProgress>(&id).await? {
                    Some(existing) => {
                        row.version = existing.version;
                        row.added_time = existing.added_time;
                        writes.push(update_op(&mut row)?);
                    }
                    None => {
                        row.added_time = Some(now);
                        writes.push(create_op(&mut row)?);
                    }
                }
            }
            writes.push(update_op(&mut stored)?);
            match write_ordered(inner, writes).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds operations generated at run time to the agenda (idempotent by name), merges `params` into the
    /// agenda and its progress, and creates their WAITING progress rows.
    pub async fn append_operations(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        operations: Vec<Operation>,
        params: Option<Params>,
    ) -> Result<Agenda> {
        self.check_insight(principal, &token.insight_id).await?;
        self.append(token, operations, params).await
    }

    pub(crate) async fn append(
        &self,
        token: &LeaseToken,
        operations: Vec<Operation>,
        params: Option<Params>,
    ) -> Result<Agenda> {
        let inner = &self.inner;
        inner
            .queue
            .extend(token, inner.config.lease_ttl.as_millis() as u64, inner.now())
            .await
            .map_err(|e| lost(token, e))?;
        loop {
            let mut agenda: Agenda = inner.store.fetch(&token.agenda_id).await?;
            let new: Vec<Operation> =
                operations.iter().filter(|o| agenda.operation(&o.name).is_none()).cloned().collect();
            if new.is_empty() && params.is_none() {
                return Ok(agenda);
            }
            pop_core::validate::validate_generated(&agenda.operations, &new, &inner.config.validation)?;
            let progress_id = agenda.progress_id.clone().unwrap_or_default();
            let now = inner.now();
            let mut writes = Vec::new();
            for op in &new {
                let mut row = new_operation_progress(&agenda, &progress_id, op, now);
                writes.push(create_op(&mut row)?);
            }
            agenda.operations.extend(new);
            if let Some(p) = &params {
                let merged = agenda.params.get_or_insert_with(Params::new);
                for (k, v) in p {
                    merged.insert(k.clone(), v.clone());
                }
            }
            agenda.updated_time = Some(now);
            writes.push(update_op(&mut agenda)?);
            match write_ordered(inner, writes).await {
                Ok(()) => return Ok(agenda),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the final progress and acknowledges the lease.
    pub async fn complete(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        self.check_insight(principal, &token.insight_id).await?;
        self.finish(token, progress, operations).await
    }

    pub(crate) async fn finish(
        &self,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        self.write_progress(token, progress, operations).await?;
        self.inner.queue.ack(&token.clone()).await.map_err(|e| lost(token, e))?;
        self.inner.wake.notify_waiters();
        Ok(())
    }
}

fn lost(token: &LeaseToken, e: Error) -> Error {
    if e.is_conflict() {
        Error::Conflict(format!(
            "lease on agenda {} (epoch {}) is no longer held: another worker has it, or it was cancelled",
            token.agenda_id, token.epoch
        ))
    } else {
        e
    }
}
