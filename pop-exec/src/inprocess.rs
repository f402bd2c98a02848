//! A [`PodRuntime`] whose handlers are async Rust closures registered by operation type.
//!
//! Each launch spawns one tokio task (a handler registered with [`InProcessRuntime::register_inline`] is
//! polled once at launch first, and gets a task only if it has to wait). The event stream reports `Started`, the handler's progress and log
//! lines, then its output and exit. A handler that returns `Err` or panics ends with a failed
//! [`Exit`]; [`PodRuntime::cancel`] aborts the task and the stream ends with a failed, cancelled exit.
//! Nothing a handler does can take the caller down.
//!
//! Resident handlers of the original POP are registered by [`InProcessRuntime::new`]:
//! `logMessages` (`{logMessages: [...]}`: logs each message, output `null`) and `updateAgenda` (echoes
//! `{operations, params}` from its payload, so an `updateAgenda` operation with the
//! `agenda.operation.generator` param adds those operations to the agenda).
//!
//! ```
//! use pop_exec::inprocess::InProcessRuntime;
//! let runtime = InProcessRuntime::new();
//! runtime.register("sample", |ctx| async move {
//!     ctx.progress(50.0);
//!     Ok(ctx.payload()["resultPayload"].clone())
//! });
//! ```

use futures_core::Stream;
use futures_util::task::AtomicWaker;
use pop_core::model::{DiagnosticEvent, Millis, OperationProgress};
use pop_core::runtime::{
    EventStream, Exit, LaunchRequest, Launched, LaunchedInfo, LaunchedState, LogStream, PodRuntime, ProgressUpdate,
    RuntimeEvent,
};
use pop_core::{Error, Result};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use tokio::task::{AbortHandle, JoinError, JoinHandle};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The prefix of this runtime's handles (`inproc-<n>`).
const HANDLE_PREFIX: &str = "inproc-";

/// What a handler returns: its output, or an error whose text becomes the failure diagnostic.
pub type HandlerResult = std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>>;

type BoxedHandler = Arc<dyn Fn(HandlerContext) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// A registered handler, and whether it is polled once at launch before it gets a task of its own.
#[derive(Clone)]
struct Registered {
    handler: BoxedHandler,
    inline: bool,
}

/// How a handler ended.
enum Ended {
    /// It returned.
    Returned(HandlerResult),
    /// Its task was aborted (cancelled).
    Cancelled,
    /// It panicked, with this payload.
    Panicked(Box<dyn std::any::Any + Send>),
}

impl From<std::result::Result<HandlerResult, JoinError>> for Ended {
    fn from(r: std::result::Result<HandlerResult, JoinError>) -> Self {
        match r {
            Ok(result) => Ended::Returned(result),
            Err(e) if e.is_cancelled() => Ended::Cancelled,
            Err(e) => Ended::Panicked(e.into_panic()),
        }
    }
}

/// Type of the built-in handler that logs `payload.logMessages`.
pub const LOG_MESSAGES: &str = "logMessages";
/// Type of the built-in generator handler that echoes `{operations, params}`.
pub const UPDATE_AGENDA: &str = "updateAgenda";

/// What a handler gets: the launch request (payload, names, last progress) and a way to report.
#[derive(Debug)]
pub struct HandlerContext {
    request: LaunchRequest,
    reporter: ProgressReporter,
}

impl HandlerContext {
    /// The resolved payload.
    pub fn payload(&self) -> &Value {
        &self.request.payload
    }

    /// Takes the payload out (leaving `null`), to avoid a copy.
    pub fn take_payload(&mut self) -> Value {
        self.request.payload.take()
    }

    /// The operation's name.
    pub fn operation_name(&self) -> &str {
        &self.request.operation_name
    }

    /// The agenda's id.
    pub fn agenda_id(&self) -> &str {
        &self.request.agenda_id
    }

    /// The operation's progress from an earlier attempt (`LAST_PROGRESS`), on a re-run or a retry.
    pub fn last_progress(&self) -> Option<&OperationProgress> {
        self.request.last_progress.as_ref()
    }

    /// The whole launch request.
    pub fn request(&self) -> &LaunchRequest {
        &self.request
    }

