//! The [`Engine`]: one POP instance's services and the loops started on it.

use crate::alerts::{self, AlertConfig, AlertRunner, AlertSink, AlertStats, Alerts};
use crate::config::{PopConfig, WorkerConfig};
use crate::context::Ctx;
use crate::reclaimer::{ReclaimReport, Reclaimer};
use crate::scheduler::Scheduler;
use crate::services::{AgendaService, ObjectService, ProgressService, ResourcePoolService};
use crate::signals::Signals;
use crate::timed::{
    DataReaperConfig, PodReaperConfig, RetryConfig, RunReport, TimedConfig, TimedProcesses, TimedStats,
};
use crate::worker::Worker;
use pop_core::Result;
use pop_core::authz::{Authorizer, Credentials, Principal, StaticTokenAuthorizer};
use pop_core::clock::{Clock, SystemClock};
use pop_core::queue::QueueBackend;
use pop_core::runtime::PodRuntime;
use pop_core::sched::SchedulingAlgorithm;
use pop_core::store::Store;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// What an [`Engine`] is made of. The `pop` facade's `PopBuilder` fills it from backend features.
pub struct EngineParts {
    /// The store of objects, progress, the ready set and named leases.
    pub store: Arc<dyn Store>,
    /// The queues of the insights.
    pub queue: Arc<dyn QueueBackend>,
    /// Where handlers run (see [`crate::RuntimeRouter`] to combine several runtimes).
    pub runtime: Arc<dyn PodRuntime>,
    /// Turns credentials into a [`Principal`] (the HTTP API calls it; the services take principals).
    pub authorizer: Arc<dyn Authorizer>,
    /// Custom scheduling algorithms, registered by name beside the built-in ones.
    pub algorithms: Vec<Arc<dyn SchedulingAlgorithm>>,
    /// Settings.
    pub config: PopConfig,
    /// The time source of every loop and service.
    pub clock: Arc<dyn Clock>,
    /// Where alerts go (none: no alerts); see [`crate::alerts`].
    pub alert_sink: Option<Arc<dyn AlertSink>>,
    /// Alert delivery (retries, dead-letter file) and stall detection.
    pub alert_config: AlertConfig,
}

impl EngineParts {
    /// Parts with the given backends, no tokens in the authorizer, the built-in algorithms, default
    /// settings and the system clock.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn QueueBackend>, runtime: Arc<dyn PodRuntime>) -> Self {
        Self {
            store,
            queue,
            runtime,
            authorizer: Arc::new(StaticTokenAuthorizer::new()),
            algorithms: Vec::new(),
            config: PopConfig::default(),
            clock: Arc::new(SystemClock),
            alert_sink: None,
            alert_config: AlertConfig::default(),
        }
    }
}

