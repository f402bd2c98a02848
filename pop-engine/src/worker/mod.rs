//! The pool worker: pulls leases for its insights through a [`PoolApi`], runs each agenda with the
//! pop-exec executor, and reports through the same API (heartbeats, fenced progress, generated
//! operations, the final write and the ack). In an engine it calls the engine's own service; in a
//! remote pool process (`pop pool`) it calls the central server over HTTP.

mod admission;
mod api;
mod sink;

pub use admission::{Capacity, HELD_BACK, RESOURCES_PARAM, demand};
pub use api::PoolApi;

use crate::config::WorkerConfig;
use crate::services::{AgendaLease, LeaseState};
use crate::signals::Signals;
use pop_core::clock::{Clock, SystemClock};
use pop_core::model::{Conclusion, DiagnosticEvent, ProcessingState};
use pop_core::runtime::PodRuntime;
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions};
use pop_sched::capacity::{Admit, Admitter, Resources};
use sink::{AttemptMetrics, Completer, LeaseSink};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The most pulls a worker has in flight at once (when its free slots call for more than one).
const MAX_CONCURRENT_PULLS: usize = 4;

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
    ///
    /// With a [`Capacity`], each pulled agenda's demand goes through an [`Admitter`]: what fits
    /// starts, a pulled agenda that does not fit now is released back to the queue (WAITING, no
    /// attempt counted, its reservation kept here so that at most `max_backfill` smaller agendas
    /// start past it), and one that can never fit fails with the reason.
    pub async fn run(self) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.config.max_running.max(1)));
        let admitter = this
            .config
            .capacity
            .as_ref()
            .map(|c| Arc::new(Mutex::new(Admitter::new(c.resources.clone(), c.max_backfill))));
        let finished = Arc::new(Notify::new());
        let completer = Completer::start(this.api.clone());
        let signals = this.signals.clone();
        let per = this.config.pull_count.max(1);
        let insights = this.config.insights.len();
        // Pulls run as tasks of their own, so that a pull starts as soon as slots free up instead of
        // after the previous pulls returned: up to MAX_CONCURRENT_PULLS at once, their durable
        // writes sharing the store's group commits. Each pull holds the slots it may fill; the
        // slots its leases do not use go back when it ends. An insight whose last pull came back
        // empty (or failed) is asked again after `pull_wait`, or when the signals wake the worker.
        let (pulled_tx, mut pulled_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, bool)>();
        let mut in_flight = 0usize;
        let mut resting: Vec<Option<tokio::time::Instant>> = vec![None; insights];
        let mut next = 0usize;
        loop {
            if signals.is_shut_down() {
                break;
            }
            let now = tokio::time::Instant::now();
            for r in resting.iter_mut() {
                if r.is_some_and(|until| until <= now) {
                    *r = None;
                }
            }
            // Insights take turns for the pulls that can start now.
            let mut tried = 0;
            while tried < insights && in_flight < MAX_CONCURRENT_PULLS {
                let i = next % insights;
                let free = slots.available_permits();
                // a pull fills at most `per` slots: wait for that many unless nothing is being pulled
                if free == 0 || (free < per && in_flight > 0) {
                    break;
                }
                if resting[i].is_some() {
                    next += 1;
                    tried += 1;
                    continue;
                }
                let n = per.min(free);
                let Ok(held) = slots.clone().try_acquire_many_owned(n as u32) else { break };
                in_flight += 1;
                next += 1;
                tried = 0;
                let pull = Pull {
                    this: this.clone(),
                    insight: i,
                    count: n,
                    held,
                    admitter: admitter.clone(),
                    finished: finished.clone(),
                    completer: completer.clone(),
                    done: pulled_tx.clone(),
                };
                tokio::spawn(pull.run());
            }
            let rest_until = resting.iter().flatten().min().copied();
            tokio::select! {
                _ = signals.shutdown.cancelled() => break,
                _ = sleep_until(rest_until) => {}
                _ = signals.wake.notified() => resting.fill(None),
                _ = finished.notified() => {}
                Some((i, got_some)) = pulled_rx.recv() => {
                    in_flight -= 1;
                    if !got_some {
                        resting[i] = Some(tokio::time::Instant::now() + this.config.pull_wait);
                    }
                }
            }
        }
        // The pulls still out end first (the agendas they start see the shutdown and stop).
        while in_flight > 0 && pulled_rx.recv().await.is_some() {
            in_flight -= 1;
        }
    }

    /// Which of `leases` (queue order) start now, with their demands (recorded as in use); the
    /// others are released or refused.
    async fn admit(
        &self,
        admitter: &Mutex<Admitter>,
        leases: Vec<AgendaLease>,
    ) -> Vec<(AgendaLease, Option<Resources>)> {
        let Some(capacity) = self.config.capacity.as_ref() else {
            return leases.into_iter().map(|l| (l, None)).collect();
        };
        let mut candidates = Vec::with_capacity(leases.len());
        for lease in leases {
            match demand(&lease.agenda, capacity.registry.as_deref(), self.executor.parallelism) {
                Ok(d) => candidates.push((lease, d)),
                Err(e) => self.refuse(lease, e.to_string()).await,
            }
        }
        let mut out = Vec::new();
        let mut refused = Vec::new();
        let mut held = Vec::new();
        {
            let mut a = admitter.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                let view: Vec<(&str, &Resources)> =
                    candidates.iter().map(|(l, d)| (l.lease.token.agenda_id.as_str(), d)).collect();
                match a.choose(&view) {
                    Admit::Start(i) => {
                        let (lease, d) = candidates.remove(i);
                        a.started(&d);
                        out.push((lease, Some(d)));
                    }
                    Admit::Never(i, why) => refused.push((candidates.remove(i).0, why)),
                    Admit::Wait => break,
                }
            }
            for (lease, d) in candidates {
                let why = a.why_waiting(&lease.lease.token.agenda_id, &d);
                held.push((lease, why));
            }
        }
        for (lease, why) in refused {
            self.refuse(lease, format!("it can never fit this pool: {why}")).await;
        }
        for (lease, why) in held {
            let agenda_id = &lease.lease.token.agenda_id;
            tracing::debug!(agenda_id, why, "no room for the agenda: released to the queue");
            metrics::counter!("pop_admission_held_total").increment(1);
            if let Err(e) = self.api.release(&lease.lease.token, &why).await {
                tracing::warn!(agenda_id, error = %e, "could not release a held-back agenda; it comes back when its lease expires");
            }
        }
        out
    }

    /// Fails a pulled agenda the pool refuses, with the reason as a diagnostic (status `CAPACITY`).
    async fn refuse(&self, lease: AgendaLease, why: String) {
        let AgendaLease { lease, mut progress, .. } = lease;
        let agenda_id = lease.token.agenda_id.clone();
        tracing::warn!(agenda_id, why, "pool admission refused the agenda");
        metrics::counter!("pop_admission_refused_total").increment(1);
        let now = self.clock.now();
        progress.operation_progress.clear();
        let mut state = LeaseState::started(lease.deadline, progress.clone());
        progress.processing_state = ProcessingState::Complete;
        progress.processing_state_message = Some(Conclusion::Failed.as_str().to_owned());
        progress.completed_time = Some(now);
        progress.updated_time = Some(now);
        progress.diagnostic_events = vec![DiagnosticEvent {
            status_code: Some("CAPACITY".into()),
            ..DiagnosticEvent::new(format!("refused by pool admission: {why}"), now)
        }];
        if let Err(e) = self.api.finish(&lease.token, &mut state, &progress, &[]).await {
            tracing::warn!(agenda_id, error = %e, "could not fail a refused agenda; it comes back when its lease expires");
        }
    }

    async fn run_agenda(&self, lease: AgendaLease, completer: Arc<Completer>) {
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
            completer,
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

/// Sleeps until `until`, or for ever without one.
async fn sleep_until(until: Option<tokio::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One pull of a worker's loop: the slots it may fill, and where it reports that it ended.
struct Pull {
    this: Arc<Worker>,
    insight: usize,
    count: usize,
    held: OwnedSemaphorePermit,
    admitter: Option<Arc<Mutex<Admitter>>>,
    finished: Arc<Notify>,
    completer: Arc<Completer>,
    /// (insight index, whether the pull leased anything)
    done: tokio::sync::mpsc::UnboundedSender<(usize, bool)>,
}

/// Tells the worker's loop that a pull ended, also if it panicked (the loop counts its pulls).
struct Ended {
    done: tokio::sync::mpsc::UnboundedSender<(usize, bool)>,
    insight: usize,
    got_some: bool,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.done.send((self.insight, self.got_some));
    }
}

impl Pull {
    /// Pulls, then starts every admitted agenda on one of the held slots; the rest go back.
    async fn run(self) {
        let Pull { this, insight, count, mut held, admitter, finished, completer, done } = self;
        let mut ended = Ended { done, insight, got_some: false };
        let insight_id = &this.config.insights[insight];
        ended.got_some = match this.api.pull(insight_id, count).await {
            Ok(leases) => {
                let got_some = !leases.is_empty();
                let admitted = match &admitter {
                    None => leases.into_iter().map(|l| (l, None)).collect(),
                    Some(a) => this.admit(a, leases).await,
                };
                for (lease, demand) in admitted {
                    // (a pull never returns more leases than it asked for, so the slot is there)
                    let Some(permit) = held.split(1) else {
                        tracing::error!(insight_id, "a pull returned more leases than it asked for; the rest expire");
                        break;
                    };
                    let this = this.clone();
                    let admitter = admitter.clone();
                    let finished = finished.clone();
                    let completer = completer.clone();
                    tokio::spawn(async move {
                        this.run_agenda(lease, completer).await;
                        if let (Some(a), Some(d)) = (admitter, demand) {
                            a.lock().unwrap_or_else(PoisonError::into_inner).finished(&d);
                        }
                        drop(permit);
                        finished.notify_one();
                    });
                }
                got_some
            }
            Err(e) => {
                tracing::warn!(insight = insight_id, error = %e, "pulling agendas failed");
                false
            }
        };
        drop(held);
    }
}

#[cfg(test)]
mod tests;