    /// Reports percent complete.
    pub fn progress(&self, percent: f64) {
        self.reporter.progress(percent);
    }

    /// Reports a progress update (percent, message, resume params, diagnostics).
    pub fn report(&self, update: ProgressUpdate) {
        self.reporter.report(update);
    }

    /// Writes a log line.
    pub fn log(&self, line: impl Into<String>) {
        self.reporter.log(line);
    }

    /// A reporter that can be moved into other tasks.
    pub fn reporter(&self) -> ProgressReporter {
        self.reporter.clone()
    }
}

/// What a running handler reported and its follower has not read yet. Unlike a channel it allocates
/// nothing until something is reported (most handlers report nothing).
#[derive(Default)]
struct Reports {
    queue: Mutex<VecDeque<RuntimeEvent>>,
    waker: AtomicWaker,
    /// The follower (the event stream) is gone: reports are dropped.
    closed: AtomicBool,
}

impl Reports {
    fn send(&self, event: RuntimeEvent) {
        // Nobody follows the operation any more: nothing to tell.
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        match self.queue.lock() {
            Ok(mut q) => q.push_back(event),
            Err(poisoned) => poisoned.into_inner().push_back(event),
        }
        self.waker.wake();
    }

    fn try_recv(&self) -> Option<RuntimeEvent> {
        match self.queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(poisoned) => poisoned.into_inner().pop_front(),
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Option<RuntimeEvent> {
        if let Some(e) = self.try_recv() {
            return Some(e);
        }
        self.waker.register(cx.waker());
        // A report that arrived between the check and the registration.
        self.try_recv()
    }
}

/// Sends progress and log lines of one running handler.
#[derive(Clone)]
pub struct ProgressReporter {
    reports: Arc<Reports>,
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReporter").field("closed", &self.reports.closed.load(Ordering::Relaxed)).finish()
    }
}

impl ProgressReporter {
    /// Reports percent complete.
    pub fn progress(&self, percent: f64) {
        self.report(ProgressUpdate { percent_complete: Some(percent), ..ProgressUpdate::default() });
    }

    /// Reports a progress update.
    pub fn report(&self, update: ProgressUpdate) {
        self.reports.send(RuntimeEvent::Progress(update));
    }

    /// Writes a log line.
    pub fn log(&self, line: impl Into<String>) {
        self.reports.send(RuntimeEvent::Log(LogStream::Stdout, line.into()));
    }
}

/// What the runtime remembers of a launch (for [`PodRuntime::list`], cancel and cleanup). The names are
/// shared, not copied: the type with the handler table, the agenda id with the agenda's other launches,
/// the operation name with the launch's event stream; the [`LaunchedInfo`] is built only when listed.
struct Entry {
    agenda_id: Arc<str>,
    operation_name: Arc<str>,
    operation_type: Arc<str>,
    state: LaunchedState,
    started: Millis,
    finished: Option<Millis>,
    /// `None` for a handler that ended at its first poll, at launch (it never had a task).
    abort: Option<AbortHandle>,
}

impl Entry {
    fn info(&self, n: u64) -> LaunchedInfo {
        LaunchedInfo {
            handle: handle_text(n),
            agenda_id: self.agenda_id.to_string(),
            operation_name: self.operation_name.to_string(),
            operation_type: self.operation_type.to_string(),
            state: self.state,
            started: self.started,
            finished: self.finished,
        }
    }
}

/// The launch table.
#[derive(Default)]
struct Launches {
    /// Launched handlers by the number in their handle.
    entries: FastMap<u64, Entry>,
    /// The agenda id of the latest launch, shared by the next launches of the same agenda.
    last_agenda: Option<Arc<str>>,
}

impl Launches {
    fn agenda_id(&mut self, id: &str) -> Arc<str> {
        match &self.last_agenda {
            Some(a) if **a == *id => a.clone(),
            _ => {
                let a: Arc<str> = Arc::from(id);
                self.last_agenda = Some(a.clone());
                a
            }
        }
    }
}

struct Inner {
    name: String,
    /// Handlers by operation type (the key is shared with the launches of that type).
    handlers: RwLock<FastMap<Arc<str>, Registered>>,
    launched: Mutex<Launches>,
    next: AtomicU64,
}

