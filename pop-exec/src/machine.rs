//! The pure DAG state machine of one agenda run: no IO, no clock reads, no async.
//!
//! A [`Machine`] is built from an [`Agenda`] (and, on a re-run, the prior [`AgendaProgress`] with its
//! operation progress). The caller feeds it [`OpEvent`]s with the current time and asks it, with
//! [`Machine::poll`], what to do next: the [`Action`]s to launch operations (payload already resolved
//! against the outputs so far), cancel attempts, wait for a retry, persist generated operations, and finally
//! the [`Outcome`]. [`Machine::next_wakeup`] says when the caller must call [`Machine::poll`] again even
//! without events (a retry is due or an operation's `timeoutMs` expires).
//!
//! Every event costs O(1) plus the operation's out-degree: readiness is tracked with counters of unmet
//! dependencies and a ready queue, percent complete with a running sum, and snapshots carry only the
//! operations whose progress changed.
//!
//! ```
//! use pop_exec::machine::{Action, Machine, MachineOptions, OpEvent};
//! use pop_core::model::{Agenda, Conclusion};
//! use serde_json::json;
//!
//! let agenda: Agenda = serde_json::from_value(json!({
//!     "id": "a1",
//!     "operations": [
//!         {"name": "probe", "type": "t", "payload": {}},
//!         {"name": "encode", "type": "t", "payload": {"in": "@<probe.out::/file>"}}
//!     ]
//! })).unwrap();
//! let mut m = Machine::new(agenda, None, MachineOptions::default(), 0);
//! let Action::Launch(probe) = m.poll(0).remove(0) else { panic!() };
//! m.on_event(probe.key, OpEvent::Succeeded(json!({"file": "x.mp4"})), 1);
//! let Action::Launch(encode) = m.poll(1).remove(0) else { panic!() };
//! assert_eq!(encode.payload, json!({"in": "x.mp4"}));
//! m.on_event(encode.key, OpEvent::Succeeded(json!(null)), 2);
//! assert!(matches!(m.poll(2).as_slice(), [Action::Finished(o)] if o.conclusion == Conclusion::Succeeded));
//! ```

use crate::generate;
use pop_core::dag::parsed_dependencies;
use pop_core::model::{
    Agenda, AgendaInsight, AgendaProgress, Conclusion, DiagnosticEvent, Millis, Operation, OperationProgress, Params,
    ProcessingState, RUNNING_OPERATIONS, RetryPolicy, param_keys,
};
use pop_core::refs::{AGENDA_ID, Context, OPERATION_NAME, OUTPUT_SUFFIX, PARAMS, ParsedDocument};
use pop_core::runtime::ProgressUpdate;
use progress::Progress;
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;

/// Maps keyed by operation names hash with foldhash (randomly seeded, several times cheaper than SipHash on
/// short names).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Default cap on operations running at once in one agenda (the original's thread-pool size).
pub const DEFAULT_PARALLELISM: usize = 50;

/// The payload key of a generator that holds the operations to add, passed to the handler unresolved.
pub use pop_core::dag::GENERATED_OPERATIONS_KEY;

/// How many names a deadlock diagnostic lists before summarising.
const MAX_NAMES_IN_MESSAGE: usize = 50;

/// Options of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineOptions {
    /// The most operations running at once (0 is treated as 1).
    pub parallelism: usize,
    /// Cancel running operations as soon as one operation has failed for good.
    pub fail_fast: bool,
}

impl Default for MachineOptions {
    fn default() -> Self {
        Self { parallelism: DEFAULT_PARALLELISM, fail_fast: false }
    }
}

/// An operation of the run (an index into the machine's operations, stable for the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub usize);

/// One attempt of one operation: events name the attempt they belong to, so late events of an attempt
/// that was timed out or cancelled are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    /// The operation.
    pub op: OpId,
    /// The attempt, 1-based.
    pub attempt: u32,
}

/// An operation to launch now.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The attempt being launched; events about it must carry this key.
    pub key: AttemptKey,
    /// The operation's name.
    pub name: String,
    /// The operation's type (selects the handler).
    pub op_type: String,
    /// The operation's `id`, if any (`OPERATION_ID`).
    pub operation_id: Option<String>,
    /// The payload with every reference resolved.
    pub payload: Value,
    /// The operation's progress from an earlier attempt (`LAST_PROGRESS`) on a re-run or a retry.
    pub last_progress: Option<Box<OperationProgress>>,
    /// When the attempt times out (`timeoutMs` after the launch), if the operation has a timeout.
    pub deadline: Option<Millis>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Succeeded, failed or cancelled.
    pub conclusion: Conclusion,
    /// Why it failed (empty on success).
    pub diagnostics: Vec<DiagnosticEvent>,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Launch an operation.
    Launch(Launch),
    /// Stop a running attempt (timeout, fail-fast, cancel). Its later events are ignored unless they report
    /// how it ended.
    Cancel {
        /// The attempt to stop.
        key: AttemptKey,
        /// Why, for logs.
        reason: String,
    },
    /// A failed operation will be retried: call [`Machine::poll`] at `at` (also reported by
    /// [`Machine::next_wakeup`]).
    RetryAt {
        /// The attempt that will be launched.
        key: AttemptKey,
        /// When.
        at: Millis,
    },
    /// A generator succeeded and added operations: persist them with the agenda.
    Generated {
        /// The generator's name (`generatedOperationParent` of each operation).
        parent: String,
        /// The operations added, stamped with `generatedOperationParent`.
        operations: Vec<Operation>,
        /// Params merged into the agenda's params, if any.
        params: Option<Params>,
    },
    /// The run is over; always the last action.
    Finished(Outcome),
}

/// What happened to an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum OpEvent {
    /// The handler is running.
    Started,
    /// The handler reported progress.
    Progress(ProgressUpdate),
    /// The handler succeeded with this output (`null` is stored as `{}`).
    Succeeded(Value),
    /// The handler failed.
    Failed(DiagnosticEvent),
    /// The handler was cancelled.
    Cancelled,
    /// The caller noticed that the attempt exceeded its deadline.
    TimedOut,
}

/// The agenda progress and the operation progress that changed since the last snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The agenda's progress (its `operation_progress` is left empty).
    pub agenda: AgendaProgress,
    /// The operations whose progress changed since the previous snapshot.
    pub changed: Vec<OperationProgress>,
}

/// Where an operation is in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    /// Waiting for dependencies.
    Blocked,
    /// Every dependency succeeded; waiting for a free slot.
    Ready,
    /// Launched.
    Running,
    /// Failed; a retry is scheduled.
    RetryWait,
    /// Succeeded (in this run or restored from the prior progress).
    Succeeded,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// Counters of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Operations in all (including generated ones).
    pub total: usize,
    /// Waiting for dependencies.
    pub blocked: usize,
    /// Ready, not launched.
    pub ready: usize,
    /// Running.
    pub running: usize,
    /// Waiting for a retry.
    pub retry_waiting: usize,
    /// Succeeded, failed or cancelled.
    pub completed: usize,
}

