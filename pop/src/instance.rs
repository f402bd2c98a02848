//! The `Pop` instance and its builder.

use crate::clock::{Clock, SystemClock};
use crate::config::{PopConfig, WorkerConfig};
use crate::services::{AgendaService, ObjectService, ProgressService, ResourcePoolService};
use pop_core::authz::{Authorizer, Principal, StaticTokenAuthorizer};
use pop_core::model::{AgendaProgress, OperationProgress};
use pop_core::queue::QueueBackend;
use pop_core::runtime::PodRuntime;
use pop_core::sched::SchedulingAlgorithm;
use pop_core::store::{IndexField, Store, StoreExt};
use pop_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every service and loop of an instance shares.
pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn QueueBackend>,
    pub runtime: Arc<dyn PodRuntime>,
    pub authorizer: Arc<dyn Authorizer>,
    pub algorithms: pop_sched::Registry,
    pub config: PopConfig,
    pub clock: Arc<dyn Clock>,
    /// Wakes the scheduler (submissions, completions).
    pub wake: Notify,
    /// Cancellation of the agendas this instance runs, by agenda id.
    pub running: Mutex<HashMap<String, pop_exec::CancelToken>>,
    pub shutdown: CancellationToken,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Counters of the timed processes.
    pub timed: Arc<crate::timed::TimedStats>,
    /// Customer weights cached by the scheduler: id → (weight, read at).
    pub weights: Mutex<HashMap<String, (u32, i64)>>,
    /// Scheduler leases this instance holds: insight id → held until (epoch ms).
    pub sched_leases: Mutex<HashMap<String, i64>>,
}

impl Inner {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// An agenda progress with its operation progress joined.
    pub async fn progress_full(&self, progress_id: &str) -> Result<AgendaProgress> {
        let mut p: AgendaProgress = self.store.fetch(progress_id).await?;
        p.operation_progress = self.operation_progress(progress_id).await?;
        Ok(p)
    }

    /// The operation progress of an agenda progress, in the order the operations were added.
    pub async fn operation_progress(&self, progress_id: &str) -> Result<Vec<OperationProgress>> {
        let mut ops: Vec<OperationProgress> = self.store.query_all(IndexField::AgendaProgressId, progress_id).await?;
        ops.sort_by(|a, b| a.added_time.cmp(&b.added_time).then_with(|| a.id.cmp(&b.id)));
        Ok(ops)
    }

    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        }
    }
}

/// A running POP instance: services, and the loops started on it.
///
/// Cheap to clone; every clone is the same instance.
#[derive(Clone)]
pub struct Pop {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Pop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop").field("instance", &self.inner.config.instance_id).finish_non_exhaustive()
    }
}

impl Pop {
    /// A builder.
    pub fn builder() -> PopBuilder {
        PopBuilder::default()
    }

    /// Agenda services: submit, run a template, rerun, cancel, get, query.
    pub fn agendas(&self) -> AgendaService {
        AgendaService { inner: self.inner.clone() }
    }

    /// Progress services: progress, summary by linkId, explain.
    pub fn progress(&self) -> ProgressService {
        ProgressService { inner: self.inner.clone() }
    }

    /// Resource-pool services: leases, heartbeat, progress, generated operations, completion.
    pub fn pool(&self) -> ResourcePoolService {
        ResourcePoolService { inner: self.inner.clone() }
    }

    /// CRUD of customers, resource pools, insights and agenda templates.
    pub fn objects(&self) -> ObjectService {
        ObjectService { inner: self.inner.clone() }
    }

