//! [`ProcessRuntime`]: the table of launched operations and the [`PodRuntime`] methods; each launch is
//! run by its [supervisor](crate::supervise).

use crate::config::ProcessRuntimeConfig;
use crate::supervise::Operation;
use async_trait::async_trait;
use futures_core::Stream;
use pop_core::model::Millis;
use pop_core::registry::{HandlerRegistry, ProcessSpec};
use pop_core::runtime::Exit;
use pop_core::runtime::{LaunchRequest, Launched, LaunchedInfo, LaunchedState, PodRuntime, RuntimeEvent};
use pop_core::{Error, Problem, Result};
use pop_handler_protocol::handler_env;
use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::timeout;
use tracing::Instrument;

/// Runs handlers as local child processes, as the registry's `process` sections say.
///
/// Cloning is cheap and shares the launched operations.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("registry", &self.inner.registry.source())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    registry: HandlerRegistry,
    pub(crate) config: ProcessRuntimeConfig,
    /// Per-type caps (`process.maxConcurrent`).
    pub(crate) limits: HashMap<String, Arc<Semaphore>>,
    launched: Mutex<HashMap<String, Entry>>,
    counter: AtomicU64,
}

struct Entry {
    info: LaunchedInfo,
    cancel: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    pid: Option<u32>,
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves the map consistent (single inserts/updates): keep going.
        self.launched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_pid(&self, handle: &str, pid: Option<u32>) {
        if let Some(e) = self.table().get_mut(handle) {
            e.pid = pid;
        }
    }

    fn finish(&self, handle: &str) {
        if let Some(e) = self.table().get_mut(handle) {
            e.info.state = LaunchedState::Finished;
            e.info.finished = Some(now_millis());
        }
    }
}

pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// The events of one operation, read from a channel.
struct EventReceiver(mpsc::Receiver<RuntimeEvent>);

impl Stream for EventReceiver {
    type Item = RuntimeEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuntimeEvent>> {
        self.0.poll_recv(cx)
    }
}

impl ProcessRuntime {
    /// A runtime for the registry's types, with default options.
    pub fn new(registry: HandlerRegistry) -> Self {
        Self::with_config(registry, ProcessRuntimeConfig::default())
    }

    /// A runtime for the registry's types.
    pub fn with_config(registry: HandlerRegistry, config: ProcessRuntimeConfig) -> Self {
        let limits = registry
            .handlers()
            .iter()
            .filter_map(|(t, s)| {
                let max = s.process.as_ref()?.max_concurrent?;
                Some((t.clone(), Arc::new(Semaphore::new(max.max(1)))))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                registry,
                config,
                limits,
                launched: Mutex::new(HashMap::new()),
                counter: AtomicU64::new(0),
            }),
        }
    }

    /// A runtime for the registry file at `path`.
    pub fn from_path(path: impl AsRef<Path>, config: ProcessRuntimeConfig) -> Result<Self> {
        Ok(Self::with_config(HandlerRegistry::from_path(path)?, config))
    }

    /// The registry.
    pub fn registry(&self) -> &HandlerRegistry {
        &self.inner.registry
    }

    /// The options.
    pub fn config(&self) -> &ProcessRuntimeConfig {
        &self.inner.config
    }

    /// The process id of a launched operation's handler (once spawned; also its process-group id).
    pub fn pid(&self, handle: &str) -> Option<u32> {
        self.inner.table().get(handle).and_then(|e| e.pid)
    }

    fn process_spec(&self, request: &LaunchRequest) -> Result<ProcessSpec> {
        let registry = &self.inner.registry;
        let spec = registry.handler(&request.operation_type).map_err(|e| {
            let message = e.problem_list().first().map(|p| p.message.clone()).unwrap_or_else(|| e.to_string());
            Error::problems(vec![Problem::in_operation(&request.operation_name, message).field("type")])
        })?;
        spec.process.clone().ok_or_else(|| {
            Error::problems(vec![
                Problem::in_operation(
                    &request.operation_name,
                    format!(
                        "operation type {:?} has no \"process\" section in handler registry {}: it cannot run \
                         as a local process",
                        request.operation_type,
                        registry.source()
                    ),
                )
                .field("type"),
            ])
        })
    }

    /// The environment of one launch: the protocol's variables (they win over `process.env`).
    fn protocol_env(&self, request: &LaunchRequest) -> Result<Vec<(String, String)>> {
        handler_env(request, &self.inner.config.env_options())
            .map_err(|e| Error::problems(vec![Problem::in_operation(&request.operation_name, e.to_string())]))
    }
}