/// The handle numbered `n` (`inproc-<n>`), written without the formatting machinery (once per launch).
fn handle_text(n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut handle = String::with_capacity(HANDLE_PREFIX.len() + digits.len() - at);
    handle.push_str(HANDLE_PREFIX);
    for &d in &digits[at..] {
        handle.push(char::from(d));
    }
    handle
}

/// The number in one of this runtime's handles.
fn handle_number(handle: &str) -> Option<u64> {
    handle.strip_prefix(HANDLE_PREFIX)?.parse().ok()
}

impl Inner {
    fn finished(&self, n: u64) {
        if let Ok(mut launched) = self.launched.lock()
            && let Some(e) = launched.entries.get_mut(&n)
        {
            e.state = LaunchedState::Finished;
            e.finished = Some(now_millis());
        }
    }
}

/// Handlers as async closures, run as tokio tasks. Cheap to clone (shared state).
#[derive(Clone)]
pub struct InProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<String> =
            self.inner.handlers.read().map(|h| h.keys().map(|k| k.to_string()).collect()).unwrap_or_default();
        f.debug_struct("InProcessRuntime").field("name", &self.inner.name).field("types", &types).finish()
    }
}

impl Default for InProcessRuntime {
    fn default() -> Self {
        Self::new()
    }
}

fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

impl InProcessRuntime {
    /// A runtime with the resident handlers `logMessages` and `updateAgenda`.
    pub fn new() -> Self {
        let rt = Self::empty();
        rt.register(LOG_MESSAGES, |ctx| async move {
            match ctx.payload().get("logMessages") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        let line = match item {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        tracing::info!(operation = ctx.operation_name(), agenda = ctx.agenda_id(), "{line}");
                        ctx.log(line);
                    }
                }
                Some(other) => return Err(format!("payload.logMessages must be an array, got {other}").into()),
            }
            Ok(Value::Null)
        });
        rt.register(UPDATE_AGENDA, |mut ctx| async move {
            let mut payload = ctx.take_payload();
            let operations = match payload.get_mut("operations").map(Value::take) {
                None | Some(Value::Null) => json!([]),
                Some(Value::Array(a)) => Value::Array(a),
                Some(other) => return Err(format!("payload.operations must be an array, got {other}").into()),
            };
            let params = match payload.get_mut("params").map(Value::take) {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Object(p)) => Value::Object(p),
                Some(other) => return Err(format!("payload.params must be an object, got {other}").into()),
            };
            Ok(json!({"operations": operations, "params": params}))
        });
        rt
    }

    /// A runtime without any handler.
    pub fn empty() -> Self {
        Self {
            inner: Arc::new(Inner {
                name: "in-process".to_owned(),
                handlers: RwLock::new(FastMap::default()),
                launched: Mutex::new(Launches::default()),
                next: AtomicU64::new(1),
            }),
        }
    }

    /// Registers (or replaces) the handler of an operation type.
    /// Each launch of it runs as a tokio task of its own.
    pub fn register<F, Fut>(&self, op_type: impl Into<String>, handler: F)
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.insert(op_type.into(), Arc::new(move |ctx| Box::pin(handler(ctx))), false);
    }

    /// Registers (or replaces) the handler of an operation type, polled once at launch on the task that
    /// launches it (the executor's): a launch that ends at that poll, without waiting for anything,
    /// needs no task of its own; one that has to wait is then spawned as a tokio task, as with
    /// [`InProcessRuntime::register`]. The events, their order and the launch table are the same either
    /// way (a handler that ends at launch is listed as finished at once).
    ///
    /// For cheap handlers: what a handler does before it first waits runs on the launching task, which
    /// it holds up meanwhile (on a multi-threaded runtime, a spawned task may run on another worker
    /// instead). Register a handler that computes for long before it waits with `register`.
    pub fn register_inline<F, Fut>(&self, op_type: impl Into<String>, handler: F)
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.insert(op_type.into(), Arc::new(move |ctx| Box::pin(handler(ctx))), true);
    }

    fn insert(&self, op_type: String, handler: BoxedHandler, inline: bool) {
        let op_type: Arc<str> = Arc::from(op_type);
        let registered = Registered { handler, inline };
        match self.inner.handlers.write() {
            Ok(mut h) => {
                h.insert(op_type, registered);
            }
            Err(poisoned) => {
                poisoned.into_inner().insert(op_type, registered);
            }
        }
    }

    /// The handler of `op_type` and the type's shared name.
    fn handler(&self, op_type: &str) -> Option<(Arc<str>, Registered)> {
        let get = |h: &FastMap<Arc<str>, Registered>| h.get_key_value(op_type).map(|(k, v)| (k.clone(), v.clone()));
        match self.inner.handlers.read() {
            Ok(h) => get(&h),
            Err(poisoned) => get(&poisoned.into_inner()),
        }
    }
}

