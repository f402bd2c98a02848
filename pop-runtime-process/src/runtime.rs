//! [`ProcessRuntime`]: each operation a child process in its own process group.

use crate::config::ProcessRuntimeConfig;
use crate::lines::{LineRead, read_line_bounded, skip_line};
use crate::payload;
use crate::protocol::{self, Line, env};
use async_trait::async_trait;
use futures_core::Stream;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pop_core::model::{DiagnosticEvent, Millis};
use pop_core::registry::{HandlerRegistry, ProcessSpec};
use pop_core::runtime::Exit;
use pop_core::runtime::{LaunchRequest, Launched, LaunchedInfo, LaunchedState, LogStream, PodRuntime, RuntimeEvent};
use pop_core::{Error, Problem, Result};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
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

struct Inner {
    registry: HandlerRegistry,
    config: ProcessRuntimeConfig,
    limits: HashMap<String, Arc<Semaphore>>,
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

    fn set_pid(&self, handle: &str, pid: Option<u32>) {
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

fn now_millis() -> Millis {
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
        let cfg = &self.inner.config;
        let json = request.payload.to_string();
        let mut vars = payload::encode(&json, cfg.compress_threshold, cfg.chunk_size)
            .map_err(|e| Error::problems(vec![Problem::in_operation(&request.operation_name, e.to_string())]))?;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        vars.push((env::AGENDA_ID.into(), request.agenda_id.clone()));
        vars.push((env::CID.into(), opt(&request.cid)));
        vars.push((env::CUSTOMER_ID.into(), opt(&request.customer_id)));
        vars.push((env::OPERATION_NAME.into(), request.operation_name.clone()));
        vars.push((env::OPERATION_ID.into(), opt(&request.operation_id)));
        if let Some(last) = &request.last_progress {
            let text = serde_json::to_string(last).map_err(|e| {
                Error::problems(vec![Problem::in_operation(
                    &request.operation_name,
                    format!("cannot encode LAST_PROGRESS: {e}"),
                )])
            })?;
            vars.push((env::LAST_PROGRESS.into(), text));
        }
        Ok(vars)
    }
}

/// Variables a handler must not inherit from the runtime's own environment.
fn is_protocol_var(name: &str) -> bool {
    matches!(
        name,
        payload::PAYLOAD
            | payload::PAYLOAD_TYPE
            | env::AGENDA_ID
            | env::CID
            | env::CUSTOMER_ID
            | env::OPERATION_NAME
            | env::OPERATION_ID
            | env::LAST_PROGRESS
    ) || name.starts_with(payload::COMPRESSED_PREFIX)
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

/// Internal notices from the output readers to the supervisor.
enum Control {
    TooLong(LogStream),
    BadResult(String),
    ReadError(LogStream, String),
}

/// Why the runtime stopped the handler.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    Timeout(Duration),
    Cancelled,
    TooLong(LogStream),
}

struct Tail {
    lines: VecDeque<(LogStream, String)>,
    max: usize,
    line_bytes: usize,
}

impl Tail {
    fn push(&mut self, stream: LogStream, line: &str) {
        if self.max == 0 {
            return;
        }
        if self.lines.len() == self.max {
            self.lines.pop_front();
        }
        let mut cut = line.len().min(self.line_bytes);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = if cut < line.len() { format!("{}…", &line[..cut]) } else { line.to_string() };
        self.lines.push_back((stream, text));
    }

