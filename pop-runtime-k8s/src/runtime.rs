//! [`KubeRuntime`]: the [`PodRuntime`] that runs each operation as a Kubernetes Pod.

use crate::config::KubeConfig;
use crate::error::KubeError;
use crate::follow::Follow;
use crate::podconfig::{PodConfig, in_registry};
use crate::podspec::build_pod_with;
use crate::retry::with_retry;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, Launched, LaunchedInfo, PodRuntime, RuntimeEvent};
use pop_core::{Error, Problem, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// The original's defaults when the registry leaves a timeout unset.
const DEFAULT_SCHEDULING_TIMEOUT_MS: u64 = 5 * 60 * 1000;
const DEFAULT_SILENCE_TIMEOUT_MS: u64 = 2 * 60 * 1000;

/// Runs handlers as Kubernetes Pods; see the crate docs.
pub struct KubeRuntime {
    pub(crate) client: kube::Client,
    registry: Arc<HandlerRegistry>,
    /// Each type's effective Pod config, or what is wrong with it (reported when it is launched).
    pod_configs: HashMap<String, std::result::Result<Arc<PodConfig>, Vec<Problem>>>,
    pub(crate) config: KubeConfig,
    /// What is wrong with the configured namespace names (reported by every launch and list).
    namespace_problems: Vec<Problem>,
    /// Followed Pods by handle, with the switch that tells their follower they were cancelled.
    running: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
}

impl std::fmt::Debug for KubeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRuntime").field("registry", &self.registry.source()).field("config", &self.config).finish()
    }
}

impl KubeRuntime {
    /// A runtime using this client (pointed at any API server), registry and options. The registry's
    /// Pod configs are typed now; a type whose config is wrong fails when it is launched, naming the
    /// field ([`connect`](Self::connect) and [`check_registry`](Self::check_registry) refuse such a
    /// registry up front). Wrong namespace names ([`KubeConfig::validate`]) fail every launch and list,
    /// naming the entry ([`connect`](Self::connect) refuses them up front).
    pub fn new(client: kube::Client, registry: Arc<HandlerRegistry>, config: KubeConfig) -> Self {
        let pod_configs = registry
            .handlers()
            .iter()
            .map(|(t, spec)| {
                let pc = PodConfig::effective(spec, registry.base_pod_config())
                    .map(Arc::new)
                    .map_err(|problems| in_registry(&registry, problems));
                (t.clone(), pc)
            })
            .collect();
        let namespace_problems = config.validate().err().map(|e| e.problem_list().to_vec()).unwrap_or_default();
        Self { client, registry, pod_configs, config, namespace_problems, running: Arc::default() }
    }

    /// Every problem of the registry's Pod configs (`Error::Invalid` naming each type and field), or `Ok`.
    pub fn check_registry(registry: &HandlerRegistry) -> Result<()> {
        PodConfig::for_registry(registry).map(|_| ())
    }

