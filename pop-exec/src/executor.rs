//! The async executor: drives a [`Machine`] with a [`PodRuntime`].
//!
//! It launches what the machine says is ready, follows every launched handler's event stream, applies
//! timeouts and retries at the times the machine gives, honours a [`CancelToken`] (running handlers are
//! cancelled and the agenda ends `cancelled`), and publishes the agenda's progress with the operation
//! progress that changed to a [`ProgressSink`]: after changes (coalesced to at most one publish per
//! [`ExecutorOptions::publish_interval`]) and at every [`ExecutorOptions::heartbeat`].
//!
//! A handler that panics, a runtime whose launch fails or panics, or an event stream that ends without an
//! exit fails that operation with a diagnostic; none of them stops the executor. A sink error does: it is
//! how a fenced (zombie) executor learns that it lost its lease. Then running handlers are cancelled and
//! [`Executor::run`] returns the sink's error.

use crate::CancelToken;
use crate::machine::{Action, AttemptKey, Machine, MachineOptions, OpEvent};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use pop_core::Result;
use pop_core::clock::{Clock, SystemClock};
use pop_core::model::{Agenda, AgendaProgress, DiagnosticEvent, Millis, Operation, OperationProgress, Params};
use pop_core::runtime::{LaunchRequest, Launched, PodRuntime, RuntimeEvent};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

mod events;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Where the executor publishes progress. Errors stop the executor (e.g. a lost lease).
#[async_trait::async_trait]
pub trait ProgressSink: Send + Sync {
    /// The agenda's progress (its `operation_progress` empty) and the operation progress that changed since
    /// the previous successful publish.
    async fn publish(&self, agenda: &AgendaProgress, changed: &[OperationProgress]) -> Result<()>;

    /// A generator added operations (and params) to the agenda: persist them. The default does nothing.
    async fn operations_generated(
        &self,
        agenda_id: &str,
        parent: &str,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        let _ = (agenda_id, parent, operations, params);
        Ok(())
    }
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

#[async_trait::async_trait]
impl ProgressSink for NullSink {
    async fn publish(&self, _agenda: &AgendaProgress, _changed: &[OperationProgress]) -> Result<()> {
        Ok(())
    }
}

/// Options of the executor.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorOptions {
    /// Operations running at once in one agenda (default 50).
    pub parallelism: usize,
    /// Cancel running operations as soon as one has failed for good.
    pub fail_fast: bool,
    /// Publish at least this often, changed or not (default 5 s, the original's progress tick).
    pub heartbeat: Duration,
    /// Publish changes at most this often (default 200 ms); `0` publishes after every batch of events.
    pub publish_interval: Duration,
    /// How long cancelled handlers get to report their end before they are abandoned (default 30 s).
    pub cancel_grace: Duration,
    /// Call [`PodRuntime::cleanup`] on every handler once it has ended (default true).
    pub cleanup: bool,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            parallelism: crate::machine::DEFAULT_PARALLELISM,
            fail_fast: false,
            heartbeat: Duration::from_secs(5),
            publish_interval: Duration::from_millis(200),
            cancel_grace: Duration::from_secs(30),
            cleanup: true,
        }
    }
}

/// Runs agendas on a runtime, publishing to a sink.
#[derive(Clone)]
pub struct Executor {
    runtime: Arc<dyn PodRuntime>,
    sink: Arc<dyn ProgressSink>,
    opts: ExecutorOptions,
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("runtime", &self.runtime.name()).field("opts", &self.opts).finish()
    }
}

/// Epoch milliseconds that advance with tokio's clock (so paused test time drives retries and timeouts
/// too): the executor's default [`Clock`] when none is given.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base_ms: Millis,
    base: Instant,
}

