//! Resource-pool services: what a pool worker calls, in this process or over HTTP.
//!
//! A pull hands out **leases** ([`AgendaLease`]): the agenda, its progress and a [`LeaseToken`] whose
//! epoch grows with every delivery. Every later call carries the token; one whose lease is no longer
//! current (another worker received the agenda since), whose epoch is older than the one the progress
//! was last written with, or whose agenda was cancelled, is refused with `Conflict`, so a zombie
//! executor can change nothing.
//!
//! * [`pull`](self) — receive leases and mark their agendas EXECUTING, in one batch write;
//! * `write` — the one path by which progress reaches the store (heartbeats, progress, the final
//!   write and the ack), and generated operations.

mod pull;
mod write;

pub use write::{Finish, LeaseState};

use super::forbidden;
use crate::context::Ctx;
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Insight, Millis, Operation, OperationProgress, Params};
use pop_core::queue::{Lease, LeaseToken};
use pop_core::store::StoreExt;
use pop_core::visibility::{can_read, owns};
use pop_core::{Error, Problem, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An agenda handed to a pool worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub(crate) ctx: Arc<Ctx>,
}

/// The most agendas one pull may lease.
pub const MAX_PULL: usize = 100;

impl ResourcePoolService {
    /// The insight, if `principal` owns it (pools pull as the insight's owner). An insight the
    /// caller cannot even read is `NotFound`, as if it did not exist (a caller never learns that
    /// another customer's object exists); one it may read but not own is `Forbidden`.
    async fn check_insight(&self, principal: &Principal, insight_id: &str) -> Result<Insight> {
        let insight: Insight = self
            .ctx
            .store
            .get_obj(insight_id)
            .await?
            .filter(|i| can_read(principal, i))
            .ok_or_else(|| Error::not_found("insight", insight_id))?;
        if !owns(principal, &insight) {
            return Err(forbidden(principal, &format!("pull from insight {insight_id}")));
        }
        Ok(insight)
    }

    /// Leases up to `count` (1..=100) agendas of an insight and marks them EXECUTING. Agendas that were
    /// deleted or already finished (cancelled while queued) are dropped from the queue instead.
    pub async fn get_agendas(&self, principal: &Principal, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        if count == 0 || count > MAX_PULL {
            return Err(Error::problems(vec![
                Problem::new(format!("count must be 1..={MAX_PULL}, got {count}")).field("count"),
            ]));
        }
        self.check_insight(principal, insight_id).await?;
        self.pull(insight_id, count).await
    }

    /// Extends the lease; returns its new deadline. `Conflict` when it is no longer held.
    pub async fn heartbeat(&self, principal: &Principal, token: &LeaseToken) -> Result<Millis> {
        self.check_insight(principal, &token.insight_id).await?;
        let ctx = &self.ctx;
        ctx.queue.extend(token, ctx.lease_ttl_ms(), ctx.now()).await.map_err(|e| lost(token, e))
    }

    /// Writes progress (the agenda's and the changed operations') under the lease, extending it when
    /// half of it has run out. `state` carries what the caller knows of the lease between calls (a
    /// remote pool sends the deadline it was last given; see [`LeaseState`]).
    pub async fn update_progress(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        self.check_insight(principal, &token.insight_id).await?;
        self.write_progress(token, state, progress, operations).await
    }

    /// Adds operations generated at run time to the agenda (idempotent by name), merges `params` into
    /// the agenda, and creates their WAITING progress rows.
    pub async fn append_operations(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        state: &mut LeaseState,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<Agenda> {
        self.check_insight(principal, &token.insight_id).await?;
        self.append(token, state, operations, params).await
    }

    /// Gives a pulled agenda back unstarted (see [`crate::PoolApi::release`]).
    pub async fn release_agenda(&self, principal: &Principal, token: &LeaseToken, reason: &str) -> Result<()> {
        self.check_insight(principal, &token.insight_id).await?;
        self.release_unstarted(token, reason).await
    }

    /// Writes the final progress and acknowledges the lease.
    pub async fn complete(
        &self,
        principal: &Principal,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
    ) -> Result<()> {
        self.check_insight(principal, &token.insight_id).await?;
        self.finish(token, state, progress, operations).await
    }
}

/// A lease refused by the queue, as the pool sees it.
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

#[cfg(test)]
mod tests;
