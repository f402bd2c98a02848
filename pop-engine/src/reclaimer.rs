//! The reclaimer: expired leases go back to the queue with `attemptsCompleted + 1` (or fail when out of
//! attempts); EXECUTING agendas that lost their queue item and stopped heartbeating are re-queued the
//! same way; WAITING agendas found in neither the ready set nor a queue are re-queued (repair).

use crate::context::Ctx;
use pop_core::Result;
use pop_core::lifecycle::ready_entry;
use pop_core::model::{Agenda, AgendaProgress, Conclusion, DiagnosticEvent, PENDING, ProcessingState};
use pop_core::queue::Lease;
use pop_core::store::{Kind, Page, PageRequest, Phase, PhaseEntry, StoreExt, WriteOp, update_op};
use serde::Serialize;
use std::sync::Arc;

/// What a reclaimer pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReclaimReport {
    /// Expired leases (or silent executions) put back in the queue.
    pub requeued: usize,
    /// Agendas failed because they ran out of attempts.
    pub failed: usize,
    /// WAITING agendas re-queued by the repair.
    pub repaired: usize,
}

/// The reclaimer loop: reclaims every `reclaim_interval`, repairs every `repair_interval`.
pub(crate) struct Reclaimer {
    ctx: Arc<Ctx>,
    /// When the last repair pass ran (epoch ms).
    last_repair: i64,
}

impl Reclaimer {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx, last_repair: 0 }
    }

    pub async fn run(mut self) {
        let ctx = self.ctx.clone();
        loop {
            tokio::select! {
                _ = ctx.signals.shutdown.cancelled() => return,
                _ = tokio::time::sleep(ctx.config.reclaim_interval) => {}
            }
            if let Err(e) = reclaim(&ctx).await {
                tracing::warn!(error = %e, "reclaimer pass failed");
            }
            let now = ctx.now();
            if now - self.last_repair >= ctx.config.repair_interval.as_millis() as i64 {
                self.last_repair = now;
                if let Err(e) = repair(&ctx).await {
                    tracing::warn!(error = %e, "repair pass failed");
                }
            }
        }
    }

    /// One full pass: reclaim, then repair.
    pub async fn run_once(&mut self) -> Result<ReclaimReport> {
        let mut r = reclaim(&self.ctx).await?;
        r.repaired = repair(&self.ctx).await?.repaired;
        self.last_repair = self.ctx.now();
        Ok(r)
    }
}

async fn reclaim(ctx: &Ctx) -> Result<ReclaimReport> {
    let mut report = ReclaimReport::default();
    for insight in ctx.insights().await? {
        let Some(insight_id) = insight.id.as_deref() else { continue };
        let expired = ctx.queue.expired(insight_id, ctx.now(), 100).await?;
        for lease in expired {
            match reclaim_lease(ctx, &lease).await {
                Ok(Some(true)) => report.failed += 1,
                Ok(Some(false)) => report.requeued += 1,
                Ok(None) => {}
                Err(e) => tracing::warn!(agenda_id = %lease.token.agenda_id, error = %e, "reclaim failed"),
            }
        }
    }
    if report.requeued + report.failed > 0 {
        metrics::counter!("pop_reclaims_total").increment((report.requeued + report.failed) as u64);
        ctx.signals.wake.notify_waiters();
    }
    Ok(report)
}

/// Acknowledges an expired lease whose agenda has nothing left to run.
async fn drop_lease(ctx: &Ctx, lease: &Lease, why: &str) {
    if let Err(e) = ctx.queue.ack(&lease.token).await {
        tracing::warn!(agenda_id = %lease.token.agenda_id, error = %e, "could not drop an expired lease ({why}); the next pass tries again");
    }
}

/// `Some(true)` failed for good, `Some(false)` re-queued, `None` nothing to do.
async fn reclaim_lease(ctx: &Ctx, lease: &Lease) -> Result<Option<bool>> {
    let agenda_id = &lease.token.agenda_id;
    let Some(agenda) = ctx.store.get_obj::<Agenda>(agenda_id).await? else {
        drop_lease(ctx, lease, "its agenda no longer exists").await;
        return Ok(None);
    };
    let Some(progress_id) = agenda.progress_id.clone() else {
        drop_lease(ctx, lease, "its agenda has no progress").await;
        return Ok(None);
    };
    loop {
        let mut p: AgendaProgress = ctx.store.fetch(&progress_id).await?;
        if p.processing_state == ProcessingState::Complete {
            drop_lease(ctx, lease, "its agenda is complete").await;
            return Ok(None);
        }
        let out_of_attempts = count_lost_attempt(ctx, &mut p, &format!("lease epoch {} expired", lease.token.epoch));
        match ctx.store.update_obj(&mut p).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
        if out_of_attempts {
            crate::alerts::agenda_finished(ctx, &p).await;
        }
        let r = if out_of_attempts {
            ctx.queue.ack(&lease.token).await
        } else {
            ctx.queue.release(&lease.token, ctx.now()).await
        };
        if let Err(e) = r {
            tracing::debug!(agenda_id, error = %e, "lease changed hands during reclaim");
        }
        tracing::info!(agenda_id, epoch = lease.token.epoch, failed = out_of_attempts, "lease reclaimed");
        return Ok(Some(out_of_attempts));
    }
}