    fn to_json(&self) -> Value {
        Value::Array(self.lines.iter().map(|(s, l)| json!({"stream": stream_name(*s), "line": l})).collect())
    }
}

fn stream_name(s: LogStream) -> &'static str {
    match s {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

fn signal_group(pgid: u32, signal: Option<Signal>) -> bool {
    match i32::try_from(pgid) {
        Ok(p) if p > 1 => killpg(Pid::from_raw(p), signal).is_ok(),
        _ => false,
    }
}

struct ReaderCtx {
    tx: mpsc::Sender<RuntimeEvent>,
    control: mpsc::UnboundedSender<Control>,
    tail: Arc<Mutex<Tail>>,
    max_line: usize,
    operation: String,
}

impl ReaderCtx {
    fn remember(&self, stream: LogStream, line: &str) {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).push(stream, line);
    }

    async fn read<R: AsyncRead + Unpin>(self, reader: R, stream: LogStream) {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line_bounded(&mut reader, &mut buf, self.max_line).await {
                Ok(LineRead::Eof) => break,
                Ok(LineRead::Line) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    self.line(stream, line).await;
                }
                Ok(LineRead::TooLong) => {
                    let _ = self.control.send(Control::TooLong(stream));
                    let start = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
                    self.remember(
                        stream,
                        &format!("<line longer than {} bytes dropped; it began: {start}>", self.max_line),
                    );
                    buf = Vec::new(); // give the memory back
                    if let Err(e) = skip_line(&mut reader).await {
                        let _ = self.control.send(Control::ReadError(stream, e.to_string()));
                        break;
                    }
                }
                Err(e) => {
                    let _ = self.control.send(Control::ReadError(stream, e.to_string()));
                    break;
                }
            }
        }
    }

    async fn line(&self, stream: LogStream, line: String) {
        let event = if stream == LogStream::Stdout {
            match protocol::classify(&line) {
                Line::Progress(Ok(update)) => RuntimeEvent::Progress(update),
                Line::Result(Ok(output)) => RuntimeEvent::Output(output),
                Line::Progress(Err(e)) => {
                    tracing::warn!(operation = %self.operation, "ignored a malformed POP_PROGRESS line: {e}");
                    self.remember(stream, &line);
                    RuntimeEvent::Log(stream, line)
                }
                Line::Result(Err(e)) => {
                    let _ = self.control.send(Control::BadResult(format!("malformed POP_RESULT line: {e}")));
                    self.remember(stream, &line);
                    RuntimeEvent::Log(stream, line)
                }
                Line::Other => {
                    self.remember(stream, &line);
                    RuntimeEvent::Log(stream, line)
                }
            }
        } else {
            self.remember(stream, &line);
            RuntimeEvent::Log(stream, line)
        };
        // The consumer may have dropped the stream: keep draining the pipe anyway.
        let _ = self.tx.send(event).await;
    }
}

/// One launched operation, run by its supervisor task.
struct Operation {
    inner: Arc<Inner>,
    handle: String,
    request: LaunchRequest,
    spec: ProcessSpec,
    env: Vec<(String, String)>,
    tx: mpsc::Sender<RuntimeEvent>,
}

impl Operation {
    fn label(&self) -> String {
        format!(
            "operation {} (type {}, handle {})",
            self.request.operation_name, self.request.operation_type, self.handle
        )
    }

    fn failure(&self, status_code: &str, message: String, details: Value) -> Exit {
        let mut payload = json!({
            "handle": self.handle,
            "operationType": self.request.operation_type,
            "command": self.spec.command,
        });
        if let (Value::Object(p), Value::Object(d)) = (&mut payload, details) {
            p.extend(d);
        }
        let mut diagnostic = DiagnosticEvent::new(message.clone(), now_millis()).with_payload(payload);
        diagnostic.status_code = Some(status_code.to_string());
        Exit { diagnostic: Some(diagnostic), ..Exit::failure(message) }
    }

