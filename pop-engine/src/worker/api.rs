//! What a pool worker needs of the resource-pool API.

use crate::services::{AgendaLease, Finish, LeaseState, ResourcePoolService};
use async_trait::async_trait;
use pop_core::Result;
use pop_core::model::{AgendaProgress, Operation, OperationProgress, Params};
use pop_core::queue::LeaseToken;

/// The resource-pool API as a pool worker uses it: the engine's own [`ResourcePoolService`] in this
/// process, or `pop_http::Client` for a pool on another machine. The worker's code is the same for
/// both: one path from the executor to the store.
///
/// Every call after [`PoolApi::pull`] is fenced by the lease: `Conflict` means the lease is lost (it
/// expired and another worker has the agenda, or the agenda was cancelled) and the executor must stop.
#[async_trait]
pub trait PoolApi: Send + Sync + 'static {
    /// Leases up to `count` agendas of `insight_id`, marked EXECUTING.
    async fn pull(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>>;

    /// Writes progress under the lease (and extends it when half of it is left): the agenda's progress
    /// and the operation rows that changed since the previous write.
    async fn write_progress(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()>;

    /// Adds operations a generator produced (idempotent by name) and its params to the agenda.
    async fn append_operations(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()>;

    /// Writes the final (COMPLETE) progress and the rows that changed, and acknowledges the lease.
    async fn finish(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()>;

    /// Several [`PoolApi::finish`]es at once, each with its own outcome (a lease lost is a
    /// `Conflict` for that agenda alone). The pool worker hands the finishes that arrive while the
    /// previous batch is written to one call (group completion). The default runs them concurrently,
    /// each on its own; the engine's own service writes the whole batch's final progress in one
    /// store batch and acks it in one queue call.
    async fn finish_many(&self, batch: Vec<Finish>) -> Vec<Result<()>> {
        futures_util::future::join_all(
            batch
                .into_iter()
                .map(|mut f| async move { self.finish(&f.token, &mut f.state, &f.progress, &f.rows).await }),
        )
        .await
    }

    /// Gives a pulled agenda back without running it (the pool has no room for it now): its
    /// progress returns to WAITING with `reason` as its message (no attempt is counted) and the
    /// queue item is visible again at once. The default lets the lease expire instead (the agenda
    /// comes back after the lease time), for an API that cannot release.
    async fn release(&self, token: &LeaseToken, reason: &str) -> Result<()> {
        let _ = reason;
        tracing::debug!(agenda_id = %token.agenda_id, "this pool API cannot release a lease; it expires");
        Ok(())
    }
}

/// The engine's own workers call the service directly, as the instance itself (no authorization
/// check, and so no read of the insight on every poll).
#[async_trait]
impl PoolApi for ResourcePoolService {
    async fn pull(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        ResourcePoolService::pull(self, insight_id, count).await
    }

    async fn write_progress(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()> {
        ResourcePoolService::write_progress(self, token, state, progress, changed).await
    }

    async fn append_operations(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        self.append(token, state, operations, params).await.map(|_| ())
    }

    async fn finish(
        &self,
        token: &LeaseToken,
        state: &mut LeaseState,
        progress: &AgendaProgress,
        changed: &[OperationProgress],
    ) -> Result<()> {
        ResourcePoolService::finish(self, token, state, progress, changed).await
    }

    async fn finish_many(&self, batch: Vec<Finish>) -> Vec<Result<()>> {
        ResourcePoolService::finish_many(self, batch).await
    }

    async fn release(&self, token: &LeaseToken, reason: &str) -> Result<()> {
        ResourcePoolService::release_unstarted(self, token, reason).await
    }
}