/// Counts a lost attempt on `p` with a diagnostic; marks it failed when out of attempts. Returns
/// whether it is now failed.
fn count_lost_attempt(ctx: &Ctx, p: &mut AgendaProgress, what: &str) -> bool {
    let now = ctx.now();
    p.attempts_completed += 1;
    let max = p.attempt_limit();
    let out = p.attempts_completed >= max;
    let msg = if out {
        format!(
            "{what}: the worker stopped heartbeating; attempt {} of {max} lost, no attempts left",
            p.attempts_completed
        )
    } else {
        format!("{what}: the worker stopped heartbeating; attempt {} of {max} lost, re-queued", p.attempts_completed)
    };
    p.diagnostic_events.push(DiagnosticEvent::new(msg, now));
    p.updated_time = Some(now);
    if out {
        p.processing_state = ProcessingState::Complete;
        p.processing_state_message = Some(Conclusion::Failed.as_str().into());
        p.completed_time = Some(now);
    } else {
        p.processing_state = ProcessingState::Waiting;
        p.processing_state_message = Some(PENDING.into());
    }
    out
}

/// One page of the unfinished agendas (WAITING or EXECUTING), oldest first, from the store's phase
/// index: the repair reads live work only, never the finished history. Unreadable ones are skipped
/// with a warning.
async fn unfinished_page(ctx: &Ctx, cursor: Option<String>) -> Result<Page<AgendaProgress>> {
    let page = ctx
        .store
        .query_phase(Kind::AgendaProgress, Phase::Unfinished, PhaseEntry::ALL_TIMES, PageRequest { limit: 500, cursor })
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        match pop_core::store::from_record::<AgendaProgress>(r) {
            Ok(p) => items.push(p),
            Err(e) => tracing::warn!(error = %e, "repair: skipping an unreadable agenda progress"),
        }
    }
    Ok(Page { items, next: page.next })
}

async fn repair(ctx: &Ctx) -> Result<ReclaimReport> {
    let mut report = ReclaimReport::default();
    let mut cursor = None;
    let stale_ms = 2 * ctx.config.lease_ttl.as_millis() as i64;
    loop {
        let page = unfinished_page(ctx, cursor).await?;
        for p in page.items {
            let stale_exec = p.processing_state == ProcessingState::Executing
                && p.updated_time.is_some_and(|t| ctx.now() - t > stale_ms);
            if p.processing_state != ProcessingState::Waiting && !stale_exec {
                continue;
            }
            let Some(agenda_id) = p.agenda_id.clone() else { continue };
            let agenda_id = agenda_id.as_str();
            let Some(agenda) = ctx.store.get_obj::<Agenda>(agenda_id).await? else { continue };
            if agenda.do_not_run() {
                continue;
            }
            let Some(insight_id) = agenda.insight_id() else {
                tracing::warn!(agenda_id, "repair: a waiting agenda without an insight cannot be re-queued");
                continue;
            };
            if ctx.store.ready_get(agenda_id).await?.is_some() || ctx.queue.contains(insight_id, agenda_id).await? {
                continue;
            }
            let mut p = p;
            // the agenda goes into a new queue item: the epoch fence restarts with its first delivery
            let had_epoch = p.lease_epoch.take().is_some();
            let mut writes = Vec::new();
            if stale_exec {
                let failed = count_lost_attempt(ctx, &mut p, "execution stopped reporting and its queue item is gone");
                if failed {
                    ctx.store.write(vec![update_op(&mut p)?]).await?;
                    crate::alerts::agenda_finished(ctx, &p).await;
                    report.failed += 1;
                    continue;
                }
            }
            if had_epoch || stale_exec {
                writes.push(update_op(&mut p)?);
            }
            writes.push(WriteOp::ReadyInsert(ready_entry(&agenda, ctx.now())?));
            match ctx.store.write(writes).await {
                Ok(()) => {
                    tracing::info!(agenda_id, "lost agenda re-queued");
                    report.repaired += 1;
                }
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if report.repaired > 0 {
        ctx.signals.wake.notify_waiters();
    }
    Ok(report)
}