/// A running POP instance: its services, and the loops started on it.
///
/// Cheap to clone; every clone is the same instance.
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<Ctx>,
    authorizer: Arc<dyn Authorizer>,
    /// The loops started on this instance, joined at shutdown.
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The counters of the timed processes (the timed loop writes them).
    timed: Arc<TimedStats>,
    /// The alert delivery loop's side, until the first loop starts (it starts with it).
    alert_runner: Arc<Mutex<Option<AlertRunner>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("instance", &self.ctx.config.instance_id).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on `parts`. Must be called inside a tokio runtime only to start loops, not to build.
    pub fn new(parts: EngineParts) -> Self {
        let mut algorithms = pop_sched::Registry::new();
        for a in parts.algorithms {
            algorithms.register(a);
        }
        let (alerts, runner) =
            Alerts::new(parts.alert_sink, &parts.alert_config, parts.config.instance_id.clone(), parts.clock.clone());
        let ctx = Ctx {
            store: parts.store,
            queue: parts.queue,
            runtime: parts.runtime,
            algorithms,
            config: parts.config,
            clock: parts.clock,
            signals: Arc::new(Signals::new()),
            alerts,
            costs: Default::default(),
            grouped: Default::default(),
        };
        Self {
            ctx: Arc::new(ctx),
            authorizer: parts.authorizer,
            tasks: Arc::new(Mutex::new(Vec::new())),
            timed: Arc::new(TimedStats::default()),
            alert_runner: Arc::new(Mutex::new(runner)),
        }
    }

    /// Agenda services: submit, run a template, rerun, cancel, get, query.
    pub fn agendas(&self) -> AgendaService {
        AgendaService { ctx: self.ctx.clone() }
    }

    /// Progress services: progress, summary by linkId, explain.
    pub fn progress(&self) -> ProgressService {
        ProgressService { ctx: self.ctx.clone() }
    }

    /// Resource-pool services: leases, heartbeat, progress, generated operations, completion.
    pub fn pool(&self) -> ResourcePoolService {
        ResourcePoolService { ctx: self.ctx.clone() }
    }

    /// CRUD of customers, resource pools, insights and agenda templates.
    pub fn objects(&self) -> ObjectService {
        ObjectService { ctx: self.ctx.clone() }
    }

    /// Authenticates credentials with the instance's authorizer.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Principal> {
        self.authorizer.authenticate(credentials).await
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Arc<dyn Authorizer> {
        &self.authorizer
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.ctx.store
    }

    /// The queue backend.
    pub fn queue(&self) -> &Arc<dyn QueueBackend> {
        &self.ctx.queue
    }

    /// The runtime handlers run on.
    pub fn runtime(&self) -> &Arc<dyn PodRuntime> {
        &self.ctx.runtime
    }

    /// The configuration.
    pub fn config(&self) -> &PopConfig {
        &self.ctx.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ctx.clock
    }

    /// The engine's signals (wake-ups, running agendas, shutdown).
    pub fn signals(&self) -> &Arc<Signals> {
        &self.ctx.signals
    }

    /// The scheduling algorithms (built-in and registered).
    pub fn algorithms(&self) -> &pop_sched::Registry {
        &self.ctx.algorithms
    }

    /// The shared context (the engine's own tests reach the loops' internals through it).
    #[cfg(test)]
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let alerts = self.alert_runner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The alert loops start with the first loop started on the engine (alerts come from loops).
        if let Some(runner) = alerts {
            let ctx = self.ctx.clone();
            let clock = ctx.clock.clone();
            let pool_idle = runner.config.pool_idle;
            tasks.push(tokio::spawn(alerts::deliver_loop(runner, ctx.signals.clone(), move || clock.now())));
            if let Some(idle) = pool_idle {
                tasks.push(tokio::spawn(alerts::stall_loop(ctx, idle)));
            }
        }
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    /// Starts the scheduler loop (one per insight across instances, held by a store lease).
    pub fn start_scheduler(&self) {
        self.spawn(Scheduler::new(self.ctx.clone()).run());
    }

    /// Starts a pool worker.
    pub fn start_worker(&self, config: WorkerConfig) {
        let ctx = &self.ctx;
        let options = pop_exec::executor::ExecutorOptions {
            parallelism: ctx.config.parallelism,
            fail_fast: ctx.config.fail_fast,
            heartbeat: ctx.config.heartbeat,
            ..Default::default()
        };
        let worker = Worker::new(Arc::new(self.pool()), ctx.runtime.clone(), config)
            .with_clock(ctx.clock.clone())
            .with_executor_options(options)
            .with_signals(ctx.signals.clone());
        self.spawn(worker.run());
    }

    /// Starts the reclaimer (expired leases, lost WAITING agendas).
    pub fn start_reclaimer(&self) {
        self.spawn(Reclaimer::new(self.ctx.clone()).run());
    }

    /// Starts scheduler, reclaimer and one worker.
    pub fn start_all(&self, worker: WorkerConfig) {
        self.start_scheduler();
        self.start_reclaimer();
        self.start_worker(worker);
    }

    /// Runs one scheduling pass over every insight now (what the loop does each interval); returns
    /// the agendas queued.
    pub async fn schedule_once(&self) -> Result<usize> {
        Scheduler::new(self.ctx.clone()).run_once().await
    }

    /// Runs one reclaimer pass now.
    pub async fn reclaim_once(&self) -> Result<ReclaimReport> {
        Reclaimer::new(self.ctx.clone()).run_once().await
    }

    fn timed_processes(&self, config: TimedConfig) -> TimedProcesses {
        TimedProcesses::new(self.ctx.clone(), config, self.timed.clone())
    }

    /// Starts the timed processes (automatic retry, data reaper, pod reaper).
    pub fn start_timed(&self, config: TimedConfig) {
        self.spawn(self.timed_processes(config).run());
    }

    /// The counts of this engine's alerts.
    pub fn alert_stats(&self) -> &AlertStats {
        &self.ctx.alerts.stats
    }

    /// The counters of the timed processes.
    pub fn timed_stats(&self) -> &TimedStats {
        &self.timed
    }

    /// One automatic-retry run now.
    pub async fn retry_once(&self, config: &RetryConfig) -> Result<RunReport> {
        let timed = self.timed_processes(TimedConfig { retry: config.clone(), ..TimedConfig::default() });
        timed.retry_once().await
    }

    /// One data-reaper run now (`retry` tells which failed agendas are still due for a retry).
    pub async fn reap_data_once(&self, config: &DataReaperConfig, retry: &RetryConfig) -> Result<RunReport> {
        let config = TimedConfig { retry: retry.clone(), data_reaper: config.clone(), ..TimedConfig::default() };
        self.timed_processes(config).reap_data_once().await
    }

    /// One pod-reaper run now.
    pub async fn reap_pods_once(&self, config: &PodReaperConfig) -> Result<RunReport> {
        let timed = self.timed_processes(TimedConfig { pod_reaper: config.clone(), ..TimedConfig::default() });
        timed.reap_pods_once().await
    }

    /// Stops every loop; running agendas are cancelled locally (their leases expire and another
    /// instance takes them over). Waits up to 10 s for each loop.
    pub async fn shutdown(&self) {
        self.ctx.signals.shutdown();
        let tasks: Vec<JoinHandle<()>> =
            self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect();
        for t in tasks {
            if tokio::time::timeout(std::time::Duration::from_secs(10), t).await.is_err() {
                tracing::warn!("a loop did not stop within 10 s of the shutdown; abandoned");
            }
        }
    }
}