/// Percent complete as the original computes it: `(completed * 100 + Σ in-flight %) / total`, 0 when
/// there are no operations.
pub fn percent_complete(completed: usize, total: usize, in_flight_percent_sum: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    ((completed as f64 * 100.0 + in_flight_percent_sum) / total as f64).clamp(0.0, 100.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    RetryDue,
    Deadline,
}

/// What an operation whose payload holds references (or a generator's operation templates) needs at launch.
/// Boxed: most operations of a large agenda have none.
struct Refs {
    doc: ParsedDocument,
    /// A generator's `payload.operations`, put back unresolved at launch.
    template_ops: Option<Value>,
    /// The operation's name as a JSON string (`pop.operationName`).
    name_value: Value,
}

/// The run state of operation `i` (its `Operation` is `Machine::ops[i]`).
struct OpState {
    refs: Option<Box<Refs>>,
    /// `op.generator().is_some()`, read once (the params stay in memory the run does not touch).
    is_generator: bool,
    unmet: u32,
    /// Dependents added after the build (by generated operations); the agenda's own are in
    /// `Machine::dependents`.
    dependents: Vec<u32>,
    status: OpStatus,
    attempt: u32,
    /// `None` for the default retry policy and no timeout (most operations).
    limits: Option<Box<Limits>>,
    output: Option<Value>,
    percent: f64,
    progress: Progress,
    last_progress: Option<Box<OperationProgress>>,
    running_pos: u32,
    cancel_requested: bool,
    dirty: bool,
}

/// An operation's `retry` and `timeoutMs` params.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    retry: RetryPolicy,
    timeout_ms: Option<u64>,
}

impl OpState {
    fn retry(&self) -> RetryPolicy {
        self.limits.as_ref().map_or_else(RetryPolicy::default, |l| l.retry)
    }

    fn timeout_ms(&self) -> Option<u64> {
        self.limits.as_ref().and_then(|l| l.timeout_ms)
    }
}

/// The state machine of one agenda run. See the [module documentation](self).
pub struct Machine {
    opts: MachineOptions,
    agenda_id: Value,
    progress_template: AgendaProgress,
    params: Value,
    /// The run state of each of `ops`, by the same index.
    states: Vec<OpState>,
    /// The dependents of the operations the run was built with, in one list (not one per operation):
    /// those of operation `i` are `dependents[dependents_at[i]..dependents_at[i + 1]]`.
    dependents: Vec<u32>,
    dependents_at: Vec<usize>,
    /// Operation indices by exact name (hashed with `hasher`); the names are not copied: a lookup compares
    /// with the operation's own.
    by_exact: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    by_lower: FastMap<String, usize>,
    unknown_waiters: FastMap<String, Vec<u32>>,
    prior_ops: FastMap<String, OperationProgress>,
    ready: VecDeque<usize>,
    running: Vec<usize>,
    timers: BinaryHeap<Reverse<(Millis, TimerKind, usize, u32)>>,
    blocked: usize,
    retry_waiting: usize,
    completed: usize,
    in_flight_sum: f64,
    stopping: Option<Conclusion>,
    diagnostics: Vec<DiagnosticEvent>,
    finished: Option<Outcome>,
    finished_reported: bool,
    completed_time: Option<Millis>,
    outbox: Vec<Action>,
    dirty: Vec<usize>,
    agenda_dirty: bool,
    /// The operations, by index: the agenda's own list, taken over as it is (then generated ones).
    /// Last: fields are dropped in order, and the run's large buffers above are freed before the
    /// agenda's many small allocations (glibc merges its lists of small free blocks at every large
    /// free: after the agenda's, each would walk all of them).
    ops: Vec<Operation>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("agenda_id", &self.agenda_id)
            .field("counts", &self.counts())
            .field("stopping", &self.stopping)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// Builds the run of `agenda`. With `prior` (the progress of an earlier attempt, including its
    /// `operation_progress`), operations that succeeded are not run again and their `resultPayload` is
    /// restored as `<name>.out`; every other operation with prior progress gets it as `LAST_PROGRESS`.
    ///
    /// Problems that make the run impossible (duplicate or empty names, malformed `retry` or `timeoutMs`)
    /// do not panic: the run is born failed, with one diagnostic per problem, and [`Machine::poll`] reports
    /// it finished.
    pub fn new(agenda: Agenda, prior: Option<&AgendaProgress>, opts: MachineOptions, now: Millis) -> Self {
        Self::build(agenda, prior.cloned(), opts, now)
    }

    /// [`Machine::new`] resuming from `prior`, whose operation rows the machine takes over (moved, not
    /// copied: the executor's way).
    pub fn resume(agenda: Agenda, prior: AgendaProgress, opts: MachineOptions, now: Millis) -> Self {
        Self::build(agenda, Some(prior), opts, now)
    }

    fn build(agenda: Agenda, mut prior: Option<AgendaProgress>, opts: MachineOptions, now: Millis) -> Self {
        let prior_rows = prior.as_mut().map(|p| std::mem::take(&mut p.operation_progress)).unwrap_or_default();
        let prior = prior.as_ref();
        // (a standalone run may have no ids: rows then carry only their operation's name)
        let progress_id =
            agenda.progress_id.clone().or_else(|| prior.and_then(|p| p.id.clone())).or_else(|| agenda.id.clone());
        let external_id = agenda.param(param_keys::EXTERNAL_ID).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let progress_template = AgendaProgress {
            id: progress_id,
            cid: agenda.cid.clone(),
            customer_id: agenda.customer_id.clone(),
            title: agenda.title.clone(),
            added_time: prior.and_then(|p| p.added_time),
            agenda_id: agenda.id.clone(),
            link_id: agenda.link_id.clone(),
            external_id,
            processing_state: ProcessingState::Executing,
            processing_state_message: Some(RUNNING_OPERATIONS.to_owned()),
            attempts_completed: prior.map_or(0, |p| p.attempts_completed),
            maximum_attempts: agenda.maximum_attempts(),
            started_time: Some(now),
            params: agenda.params.clone(),
            agenda_insight: agenda.agenda_insight.clone().or_else(|| prior.and_then(|p| p.agenda_insight.clone())),
            ..AgendaProgress::default()
        };
        let prior_ops: FastMap<String, OperationProgress> =
            prior_rows.into_iter().filter_map(|op| Some((op.operation.as_deref()?.to_lowercase(), op))).collect();
        let mut m = Machine {
            opts,
            agenda_id: agenda.id.clone().map_or(Value::Null, Value::String),
            params: agenda.params.clone().map(Value::Object).unwrap_or(Value::Null),
            progress_template,
            ops: Vec::new(),
            states: Vec::with_capacity(agenda.operations.len()),
            dependents: Vec::new(),
            dependents_at: Vec::new(),
            by_exact: hashbrown::HashTable::with_capacity(agenda.operations.len()),
            hasher: Default::default(),
            by_lower: FastMap::default(),
            unknown_waiters: FastMap::default(),
            prior_ops,
            ready: VecDeque::new(),
            running: Vec::new(),
            timers: BinaryHeap::new(),
            blocked: 0,
            retry_waiting: 0,
            completed: 0,
            in_flight_sum: 0.0,
            stopping: None,
            diagnostics: Vec::new(),
            finished: None,
            finished_reported: false,
            completed_time: None,
            outbox: Vec::new(),
            dirty: Vec::with_capacity(agenda.operations.len()),
            agenda_dirty: true,
        };
        if agenda.operations.is_empty() {
            m.fail_run(DiagnosticEvent::new("the agenda has no operations", now));
            return m;
        }
        let mut problems = Vec::new();
        let first = m.add_operations(agenda.operations, now, &mut problems);
        if !problems.is_empty() {
            for p in problems {
                m.fail_run(DiagnosticEvent::new(p, now));
            }
            return m;
        }
        // Restored generators add the operations they generated unless the agenda already holds them.
        for i in first..m.states.len() {
            if m.states[i].status == OpStatus::Succeeded
                && m.states[i].is_generator
                && let Err(message) = m.expand_generator(i, now)
            {
                m.fail_run(DiagnosticEvent::new(message, now));
                return m;
            }
        }
        m
    }

