//! The pool worker: pulls leases for its insights, runs each agenda with the pop-exec executor,
//! heartbeats and persists progress through the fenced resource-pool service, acks at the end.

use crate::config::WorkerConfig;
use crate::context::Ctx;
use crate::services::pool::WriteCache;
use crate::services::{AgendaLease, ResourcePoolService};
use async_trait::async_trait;
use pop_core::Result;
use pop_core::model::{AgendaProgress, Operation, OperationProgress, Params, ProcessingState};
use pop_core::queue::LeaseToken;
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions, ProgressSink};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A pool worker of this engine.
pub(crate) struct Worker {
    ctx: Arc<Ctx>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, config: WorkerConfig) -> Self {
        Self { ctx, config }
    }

    pub async fn run(self) {
        run(self.ctx, self.config).await
    }
}

async fn run(ctx: Arc<Ctx>, config: WorkerConfig) {
    let pool = ResourcePoolService { ctx: ctx.clone() };
    let slots = Arc::new(Semaphore::new(config.max_running.max(1)));
    loop {
        if ctx.signals.shutdown.is_cancelled() {
            return;
        }
        let mut pulled = 0;
        for insight in &config.insights {
            let free = slots.available_permits().min(config.pull_count.max(1));
            if free == 0 {
                break;
            }
            match pool.pull(insight, free).await {
                Ok(leases) => {
                    for lease in leases {
                        pulled += 1;
                        let Ok(permit) = slots.clone().acquire_owned().await else { return };
                        let ctx = ctx.clone();
                        tokio::spawn(async move {
                            run_agenda(ctx, lease).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(insight, error = %e, "pulling agendas failed"),
            }
        }
        if pulled == 0 || slots.available_permits() == 0 {
            tokio::select! {
                _ = ctx.signals.shutdown.cancelled() => return,
                _ = tokio::time::sleep(config.pull_wait) => {}
                _ = ctx.signals.wake.notified() => {}
            }
        }
    }
}

/// Publishes an executor's progress through the lease-fenced service. The final (COMPLETE) state is
/// written by [`run_agenda`] together with the ack.
struct LeaseSink {
    pool: ResourcePoolService,
    token: LeaseToken,
    /// Operation name → type, for per-type metrics.
    types: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The rows this worker wrote under the lease, and the lease's deadline.
    cache: tokio::sync::Mutex<WriteCache>,
}

impl LeaseSink {
    /// Records durations and failures of the operations that completed in this attempt (since `since`).
    fn record(&self, ops: &[OperationProgress], since: i64) {
        let Ok(types) = self.types.lock() else { return };
        let this_attempt = |o: &&OperationProgress| {
            o.processing_state == ProcessingState::Complete && o.completed_time.is_some_and(|c| c >= since)
        };
        for op in ops.iter().filter(this_attempt) {
            let name = op.operation.as_deref().unwrap_or_default();
            let op_type = types.get(name).cloned().unwrap_or_default();
            if let (Some(s), Some(c)) = (op.started_time, op.completed_time) {
                metrics::histogram!("pop_operation_duration_seconds", "type" => op_type.clone())
                    .record((c - s).max(0) as f64 / 1000.0);
            }
            if !op.succeeded() {
                metrics::counter!("pop_operation_failures_total", "type" => op_type).increment(1);
            }
        }
    }
}

#[async_trait]
impl ProgressSink for LeaseSink {
    async fn publish(&self, agenda: &AgendaProgress, changed: &[OperationProgress]) -> Result<()> {
        if agenda.processing_state == ProcessingState::Complete {
            return Ok(());
        }
        let mut cache = self.cache.lock().await;
        self.pool.write_progress_with(&self.token, agenda, changed, &mut cache).await
    }

    async fn operations_generated(
        &self,
        _agenda_id: &str,
        parent: &str,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        tracing::info!(agenda_id = %self.token.agenda_id, generator = parent, count = operations.len(), "operations generated");
        if let Ok(mut types) = self.types.lock() {
            types.extend(operations.iter().map(|o| (o.name.clone(), o.op_type.clone())));
        }
        self.pool.append(&self.token, operations.to_vec(), params.cloned()).await.map(|_| ())
    }
}

async fn run_agenda(ctx: Arc<Ctx>, lease: AgendaLease) {
    let AgendaLease { lease, agenda, progress } = lease;
    let token = lease.token;
    let agenda_id = token.agenda_id.clone();
    let cancel = CancelToken::new();
    ctx.signals.running.insert(&agenda_id, cancel.clone());
    let pool = ResourcePoolService { ctx: ctx.clone() };
    let types = agenda.operations.iter().map(|o| (o.name.clone(), o.op_type.clone())).collect();
    let cache = tokio::sync::Mutex::new(WriteCache::seeded(lease.deadline, &progress));
    let sink =
        Arc::new(LeaseSink { pool: pool.clone(), token: token.clone(), types: std::sync::Mutex::new(types), cache });
    let opts = ExecutorOptions {
        parallelism: ctx.config.parallelism,
        fail_fast: ctx.config.fail_fast,
        heartbeat: ctx.config.heartbeat,
        ..ExecutorOptions::default()
    };
    let executor = Executor::new(ctx.runtime.clone(), sink.clone(), opts);
    let started = std::time::Instant::now();
    let started_ms = ctx.now();
    let span = tracing::info_span!("execute", agenda_id = %agenda_id, cid = ?agenda.cid, epoch = token.epoch);
    let shutdown = ctx.signals.shutdown.clone();
    let stop_on_shutdown = {
        let cancel = cancel.clone();
        async move {
            shutdown.cancelled().await;
            cancel.cancel();
        }
    };
    let result = tokio::select! {
        r = tracing::Instrument::instrument(executor.run(agenda, Some(progress), cancel.clone()), span) => Some(r),
        _ = stop_on_shutdown => None,
    };
    match result {
        Some(Ok(mut final_progress)) => {
            let ops = std::mem::take(&mut final_progress.operation_progress);
            sink.record(&ops, started_ms);
            let conclusion = final_progress.processing_state_message.clone().unwrap_or_default();
            metrics::histogram!("pop_agenda_duration_seconds", "conclusion" => conclusion.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("pop_agendas_completed_total", "conclusion" => conclusion.clone()).increment(1);
            let mut cache = sink.cache.lock().await;
            match pool.finish(&token, &final_progress, &ops, &mut cache).await {
                Ok(()) => tracing::info!(agenda_id, %conclusion, "agenda finished"),
                Err(e) if e.is_conflict() => tracing::info!(agenda_id, error = %e, "final progress refused"),
                Err(e) => {
                    tracing::warn!(agenda_id, error = %e, "could not write the final progress; the lease will expire and the agenda resume")
                }
            }
        }
        Some(Err(e)) => tracing::warn!(agenda_id, error = %e, "executor stopped"),
        None => {
            tracing::info!(agenda_id, "instance shutting down; the agenda resumes elsewhere when its lease expires")
        }
    }
    ctx.signals.running.remove(&agenda_id);
}