#[async_trait::async_trait]
impl PodRuntime for InProcessRuntime {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn supports(&self, operation_type: &str) -> bool {
        self.handler(operation_type).is_some()
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        let Some((operation_type, registered)) = self.handler(&request.operation_type) else {
            return Err(Error::invalid(format!(
                "unknown operation type {:?} on operation {}: no in-process handler is registered for it",
                request.operation_type, request.operation_name
            )));
        };
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let handle = handle_text(n);
        let reports = Arc::new(Reports::default());
        let operation: Arc<str> = Arc::from(request.operation_name.as_str());
        let started = now_millis();
        let agenda_id = match self.inner.launched.lock() {
            Ok(mut launched) => launched.agenda_id(&request.agenda_id),
            Err(_) => Arc::from(request.agenda_id.as_str()),
        };
        let ctx = HandlerContext { request, reporter: ProgressReporter { reports: reports.clone() } };
        let mut future = (registered.handler)(ctx);
        // An inline handler's first poll, here (see `register_inline`): one that ends now needs no task.
        let ended = if registered.inline {
            let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
            match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Ready(result)) => Some(Ended::Returned(result)),
                Ok(Poll::Pending) => None,
                Err(panic) => Some(Ended::Panicked(panic)),
            }
        } else {
            None
        };
        // (a future polled once is still spawned as it is: it is boxed, so moving it moves only the box)
        let join = if ended.is_none() { Some(tokio::spawn(future)) } else { None };
        if let Ok(mut launched) = self.inner.launched.lock() {
            let entry = Entry {
                agenda_id,
                operation_name: operation.clone(),
                operation_type,
                state: if join.is_some() { LaunchedState::Running } else { LaunchedState::Finished },
                started,
                finished: if join.is_some() { None } else { Some(started) },
                abort: join.as_ref().map(JoinHandle::abort_handle),
            };
            launched.entries.insert(n, entry);
        }
        let mut events = InProcessEvents {
            started: false,
            reports,
            join,
            tail: VecDeque::new(),
            output: None,
            exit: None,
            done: false,
            inner: self.inner.clone(),
            n,
            operation,
        };
        if let Some(ended) = ended {
            events.end(ended);
        }
        let events: EventStream = Box::pin(events);
        Ok(Launched { handle, events })
    }

    async fn cancel(&self, handle: &str) -> Result<()> {
        if let Some(n) = handle_number(handle)
            && let Ok(launched) = self.inner.launched.lock()
            && let Some(e) = launched.entries.get(&n)
            && let Some(abort) = &e.abort
        {
            abort.abort();
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        let launched = self
            .inner
            .launched
            .lock()
            .map_err(|_| Error::backend("in-process runtime", "the launch table lock is poisoned"))?;
        Ok(launched.entries.iter().map(|(&n, e)| e.info(n)).collect())
    }

    async fn cleanup(&self, handle: &str) -> Result<()> {
        if let Some(n) = handle_number(handle)
            && let Ok(mut launched) = self.inner.launched.lock()
            && let Some(e) = launched.entries.remove(&n)
            && let Some(abort) = e.abort
        {
            abort.abort();
        }
        Ok(())
    }
}