    /// Adds operations (at construction or from a generator): registers names, restores prior progress,
    /// wires dependencies. Returns the index of the first added operation.
    fn add_operations(&mut self, ops: Vec<Operation>, now: Millis, problems: &mut Vec<String>) -> usize {
        let first = self.states.len();
        self.states.reserve(ops.len());
        if self.ops.is_empty() {
            self.ops = ops;
        } else {
            self.ops.extend(ops);
        }
        for i in first..self.ops.len() {
            let op = &self.ops[i];
            let lower = lowercase(&op.name);
            if op.name.trim().is_empty() {
                problems.push(format!("operation #{i} has an empty name"));
            } else if self.find_lower(&lower).is_some() {
                problems
                    .push(format!("operation name {} is used more than once (names are case-insensitive)", op.name));
            }
            let retry = match op.retry_policy() {
                Ok(r) => r.unwrap_or_default(),
                Err(e) => {
                    problems.push(format!("operation {}: {e}", op.name));
                    RetryPolicy::default()
                }
            };
            let timeout_ms = op.timeout_ms().unwrap_or_else(|e| {
                problems.push(format!("operation {}: {e}", op.name));
                None
            });
            if *lower != *op.name {
                self.by_lower.entry(lower.clone().into_owned()).or_insert(i);
            }
            let prior = if self.prior_ops.is_empty() { None } else { self.prior_ops.remove(&*lower) };
            // A generator's `payload.operations` (e.g. `updateAgenda`) describes operations to add: their
            // references belong to them, so they are neither dependencies nor resolved here.
            let is_generator = op.generator().is_some();
            let refs = if is_generator || may_hold_references(&op.payload) {
                let mut payload = op.payload.clone();
                let template_ops = match (&mut payload, is_generator) {
                    (Value::Object(map), true) => map.remove(GENERATED_OPERATIONS_KEY),
                    _ => None,
                };
                let doc = ParsedDocument::parse(payload);
                (doc.has_references() || template_ops.is_some())
                    .then(|| Box::new(Refs { doc, template_ops, name_value: Value::String(op.name.clone()) }))
            } else {
                None
            };
            // Ids and owner fields are filled in by `export`, not stored per operation.
            // `operation` (the name) is filled in by `export`; `params` stays empty: it carries a handler's
            // resume state, reported with its progress.
            let mut progress = Progress::pending(now);
            let mut status = OpStatus::Blocked;
            let mut output = None;
            let mut last_progress = None;
            // A row restored from the store is published only once the run changes it.
            let restored = prior.is_some();
            if let Some(prior) = prior {
                if prior.succeeded() {
                    match restore_output(prior.result_payload.as_deref()) {
                        Ok(v) => {
                            status = OpStatus::Succeeded;
                            output = Some(v);
                        }
                        Err(e) => {
                            let msg = format!(
                                "operation {} succeeded before but its resultPayload is not JSON ({e}); running it again",
                                op.name
                            );
                            let mut p = prior.clone();
                            p.diagnostic_events.push(DiagnosticEvent::new(msg, now));
                            last_progress = Some(Box::new(p));
                        }
                    }
                } else if prior.processing_state != ProcessingState::Waiting {
                    last_progress = Some(Box::new(prior.clone()));
                }
                progress = Progress::from_row(prior);
            }
            if status == OpStatus::Succeeded {
                self.completed += 1;
            } else {
                self.blocked += 1;
            }
            // Operations that waited for this name (unknown until now) depend on it.
            let waiters = if self.unknown_waiters.is_empty() { None } else { self.unknown_waiters.remove(&*lower) };
            drop(lower);
            self.states.push(OpState {
                refs,
                is_generator,
                unmet: 0,
                dependents: Vec::new(),
                status,
                attempt: 0,
                limits: (retry != RetryPolicy::default() || timeout_ms.is_some())
                    .then(|| Box::new(Limits { retry, timeout_ms })),
                output,
                percent: 0.0,
                progress,
                last_progress,
                running_pos: u32::MAX,
                cancel_requested: false,
                dirty: false,
            });
            self.index_name(i);
            if !restored {
                self.mark_dirty(i);
            }
            if let Some(waiters) = waiters {
                if self.states[i].status == OpStatus::Succeeded {
                    for w in waiters {
                        self.satisfy(w as usize);
                    }
                } else {
                    self.states[i].dependents.extend(waiters);
                }
            }
        }
        // Buffers reused across operations.
        let mut known: Vec<usize> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        // (dependency, dependent) pairs, added once counted (each list allocated once, at its size).
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for i in first..self.states.len() {
            if self.states[i].status == OpStatus::Succeeded {
                continue;
            }
            // The one dependency parser (references, then dependsOn), over the references parsed above; names
            // are resolved to operations (exact name first, then case-insensitively), then deduplicated.
            let s = &self.states[i];
            let references = s.refs.iter().flat_map(|r| r.doc.references());
            for (n, _) in parsed_dependencies(&self.ops[i], references) {
                match self.find_exact(n) {
                    Some(j) => known.push(j),
                    None => {
                        let lower = lowercase(n);
                        match self.find_lower(&lower) {
                            Some(j) => known.push(j),
                            None => unknown.push(lower.into_owned()),
                        }
                    }
                }
            }
            known.sort_unstable();
            known.dedup();
            unknown.sort_unstable();
            unknown.dedup();
            let mut unmet = 0u32;
            for j in known.drain(..) {
                if self.states[j].status != OpStatus::Succeeded {
                    unmet += 1;
                    edges.push((j as u32, i as u32));
                }
            }
            for d in unknown.drain(..) {
                unmet += 1;
                self.unknown_waiters.entry(d).or_default().push(i as u32);
            }
            self.states[i].unmet += unmet;
            if self.states[i].unmet == 0 && self.states[i].status == OpStatus::Blocked {
                self.states[i].status = OpStatus::Ready;
                self.blocked -= 1;
                self.ready.push_back(i);
            }
        }
        if first == 0 {
            // The whole agenda: every operation's dependents in one list, in the order of `edges` (a
            // counting sort). A generator's few operations are pushed to their dependencies' own lists
            // instead: a pass over every operation would cost O(agenda) per generator.
            let n = self.states.len();
            let mut at = vec![0usize; n + 1];
            for &(j, _) in &edges {
                at[j as usize + 1] += 1;
            }
            for k in 0..n {
                at[k + 1] += at[k];
            }
            let mut list = vec![0u32; edges.len()];
            for (j, i) in edges {
                let slot = &mut at[j as usize];
                list[*slot] = i;
                *slot += 1;
            }
            // `at[j]` has moved to the end of `j`'s run, the start of `j + 1`'s: shift back by one.
            at.copy_within(0..n, 1);
            at[0] = 0;
            self.dependents = list;
            self.dependents_at = at;
        } else {
            for (j, i) in edges {
                self.states[j as usize].dependents.push(i);
            }
        }
        self.agenda_dirty = true;
        first
    }