#[async_trait]
impl PodRuntime for ProcessRuntime {
    fn name(&self) -> &str {
        "process"
    }

    fn supports(&self, operation_type: &str) -> bool {
        self.inner.registry.handler(operation_type).map(|s| s.process.is_some()).unwrap_or(false)
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        let spec = self.process_spec(&request)?;
        let env = self.protocol_env(&request)?;
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let handle = format!("proc-{}-{n}-{}", request.operation_type, uuid::Uuid::new_v4().simple());
        let (tx, rx) = mpsc::channel(self.inner.config.event_buffer.max(1));
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let info = LaunchedInfo {
            handle: handle.clone(),
            agenda_id: request.agenda_id.clone(),
            operation_name: request.operation_name.clone(),
            operation_type: request.operation_type.clone(),
            state: LaunchedState::Running,
            started: now_millis(),
            finished: None,
        };
        self.inner.table().insert(handle.clone(), Entry { info, cancel: cancel_tx, done: done_rx, pid: None });
        let op = Operation { inner: self.inner.clone(), handle: handle.clone(), request, spec, env, tx };
        let inner = self.inner.clone();
        let exit_handle = handle.clone();
        let label = op.label();
        let exit_tx = op.tx.clone();
        // The tasks stay in the caller's span (e.g. the engine's `operation` span with agenda id, cid
        // and operation name), so the supervisor's log lines carry that context.
        tokio::spawn(
            async move {
                // The supervisor runs in its own task so that even a panic in it still ends the stream
                // with a failed `Exited` instead of leaving the executor waiting.
                let exit = match tokio::spawn(async move { op.run(cancel_rx).await }.in_current_span()).await {
                    Ok(exit) => exit,
                    Err(e) => Exit::failure(format!("{label}: the process runtime's supervisor failed: {e}")),
                };
                inner.finish(&exit_handle);
                let _ = done_tx.send(true);
                let _ = exit_tx.send(RuntimeEvent::Exited(exit)).await;
            }
            .in_current_span(),
        );
        Ok(Launched { handle, events: Box::pin(EventReceiver(rx)) })
    }

    async fn cancel(&self, handle: &str) -> Result<()> {
        let table = self.inner.table();
        let entry = table.get(handle).ok_or_else(|| Error::not_found("launched operation", handle))?;
        if entry.info.state == LaunchedState::Running {
            entry.cancel.send_replace(true);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        let mut all: Vec<LaunchedInfo> = self.inner.table().values().map(|e| e.info.clone()).collect();
        all.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.handle.cmp(&b.handle)));
        Ok(all)
    }

    /// Kills the operation if it still runs (SIGTERM, SIGKILL after the grace period), waits for it to end,
    /// and forgets it. Unknown handles are a no-op, so the reaper may call this twice.
    async fn cleanup(&self, handle: &str) -> Result<()> {
        let done = {
            let table = self.inner.table();
            let Some(entry) = table.get(handle) else { return Ok(()) };
            if entry.info.state == LaunchedState::Running {
                entry.cancel.send_replace(true);
            }
            entry.done.clone()
        };
        let cfg = &self.inner.config;
        let bound = cfg.kill_grace + cfg.drain_timeout + Duration::from_secs(2);
        let mut done = done;
        if timeout(bound, done.wait_for(|d| *d)).await.is_err() {
            tracing::warn!(handle, "cleanup: the operation did not end within {bound:?}; forgetting it anyway");
        }
        self.inner.table().remove(handle);
        Ok(())
    }
}

/// Reads an operation's events to the end (the last one is `Exited`): a convenience for tools and
/// benchmarks that do not depend on a futures crate.
pub async fn collect_events(mut events: pop_core::runtime::EventStream) -> Vec<RuntimeEvent> {
    let mut all = Vec::new();
    while let Some(event) = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
        all.push(event);
    }
    all
}