/// The events of one in-process handler: `Started`, what it reports, then output and exit, read from the
/// task's channel and its join handle (no extra task).
struct InProcessEvents {
    started: bool,
    reports: Arc<Reports>,
    join: Option<JoinHandle<HandlerResult>>,
    /// Reports read after the handler ended (allocated only when there are some).
    tail: VecDeque<RuntimeEvent>,
    /// The handler's output, after the tail.
    output: Option<Value>,
    /// The exit, last.
    exit: Option<Exit>,
    done: bool,
    inner: Arc<Inner>,
    /// The number of the handle.
    n: u64,
    operation: Arc<str>,
}

impl Drop for InProcessEvents {
    fn drop(&mut self) {
        // Whatever the handler still reports has no reader.
        self.reports.closed.store(true, Ordering::Release);
        if let Ok(mut q) = self.reports.queue.lock() {
            q.clear();
        }
    }
}

impl InProcessEvents {
    /// The handler ended: its last reports, output and exit are queued (the caller marks its entry finished).
    fn end(&mut self, ended: Ended) {
        // Everything the task sent before it ended comes first.
        while let Some(e) = self.reports.try_recv() {
            self.tail.push_back(e);
        }
        let exit = match ended {
            Ended::Returned(Ok(output)) => {
                self.output = Some(output);
                Exit::success()
            }
            Ended::Returned(Err(e)) => {
                let message = format!("operation {} failed: {e}", self.operation);
                let mut exit = Exit::failure(message.clone());
                exit.code = Some(1);
                exit.diagnostic = Some(DiagnosticEvent::new(message, now_millis()));
                exit
            }
            Ended::Cancelled => {
                let message = format!("operation {} was cancelled", self.operation);
                let mut exit = Exit::failure(message.clone());
                exit.diagnostic = Some(DiagnosticEvent::new(message, now_millis()));
                exit
            }
            Ended::Panicked(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                let message = format!("the handler of operation {} panicked: {what}", self.operation);
                let mut exit = Exit::failure(message.clone());
                exit.diagnostic = Some(DiagnosticEvent::new(message, now_millis()));
                exit
            }
        };
        self.exit = Some(exit);
    }
}

impl InProcessEvents {
    /// After the handler ended: its last reports, its output, then its exit (which ends the stream).
    fn next_tail(&mut self) -> Option<RuntimeEvent> {
        if let Some(e) = self.tail.pop_front() {
            return Some(e);
        }
        if let Some(v) = self.output.take() {
            return Some(RuntimeEvent::Output(v));
        }
        let exit = self.exit.take()?;
        self.done = true;
        Some(RuntimeEvent::Exited(exit))
    }
}

impl Stream for InProcessEvents {
    type Item = RuntimeEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuntimeEvent>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.started {
            this.started = true;
            return Poll::Ready(Some(RuntimeEvent::Started));
        }
        if let Some(e) = this.next_tail() {
            return Poll::Ready(Some(e));
        }
        let Some(join) = this.join.as_mut() else {
            this.done = true;
            return Poll::Ready(None);
        };
        if let Some(e) = this.reports.poll_recv(cx) {
            return Poll::Ready(Some(e));
        }
        match Pin::new(join).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.join = None;
                this.end(result.into());
                this.inner.finished(this.n);
                Poll::Ready(this.next_tail())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use pop_core::testing::runtime::progress_percents;

    fn request(op_type: &str, payload: Value) -> LaunchRequest {
        LaunchRequest {
            agenda_id: "ag".into(),
            operation_name: "op".into(),
            operation_type: op_type.into(),
            payload,
            ..LaunchRequest::default()
        }
    }

    async fn events(rt: &InProcessRuntime, req: LaunchRequest) -> Vec<RuntimeEvent> {
        let launched = rt.launch(req).await.expect("launch");
        launched.events.collect().await
    }

    fn exit(events: &[RuntimeEvent]) -> &Exit {
        match events.last() {
            Some(RuntimeEvent::Exited(e)) => e,
            other => panic!("no exit at the end: {other:?}"),
        }
    }