    /// One dependency of `i` succeeded.
    fn satisfy(&mut self, i: usize) {
        let s = &mut self.states[i];
        s.unmet = s.unmet.saturating_sub(1);
        if s.unmet == 0 && s.status == OpStatus::Blocked {
            s.status = OpStatus::Ready;
            self.blocked -= 1;
            self.ready.push_back(i);
        }
    }

    fn mark_dirty(&mut self, i: usize) {
        if !self.states[i].dirty {
            self.states[i].dirty = true;
            self.dirty.push(i);
        }
        self.agenda_dirty = true;
    }

    fn fail_run(&mut self, diag: DiagnosticEvent) {
        self.diagnostics.push(diag);
        if self.stopping.is_none() {
            self.stopping = Some(Conclusion::Failed);
        }
        self.agenda_dirty = true;
    }

    /// The operation named exactly `name`.
    fn find_exact(&self, name: &str) -> Option<usize> {
        let h = self.hasher.hash_one(name);
        self.by_exact.find(h, |&j| self.ops[j as usize].name == name).map(|&j| j as usize)
    }

    /// Indexes operation `i`'s name (the first operation of a name keeps it).
    fn index_name(&mut self, i: usize) {
        let ops = &self.ops;
        let name = ops[i].name.as_str();
        let h = self.hasher.hash_one(name);
        if self.by_exact.find(h, |&j| ops[j as usize].name == name).is_none() {
            let hasher = &self.hasher;
            self.by_exact.insert_unique(h, i as u32, |&j| hasher.hash_one(ops[j as usize].name.as_str()));
        }
    }

    /// The operation whose lower-cased name is `lower`.
    fn find_lower(&self, lower: &str) -> Option<usize> {
        self.find_exact(lower).or_else(|| self.by_lower.get(lower).copied())
    }

    /// The operations of the run, by id.
    pub fn operation(&self, id: OpId) -> Option<&Operation> {
        self.ops.get(id.0)
    }

    /// The id of the operation with this name (case-insensitive).
    pub fn op_id(&self, name: &str) -> Option<OpId> {
        self.find_exact(name).or_else(|| self.find_lower(&lowercase(name))).map(OpId)
    }

    /// Where an operation is.
    pub fn status(&self, id: OpId) -> Option<OpStatus> {
        self.states.get(id.0).map(|s| s.status)
    }

    /// The output of a succeeded operation (`<name>.out`).
    pub fn output(&self, id: OpId) -> Option<&Value> {
        self.states.get(id.0).and_then(|s| s.output.as_ref())
    }

    /// The current progress of an operation, as published.
    pub fn operation_progress(&self, id: OpId) -> Option<OperationProgress> {
        (id.0 < self.states.len()).then(|| self.export(id.0))
    }

    /// An operation's progress with its id (`<agendaProgressId>-<name>`) and owner fields.
    fn export(&self, i: usize) -> OperationProgress {
        self.stamp(&self.ops[i].name, self.states[i].progress.to_row())
    }

    /// Fills in the id and owner fields of operation `name`'s progress `p`.
    fn stamp(&self, name: &str, mut p: OperationProgress) -> OperationProgress {
        let t = &self.progress_template;
        match t.id.as_deref() {
            Some(progress_id) => pop_core::lifecycle::stamp_operation(
                &mut p,
                name,
                progress_id,
                t.cid.as_deref(),
                t.customer_id.as_deref(),
            ),
            None if p.operation.is_none() => p.operation = Some(name.to_owned()),
            None => {}
        }
        p
    }

    /// [`Machine::export`] written over `row` (a row of an earlier publish), reusing its allocations.
    fn export_into(&self, i: usize, row: &mut OperationProgress) {
        write_row(&self.progress_template, &self.ops[i].name, &self.states[i].progress, row);
    }

    /// The number of operations (including generated ones).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether the run has no operations.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The counters of the run.
    pub fn counts(&self) -> Counts {
        Counts {
            total: self.states.len(),
            blocked: self.blocked,
            ready: self.ready.len(),
            running: self.running.len(),
            retry_waiting: self.retry_waiting,
            completed: self.completed,
        }
    }

    /// Percent complete of the agenda, over the current operation count.
    pub fn percent_complete(&self) -> f64 {
        percent_complete(self.completed, self.states.len(), self.in_flight_sum)
    }

