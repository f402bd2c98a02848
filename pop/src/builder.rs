//! [`Pop`] and its builder.

use pop_core::authz::Authorizer;
use pop_core::clock::Clock;
use pop_core::queue::QueueBackend;
use pop_core::runtime::PodRuntime;
use pop_core::sched::SchedulingAlgorithm;
use pop_core::store::Store;
use pop_core::{Error, Result};
use pop_engine::{AlertConfig, AlertSink, Engine, EngineParts, PopConfig};
use std::sync::Arc;

/// A POP instance: an [`Engine`] (every service and loop, through `Deref`) built by [`PopBuilder`].
///
/// Cheap to clone; every clone is the same instance.
#[derive(Clone, Debug)]
pub struct Pop(Engine);

impl Pop {
    /// A builder.
    pub fn builder() -> PopBuilder {
        PopBuilder::default()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0
    }
}

impl std::ops::Deref for Pop {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.0
    }
}

impl From<Engine> for Pop {
    fn from(engine: Engine) -> Self {
        Self(engine)
    }
}

impl From<Pop> for Engine {
    fn from(pop: Pop) -> Self {
        pop.0
    }
}

/// Builds a [`Pop`]: store, queue, runtime, authorizer, algorithms, configuration, clock. The backend
/// features add their helpers ([`PopBuilder::sled_path`], `dynamo`, `k8s_runtime`).
#[derive(Default)]
pub struct PopBuilder {
    store: Option<Arc<dyn Store>>,
    queue: Option<Arc<dyn QueueBackend>>,
    runtime: Option<Arc<dyn PodRuntime>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    algorithms: Vec<Arc<dyn SchedulingAlgorithm>>,
    config: PopConfig,
    clock: Option<Arc<dyn Clock>>,
    alert_sink: Option<Arc<dyn AlertSink>>,
    alert_config: AlertConfig,
}

impl PopBuilder {
    /// The store (required unless a backend feature's helper sets it).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The queue backend (required unless a backend feature's helper sets it).
    pub fn queue(mut self, queue: Arc<dyn QueueBackend>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The runtime handlers run on (see [`crate::RuntimeRouter`] to combine several).
    pub fn runtime(mut self, runtime: Arc<dyn PodRuntime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The authorizer (default: a `StaticTokenAuthorizer` with no tokens: only the services' explicit
    /// principals work).
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

    /// Where alerts go (an agenda failed for good, a pool that stopped pulling); default: nowhere. See
    /// [`pop_engine::alerts`].
    pub fn alert_sink(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alert_sink = Some(sink);
        self
    }

    /// Alert delivery (attempts, backoff, the dead-letter file) and the pools' idle limit.
    pub fn alert_config(mut self, config: AlertConfig) -> Self {
        self.alert_config = config;
        self
    }

    /// Sends alerts to a webhook (JSON POST, Slack-compatible): [`pop_http::alerts::WebhookSink`].
    ///
    /// # Errors
    /// `Invalid` when `url` is not an http(s) URL.
    #[cfg(feature = "http")]
    pub fn alert_webhook(self, url: &str) -> Result<Self> {
        Ok(self.alert_sink(Arc::new(pop_http::alerts::WebhookSink::new(url)?)))
    }

    /// Uses the embedded sled store and queue in `path` (created if missing).
    ///
    /// # Errors
    /// The store's error when the directory cannot be opened (another process holds it, a corrupt
    /// database, no permission).
    #[cfg(feature = "sled")]
    pub fn sled_path(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let (store, queue) = crate::backends::open_sled(path.as_ref())?;
        Ok(self.store(store).queue(queue))
    }

    /// Builds the instance.
    ///
    /// # Errors
    /// `Invalid` naming what is missing: a store, a queue backend or a runtime.
    pub fn build(self) -> Result<Pop> {
        let store = self.store.ok_or_else(|| Error::invalid("PopBuilder: no store configured"))?;
        let queue = self.queue.ok_or_else(|| Error::invalid("PopBuilder: no queue backend configured"))?;
        let runtime = self.runtime.ok_or_else(|| Error::invalid("PopBuilder: no runtime configured"))?;
        let mut parts = EngineParts::new(store, queue, runtime);
        if let Some(a) = self.authorizer {
            parts.authorizer = a;
        }
        if let Some(c) = self.clock {
            parts.clock = c;
        }
        parts.algorithms = self.algorithms;
        parts.config = self.config;
        parts.alert_sink = self.alert_sink;
        parts.alert_config = self.alert_config;
        Ok(Pop(Engine::new(parts)))
    }
}
