//! Resource-pool services: what a pool worker (in this process or, later, over HTTP) calls.
//!
//! Every call after `get_agendas` carries the lease's [`LeaseToken`]; a call whose lease is no longer
//! current (another worker received the agenda since) or whose epoch is older than the one the
//! progress was last written with is refused with `Conflict`, so a zombie executor can change nothing.

use super::forbidden;
use crate::context::Ctx;
use crate::services::agenda_internals::{new_operation_progress, write_ordered};
use pop_core::authz::Principal;
use pop_core::model::{
    Agenda, AgendaProgress, Conclusion, Insight, Millis, Operation, OperationProgress, Params, ProcessingState,
    RUNNING_OPERATIONS,
};
use pop_core::queue::{Lease, LeaseToken};
use pop_core::store::{StoreExt, create_op, update_op};
use pop_core::visibility::owns;
use pop_core::{Error, Problem, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
    pub(crate) ctx: Arc<Ctx>,
}

impl ResourcePoolService {
    async fn check_insight(&self, principal: &Principal, insight_id: &str) -> Result<Insight> {
        let insight: Insight =
            self.ctx.store.get_obj(insight_id).await?.ok_or_else(|| Error::not_found("insight", insight_id))?;
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
        self.pull(insight_id, count).await
    }

    /// [`Self::get_agendas`] for this instance's own workers, which need no authorization check (and
    /// so no read of the insight on every poll).
    pub(crate) async fn pull(&self, insight_id: &str, count: usize) -> Result<Vec<AgendaLease>> {
        let ctx = &self.ctx;
        let ttl = ctx.lease_ttl_ms();
        let leases = ctx.queue.receive(insight_id, count.clamp(1, 100), ttl, ctx.now()).await?;
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let started = self.start_all(&leases).await;
        let mut out = Vec::with_capacity(leases.len());
        for (lease, result) in leases.into_iter().zip(started) {
            match result {
                Ok(Some((agenda, progress))) => out.push(AgendaLease { lease, agenda, progress }),
                Ok(None) => {
                    let _ = ctx.queue.ack(&lease.token).await;
                }
                Err(e) => {
                    tracing::warn!(agenda_id = %lease.token.agenda_id, error = %e, "could not start a leased agenda; releasing it");
                    let _ = ctx.queue.release(&lease.token, ctx.now()).await;
                }
            }
        }
        Ok(out)
    }

    /// Marks leased agendas EXECUTING: all of them in one atomic batch when nothing changed them since
    /// they were read (the common case: one write for a whole pull), otherwise each on its own.
    async fn start_all(&self, leases: &[Lease]) -> Vec<Result<Option<(Agenda, AgendaProgress)>>> {
        let ctx = &self.ctx;
        let loaded = futures_util::future::join_all(leases.iter().map(|l| self.load(l))).await;
        let batchable = leases.len() > 1
            && leases.len() <= ctx.store.max_batch()
            && loaded.iter().all(|r| matches!(r, Ok(Some(_))));
        if batchable {
            let now = ctx.now();
            let mut rows = Vec::with_capacity(leases.len());
            let mut writes = Vec::with_capacity(leases.len());
            for (lease, loaded) in leases.iter().zip(loaded) {
                let Ok(Some((agenda, mut p))) = loaded else { unreachable!("checked above") };
                mark_started(&mut p, lease, now);
                if let Ok(w) = update_op(&mut p) {
                    writes.push(w);
                }
                rows.push((agenda, p));
            }
            // (a row that does not encode leaves the batch short: the one-at-a-time path reports it)
            if writes.len() == rows.len() && ctx.store.write(writes).await.is_ok() {
                let ops = futures_util::future::join_all(
                    rows.iter().map(|(_, p)| ctx.operation_progress(p.id.as_deref().unwrap_or_default())),
                )
                .await;
                return rows
                    .into_iter()
                    .zip(ops)
                    .map(|((agenda, mut p), ops)| {
                        p.operation_progress = ops?;
                        Ok(Some((agenda, p)))
                    })
                    .collect();
            }
        }
        // One at a time, concurrently (their writes share a group commit); each retries its own conflicts.
        futures_util::future::join_all(leases.iter().map(|l| self.start(l))).await
    }

