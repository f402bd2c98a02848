//! The executor's progress sink of one lease: every publish goes through the [`PoolApi`]; the final
//! one (the agenda COMPLETE) is the finish that acknowledges the lease.

use super::PoolApi;
use crate::services::{Finish, LeaseState};
use async_trait::async_trait;
use pop_core::model::{AgendaProgress, Millis, Operation, OperationProgress, Params, ProcessingState};
use pop_core::queue::LeaseToken;
use pop_core::{Error, Result};
use pop_exec::executor::ProgressSink;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// Group completion: the finishes of a worker's agendas go through one task, which hands every
/// finish that arrived while the previous batches were written to one [`PoolApi::finish_many`] (so a
/// batch is whatever is ready when a lane frees up: nothing waits for a timer). Up to
/// [`FINISH_LANES`] batches are written at once, so that one batch's final write overlaps the
/// previous batch's ack instead of waiting for it.
pub(super) struct Completer {
    tx: mpsc::UnboundedSender<(Finish, oneshot::Sender<Result<()>>)>,
}

/// The most finishes in one batch.
const MAX_FINISH_BATCH: usize = 256;

/// The most batches being finished at once.
const FINISH_LANES: usize = 2;

impl Completer {
    /// Starts the completing task; it ends when the completer and every sink holding it are dropped.
    pub fn start(api: Arc<dyn PoolApi>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Finish, oneshot::Sender<Result<()>>)>();
        let lanes = Arc::new(tokio::sync::Semaphore::new(FINISH_LANES));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // a lane first, then the batch: what arrives while the lanes are busy joins it
                let Ok(lane) = lanes.clone().acquire_owned().await else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_FINISH_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let api = api.clone();
                tokio::spawn(async move {
                    let (finishes, replies): (Vec<Finish>, Vec<_>) = batch.into_iter().unzip();
                    let results = api.finish_many(finishes).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        // (a receiver gone is an executor stopped meanwhile: the outcome is in the store)
                        let _ = reply.send(result);
                    }
                    drop(lane);
                });
            }
        });
        Arc::new(Self { tx })
    }

    /// Finishes one agenda in the next batch; returns its own outcome.
    async fn finish(&self, finish: Finish) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let agenda_id = finish.token.agenda_id.clone();
        let stopped =
            || Error::Conflict(format!("agenda {agenda_id}: the worker's completer stopped before finishing it"));
        self.tx.send((finish, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// Publishes an executor's progress under one lease.
pub(super) struct LeaseSink {
    pub api: Arc<dyn PoolApi>,
    pub completer: Arc<Completer>,
    pub token: LeaseToken,
    pub state: tokio::sync::Mutex<LeaseState>,
    pub metrics: Mutex<AttemptMetrics>,
}

/// Per-type operation metrics of one attempt, recorded as completed rows pass through the sink.
pub(super) struct AttemptMetrics {
    /// Operation name → type.
    pub types: HashMap<String, String>,
    /// Operations already recorded in this attempt.
    pub recorded: HashSet<String>,
    /// When the attempt started (epoch ms): rows completed before were restored, not run.
    pub since: Millis,
    /// Wall time of the operations this attempt ran, in ms (the agenda's `costMs` when it finishes).
    pub cost_ms: u64,
}

impl AttemptMetrics {
    fn record(&mut self, rows: &[OperationProgress]) {
        for op in rows {
            let done_here =
                op.processing_state == ProcessingState::Complete && op.completed_time.is_some_and(|c| c >= self.since);
            let Some(name) = op.operation.as_deref().filter(|_| done_here) else { continue };
            if !self.recorded.insert(name.to_owned()) {
                continue;
            }
            let op_type = self.types.get(name).cloned().unwrap_or_else(|| "unknown".to_owned());
            if let (Some(s), Some(c)) = (op.started_time, op.completed_time) {
                self.cost_ms = self.cost_ms.saturating_add((c - s).max(0) as u64);
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
        let cost_ms = {
            let mut metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            metrics.record(changed);
            metrics.cost_ms
        };
        let mut state = self.state.lock().await;
        if agenda.processing_state == ProcessingState::Complete {
            let report = AgendaProgress { cost_ms: Some(cost_ms), ..agenda.clone() };
            let finish = Finish {
                token: self.token.clone(),
                state: std::mem::take(&mut *state),
                progress: report,
                rows: changed.to_vec(),
            };
            self.completer.finish(finish).await
        } else {
            self.api.write_progress(&self.token, &mut state, agenda, changed).await
        }
    }

    async fn operations_generated(
        &self,
        _agenda_id: &str,
        parent: &str,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        tracing::info!(agenda_id = %self.token.agenda_id, generator = parent, count = operations.len(), "operations generated");
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .types
            .extend(operations.iter().map(|o| (o.name.clone(), o.op_type.clone())));
        let mut state = self.state.lock().await;
        self.api.append_operations(&self.token, &mut state, operations, params).await
    }
}