    #[tokio::test]
    async fn success_reports_progress_output_and_exit_in_order() {
        let rt = InProcessRuntime::new();
        rt.register("t", |ctx| async move {
            ctx.progress(10.0);
            tokio::task::yield_now().await;
            ctx.log("half way");
            ctx.progress(60.0);
            Ok(json!({"echo": ctx.payload().clone(), "last": ctx.last_progress().is_some()}))
        });
        let ev = events(&rt, request("t", json!({"a": 1}))).await;
        assert_eq!(ev[0], RuntimeEvent::Started);
        let percents = progress_percents(&ev);
        assert_eq!(percents, vec![10.0, 60.0]);
        assert!(ev.contains(&RuntimeEvent::Log(LogStream::Stdout, "half way".into())));
        assert_eq!(ev[ev.len() - 2], RuntimeEvent::Output(json!({"echo": {"a": 1}, "last": false})));
        assert!(exit(&ev).success);
    }

    #[tokio::test]
    async fn errors_and_panics_become_failed_exits() {
        let rt = InProcessRuntime::new();
        rt.register("err", |_| async move { Err("disk full".into()) });
        rt.register("panic", |_| async move {
            if true {
                panic!("handler bug");
            }
            Ok(Value::Null)
        });
        let ev = events(&rt, request("err", json!({}))).await;
        let e = exit(&ev);
        assert!(!e.success);
        assert_eq!(e.message, "operation op failed: disk full");
        let ev = events(&rt, request("panic", json!({}))).await;
        let e = exit(&ev);
        assert!(!e.success);
        assert!(e.message.contains("panicked: handler bug"), "{}", e.message);
        // The runtime still works.
        let ev = events(&rt, request(LOG_MESSAGES, json!({"logMessages": ["hello"]}))).await;
        assert!(exit(&ev).success);
        assert!(ev.contains(&RuntimeEvent::Output(Value::Null)));
        assert!(ev.contains(&RuntimeEvent::Log(LogStream::Stdout, "hello".into())));
    }

    #[tokio::test]
    async fn reports_without_a_reader_are_dropped() {
        let rt = InProcessRuntime::new();
        let kept: Arc<Mutex<Option<ProgressReporter>>> = Arc::default();
        let k2 = kept.clone();
        rt.register("keeps", move |ctx| {
            *k2.lock().unwrap() = Some(ctx.reporter());
            async move { Ok(Value::Null) }
        });
        let launched = rt.launch(request("keeps", json!({}))).await.expect("launch");
        let ev: Vec<RuntimeEvent> = launched.events.collect().await;
        assert!(exit(&ev).success);
        // The stream is gone: a reporter the handler kept reports into nothing.
        let reporter = kept.lock().unwrap().take().expect("the handler ran");
        reporter.progress(5.0);
        reporter.log("late");
        assert!(reporter.reports.queue.lock().unwrap().is_empty());
        assert_eq!(rt.list().await.unwrap()[0].state, LaunchedState::Finished);
        assert!(rt.cancel("inproc-not-a-number").await.is_ok());
        assert!(rt.cleanup("other-1").await.is_ok());
        assert_eq!(rt.list().await.unwrap().len(), 1, "unknown handles change nothing");
    }

    #[test]
    fn handles_are_numbered() {
        for n in [0, 1, 9, 10, 12_345, u64::MAX] {
            assert_eq!(handle_text(n), format!("inproc-{n}"));
            assert_eq!(handle_number(&handle_text(n)), Some(n));
        }
    }