    async fn run(&self, mut cancel: watch::Receiver<bool>) -> Exit {
        let cfg = &self.inner.config;
        // Per-type cap: wait for a slot (or a cancel).
        let _permit = match self.inner.limits.get(&self.request.operation_type) {
            None => None,
            Some(sem) => {
                tokio::select! {
                    permit = sem.clone().acquire_owned() => match permit {
                        Ok(p) => Some(p),
                        Err(_) => return self.failure("NOT_STARTED", format!("{}: the runtime is closing", self.label()), json!({})),
                    },
                    _ = cancel.wait_for(|c| *c) => {
                        return self.failure(
                            "CANCELLED",
                            format!("{} was cancelled before it started (it waited for a free slot)", self.label()),
                            json!({}),
                        );
                    }
                }
            }
        };
        if *cancel.borrow() {
            return self.failure("CANCELLED", format!("{} was cancelled before it started", self.label()), json!({}));
        }

        let mut command = Command::new(&self.spec.command);
        command
            .args(&self.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str().filter(|n| is_protocol_var(n)) {
                command.env_remove(name);
            }
        }
        command.env(env::LOG_LEVEL, "INFO");
        command.envs(&self.spec.env);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.spec.working_dir {
            command.current_dir(dir);
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                let hint = match e.raw_os_error() {
                    Some(code) if code == nix::errno::Errno::E2BIG as i32 => {
                        " (the environment is too large: lower compress_threshold)"
                    }
                    _ if e.kind() == std::io::ErrorKind::NotFound => " (is it installed and on PATH?)",
                    _ => "",
                };
                return self.failure(
                    "SPAWN_FAILED",
                    format!("{}: cannot start handler {:?}: {e}{hint}", self.label(), self.spec.command),
                    json!({"workingDir": self.spec.working_dir}),
                );
            }
        };
        let pid = child.id().unwrap_or(0);
        self.inner.set_pid(&self.handle, Some(pid));
        let _ = self.tx.send(RuntimeEvent::Started).await;
        tracing::debug!(handle = %self.handle, pid, "handler started");

