//! The pool worker: pulls leases for its insights through a [`PoolApi`], runs each agenda with the
//! pop-exec executor, and reports through the same API (heartbeats, fenced progress, generated
//! operations, the final write and the ack). In an engine it calls the engine's own service; in a
//! remote pool process (`pop pool`) it calls the central server over HTTP.

mod api;
mod sink;

pub use api::PoolApi;

use crate::config::WorkerConfig;
use crate::services::{AgendaLease, LeaseState};
use crate::signals::Signals;
use pop_core::clock::{Clock, SystemClock};
use pop_core::runtime::PodRuntime;
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions};
use sink::{AttemptMetrics, LeaseSink};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// A pool worker: pulls agendas of its insights and runs them on a runtime until its signals shut
/// down.
pub struct Worker {
    api: Arc<dyn PoolApi>,
    runtime: Arc<dyn PodRuntime>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    executor: ExecutorOptions,
    signals: Arc<Signals>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).field("executor", &self.executor).finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker pulling through `api` and running handlers on `runtime`, with the system clock, the
    /// executor's default options and signals of its own (see [`Worker::signals`]).
    pub fn new(api: Arc<dyn PoolApi>, runtime: Arc<dyn PodRuntime>, config: WorkerConfig) -> Self {
        Self {
            api,
            // every launched operation in an `operation` span, whatever the runtime
            runtime: Arc::new(crate::traced::TracedRuntime(runtime)),
            clock: Arc::new(SystemClock),
            config,
            executor: ExecutorOptions::default(),
            signals: Arc::new(Signals::new()),
        }
    }

    /// The clock the executor stamps progress with.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The executor's options (parallelism per agenda, fail-fast, heartbeat).
    pub fn with_executor_options(mut self, options: ExecutorOptions) -> Self {
        self.executor = options;
        self
    }

    /// Shares `signals`: their shutdown stops the worker, a cancel registered there reaches its
    /// executors, and a completion wakes whoever waits on them.
    pub fn with_signals(mut self, signals: Arc<Signals>) -> Self {
        self.signals = signals;
        self
    }

    /// The signals the worker listens to (call `shutdown()` on them to stop it).
    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    /// Pulls and runs agendas until the signals shut down; agendas still running are cancelled locally
    /// then (their leases expire and another worker resumes them).
    pub async fn run(self) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.config.max_running.max(1)));
        let signals = this.signals.clone();
        loop {
            if signals.is_shut_down() {
                return;
            }
            let mut pulled = 0;
            for insight in &this.config.insights {
                let free = slots.available_permits().min(this.config.pull_count.max(1));
                if free == 0 {
                    break;
                }
                match this.api.pull(insight, free).await {
                    Ok(leases) => {
                        for lease in leases {
                            pulled += 1;
                            let Ok(permit) = slots.clone().acquire_owned().await else { return };
                            let this = this.clone();
                            tokio::spawn(async move {
                                this.run_agenda(lease).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(insight, error = %e, "pulling agendas failed"),
                }
            }
            if pulled == 0 || slots.available_permits() == 0 {
                tokio::select! {
                    _ = signals.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(this.config.pull_wait) => {}
                    _ = signals.wake.notified() => {}
                }
            }
        }
    }

    async fn run_agenda(&self, lease: AgendaLease) {
        let AgendaLease { lease, agenda, mut progress } = lease;
        let token = lease.token;
        let agenda_id = token.agenda_id.clone();
        let cancel = CancelToken::new();
        self.signals.running.insert(&agenda_id, cancel.clone());
        // The lease state keeps the progress without its rows; the executor takes the rows over.
        let rows = std::mem::take(&mut progress.operation_progress);
        let header = progress.clone();
        progress.operation_progress = rows;
        let metrics = AttemptMetrics {
            types: agenda.operations.iter().map(|o| (o.name.clone(), o.op_type.clone())).collect(),
            recorded: Default::default(),
            since: self.clock.now(),
            cost_ms: 0,
        };
        let sink = Arc::new(LeaseSink {
            api: self.api.clone(),
            token: token.clone(),
            state: tokio::sync::Mutex::new(LeaseState::started(lease.deadline, header)),
            metrics: Mutex::new(metrics),
        });
        let executor = Executor::new(self.runtime.clone(), sink, self.executor.clone()).with_clock(self.clock.clone());
        let started = std::time::Instant::now();
        let span = tracing::info_span!("execute", agenda_id = %agenda_id, cid = ?agenda.cid, epoch = token.epoch);
        let stop_on_shutdown = {
            let cancel = cancel.clone();
            let signals = self.signals.clone();
            async move {
                signals.shutdown.cancelled().await;
                cancel.cancel();
            }
        };
        let result = tokio::select! {
            r = tracing::Instrument::instrument(executor.run(agenda, Some(progress), cancel.clone()), span) => Some(r),
            _ = stop_on_shutdown => None,
        };
        match result {
            Some(Ok(done)) => {
                let conclusion = done.processing_state_message.clone().unwrap_or_else(|| "unknown".to_owned());
                metrics::histogram!("pop_agenda_duration_seconds", "conclusion" => conclusion.clone())
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("pop_agendas_completed_total", "conclusion" => conclusion.clone()).increment(1);
                tracing::info!(agenda_id, %conclusion, "agenda finished");
            }
            Some(Err(e)) if e.is_conflict() => {
                tracing::info!(agenda_id, error = %e, "executor stopped: the lease is no longer held")
            }
            Some(Err(e)) => {
                tracing::warn!(agenda_id, error = %e, "executor stopped; the lease will expire and the agenda resume")
            }
            None => {
                tracing::info!(agenda_id, "shutting down; the agenda resumes elsewhere when its lease expires")
            }
        }
        self.signals.running.remove(&agenda_id);
    }
}
