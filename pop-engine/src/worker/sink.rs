//! The executor's progress sink of one lease: every publish goes through the [`PoolApi`]; the final
//! one (the agenda COMPLETE) is the finish that acknowledges the lease.

use super::PoolApi;
use crate::services::LeaseState;
use async_trait::async_trait;
use pop_core::Result;
use pop_core::model::{AgendaProgress, Millis, Operation, OperationProgress, Params, ProcessingState};
use pop_core::queue::LeaseToken;
use pop_exec::executor::ProgressSink;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Publishes an executor's progress under one lease.
pub(super) struct LeaseSink {
    pub api: Arc<dyn PoolApi>,
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
            self.api.finish(&self.token, &mut state, &report, changed).await
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