    /// A leased agenda and its progress, if it is still to run; `Conflict` if a newer lease exists.
    async fn load(&self, lease: &Lease) -> Result<Option<(Agenda, AgendaProgress)>> {
        let ctx = &self.ctx;
        let agenda_id = &lease.token.agenda_id;
        let Some(agenda) = ctx.store.get_obj::<Agenda>(agenda_id).await? else {
            tracing::warn!(agenda_id, "queued agenda no longer exists; dropped");
            return Ok(None);
        };
        let Some(progress_id) = agenda.progress_id.as_deref() else { return Ok(None) };
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

    async fn start(&self, lease: &Lease) -> Result<Option<(Agenda, AgendaProgress)>> {
        let ctx = &self.ctx;
        loop {
            let Some((agenda, mut p)) = self.load(lease).await? else { return Ok(None) };
            mark_started(&mut p, lease, ctx.now());
            match ctx.store.update_obj(&mut p).await {
                Ok(()) => {
                    p.operation_progress = ctx.operation_progress(p.id.as_deref().unwrap_or_default()).await?;
                    return Ok(Some((agenda, p)));
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Extends the lease; `Conflict` when it is no longer held.
    pub async fn heartbeat(&self, principal: &Principal, token: &LeaseToken) -> Result<i64> {
        self.check_insight(principal, &token.insight_id).await?;
        let ctx = &self.ctx;
        ctx.queue.extend(token, ctx.lease_ttl_ms(), ctx.now()).await.map_err(|e| lost(token, e))
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
        self.write_progress_with(token, progress, operations, &mut WriteCache::default()).await
    }

    /// [`Self::write_progress`] for a worker that keeps a [`WriteCache`] across the writes of one lease:
    /// rows it wrote itself are not read again, a write that would change nothing (but the timestamp)
    /// is skipped, and the lease is extended only once half of it has run out. The agenda progress's
    /// compare-and-set stays in every batch that writes anything, so the epoch fence and a concurrent
    /// cancel are seen exactly as without the cache (a conflict drops the cache and re-reads).
    pub(crate) async fn write_progress_with(
        &self,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
        cache: &mut WriteCache,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let ttl = ctx.config.lease_ttl.as_millis() as i64;
        if cache.deadline.is_none_or(|d| ctx.now() + ttl / 2 >= d) {
            let deadline = ctx.queue.extend(token, ttl as u64, ctx.now()).await.map_err(|e| lost(token, e))?;
            cache.deadline = Some(deadline);
        }
        let agenda_id = &token.agenda_id;
        let progress_id = progress.id.clone().ok_or_else(|| Error::invalid("progress update without an id"))?;
        loop {
            let (mut stored, from_cache): (AgendaProgress, bool) = match cache.stored.take() {
                Some(s) if s.id.as_deref() == Some(progress_id.as_str()) => (s, true),
                _ => (ctx.store.fetch(&progress_id).await?, false),
            };
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
            let now = ctx.now();
            let before = stored.clone();
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
            // A progress row untouched for half a lease is rewritten anyway: its `updatedTime` is how
            // the repair pass tells a live execution from a lost one.
            let fresh = before.updated_time.is_some_and(|t| now - t < ttl / 2);
            let progress_changed = stored != before || !fresh;
            let mut writes = Vec::with_capacity(operations.len() + 1);
            let mut rows = Vec::with_capacity(operations.len());
            for op in operations {
                let name = op.operation.clone().unwrap_or_default();
                let id = OperationProgress::make_id(&progress_id, &name);
                let mut row = op.clone();
                row.id = Some(id.clone());
                row.agenda_progress_id = Some(progress_id.clone());
                row.customer_id = stored.customer_id.clone();
                row.cid = stored.cid.clone();
                let existing = match cache.ops.get(&name) {
                    Some(r) => Some(r.clone()),
                    None => ctx.store.get_obj::<OperationProgress>(&id).await?,
                };
                match existing {
                    Some(existing) => {
                        row.version = existing.version;
                        row.added_time = existing.added_time;
                        row.updated_time = existing.updated_time;
                        if row == existing {
                            continue;
                        }
                        row.updated_time = Some(now);
                        writes.push(update_op(&mut row)?);
                    }
                    None => {
                        row.added_time = Some(now);
                        row.updated_time = Some(now);
                        writes.push(create_op(&mut row)?);
                    }
                }
                rows.push((name, row));
            }
            if writes.is_empty() && !progress_changed {
                if from_cache {
                    // Nothing to write (typically a heartbeat): read the progress instead, so that a
                    // cancel or a newer lease made elsewhere stops this executor as a write would.
                    continue;
                }
                cache.stored = Some(before);
                return Ok(());
            }
            stored.updated_time = Some(now);
            writes.push(update_op(&mut stored)?);
            match write_ordered(ctx, writes).await {
                Ok(()) => {
                    cache.stored = Some(stored);
                    cache.ops.extend(rows);
                    return Ok(());
                }
                Err(e) => {
                    cache.stored = None;
                    cache.ops.clear();
                    if !e.is_conflict() {
                        return Err(e);
                    }
                }
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
        let ctx = &self.ctx;
        ctx.queue.extend(token, ctx.lease_ttl_ms(), ctx.now()).await.map_err(|e| lost(token, e))?;
        loop {
            let mut agenda: Agenda = ctx.store.fetch(&token.agenda_id).await?;
            let new: Vec<Operation> =
                operations.iter().filter(|o| agenda.operation(&o.name).is_none()).cloned().collect();
            if new.is_empty() && params.is_none() {
                return Ok(agenda);
            }
            pop_core::validate::validate_generated(&agenda.operations, &new, &ctx.config.validation)?;
            let progress_id = agenda.progress_id.clone().unwrap_or_default();
            let now = ctx.now();
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
            match write_ordered(ctx, writes).await {
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
        self.finish(token, progress, operations, &mut WriteCache::default()).await
    }

    pub(crate) async fn finish(
        &self,
        token: &LeaseToken,
        progress: &AgendaProgress,
        operations: &[OperationProgress],
        cache: &mut WriteCache,
    ) -> Result<()> {
        self.write_progress_with(token, progress, operations, cache).await?;
        self.ctx.queue.ack(token).await.map_err(|e| lost(token, e))?;
        self.ctx.signals.wake.notify_waiters();
        Ok(())
    }
}

/// What a worker knows of the rows it wrote under one lease (see
/// [`ResourcePoolService::write_progress_with`]).
#[derive(Debug, Default)]
pub(crate) struct WriteCache {
    /// The lease's deadline after this worker's last extend.
    deadline: Option<Millis>,
    /// The agenda progress (without operation progress) as last written or read.
    stored: Option<AgendaProgress>,
    /// Operation progress rows as last written or read, by operation name.
    ops: HashMap<String, OperationProgress>,
}

impl WriteCache {
    /// The cache of a lease just started: its deadline and the progress `get_agendas` returned.
    pub(crate) fn seeded(deadline: Millis, progress: &AgendaProgress) -> Self {
        let mut stored = progress.clone();
        let rows = std::mem::take(&mut stored.operation_progress);
        let ops = rows.into_iter().filter_map(|r| Some((r.operation.clone()?, r))).collect();
        Self { deadline: Some(deadline), stored: Some(stored), ops }
    }
}

/// The progress of an agenda a worker starts under `lease`.
fn mark_started(p: &mut AgendaProgress, lease: &Lease, now: Millis) {
    p.processing_state = ProcessingState::Executing;
    p.processing_state_message = Some(RUNNING_OPERATIONS.into());
    p.started_time = Some(now);
    p.updated_time = Some(now);
    p.lease_epoch = Some(lease.token.epoch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine as Pop, EngineParts, RuntimeRouter};
    use pop_core::clock::ManualClock;
    use pop_core::memory::{MemoryQueue, MemoryStore};
    use pop_core::store::Kind;
    use serde_json::json;

    async fn version(pop: &Pop, kind: Kind, id: &str) -> u64 {
        pop.store().get(kind, id).await.unwrap().unwrap().version
    }

    /// An instance on `store` with an in-memory queue, pool `p` and insight `i` (operation type `t`,
    /// queue size 100) for customer `c`.
    async fn provisioned(store: Arc<dyn pop_core::store::Store>, clock: Arc<ManualClock>) -> Pop {
        let mut parts = EngineParts::new(store, Arc::new(MemoryQueue::new()), Arc::new(RuntimeRouter::new()));
        parts.clock = clock;
        let pop = Pop::new(parts);
        let insight = Insight {
            id: Some("i".into()),
            title: Some("i".into()),
            is_global: true,
            queue_size: Some(100),
            mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
            ..Default::default()
        };
        pop.objects().provision_pool(&Principal::superuser("t"), "p", "ops", insight, &["c"]).await.unwrap();
        pop
    }

    /// The worker's cache: a publish that changes nothing writes nothing, a changed operation writes
    /// its row with the progress, a row untouched for half a lease is rewritten (the repair pass reads
    /// its age), and a cancel made meanwhile is still seen through the progress compare-and-set.
    #[tokio::test]
    async fn the_write_cache_skips_no_op_writes_and_still_sees_a_cancel() {
        let clock = Arc::new(ManualClock::default());
        let pop = provisioned(Arc::new(MemoryStore::new()), clock.clone()).await;
        let su = Principal::superuser("t");
        let agenda: Agenda = serde_json::from_value(json!({"customerId": "c", "operations": [
            {"name": "a", "type": "t", "payload": {}},
            {"name": "b", "type": "t", "payload": {"x": "@<a.out>"}}
        ]}))
        .unwrap();
        let agenda_id = pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap();
        pop.schedule_once().await.unwrap();
        let pool = pop.pool();
        let AgendaLease { lease, progress, .. } = pool.get_agendas(&su, "i", 1).await.unwrap().pop().unwrap();
        let token = lease.token.clone();
        let progress_id = progress.id.clone().unwrap();
        let op_id = |name: &str| OperationProgress::make_id(&progress_id, name);
        let mut cache = WriteCache::seeded(lease.deadline, &progress);
        let mut snapshot = progress.clone();
        snapshot.operation_progress.clear();
        let v0 = version(&pop, Kind::AgendaProgress, &progress_id).await;
        let a0 = version(&pop, Kind::OperationProgress, &op_id("a")).await;

        // nothing changed since get_agendas: no write (a read instead)
        pool.write_progress_with(&token, &snapshot, &[], &mut cache).await.unwrap();
        assert_eq!(version(&pop, Kind::AgendaProgress, &progress_id).await, v0);

        // an operation starts: its row and the progress are written; the same again writes nothing
        let mut a = progress.operation_progress.iter().find(|o| o.operation.as_deref() == Some("a")).unwrap().clone();
        a.processing_state = ProcessingState::Executing;
        a.started_time = Some(pop.clock().now());
        for _ in 0..2 {
            pool.write_progress_with(&token, &snapshot, std::slice::from_ref(&a), &mut cache).await.unwrap();
            assert_eq!(version(&pop, Kind::AgendaProgress, &progress_id).await, v0 + 1);
            assert_eq!(version(&pop, Kind::OperationProgress, &op_id("a")).await, a0 + 1);
        }

        // half a lease later, an unchanged publish rewrites the progress (its age is a liveness signal)
        // and extends the lease
        clock.advance(pop.config().lease_ttl.as_millis() as i64 / 2 + 1);
        pool.write_progress_with(&token, &snapshot, &[], &mut cache).await.unwrap();
        assert_eq!(version(&pop, Kind::AgendaProgress, &progress_id).await, v0 + 2);
        assert!(cache.deadline.unwrap() > lease.deadline, "the lease was not extended");

        // a cancel in between is seen: a publish with nothing to write re-reads the progress and refuses;
        // one with a change fails its CAS on the stale cached progress, re-reads and refuses
        pop.agendas().cancel(&su, &agenda_id).await.unwrap();
        let err = pool.write_progress_with(&token, &snapshot, &[], &mut cache).await.unwrap_err();
        assert!(err.is_conflict() && err.to_string().contains("cancelled"), "{err}");
        // (a fresh cache from the lease, with a deadline far enough not to extend: the CAS path)
        let mut cache = WriteCache::seeded(pop.clock().now() + 600_000, &progress);
        let mut b = progress.operation_progress.iter().find(|o| o.operation.as_deref() == Some("b")).unwrap().clone();
        b.processing_state = ProcessingState::Executing;
        let err = pool.write_progress_with(&token, &snapshot, &[b], &mut cache).await.unwrap_err();
        assert!(err.is_conflict() && err.to_string().contains("cancelled"), "{err}");
        assert!(cache.stored.is_none(), "a refused write must drop the cache");
    }

    /// A store that counts batch writes with more than one operation and can refuse the next one.
    struct Counting {
        ctx: MemoryStore,
        batches: std::sync::atomic::AtomicUsize,
        refuse_next_batch: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl pop_core::store::Store for Counting {
        fn backend_name(&self) -> &'static str {
            "counting"
        }
        fn max_batch(&self) -> usize {
            self.ctx.max_batch()
        }
        async fn get(&self, kind: Kind, id: &str) -> Result<Option<pop_core::store::Record>> {
            self.ctx.get(kind, id).await
        }
        async fn write(&self, ops: Vec<pop_core::store::WriteOp>) -> Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            if ops.len() > 1 {
                self.batches.fetch_add(1, SeqCst);
                if self.refuse_next_batch.swap(false, SeqCst) {
                    return Err(Error::Conflict("refused by the test".into()));
                }
            }
            self.ctx.write(ops).await
        }
        async fn query(
            &self,
            kind: Kind,
            field: pop_core::store::IndexField,
            value: &str,
            page: pop_core::store::PageRequest,
        ) -> Result<pop_core::store::Page<pop_core::store::Record>> {
            self.ctx.query(kind, field, value, page).await
        }
        async fn scan(
            &self,
            kind: Kind,
            page: pop_core::store::PageRequest,
        ) -> Result<pop_core::store::Page<pop_core::store::Record>> {
            self.ctx.scan(kind, page).await
        }
        async fn query_phase(
            &self,
            kind: Kind,
            phase: pop_core::store::Phase,
            at: std::ops::Range<Millis>,
            page: pop_core::store::PageRequest,
        ) -> Result<pop_core::store::Page<pop_core::store::Record>> {
            self.ctx.query_phase(kind, phase, at, page).await
        }
        async fn ready_get(&self, agenda_id: &str) -> Result<Option<pop_core::model::ReadyAgenda>> {
            self.ctx.ready_get(agenda_id).await
        }
        async fn ready_list(
            &self,
            insight_id: &str,
            page: pop_core::store::PageRequest,
        ) -> Result<pop_core::store::Page<pop_core::model::ReadyAgenda>> {
            self.ctx.ready_list(insight_id, page).await
        }
        async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool> {
            self.ctx.lease_acquire(name, holder, ttl_ms, now).await
        }
        async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
            self.ctx.lease_release(name, holder).await
        }
    }

    /// A pull starts its agendas in one batch write; when that batch is refused, each agenda is
    /// started on its own; an agenda cancelled while queued is dropped, and the rest still start.
    #[tokio::test]
    async fn a_pull_starts_its_agendas_in_one_batch_and_falls_back_one_by_one() {
        use std::sync::atomic::Ordering::SeqCst;
        let store = Arc::new(Counting {
            ctx: MemoryStore::new(),
            batches: Default::default(),
            refuse_next_batch: Default::default(),
        });
        let pop = provisioned(store.clone(), Arc::new(ManualClock::default())).await;
        let su = Principal::superuser("t");
        let agenda = || -> Agenda {
            serde_json::from_value(
                json!({"customerId": "c", "operations": [{"name": "a", "type": "t", "payload": {}}]}),
            )
            .unwrap()
        };
        let mut ids = Vec::new();
        for _ in 0..7 {
            ids.push(pop.agendas().submit(&su, agenda()).await.unwrap().id.unwrap());
        }
        pop.schedule_once().await.unwrap();
        let pool = pop.pool();
        let executing = |leases: &[AgendaLease]| {
            leases.iter().all(|l| {
                l.progress.processing_state == ProcessingState::Executing
                    && l.progress.lease_epoch == Some(l.lease.token.epoch)
                    && l.progress.operation_progress.len() == 1
            })
        };

        // three in one batch write
        let mut pulled = std::collections::HashSet::new();
        let before = store.batches.load(SeqCst);
        let leases = pool.pull("i", 3).await.unwrap();
        pulled.extend(leases.iter().map(|l| l.lease.token.agenda_id.clone()));
        assert_eq!(leases.len(), 3);
        assert!(executing(&leases));
        assert_eq!(store.batches.load(SeqCst) - before, 1, "one batch for the pull");
        for l in &leases {
            let p: AgendaProgress = pop.store().fetch(l.progress.id.as_deref().unwrap()).await.unwrap();
            assert_eq!(p.processing_state, ProcessingState::Executing);
            assert_eq!(p.version, l.progress.version, "the lease carries the stored version");
        }

        // the batch is refused: each starts on its own
        store.refuse_next_batch.store(true, SeqCst);
        let leases = pool.pull("i", 2).await.unwrap();
        assert_eq!(leases.len(), 2);
        assert!(executing(&leases));
        pulled.extend(leases.iter().map(|l| l.lease.token.agenda_id.clone()));

        // one of the last two is cancelled while queued: the other starts, the cancelled one is dropped
        let rest: Vec<&String> = ids.iter().filter(|id| !pulled.contains(id.as_str())).collect();
        assert_eq!(rest.len(), 2);
        pop.agendas().cancel(&su, rest[0]).await.unwrap();
        let leases = pool.pull("i", 2).await.unwrap();
        let started: Vec<&str> = leases.iter().map(|l| l.lease.token.agenda_id.as_str()).collect();
        assert_eq!(started, vec![rest[1].as_str()]);
        assert!(executing(&leases));
        assert!(pool.pull("i", 2).await.unwrap().is_empty(), "the cancelled agenda must not come back");
    }
}