    /// A runtime whose client is configured from the environment: the in-cluster service account, or
    /// `KUBECONFIG` / `~/.kube/config`. A registry with a wrong Pod config field, or options with a
    /// wrong namespace name, are refused first.
    pub async fn connect(registry: Arc<HandlerRegistry>, config: KubeConfig) -> Result<Self> {
        Self::check_registry(&registry)?;
        config.validate()?;
        crate::ensure_crypto_provider();
        let client = kube::Client::try_default().await.map_err(|e| {
            KubeError::Config(format!(
                "{e} (run inside a cluster with a service account, or set KUBECONFIG to a kubeconfig file)"
            ))
        })?;
        Ok(Self::new(client, registry, config))
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The options.
    pub fn config(&self) -> &KubeConfig {
        &self.config
    }

    /// The registry.
    pub fn registry(&self) -> &HandlerRegistry {
        &self.registry
    }

    /// The effective Pod config of the request's type; an unknown type or a wrong config is
    /// `Error::Invalid` naming the operation.
    fn pod_config(&self, request: &LaunchRequest) -> Result<Arc<PodConfig>> {
        let in_operation = |problems: &[Problem]| {
            Error::problems(
                problems
                    .iter()
                    .map(|p| Problem { operation: Some(request.operation_name.clone()), ..p.clone() })
                    .collect(),
            )
        };
        match self.pod_configs.get(&request.operation_type) {
            Some(Ok(pc)) => Ok(Arc::clone(pc)),
            Some(Err(problems)) => Err(in_operation(problems)),
            None => match self.registry.handler(&request.operation_type) {
                Err(e) if !e.problem_list().is_empty() => Err(in_operation(e.problem_list())),
                Err(e) => Err(e),
                Ok(_) => Err(Error::invalid(format!(
                    "operation {}: operation type {:?} was added to the registry after the runtime was built",
                    request.operation_name, request.operation_type
                ))),
            },
        }
    }

    /// `Error::Invalid` naming each wrong namespace entry of the options, or `Ok`.
    pub(crate) fn check_namespaces(&self) -> Result<()> {
        if self.namespace_problems.is_empty() { Ok(()) } else { Err(Error::problems(self.namespace_problems.clone())) }
    }

    /// The namespace of this request's Pod (customer and insight, [`KubeConfig::namespace_for`]).
    pub fn namespace_of(&self, request: &LaunchRequest) -> String {
        self.config.namespace_for(request.customer_id.as_deref(), request.insight_id.as_deref())
    }

    /// The Pod that [`launch`](PodRuntime::launch) would create for this request (takes a name from the
    /// name generator). Useful for dry runs and golden tests.
    pub fn pod_for(&self, request: &LaunchRequest) -> Result<Pod> {
        self.check_namespaces()?;
        let pc = self.pod_config(request)?;
        let namespace = self.namespace_of(request);
        let unique = (self.config.name_generator)();
        Ok(build_pod_with(&pc, &request.operation_type, request, &self.config, &unique, &namespace)?)
    }

    pub(crate) fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Deletes one Pod by handle with retries; a Pod already gone is not an error.
    pub(crate) async fn delete_pod(&self, handle: &str) -> Result<()> {
        let (namespace, name) = split_handle(handle)?;
        let api = self.pods(namespace);
        with_retry(&self.config.retry, &format!("delete pod {handle}"), |_| async {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await?;
        Ok(())
    }

    fn signal_cancel(&self, handle: &str) {
        if let Ok(running) = self.running.lock()
            && let Some(tx) = running.get(handle)
        {
            let _ = tx.send(true);
        }
    }
}

/// Splits a `namespace/name` handle.
pub fn split_handle(handle: &str) -> Result<(&str, &str), KubeError> {
    match handle.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((ns, name)),
        _ => Err(KubeError::BadHandle(handle.to_string())),
    }
}

#[async_trait]
impl PodRuntime for KubeRuntime {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn supports(&self, operation_type: &str) -> bool {
        self.registry.contains(operation_type)
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        self.check_namespaces()?;
        let pc = self.pod_config(&request)?;
        let namespace = self.namespace_of(&request);
        let unique = (self.config.name_generator)();
        let pod = build_pod_with(&pc, &request.operation_type, &request, &self.config, &unique, &namespace)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let handle = format!("{namespace}/{name}");
        let api = self.pods(&namespace);

        let action =
            format!("create pod {handle} for operation {} of agenda {}", request.operation_name, request.agenda_id);
        with_retry(&self.config.retry, &action, |attempt| {
            let api = api.clone();
            let pod = pod.clone();
            async move {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => Ok(()),
                    // An earlier attempt reached the server although its answer was lost.
                    Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        tracing::info!(pod = %handle, agenda = %request.agenda_id, operation = %request.operation_name, "launched pod");

        let (cancel_tx, cancel_rx) = watch::channel(false);
        if let Ok(mut running) = self.running.lock() {
            running.insert(handle.clone(), cancel_tx);
        }
        let (events_tx, events_rx) = mpsc::channel::<RuntimeEvent>(256);
        let follow = Follow {
            api,
            name,
            handle: handle.clone(),
            scheduling_timeout: self
                .config
                .scheduling_timeout
                .unwrap_or(Duration::from_millis(pc.pod_scheduled_timeout_ms.unwrap_or(DEFAULT_SCHEDULING_TIMEOUT_MS))),
            silence_timeout: self
                .config
                .log_silence_timeout
                .unwrap_or(Duration::from_millis(pc.pod_stdout_timeout.unwrap_or(DEFAULT_SILENCE_TIMEOUT_MS))),
            reap: self.config.reap_completed_pods.or(pc.reap_completed_pods).unwrap_or(false),
            limits: self.config.output_limits(),
            drain_timeout: self.config.log_drain_timeout,
            retry: self.config.retry,
            cancel: cancel_rx,
            events: events_tx,
        };
        let running = Arc::clone(&self.running);
        let done_handle = handle.clone();
        // The follower stays in the caller's span (the engine's `operation` span: agenda id, cid,
        // operation name), so its log lines carry that context.
        tokio::spawn(
            async move {
                follow.run().await;
                if let Ok(mut running) = running.lock() {
                    running.remove(&done_handle);
                }
            }
            .in_current_span(),
        );
        let events = futures_util::stream::unfold(events_rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        Ok(Launched { handle, events: Box::pin(events) })
    }

    async fn cancel(&self, handle: &str) -> Result<()> {
        split_handle(handle)?;
        // Tell the follower first, so it reports a cancel and not a deletion by someone else.
        self.signal_cancel(handle);
        self.delete_pod(handle).await
    }

    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        Ok(self.list_pods().await?.iter().filter_map(crate::reaper::launched_info).collect())
    }

    async fn cleanup(&self, handle: &str) -> Result<()> {
        split_handle(handle)?;
        self.signal_cancel(handle);
        self.delete_pod(handle).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_namespace_slash_name() {
        assert_eq!(split_handle("pop/pod-1").unwrap(), ("pop", "pod-1"));
        for bad in ["pod-1", "/pod", "pop/", "a/b/c", ""] {
            let e: Error = split_handle(bad).unwrap_err().into();
            assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
            assert!(e.to_string().contains("namespace/name"));
        }
    }
}