    /// The outcome, once finished.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.finished.as_ref()
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Whether no new operation will start (a failure, a cancel, or the end).
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some() || self.finished.is_some()
    }

    /// The attempts running now.
    pub fn running(&self) -> impl Iterator<Item = AttemptKey> + '_ {
        self.running.iter().map(|&i| AttemptKey { op: OpId(i), attempt: self.states[i].attempt })
    }

    /// When [`Machine::poll`] must be called even if no event arrives: the earliest retry or deadline.
    pub fn next_wakeup(&mut self) -> Option<Millis> {
        while let Some(Reverse((at, kind, i, attempt))) = self.timers.peek().copied() {
            if self.timer_is_live(kind, i, attempt) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn timer_is_live(&self, kind: TimerKind, i: usize, attempt: u32) -> bool {
        let s = &self.states[i];
        if s.attempt != attempt {
            return false;
        }
        match kind {
            TimerKind::RetryDue => s.status == OpStatus::RetryWait,
            TimerKind::Deadline => s.status == OpStatus::Running,
        }
    }

    /// Cancels the run: nothing new starts, running attempts are cancelled, and the run ends `cancelled`
    /// once they have ended. A no-op once finished.
    pub fn cancel(&mut self, reason: &str, now: Millis) {
        if self.finished.is_some() || self.stopping == Some(Conclusion::Cancelled) {
            return;
        }
        if self.stopping.is_none() {
            self.stopping = Some(Conclusion::Cancelled);
        }
        self.diagnostics.push(DiagnosticEvent::new(format!("agenda cancelled: {reason}"), now));
        self.cancel_running(&format!("agenda cancelled: {reason}"));
        self.agenda_dirty = true;
    }

    fn cancel_running(&mut self, reason: &str) {
        for idx in 0..self.running.len() {
            let i = self.running[idx];
            let s = &mut self.states[i];
            if !s.cancel_requested {
                s.cancel_requested = true;
                self.outbox.push(Action::Cancel {
                    key: AttemptKey { op: OpId(i), attempt: s.attempt },
                    reason: reason.to_owned(),
                });
            }
        }
    }

    /// Gives up on running attempts that did not report their end (e.g. a runtime that cannot stop them):
    /// they count as cancelled and the run can finish.
    pub fn abandon_running(&mut self, now: Millis) {
        while let Some(&i) = self.running.last() {
            self.remove_running(i);
            self.conclude(i, Conclusion::Cancelled, now);
            let name = self.ops[i].name.clone();
            self.states[i]
                .progress
                .diagnostic_events_mut()
                .push(DiagnosticEvent::new(format!("operation {name} did not stop when cancelled; abandoned"), now));
        }
    }

    /// Applies an event about an attempt. Returns `false` (and changes nothing) when the event is stale:
    /// the attempt is not the operation's current running attempt.
    pub fn on_event(&mut self, key: AttemptKey, event: OpEvent, now: Millis) -> bool {
        let Some(i) = self.running_attempt(key) else { return false };
        match event {
            OpEvent::Started => {
                // The launch already marked the operation EXECUTING; only a missing start time changes.
                let s = &mut self.states[i];
                if s.progress.started_time.is_none() {
                    s.progress.started_time = Some(now);
                    s.progress.updated_time = Some(now);
                    self.mark_dirty(i);
                }
            }
            OpEvent::Progress(update) => self.apply_progress(i, update, now),
            OpEvent::Succeeded(output) => self.succeed(i, output, now),
            OpEvent::Failed(diag) => {
                if self.states[i].cancel_requested {
                    self.remove_running(i);
                    self.states[i].progress.diagnostic_events_mut().push(diag);
                    self.conclude(i, Conclusion::Cancelled, now);
                } else {
                    self.fail_attempt(i, diag, true, now);
                }
            }
            OpEvent::Cancelled => {
                if self.states[i].cancel_requested {
                    self.remove_running(i);
                    self.conclude(i, Conclusion::Cancelled, now);
                } else {
                    let name = self.ops[i].name.clone();
                    let diag = DiagnosticEvent::new(format!("operation {name} was cancelled by its runtime"), now);
                    self.fail_attempt(i, diag, true, now);
                }
            }
            OpEvent::TimedOut => self.time_out(i, now),
        }
        true
    }

    /// Whether [`OpEvent::Started`] about `key` would change anything: the attempt is the operation's
    /// running one and its start time is not set yet (the launch sets it: only a restored row may lack it).
    pub(crate) fn wants_start_time(&self, key: AttemptKey) -> bool {
        self.running_attempt(key).is_some_and(|i| self.states[i].progress.started_time.is_none())
    }

    /// The index of `key`'s operation if `key` is its running attempt and the run goes on: the events
    /// the machine takes.
    fn running_attempt(&self, key: AttemptKey) -> Option<usize> {
        let i = key.op.0;
        let s = self.states.get(i)?;
        (s.attempt == key.attempt && s.status == OpStatus::Running && self.finished.is_none()).then_some(i)
    }

    fn apply_progress(&mut self, i: usize, update: ProgressUpdate, now: Millis) {
        let s = &mut self.states[i];
        if let Some(p) = update.percent_complete {
            let p = if p.is_finite() { p.clamp(0.0, 100.0) } else { 0.0 };
            self.in_flight_sum += p - s.percent;
            s.percent = p;
            s.progress.percent_complete = p;
        }
        if let Some(m) = update.processing_state_message {
            s.progress.processing_state_message = Some(Cow::Owned(m));
        }
        if let Some(p) = update.params {
            s.progress.set_params(p);
        }
        if !update.diagnostic_events.is_empty() {
            s.progress.diagnostic_events_mut().extend(update.diagnostic_events);
        }
        s.progress.updated_time = Some(now);
        self.mark_dirty(i);
    }

    fn remove_running(&mut self, i: usize) {
        let pos = self.states[i].running_pos as usize;
        if pos >= self.running.len() || self.running[pos] != i {
            return;
        }
        self.running.swap_remove(pos);
        if let Some(&moved) = self.running.get(pos) {
            self.states[moved].running_pos = pos as u32;
        }
        let s = &mut self.states[i];
        s.running_pos = u32::MAX;
        self.in_flight_sum -= s.percent;
        if self.running.is_empty() {
            // Re-anchor the running sum to avoid drift from floating-point arithmetic.
            self.in_flight_sum = 0.0;
        }
        s.percent = 0.0;
    }

    /// Marks a terminal conclusion (the operation is no longer running).
    fn conclude(&mut self, i: usize, conclusion: Conclusion, now: Millis) {
        let s = &mut self.states[i];
        s.status = match conclusion {
            Conclusion::Succeeded => OpStatus::Succeeded,
            Conclusion::Failed => OpStatus::Failed,
            Conclusion::Cancelled => OpStatus::Cancelled,
        };
        s.progress.processing_state = ProcessingState::Complete;
        s.progress.processing_state_message = Some(Cow::Borrowed(conclusion.as_str()));
        s.progress.completed_time = Some(now);
        s.progress.updated_time = Some(now);
        if conclusion == Conclusion::Succeeded {
            s.progress.percent_complete = 100.0;
        }
        self.completed += 1;
        self.mark_dirty(i);
    }

    fn succeed(&mut self, i: usize, output: Value, now: Millis) {
        let output = if output.is_null() { Value::Object(Default::default()) } else { output };
        if self.states[i].is_generator {
            self.states[i].output = Some(output.clone());
            if let Err(message) = self.expand_generator(i, now) {
                self.states[i].output = None;
                self.fail_attempt(i, DiagnosticEvent::new(message, now), true, now);
                return;
            }
        }
        self.remove_running(i);
        // (`{}`, the most common output, without the serializer or an allocation)
        let text = match &output {
            Value::Object(map) if map.is_empty() => Cow::Borrowed("{}"),
            other => Cow::Owned(other.to_string()),
        };
        self.states[i].progress.result_payload = Some(text);
        self.states[i].output = Some(output);
        self.conclude(i, Conclusion::Succeeded, now);
        if i + 1 < self.dependents_at.len() {
            for k in self.dependents_at[i]..self.dependents_at[i + 1] {
                self.satisfy(self.dependents[k] as usize);
            }
        }
        let dependents = std::mem::take(&mut self.states[i].dependents);
        for &d in &dependents {
            self.satisfy(d as usize);
        }
        self.states[i].dependents = dependents;
    }

    /// Reads a succeeded generator's output and adds the operations it names.
    fn expand_generator(&mut self, i: usize, now: Millis) -> Result<(), String> {
        let op = &self.ops[i];
        let name = op.name.clone();
        let Some(settings) = op.generator() else { return Ok(()) };
        let Some(output) = self.states[i].output.as_ref() else { return Ok(()) };
        let plan = generate::plan(&name, settings, output)?;
        if plan.log_only {
            tracing::info!(generator = %name, operations = plan.operations.len(), "generator is logOnly: operations not added");
            return Ok(());
        }
        // A re-run must not add what an earlier run already added to the agenda.
        let fresh: Vec<Operation> = plan
            .operations
            .into_iter()
            .filter(|op| {
                !self
                    .find_lower(&lowercase(&op.name))
                    .is_some_and(|j| self.ops[j].generated_parent().is_some_and(|p| p.eq_ignore_ascii_case(&name)))
            })
            .collect();
        if fresh.is_empty() && plan.params.is_none() {
            return Ok(());
        }
        if !fresh.is_empty() {
            generate::validate(&self.ops, &fresh)
                .map_err(|e| format!("generator {name} produced operations that are not valid: {e}"))?;
        }
        if let Some(p) = &plan.params {
            match &mut self.params {
                Value::Object(map) => map.extend(p.clone()),
                other => *other = Value::Object(p.clone()),
            }
            let merged = self.progress_template.params.get_or_insert_with(Params::new);
            merged.extend(p.clone());
        }
        let mut problems = Vec::new();
        if !fresh.is_empty() {
            self.add_operations(fresh.clone(), now, &mut problems);
        }
        if !problems.is_empty() {
            // Validation should have caught these; the run cannot continue safely.
            let message = format!("generator {name} produced operations that are not valid: {}", problems.join("; "));
            return Err(message);
        }
        self.outbox.push(Action::Generated { parent: name, operations: fresh, params: plan.params });
        Ok(())
    }

    fn time_out(&mut self, i: usize, now: Millis) {
        let s = &self.states[i];
        let key = AttemptKey { op: OpId(i), attempt: s.attempt };
        let msg = format!(
            "operation {} timed out after {} ms (attempt {})",
            self.ops[i].name,
            s.timeout_ms().unwrap_or_default(),
            s.attempt
        );
        self.outbox.push(Action::Cancel { key, reason: msg.clone() });
        self.fail_attempt(i, DiagnosticEvent::new(msg, now), true, now);
    }

    /// An attempt failed: retry it if the policy allows and the run goes on, else fail the operation for good.
    fn fail_attempt(&mut self, i: usize, mut diag: DiagnosticEvent, retryable: bool, now: Millis) {
        self.remove_running(i);
        if diag.time.is_none() {
            diag.time = Some(now);
        }
        let s = &mut self.states[i];
        s.progress.diagnostic_events_mut().push(diag.clone());
        s.progress.updated_time = Some(now);
        let retry = s.retry();
        if retryable && self.stopping.is_none() && s.attempt < retry.max_attempts {
            let at = now.saturating_add(retry.delay_ms(s.attempt).min(i64::MAX as u64) as i64);
            s.status = OpStatus::RetryWait;
            s.progress.processing_state = ProcessingState::Executing;
            s.progress.processing_state_message =
                Some(Cow::Owned(format!("attempt {} failed; retry at {at}", s.attempt)));
            s.progress.percent_complete = 0.0;
            let attempt = s.attempt;
            self.states[i].last_progress = Some(Box::new(self.export(i)));
            self.retry_waiting += 1;
            self.timers.push(Reverse((at, TimerKind::RetryDue, i, attempt)));
            self.outbox.push(Action::RetryAt { key: AttemptKey { op: OpId(i), attempt: attempt + 1 }, at });
            self.mark_dirty(i);
            return;
        }
        let name = self.ops[i].name.clone();
        self.conclude(i, Conclusion::Failed, now);
        let mut agenda_diag = diag;
        agenda_diag.message = Some(match agenda_diag.message.take() {
            Some(m) if m.starts_with(&format!("operation {name} ")) => m,
            Some(m) => format!("operation {name} failed: {m}"),
            None => format!("operation {name} failed"),
        });
        self.diagnostics.push(agenda_diag);
        if self.stopping.is_none() {
            self.stopping = Some(Conclusion::Failed);
            if self.opts.fail_fast {
                self.cancel_running(&format!("fail-fast: operation {name} failed"));
            }
        }
    }

    /// Advances the run to `now`: due retries become ready, expired deadlines time out, ready operations are
    /// launched within the parallelism cap, and the end is detected. Returns what the caller must do.
    pub fn poll(&mut self, now: Millis) -> Vec<Action> {
        if self.finished.is_some() {
            if !self.finished_reported {
                self.finished_reported = true;
                if let Some(o) = &self.finished {
                    self.outbox.push(Action::Finished(o.clone()));
                }
            }
            return std::mem::take(&mut self.outbox);
        }
        self.fire_timers(now);
        let cap = self.opts.parallelism.max(1);
        while self.stopping.is_none() && self.running.len() < cap {
            let Some(i) = self.ready.pop_front() else { break };
            self.launch(i, now);
        }
        self.check_finished(now);
        if self.finished.is_some() && !self.finished_reported {
            self.finished_reported = true;
            if let Some(o) = &self.finished {
                self.outbox.push(Action::Finished(o.clone()));
            }
        }
        std::mem::take(&mut self.outbox)
    }

    /// Gives back an emptied list returned by [`Machine::poll`], to collect the next actions in (no new
    /// list, grown again, per poll).
    pub(crate) fn recycle_actions(&mut self, mut actions: Vec<Action>) {
        actions.clear();
        if self.outbox.is_empty() && actions.capacity() > self.outbox.capacity() {
            self.outbox = actions;
        }
    }

    fn fire_timers(&mut self, now: Millis) {
        while let Some(Reverse((at, kind, i, attempt))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(kind, i, attempt) {
                continue;
            }
            match kind {
                TimerKind::RetryDue => {
                    self.retry_waiting -= 1;
                    if self.stopping.is_some() {
                        // Nothing new starts: the failed attempt stands.
                        self.conclude(i, Conclusion::Failed, now);
                    } else {
                        self.states[i].status = OpStatus::Ready;
                        self.ready.push_back(i);
                    }
                }
                TimerKind::Deadline => self.time_out(i, now),
            }
        }
    }

    fn launch(&mut self, i: usize, now: Millis) {
        let attempt = self.states[i].attempt + 1;
        self.states[i].attempt = attempt;
        self.states[i].status = OpStatus::Running;
        self.states[i].running_pos = self.running.len() as u32;
        self.states[i].cancel_requested = false;
        self.running.push(i);
        let key = AttemptKey { op: OpId(i), attempt };
        let payload = match &self.states[i].refs {
            None => Ok(self.ops[i].payload.clone()),
            Some(refs) => {
                let ctx = RunContext { machine: self, op: i };
                let r = refs.doc.resolve(&ctx);
                if !r.invalid.is_empty() {
                    let list: Vec<String> = r.invalid.iter().map(|x| x.message.clone()).collect();
                    Err(format!("operation {} has invalid references: {}", self.ops[i].name, list.join("; ")))
                } else if !r.missing.is_empty() {
                    Err(format!(
                        "operation {}: all dependencies have completed but references are still pending: {}",
                        self.ops[i].name,
                        r.missing.join(", ")
                    ))
                } else {
                    let mut value = r.value;
                    if let (Value::Object(map), Some(ops)) = (&mut value, &refs.template_ops) {
                        map.insert(GENERATED_OPERATIONS_KEY.to_owned(), ops.clone());
                    }
                    Ok(value)
                }
            }
        };
        let payload = match payload {
            Ok(p) => p,
            Err(message) => {
                self.fail_attempt(i, DiagnosticEvent::new(message, now), false, now);
                return;
            }
        };
        let (s, op) = (&mut self.states[i], &self.ops[i]);
        let deadline = s.timeout_ms().map(|t| now.saturating_add(t.min(i64::MAX as u64) as i64));
        if let Some(d) = deadline {
            self.timers.push(Reverse((d, TimerKind::Deadline, i, attempt)));
        }
        s.progress.processing_state = ProcessingState::Executing;
        s.progress.processing_state_message = None;
        s.progress.attempt_count = attempt;
        s.progress.attempt_time = Some(now);
        if attempt == 1 {
            s.progress.started_time = Some(now);
            s.progress.completed_time = None;
        }
        s.progress.percent_complete = 0.0;
        s.progress.updated_time = Some(now);
        let launch = Launch {
            key,
            name: op.name.clone(),
            op_type: op.op_type.clone(),
            operation_id: op.id.clone(),
            payload,
            last_progress: s.last_progress.clone(),
            deadline,
        };
        self.mark_dirty(i);
        self.outbox.push(Action::Launch(launch));
    }

    fn check_finished(&mut self, now: Millis) {
        if !self.running.is_empty() {
            return;
        }
        let conclusion = match self.stopping {
            Some(c) => c,
            None => {
                if !self.ready.is_empty() || self.retry_waiting > 0 {
                    return;
                }
                if self.blocked > 0 {
                    let diag = self.deadlock_diagnostic(now);
                    self.diagnostics.push(diag);
                    Conclusion::Failed
                } else {
                    Conclusion::Succeeded
                }
            }
        };
        // Operations waiting for a retry will not get it.
        if self.retry_waiting > 0 {
            let end = if conclusion == Conclusion::Cancelled { Conclusion::Cancelled } else { Conclusion::Failed };
            let timers = std::mem::take(&mut self.timers);
            for Reverse((_, kind, i, attempt)) in timers {
                if kind == TimerKind::RetryDue && self.timer_is_live(kind, i, attempt) {
                    self.retry_waiting -= 1;
                    self.conclude(i, end, now);
                }
            }
        }
        self.completed_time = Some(now);
        self.agenda_dirty = true;
        self.finished = Some(Outcome { conclusion, diagnostics: self.diagnostics.clone() });
    }

    fn deadlock_diagnostic(&self, now: Millis) -> DiagnosticEvent {
        let mut waiting: Vec<String> = Vec::new();
        let mut unknown: Vec<&str> = self.unknown_waiters.keys().map(String::as_str).collect();
        unknown.sort_unstable();
        let mut count = 0;
        for (s, op) in self.states.iter().zip(&self.ops) {
            if s.status == OpStatus::Blocked {
                count += 1;
                if waiting.len() < MAX_NAMES_IN_MESSAGE {
                    waiting.push(op.name.clone());
                }
            }
        }
        let mut message = format!(
            "agenda operation deadlock: {count} operation(s) are pending but can never become ready: {}",
            waiting.join(", ")
        );
        if count > waiting.len() {
            message.push_str(&format!(" and {} more", count - waiting.len()));
        }
        if !unknown.is_empty() {
            message.push_str(&format!("; they depend on operations that do not exist: {}", unknown.join(", ")));
        } else {
            message.push_str("; they wait for each other (a dependency cycle)");
        }
        DiagnosticEvent::new(message, now).with_payload(Value::Array(waiting.into_iter().map(Value::String).collect()))
    }

    /// The agenda's progress now (without operation rows).
    pub fn agenda_progress(&self, now: Millis) -> AgendaProgress {
        let mut p = self.progress_template.clone();
        p.updated_time = Some(now);
        p.percent_complete = self.percent_complete();
        p.diagnostic_events = self.diagnostics.clone();
        if let Some(o) = &self.finished {
            p.processing_state = ProcessingState::Complete;
            p.processing_state_message = Some(o.conclusion.as_str().to_owned());
            p.completed_time = self.completed_time;
        }
        p
    }

    /// The agenda's progress now with every operation's progress.
    pub fn full_progress(&self, now: Millis) -> AgendaProgress {
        let mut p = self.agenda_progress(now);
        p.operation_progress = (0..self.states.len()).map(|i| self.export(i)).collect();
        p
    }

    /// [`Machine::full_progress`], consuming the machine: every operation's progress is moved out, not
    /// copied (what the executor returns when a run is over).
    pub fn into_full_progress(mut self, now: Millis) -> AgendaProgress {
        self.drain_full_progress(now)
    }

    /// The full progress, moving every operation's progress out (the machine keeps empty ones).
    fn drain_full_progress(&mut self, now: Millis) -> AgendaProgress {
        let mut p = self.agenda_progress(now);
        self.drain_rows_into(&mut p.operation_progress);
        p
    }

    /// Moves every operation's progress (stamped) to the end of `rows`.
    /// Moves every operation's progress (stamped) into `rows`, which then holds exactly those; rows
    /// already there (of an earlier publish) are written over, their strings reused.
    fn drain_rows_into(&mut self, rows: &mut Vec<OperationProgress>) {
        let mut states = std::mem::take(&mut self.states);
        rows.truncate(states.len());
        rows.reserve(states.len() - rows.len());
        for (i, s) in states.iter_mut().enumerate() {
            let p = std::mem::take(&mut s.progress);
            let name = &self.ops[i].name;
            match rows.get_mut(i) {
                Some(row) => write_row(&self.progress_template, name, &p, row),
                None => rows.push(self.stamp(name, p.into_row())),
            }
        }
        self.states = states;
    }

    /// For a run that is over, the last publish: the agenda progress to publish and the number `n` of
    /// rows to publish with it, `rows[..n]`, what changed since the previous snapshot (`rows` is a buffer
    /// of earlier publishes: see [`Machine::snapshot_into`]). `true` when that is every row: then `rows`
    /// already hold the final progress, exported once. Give both to [`Machine::final_progress`] after
    /// publishing.
    pub(crate) fn finish(&mut self, now: Millis, rows: &mut Vec<OperationProgress>) -> (AgendaProgress, usize, bool) {
        if self.dirty.len() < self.states.len() {
            let (agenda, n) = self.snapshot_into(now, rows);
            return (agenda, n, false);
        }
        for i in std::mem::take(&mut self.dirty) {
            self.states[i].dirty = false;
        }
        self.agenda_dirty = false;
        let agenda = self.agenda_progress(now);
        self.drain_rows_into(rows);
        (agenda, rows.len(), true)
    }

    /// The final progress after [`Machine::finish`] (with what it returned): every operation's progress
    /// moved out into `rows` (the buffer, reused), under the agenda progress. The machine keeps no
    /// operation progress afterwards.
    pub(crate) fn final_progress(
        &mut self,
        mut agenda: AgendaProgress,
        mut rows: Vec<OperationProgress>,
        all: bool,
    ) -> AgendaProgress {
        if !all {
            self.drain_rows_into(&mut rows);
        }
        agenda.operation_progress = rows;
        agenda
    }

    /// Whether anything changed since the last [`Machine::take_snapshot`].
    pub fn has_changes(&self) -> bool {
        self.agenda_dirty
    }

    /// The agenda progress and the operation progress that changed since the previous snapshot.
    pub fn take_snapshot(&mut self, now: Millis) -> Snapshot {
        let mut changed = Vec::new();
        let (agenda, _) = self.snapshot_into(now, &mut changed);
        Snapshot { agenda, changed }
    }

    /// [`Machine::take_snapshot`] into a buffer the caller keeps from one publish to the next: the
    /// changed rows are written over `rows[..n]` (the rows of an earlier publish, their strings reused;
    /// rows are added when there are more), and `n` is returned with the agenda progress. Rows past `n`
    /// are left over from earlier publishes.
    pub(crate) fn snapshot_into(&mut self, now: Millis, rows: &mut Vec<OperationProgress>) -> (AgendaProgress, usize) {
        let mut dirty = std::mem::take(&mut self.dirty);
        rows.reserve(dirty.len().saturating_sub(rows.len()));
        for (k, &i) in dirty.iter().enumerate() {
            self.states[i].dirty = false;
            match rows.get_mut(k) {
                Some(row) => self.export_into(i, row),
                None => rows.push(self.export(i)),
            }
        }
        let n = dirty.len();
        // The list's buffer is kept for the next changes.
        dirty.clear();
        self.dirty = dirty;
        self.agenda_dirty = false;
        (self.agenda_progress(now), n)
    }

    /// The agenda's insight (for launch requests).
    pub fn agenda_insight(&self) -> Option<&AgendaInsight> {
        self.progress_template.agenda_insight.as_ref()
    }
}

/// Operation `name`'s progress `p`, stamped as [`Machine::stamp`] does for the agenda progress `t`,
/// written over `row` (a row of an earlier publish), reusing its allocations.
fn write_row(t: &AgendaProgress, name: &str, p: &Progress, row: &mut OperationProgress) {
    // Destructured in full: a field added to the progress must be copied here too.
    let Progress {
        rest: _,
        processing_state_message,
        result_payload,
        updated_time,
        added_time,
        attempt_time,
        started_time,
        completed_time,
        percent_complete,
        attempt_count,
        processing_state,
    } = p;
    let progress::Rest {
        id,
        cid,
        customer_id,
        title,
        agenda_progress_id,
        operation,
        diagnostic_events,
        params,
        version,
    } = p.rest();
    match t.id.as_deref() {
        Some(progress_id) => {
            set_text(&mut row.id, &[progress_id, "-", name]);
            set_text(&mut row.agenda_progress_id, &[progress_id]);
            set_opt_text(&mut row.cid, cid.or(t.cid.as_deref()));
            set_opt_text(&mut row.customer_id, customer_id.or(t.customer_id.as_deref()));
        }
        None => {
            set_opt_text(&mut row.id, id);
            set_opt_text(&mut row.agenda_progress_id, agenda_progress_id);
            set_opt_text(&mut row.cid, cid);
            set_opt_text(&mut row.customer_id, customer_id);
        }
    }
    set_text(&mut row.operation, &[operation.unwrap_or(name)]);
    set_opt_text(&mut row.title, title);
    row.updated_time = *updated_time;
    row.added_time = *added_time;
    row.processing_state = *processing_state;
    set_opt_text(&mut row.processing_state_message, processing_state_message.as_deref());
    row.diagnostic_events.clear();
    row.diagnostic_events.extend_from_slice(diagnostic_events);
    row.percent_complete = *percent_complete;
    row.attempt_count = *attempt_count;
    row.attempt_time = *attempt_time;
    row.started_time = *started_time;
    row.completed_time = *completed_time;
    set_opt_text(&mut row.result_payload, result_payload.as_deref());
    match params {
        Some(p) => match &mut row.params {
            Some(r) => r.clone_from(p),
            None => row.params = Some(p.clone()),
        },
        None => row.params = None,
    }
    row.version = version;
}

/// `name` lower-cased, borrowed when it has no upper-case letter (the common case: no allocation).
fn lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether some string leaf of `v` (object values and array items, as [`ParsedDocument::parse`] reads them)
/// holds `@<`, the start of every reference. `false` means parsing would find no reference.
fn may_hold_references(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("@<"),
        Value::Array(items) => items.iter().any(may_hold_references),
        Value::Object(map) => map.values().any(may_hold_references),
        _ => false,
    }
}