    /// Authenticates credentials with the instance's authorizer.
    pub async fn authenticate(&self, credentials: &pop_core::authz::Credentials) -> Result<Principal> {
        self.inner.authorizer.authenticate(credentials).await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The queue backend.
    pub fn queue(&self) -> &Arc<dyn QueueBackend> {
        &self.inner.queue
    }

    /// The configuration.
    pub fn config(&self) -> &PopConfig {
        &self.inner.config
    }

    /// Starts the scheduler loop (one per insight across instances, held by a store lease).
    pub fn start_scheduler(&self) {
        let inner = self.inner.clone();
        self.inner.spawn(crate::scheduler::run(inner));
    }

    /// Starts a pool worker.
    pub fn start_worker(&self, config: WorkerConfig) {
        let inner = self.inner.clone();
        self.inner.spawn(crate::worker::run(inner, config));
    }

    /// Starts the reclaimer (expired leases, lost WAITING agendas).
    pub fn start_reclaimer(&self) {
        let inner = self.inner.clone();
        self.inner.spawn(crate::reclaimer::run(inner));
    }

    /// Starts scheduler, reclaimer and one worker for `insights`.
    pub fn start_all(&self, worker: WorkerConfig) {
        self.start_scheduler();
        self.start_reclaimer();
        self.start_worker(worker);
    }

    /// Runs one scheduling pass over every insight now (also what the loop does each interval).
    pub async fn schedule_once(&self) -> Result<usize> {
        crate::scheduler::run_once(&self.inner).await
    }

    /// Runs one reclaimer pass now.
    pub async fn reclaim_once(&self) -> Result<crate::reclaimer::ReclaimReport> {
        crate::reclaimer::run_once(&self.inner).await
    }

    /// Starts the timed processes (automatic retry, data reaper, pod reaper).
    pub fn start_timed(&self, config: crate::timed::TimedConfig) {
        let inner = self.inner.clone();
        let stats = self.inner.timed.clone();
        self.inner.spawn(crate::timed::run(inner, config, stats));
    }

    /// The counters of the timed processes.
    pub fn timed_stats(&self) -> &crate::timed::TimedStats {
        &self.inner.timed
    }

    /// One automatic-retry run now.
    pub async fn retry_once(&self, config: &crate::timed::RetryConfig) -> Result<crate::timed::RunReport> {
        crate::timed::retry_once(&self.inner, config, &self.inner.timed).await
    }

    /// One data-reaper run now (`retry` tells which failed agendas are still due for a retry).
    pub async fn reap_data_once(
        &self,
        config: &crate::timed::DataReaperConfig,
        retry: &crate::timed::RetryConfig,
    ) -> Result<crate::timed::RunReport> {
        crate::timed::reap_data_once(&self.inner, config, retry, &self.inner.timed).await
    }

    /// One pod-reaper run now.
    pub async fn reap_pods_once(&self, config: &crate::timed::PodReaperConfig) -> Result<crate::timed::RunReport> {
        crate::timed::reap_pods_once(&self.inner, config, &self.inner.timed).await
    }

    /// The runtime handlers run on.
    pub fn runtime(&self) -> &Arc<dyn PodRuntime> {
        &self.inner.runtime
    }

    /// Stops every loop; running agendas are cancelled locally (their leases expire and another
    /// instance takes them over).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }
}

/// Builds a [`Pop`]: store, queue, runtime, authorizer, algorithms, configuration.
#[derive(Default)]
pub struct PopBuilder {
    store: Option<Arc<dyn Store>>,
    queue: Option<Arc<dyn QueueBackend>>,
    runtime: Option<Arc<dyn PodRuntime>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    algorithms: Vec<Arc<dyn SchedulingAlgorithm>>,
    config: PopConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl PopBuilder {
    /// The store (required unless a backend feature's helper sets it).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The queue backend.
    pub fn queue(mut self, queue: Arc<dyn QueueBackend>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The runtime handlers run on (see [`crate::router::RuntimeRouter`] to combine several).
    pub fn runtime(mut self, runtime: Arc<dyn PodRuntime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The authorizer (default: a [`StaticTokenAuthorizer`] with no tokens: only the services'
    /// explicit principals work).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Registers a custom scheduling algorithm by its name.
    pub fn algorithm(mut self, algorithm: Arc<dyn SchedulingAlgorithm>) -> Self {
        self.algorithms.push(algorithm);
        self
    }

    /// The configuration.
    pub fn config(mut self, config: PopConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses the embedded sled store and queue in `path`.
    #[cfg(feature = "sled")]
    pub fn sled_path(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let (store, queue) = crate::backends::open_sled(path.as_ref())?;
        Ok(self.store(store).queue(queue))
    }

    /// Builds the instance. Must be called inside a tokio runtime.
    pub fn build(self) -> Result<Pop> {
        let store = self.store.ok_or_else(|| Error::invalid("PopBuilder: no store configured"))?;
        let queue = self.queue.ok_or_else(|| Error::invalid("PopBuilder: no queue backend configured"))?;
        let runtime = self.runtime.ok_or_else(|| Error::invalid("PopBuilder: no runtime configured"))?;
        let mut algorithms = pop_sched::Registry::new();
        for a in self.algorithms {
            algorithms.register(a);
        }
        let runtime: Arc<dyn PodRuntime> = Arc::new(crate::traced::TracedRuntime(runtime));
        let inner = Inner {
            store,
            queue,
            runtime,
            authorizer: self.authorizer.unwrap_or_else(|| Arc::new(StaticTokenAuthorizer::new())),
            algorithms,
            config: self.config,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            timed: Arc::new(crate::timed::TimedStats::default()),
            weights: Mutex::new(HashMap::new()),
            sched_leases: Mutex::new(HashMap::new()),
        };
        Ok(Pop { inner: Arc::new(inner) })
    }
}