    #[tokio::test]
    async fn unknown_type_is_invalid_naming_it() {
        let rt = InProcessRuntime::new();
        assert!(!rt.supports("nope"));
        let err = rt.launch(request("nope", json!({}))).await.expect_err("unknown type");
        assert!(matches!(err, Error::Invalid(_)));
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    /// Launches a handler that sleeps for an hour (registered inline or not), cancels it and checks
    /// that it ended cancelled; returns the runtime and the launch's handle.
    async fn cancelled_sleeper(inline: bool) -> (InProcessRuntime, String) {
        let rt = InProcessRuntime::new();
        let slow = |_| async move {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(Value::Null)
        };
        if inline {
            rt.register_inline("slow", slow);
        } else {
            rt.register("slow", slow);
        }
        let launched = rt.launch(request("slow", json!({}))).await.expect("launch");
        assert_eq!(rt.list().await.unwrap()[0].state, LaunchedState::Running);
        rt.cancel(&launched.handle).await.expect("cancel");
        let ev: Vec<RuntimeEvent> = launched.events.collect().await;
        let e = exit(&ev);
        assert!(!e.success);
        assert!(e.message.contains("cancelled"), "{}", e.message);
        assert_eq!(rt.list().await.unwrap()[0].state, LaunchedState::Finished);
        (rt, launched.handle)
    }

    #[tokio::test]
    async fn cancel_aborts_the_handler() {
        let (rt, handle) = cancelled_sleeper(false).await;
        rt.cleanup(&handle).await.unwrap();
        assert!(rt.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn inline_handlers_report_the_same_events_with_or_without_a_task() {
        let rt = InProcessRuntime::new();
        // Ends at its first poll: no task, listed as finished at once.
        rt.register_inline("now", |ctx| async move {
            ctx.progress(10.0);
            ctx.log("at once");
            Ok(json!({"echo": ctx.payload().clone()}))
        });
        // Waits: spawned as a task after its first poll, reports before and after.
        rt.register_inline("later", |ctx| async move {
            ctx.progress(10.0);
            tokio::task::yield_now().await;
            ctx.progress(60.0);
            Ok(json!("done"))
        });
        rt.register_inline("err", |_| async move { Err("disk full".into()) });
        rt.register_inline("panic", |_| async move {
            if true {
                panic!("inline bug");
            }
            Ok(Value::Null)
        });
        let launched = rt.launch(request("now", json!({"a": 1}))).await.expect("launch");
        assert_eq!(rt.list().await.unwrap()[0].state, LaunchedState::Finished);
        let ev: Vec<RuntimeEvent> = launched.events.collect().await;
        assert_eq!(
            ev[..4],
            [
                RuntimeEvent::Started,
                RuntimeEvent::Progress(ProgressUpdate { percent_complete: Some(10.0), ..ProgressUpdate::default() }),
                RuntimeEvent::Log(LogStream::Stdout, "at once".into()),
                RuntimeEvent::Output(json!({"echo": {"a": 1}})),
            ]
        );
        assert!(exit(&ev).success);
        assert_eq!(ev.len(), 5);
        rt.cleanup(&launched.handle).await.unwrap();
        assert!(rt.list().await.unwrap().is_empty());

        let ev = events(&rt, request("later", json!({}))).await;
        let percents = progress_percents(&ev);
        assert_eq!(ev[0], RuntimeEvent::Started);
        assert_eq!(percents, vec![10.0, 60.0]);
        assert_eq!(ev[ev.len() - 2], RuntimeEvent::Output(json!("done")));
        assert!(exit(&ev).success);

        let ev = events(&rt, request("err", json!({}))).await;
        assert_eq!(exit(&ev).message, "operation op failed: disk full");
        let ev = events(&rt, request("panic", json!({}))).await;
        let e = exit(&ev);
        assert!(!e.success);
        assert!(e.message.contains("panicked: inline bug"), "{}", e.message);
        // Every launch is listed, finished.
        assert!(rt.list().await.unwrap().iter().all(|l| l.state == LaunchedState::Finished));
    }

    #[tokio::test]
    async fn cancel_aborts_an_inline_handler_that_waits() {
        let (rt, handle) = cancelled_sleeper(true).await;
        // Cancelling or cleaning up a launch that ended (at once or not) is harmless.
        rt.register_inline("now", |_| async move { Ok(Value::Null) });
        let done = rt.launch(request("now", json!({}))).await.expect("launch");
        rt.cancel(&done.handle).await.expect("cancel");
        let ev: Vec<RuntimeEvent> = done.events.collect().await;
        assert!(exit(&ev).success);
        rt.cleanup(&handle).await.unwrap();
        rt.cleanup(&done.handle).await.unwrap();
        assert!(rt.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn update_agenda_echoes_operations_and_params() {
        let rt = InProcessRuntime::new();
        let ops = json!([{"name": "x", "type": "t", "payload": {}}]);
        let ev = events(&rt, request(UPDATE_AGENDA, json!({"operations": ops, "params": {"p": 1}}))).await;
        assert!(ev.contains(&RuntimeEvent::Output(json!({"operations": ops, "params": {"p": 1}}))));
        let ev = events(&rt, request(UPDATE_AGENDA, json!({"operations": "x"}))).await;
        assert!(!exit(&ev).success);
    }
}