        let tail =
            Arc::new(Mutex::new(Tail { lines: VecDeque::new(), max: cfg.tail_lines, line_bytes: cfg.tail_line_bytes }));
        let (control_tx, mut control) = mpsc::unbounded_channel();
        let ctx = |tx: &mpsc::Sender<RuntimeEvent>| ReaderCtx {
            tx: tx.clone(),
            control: control_tx.clone(),
            tail: tail.clone(),
            max_line: cfg.max_line_bytes,
            operation: self.request.operation_name.clone(),
        };
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(ctx(&self.tx).read(out, LogStream::Stdout).in_current_span()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(ctx(&self.tx).read(err, LogStream::Stderr).in_current_span()));
        }
        drop(control_tx);

        let time_limit = self.spec.timeout_ms.map(Duration::from_millis).or(cfg.default_timeout);
        let deadline = time_limit.map(|t| Instant::now() + t);
        let mut stop: Option<Stop> = None;
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        let mut status: Option<std::io::Result<ExitStatus>> = None;
        let mut bad_result: Option<String> = None;
        let mut read_error: Option<String> = None;
        let mut cancel_open = true;
        let mut control_open = true;

        let terminate = |kill_at: &mut Option<Instant>, killed: &mut bool| {
            if cfg.kill_grace.is_zero() {
                signal_group(pid, Some(Signal::SIGKILL));
                *killed = true;
            } else {
                signal_group(pid, Some(Signal::SIGTERM));
            }
            *kill_at = Some(Instant::now() + cfg.kill_grace);
        };

        loop {
            if status.is_some() {
                // The leader is gone. After a stop, the rest of the group gets the grace period, then SIGKILL.
                match kill_at {
                    Some(at) if !killed && signal_group(pid, None) => {
                        tokio::select! {
                            _ = sleep_until(at) => { signal_group(pid, Some(Signal::SIGKILL)); killed = true; }
                            _ = sleep(Duration::from_millis(10)) => {}
                        }
                        continue;
                    }
                    _ => break,
                }
            }
            tokio::select! {
                s = child.wait() => { status = Some(s); }
                _ = async { match deadline { Some(d) => sleep_until(d).await, None => std::future::pending().await } },
                    if stop.is_none() && deadline.is_some() => {
                    stop = time_limit.map(Stop::Timeout);
                    terminate(&mut kill_at, &mut killed);
                }
                ok = async { cancel.wait_for(|c| *c).await.is_ok() }, if cancel_open && stop.is_none() => {
                    if ok {
                        stop = Some(Stop::Cancelled);
                        terminate(&mut kill_at, &mut killed);
                    } else {
                        cancel_open = false;
                    }
                }
                msg = control.recv(), if control_open => match msg {
                    None => control_open = false,
                    Some(Control::TooLong(s)) => if stop.is_none() {
                        stop = Some(Stop::TooLong(s));
                        terminate(&mut kill_at, &mut killed);
                    },
                    Some(Control::BadResult(m)) => { bad_result.get_or_insert(m); }
                    Some(Control::ReadError(s, m)) => { read_error.get_or_insert(format!("reading {}: {m}", stream_name(s))); }
                },
                _ = async { match kill_at { Some(d) => sleep_until(d).await, None => std::future::pending().await } },
                    if kill_at.is_some() && !killed => {
                    signal_group(pid, Some(Signal::SIGKILL));
                    killed = true;
                }
            }
        }

        // Let the readers finish; a leftover grandchild holding the pipes is killed after drain_timeout.
        let aborts: Vec<_> = readers.iter().map(|r| r.abort_handle()).collect();
        let mut all_read = Box::pin(async move {
            for r in readers {
                let _ = r.await;
            }
        });
        if timeout(cfg.drain_timeout, &mut all_read).await.is_err() {
            tracing::warn!(handle = %self.handle, "output still open {:?} after the handler exited: killing its process group", cfg.drain_timeout);
            signal_group(pid, Some(Signal::SIGKILL));
            if timeout(Duration::from_secs(1), &mut all_read).await.is_err() {
                aborts.iter().for_each(|a| a.abort());
            }
        }
        // Like the containers of a Pod, nothing of the operation outlives its handler: processes it left
        // behind in its group (daemons with their output redirected) are killed now.
        if status.as_ref().is_some_and(|s| s.is_ok()) && signal_group(pid, None) {
            tracing::warn!(handle = %self.handle, "the handler left processes behind in its group: killing them");
            signal_group(pid, Some(Signal::SIGKILL));
        }
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::TooLong(s) => {
                    stop.get_or_insert(Stop::TooLong(s));
                }
                Control::BadResult(m) => {
                    bad_result.get_or_insert(m);
                }
                Control::ReadError(s, m) => {
                    read_error.get_or_insert(format!("reading {}: {m}", stream_name(s)));
                }
            }
        }
        let last_lines = tail.lock().unwrap_or_else(|p| p.into_inner()).to_json();

        let status = match status {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                return self.failure(
                    "WAIT_FAILED",
                    format!("{}: waiting for handler pid {pid} failed: {e}", self.label()),
                    json!({"pid": pid, "lastLines": last_lines}),
                );
            }
            None => {
                return self.failure(
                    "WAIT_FAILED",
                    format!("{}: the handler's exit status is unknown", self.label()),
                    json!({"pid": pid, "lastLines": last_lines}),
                );
            }
        };
        let code = status.code();
        let signal = status.signal();
        let details = json!({
            "pid": pid,
            "exitCode": code,
            "signal": signal,
            "signalName": signal.map(signal_name),
            "lastLines": last_lines,
        });
        let how = match (code, signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s} ({})", signal_name(s)),
            _ => "an unknown status".to_string(),
        };
        let failed = |code: &str, message: String| {
            let mut exit = self.failure(code, message, details.clone());
            exit.code = status.code();
            exit.signal = status.signal();
            exit
        };
        match stop {
            Some(Stop::Timeout(t)) => {
                return failed(
                    "TIMEOUT",
                    format!(
                        "{} timed out after {} ms; its process group was terminated ({how})",
                        self.label(),
                        t.as_millis()
                    ),
                );
            }
            Some(Stop::Cancelled) => {
                return failed(
                    "CANCELLED",
                    format!("{} was cancelled; its process group was terminated ({how})", self.label()),
                );
            }
            Some(Stop::TooLong(s)) => {
                return failed(
                    "LINE_TOO_LONG",
                    format!(
                        "{} wrote a {} line longer than the limit of {} bytes; the handler was terminated ({how})",
                        self.label(),
                        stream_name(s),
                        cfg.max_line_bytes
                    ),
                );
            }
            None => {}
        }
        if let Some(m) = bad_result {
            return failed("MALFORMED_RESULT", format!("{}: {m} (handler ended with {how})", self.label()));
        }
        if !status.success() {
            let code_name = if code.is_some() { "EXIT_CODE" } else { "SIGNAL" };
            return failed(code_name, format!("{}: handler failed with {how}", self.label()));
        }
        if let Some(m) = read_error {
            return failed("READ_FAILED", format!("{}: {m}", self.label()));
        }
        Exit::success()
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
