//! Wiring of the backends behind features: the embedded sled store (`sled`), DynamoDB (`dynamo`) and
//! Kubernetes Pods (`k8s`).

#[cfg(any(feature = "dynamo", feature = "k8s"))]
use crate::PopBuilder;
#[cfg(feature = "sled")]
use pop_core::Result;
#[cfg(feature = "sled")]
use pop_core::queue::QueueBackend;
#[cfg(feature = "sled")]
use pop_core::store::Store;
#[cfg(feature = "sled")]
use std::path::Path;
#[cfg(any(feature = "sled", feature = "dynamo", feature = "k8s"))]
use std::sync::Arc;

/// Opens (or creates) the sled store and queue in `path`, sharing one database.
#[cfg(feature = "sled")]
pub(crate) fn open_sled(path: &Path) -> Result<(Arc<dyn Store>, Arc<dyn QueueBackend>)> {
    let (store, queue) = pop_store_sled::open_both(pop_store_sled::Config::new(path))?;
    Ok((Arc::new(store), Arc::new(queue)))
}

#[cfg(feature = "dynamo")]
impl PopBuilder {
    /// Uses DynamoDB for the store and the queue: connects with `config` and creates POP's tables and
    /// indexes where missing (idempotent, safe from several instances at once; see
    /// [`pop_store_dynamo::DynamoBackend::ensure_tables`]). Every instance built on the same tables
    /// (same endpoint, region and [`table_prefix`](pop_store_dynamo::DynamoConfig::table_prefix))
    /// shares one state: agendas, queues, leases.
    ///
    /// To manage the tables with your own tooling instead, connect a
    /// [`DynamoBackend`](pop_store_dynamo::DynamoBackend) yourself and pass it to
    /// [`dynamo_backend`](Self::dynamo_backend).
    ///
    /// ```no_run
    /// # async fn demo() -> pop_core::Result<()> {
    /// use pop::dynamo::DynamoConfig;
    /// let runtime = std::sync::Arc::new(pop::exec::inprocess::InProcessRuntime::new());
    /// let config = DynamoConfig::aws().region("eu-west-1").table_prefix("prod_pop_");
    /// let pop = pop::Pop::builder().dynamo(config).await?.runtime(runtime).build()?;
    /// # let _ = pop; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Invalid` when the configuration is (naming the option), the backend's error when DynamoDB
    /// cannot be reached or a table exists with other keys.
    pub async fn dynamo(self, config: pop_store_dynamo::DynamoConfig) -> pop_core::Result<Self> {
        let backend = pop_store_dynamo::DynamoBackend::connect(config).await?;
        backend.ensure_tables().await?;
        Ok(self.dynamo_backend(&backend))
    }

    /// Uses the store and queue of an existing DynamoDB connection (tables are not checked or
    /// created).
    pub fn dynamo_backend(self, backend: &pop_store_dynamo::DynamoBackend) -> Self {
        self.store(Arc::new(backend.store())).queue(Arc::new(backend.queue()))
    }
}

#[cfg(feature = "k8s")]
impl PopBuilder {
    /// Runs handlers as Kubernetes Pods: a [`KubeRuntime`](pop_runtime_k8s::KubeRuntime) for the
    /// operation types of `registry` (the original's `registry.json` format), with a client configured
    /// from the environment (the in-cluster service account, or `KUBECONFIG` / `~/.kube/config`).
    /// Resident in-process handlers, if any, go through `resident`, which is asked first.
    ///
    /// # Errors
    /// A `Backend` error (backend `kubernetes`, from [`pop_runtime_k8s::KubeError::Config`]) when no
    /// cluster configuration is found; its message says what to set.
    pub async fn k8s_runtime(
        self,
        registry: pop_core::registry::HandlerRegistry,
        config: pop_runtime_k8s::KubeConfig,
        resident: Option<Arc<pop_exec::inprocess::InProcessRuntime>>,
    ) -> pop_core::Result<Self> {
        let kube = pop_runtime_k8s::KubeRuntime::connect(Arc::new(registry), config).await?;
        Ok(self.runtime(Arc::new(k8s_router(kube, resident))))
    }
}

/// Resident handlers first (when given), then Pods.
#[cfg(feature = "k8s")]
pub(crate) fn k8s_router(
    kube: pop_runtime_k8s::KubeRuntime,
    resident: Option<Arc<pop_exec::inprocess::InProcessRuntime>>,
) -> crate::RuntimeRouter {
    let mut router = crate::RuntimeRouter::new();
    if let Some(r) = resident {
        router = router.with(r);
    }
    router.with(Arc::new(kube))
}