impl TokioClock {
    /// The system time now, advancing with tokio's clock from here on.
    pub fn new() -> Self {
        Self { base_ms: SystemClock.now(), base: Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Millis {
        self.base_ms + self.base.elapsed().as_millis() as Millis
    }
}

/// The tokio instant at which `clock` reads `at` (now, if `at` has passed).
fn instant_at(clock: &dyn Clock, at: Millis) -> Instant {
    Instant::now() + Duration::from_millis(at.saturating_sub(clock.now()).max(0) as u64)
}

enum Item {
    Event(RuntimeEvent),
    Panicked(String),
    End,
}

#[derive(Default)]
struct Inflight {
    handle: Option<String>,
    output: Option<Value>,
    cancel_wanted: bool,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

/// A launch: the runtime's answer, or the text of its panic.
type LaunchResult = std::result::Result<Result<Launched>, String>;

/// Events handled per wake-up before the machine is polled again.
const BATCH: usize = 256;

struct Run<'e> {
    exec: &'e Executor,
    clock: Arc<dyn Clock>,
    machine: Machine,
    template: LaunchRequest,
    launching: FuturesUnordered<BoxFuture<'e, (AttemptKey, LaunchResult)>>,
    streams: events::EventSet,
    inflight: FastMap<AttemptKey, Inflight>,
    chores: FuturesUnordered<BoxFuture<'static, ()>>,
    last_publish: Instant,
    /// The rows of the publishes, written over at each (see `Machine::snapshot_into`).
    rows: Vec<OperationProgress>,
    /// A launch failed while the machine's actions were carried out: poll the machine again before waiting.
    repoll: bool,
}

impl Executor {
    /// An executor.
    pub fn new(runtime: Arc<dyn PodRuntime>, sink: Arc<dyn ProgressSink>, opts: ExecutorOptions) -> Self {
        Self { runtime, sink, opts, clock: None }
    }

    /// Reads time from `clock` (the engine's), for the progress rows' timestamps, retry backoffs and
    /// timeouts. Without one, a [`TokioClock`] started at each run.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Runs `agenda` to its end (resuming from `prior` if given) and returns its final progress, with every
    /// operation's progress. `Err` only when the sink failed (the executor stopped and cancelled what was
    /// running).
    pub async fn run(
        &self,
        agenda: Agenda,
        prior: Option<AgendaProgress>,
        cancel: CancelToken,
    ) -> Result<AgendaProgress> {
        let clock: Arc<dyn Clock> = self.clock.clone().unwrap_or_else(|| Arc::new(TokioClock::new()));
        let template = LaunchRequest {
            agenda_id: agenda.id.clone().unwrap_or_default(),
            agenda_progress_id: agenda.progress_id.clone().or_else(|| prior.as_ref().and_then(|p| p.id.clone())),
            cid: agenda.cid.clone(),
            customer_id: agenda.customer_id.clone(),
            insight_id: agenda.insight_id().map(str::to_owned),
            ..LaunchRequest::default()
        };
        let span = tracing::info_span!("agenda", agenda_id = %template.agenda_id, cid = ?template.cid);
        let mopts = MachineOptions { parallelism: self.opts.parallelism, fail_fast: self.opts.fail_fast };
        let machine = match prior {
            Some(prior) => Machine::resume(agenda, prior, mopts, clock.now()),
            None => Machine::new(agenda, None, mopts, clock.now()),
        };
        let run = Run {
            exec: self,
            last_publish: Instant::now(),
            rows: Vec::new(),
            clock,
            machine,
            template,
            launching: FuturesUnordered::new(),
            streams: events::EventSet::new(),
            inflight: FastMap::default(),
            chores: FuturesUnordered::new(),
            repoll: false,
        };
        tracing::Instrument::instrument(run.drive(cancel), span).await
    }
}

impl<'e> Run<'e> {
    async fn drive(mut self, cancel: CancelToken) -> Result<AgendaProgress> {
        let opts = self.exec.opts.clone();
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let mut cancel_seen = false;
        let mut grace_until: Option<Instant> = None;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let wake = tokio::time::sleep_until(far);
        tokio::pin!(wake);
        let mut wake_at: Option<Instant> = None;
        let publish_timer = tokio::time::sleep_until(far);
        tokio::pin!(publish_timer);
        let mut publish_armed = false;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + opts.heartbeat, opts.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let grace_timer = tokio::time::sleep_until(far);
        tokio::pin!(grace_timer);

        // The first publish says the agenda is executing.
        if let Err(e) = self.publish().await {
            return Err(self.stop(e).await);
        }
        loop {
            let now = self.clock.now();
            let mut actions = self.machine.poll(now);
            let mut finished = false;
            for action in actions.drain(..) {
                match action {
                    Action::Launch(l) => self.launch(l),
                    Action::Cancel { key, reason } => self.cancel_attempt(key, &reason),
                    Action::RetryAt { key, at } => {
                        tracing::debug!(op = key.op.0, attempt = key.attempt, at, "retry scheduled");
                    }
                    Action::Generated { parent, operations, params } => {
                        let r = self
                            .exec
                            .sink
                            .operations_generated(&self.template.agenda_id, &parent, &operations, params.as_ref())
                            .await;
                        if let Err(e) = r {
                            return Err(self.stop(e).await);
                        }
                    }
                    Action::Finished(outcome) => {
                        tracing::info!(conclusion = %outcome.conclusion, "agenda finished");
                        finished = true;
                    }
                }
            }
            self.machine.recycle_actions(actions);
            if std::mem::take(&mut self.repoll) && !finished {
                continue;
            }
            if finished {
                // Let cancels and cleanups reach the runtime before returning.
                let chores = std::mem::take(&mut self.chores);
                let _ = tokio::time::timeout(opts.cancel_grace, chores.collect::<Vec<()>>()).await;
                // The last publish and the final progress, each operation exported once, in the run's
                // buffer of rows.
                let mut rows = std::mem::take(&mut self.rows);
                let (agenda, n, all) = self.machine.finish(self.clock.now(), &mut rows);
                self.last_publish = Instant::now();
                if let Err(e) = self.exec.sink.publish(&agenda, &rows[..n]).await {
                    return Err(self.stop(e).await);
                }
                return Ok(self.machine.final_progress(agenda, rows, all));
            }
            // Timers: the machine's next wake-up, the coalesced publish.
            let next = self.machine.next_wakeup().map(|at| instant_at(self.clock.as_ref(), at));
            if next != wake_at {
                wake_at = next;
                wake.as_mut().reset(next.unwrap_or(far));
            }
            if self.machine.has_changes() {
                let due = self.last_publish + opts.publish_interval;
                if Instant::now() >= due {
                    if let Err(e) = self.publish().await {
                        return Err(self.stop(e).await);
                    }
                    publish_armed = false;
                } else if !publish_armed {
                    publish_armed = true;
                    publish_timer.as_mut().reset(due);
                }
            }
            tokio::select! {
                biased;
                _ = &mut cancelled, if !cancel_seen => {
                    cancel_seen = true;
                    self.machine.cancel("cancellation requested", self.clock.now());
                    let until = Instant::now() + opts.cancel_grace;
                    grace_until = Some(until);
                    grace_timer.as_mut().reset(until);
                }
                Some((key, result)) = self.launching.next(), if !self.launching.is_empty() => {
                    self.launched(key, result);
                }
                mut batch = std::future::poll_fn(|cx| self.streams.poll_batch(cx, BATCH)), if !self.streams.is_empty() => {
                    // Everything the woken streams had ready: one machine poll per batch.
                    for (key, item) in batch.drain(..) {
                        self.item(key, item);
                    }
                    self.streams.recycle(batch);
                }
                _ = &mut wake, if wake_at.is_some() => {
                    wake_at = None;
                    wake.as_mut().reset(far);
                }
                _ = &mut publish_timer, if publish_armed => {
                    publish_armed = false;
                    if let Err(e) = self.publish().await {
                        return Err(self.stop(e).await);
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = self.publish().await {
                        return Err(self.stop(e).await);
                    }
                }
                Some(()) = self.chores.next(), if !self.chores.is_empty() => {}
                _ = &mut grace_timer, if grace_until.is_some() => {
                    grace_until = None;
                    tracing::warn!("cancelled handlers did not end within the grace period; abandoning them");
                    self.machine.abandon_running(self.clock.now());
                }
            }
        }
    }

    async fn publish(&mut self) -> Result<()> {
        let mut rows = std::mem::take(&mut self.rows);
        let (agenda, n) = self.machine.snapshot_into(self.clock.now(), &mut rows);
        self.last_publish = Instant::now();
        let result = self.exec.sink.publish(&agenda, &rows[..n]).await;
        // The rows are kept and written over at the next publishes (their strings reused, no fresh
        // memory per publish while a fast run changes many rows at a time), but no more than four
        // times what this publish used (a long run after its first publish of every row keeps only
        // the few rows that change per publish).
        if n.saturating_mul(4) < rows.len() {
            rows.truncate(n);
            rows.shrink_to_fit();
        }
        self.rows = rows;
        result
    }

    /// The sink failed: cancel whatever runs and give the error back.
    async fn stop(&mut self, error: pop_core::Error) -> pop_core::Error {
        tracing::warn!(%error, "progress sink failed; stopping the executor");
        let handles: Vec<String> = self.inflight.values().filter_map(|f| f.handle.clone()).collect();
        let runtime = self.exec.runtime.clone();
        let cancels = async move {
            for h in handles {
                if let Err(e) = runtime.cancel(&h).await {
                    tracing::warn!(handle = %h, error = %e, "could not cancel a handler");
                }
            }
        };
        let _ = tokio::time::timeout(self.exec.opts.cancel_grace, cancels).await;
        error
    }

    /// The name of the operation of `key` (for messages).
    fn name_of(&self, key: AttemptKey) -> &str {
        self.machine.operation(key.op).map(|o| o.name.as_str()).unwrap_or_default()
    }

    fn launch(&mut self, l: crate::machine::Launch) {
        let key = l.key;
        tracing::debug!(operation = %l.name, attempt = key.attempt, "launch");
        let request = LaunchRequest {
            operation_name: l.name,
            operation_id: l.operation_id,
            operation_type: l.op_type,
            payload: l.payload,
            last_progress: l.last_progress.map(|b| *b),
            ..self.template.clone()
        };
        self.inflight.insert(key, Inflight::default());
        let exec: &'e Executor = self.exec;
        let mut fut = match std::panic::catch_unwind(AssertUnwindSafe(|| exec.runtime.launch(request))) {
            Ok(fut) => fut,
            Err(p) => return self.launched(key, Err(panic_text(&*p))),
        };
        // Most runtimes launch without waiting (the in-process one always): poll once here, and only a
        // launch that is not done yet joins the set of pending launches.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut)));
        match polled {
            Ok(Poll::Ready(result)) => self.launched(key, Ok(result)),
            Err(p) => self.launched(key, Err(panic_text(&*p))),
            Ok(Poll::Pending) => self.launching.push(Box::pin(async move {
                let r = AssertUnwindSafe(fut).catch_unwind().await;
                (key, r.map_err(|p| panic_text(&*p)))
            })),
        }
    }

    /// Runs a chore (cancel, cleanup) as far as it goes now; one that must wait joins the chores.
    fn chore(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut fut: BoxFuture<'static, ()> = Box::pin(fut);
        if poll_once(&mut fut).is_pending() {
            self.chores.push(fut);
        }
    }

    /// Cleans up after a handler (as a chore: polled once at once, kept only if it must wait).
    fn cleanup(&mut self, h: String) {
        let runtime = self.exec.runtime.clone();
        self.chore(async move {
            if let Err(e) = runtime.cleanup(&h).await {
                tracing::debug!(handle = %h, error = %e, "cleanup failed");
            }
        });
    }

    fn launched(&mut self, key: AttemptKey, result: LaunchResult) {
        // (the clock is read only when the machine is told something: not for a launch that went well)
        let launched = match result {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                let now = self.clock.now();
                self.inflight.remove(&key);
                let (name, runtime_name) = (self.name_of(key), self.exec.runtime.name());
                let msg = format!("could not launch operation {name} on the {runtime_name} runtime: {e}");
                self.machine.on_event(key, OpEvent::Failed(DiagnosticEvent::new(msg, now)), now);
                self.repoll = true;
                return;
            }
            Err(panic) => {
                let now = self.clock.now();
                self.inflight.remove(&key);
                let (name, runtime_name) = (self.name_of(key), self.exec.runtime.name());
                let msg = format!("the {runtime_name} runtime panicked while launching operation {name}: {panic}");
                self.machine.on_event(key, OpEvent::Failed(DiagnosticEvent::new(msg, now)), now);
                self.repoll = true;
                return;
            }
        };
        let Launched { handle, events } = launched;
        match self.inflight.get_mut(&key) {
            Some(f) if f.cancel_wanted => {
                f.handle = Some(handle.clone());
                self.spawn_cancel(handle);
            }
            Some(f) => f.handle = Some(handle),
            None => self.spawn_cancel(handle),
        }
        self.streams.push(key, events);
    }

    fn spawn_cancel(&mut self, handle: String) {
        let runtime = self.exec.runtime.clone();
        self.chore(async move {
            if let Err(e) = runtime.cancel(&handle).await {
                tracing::warn!(handle = %handle, error = %e, "could not cancel a handler");
            }
        });
    }

    fn cancel_attempt(&mut self, key: AttemptKey, reason: &str) {
        if !self.inflight.contains_key(&key) {
            return;
        }
        tracing::info!(operation = %self.name_of(key), attempt = key.attempt, reason, "cancelling");
        let Some(f) = self.inflight.get_mut(&key) else { return };
        match f.handle.clone() {
            Some(h) => self.spawn_cancel(h),
            None => f.cancel_wanted = true,
        }
    }

    fn item(&mut self, key: AttemptKey, item: Item) {
        // (the clock is read only for events the machine is told about: not for outputs and log lines)
        match item {
            Item::Event(RuntimeEvent::Started) => {
                // (the launch set the start time: the clock is read only when it did not)
                if self.machine.wants_start_time(key) {
                    let now = self.clock.now();
                    self.machine.on_event(key, OpEvent::Started, now);
                }
            }
            Item::Event(RuntimeEvent::Progress(p)) => {
                let now = self.clock.now();
                self.machine.on_event(key, OpEvent::Progress(p), now);
            }
            Item::Event(RuntimeEvent::Output(v)) => {
                if let Some(f) = self.inflight.get_mut(&key) {
                    f.output = Some(v);
                }
            }
            Item::Event(RuntimeEvent::Log(stream, line)) => {
                if self.inflight.contains_key(&key) {
                    tracing::debug!(operation = %self.name_of(key), ?stream, "{line}");
                }
            }
            Item::Event(RuntimeEvent::Exited(exit)) => {
                let Some(f) = self.inflight.remove(&key) else { return };
                let now = self.clock.now();
                let event = if exit.success {
                    OpEvent::Succeeded(f.output.unwrap_or(Value::Null))
                } else {
                    let mut diag = exit.diagnostic.unwrap_or_else(|| {
                        let msg = if exit.message.is_empty() {
                            format!("operation {} failed", self.name_of(key))
                        } else {
                            exit.message.clone()
                        };
                        DiagnosticEvent::new(msg, now)
                    });
                    if diag.status_code.is_none() {
                        diag.status_code = exit.code.map(|c| c.to_string());
                    }
                    OpEvent::Failed(diag)
                };
                self.machine.on_event(key, event, now);
                if self.exec.opts.cleanup
                    && let Some(h) = f.handle
                {
                    self.cleanup(h);
                }
            }
            Item::Panicked(p) => {
                if self.inflight.remove(&key).is_some() {
                    let now = self.clock.now();
                    let msg = format!("the runtime panicked while following operation {}: {p}", self.name_of(key));
                    self.machine.on_event(key, OpEvent::Failed(DiagnosticEvent::new(msg, now)), now);
                }
            }
            Item::End => {
                if self.inflight.remove(&key).is_some() {
                    let now = self.clock.now();
                    let msg = format!("the events of operation {} ended without an exit", self.name_of(key));
                    self.machine.on_event(key, OpEvent::Failed(DiagnosticEvent::new(msg, now)), now);
                }
            }
        }
    }
}

/// Polls `fut` once without a task to wake: a future that is not ready must then be polled by something
/// that registers a real waker (the sets of pending launches and chores do at their next poll).
fn poll_once<T>(fut: &mut BoxFuture<'_, T>) -> Poll<T> {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    fut.as_mut().poll(&mut cx)
}