/// `parts` concatenated into `buf`'s allocation (if any).
fn reuse_text(buf: Option<String>, parts: &[&str]) -> String {
    let mut s = buf.unwrap_or_default();
    s.clear();
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if s.capacity() < len {
        // (a new string gets room for a later, longer text: see `progress::MIN_TEXT_CAPACITY`)
        s.reserve(len.max(progress::MIN_TEXT_CAPACITY));
    }
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Sets `slot` to `parts` concatenated, reusing its string.
fn set_text(slot: &mut Option<String>, parts: &[&str]) {
    *slot = Some(reuse_text(slot.take(), parts));
}

/// Sets `slot` to `value`, reusing its string.
fn set_opt_text(slot: &mut Option<String>, value: Option<&str>) {
    match value {
        Some(v) => set_text(slot, &[v]),
        None => *slot = None,
    }
}

fn restore_output(text: Option<&str>) -> Result<Value, serde_json::Error> {
    match text.map(str::trim) {
        None | Some("") | Some("null") => Ok(Value::Object(Default::default())),
        Some(t) => serde_json::from_str(t),
    }
}

/// The names an operation's references resolve against: `<op>.out`, `pop.agendaId`, `pop.operationName`,
/// `pop.params`.
struct RunContext<'m> {
    machine: &'m Machine,
    op: usize,
}

impl Context for RunContext<'_> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        let m = self.machine;
        match name {
            AGENDA_ID => return Some(&m.agenda_id),
            OPERATION_NAME => return m.states[self.op].refs.as_ref().map(|r| &r.name_value),
            PARAMS => return Some(&m.params),
            _ => {}
        }
        let op = name.strip_suffix(OUTPUT_SUFFIX)?;
        let i = match m.find_exact(op) {
            Some(i) => i,
            None => m.find_lower(&lowercase(op))?,
        };
        m.states[i].output.as_ref()
    }
}

mod progress;
#[cfg(test)]
mod tests;
