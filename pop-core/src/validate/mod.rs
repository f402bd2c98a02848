//! Validation of a submitted agenda: every problem, each naming the operation and the offending reference or field.
//!
//! [`validate_agenda`] checks an agenda at submission; [`validate_generated`] checks the operations a
//! generator adds at run time against the agenda's existing ones. Both report **every** problem in one
//! [`Error::Invalid`], each a [`Problem`] with the operation's name and the field (`name`, `type`,
//! `payload.inputs[0].file`, `params.dependsOn`, ...), and a message saying what to change:
//!
//! * no operations; more than [`ValidationOptions::max_operations`] (then nothing else is checked:
//!   the limit exists to bound the work spent on one submission);
//! * empty names; names equal case-insensitively (both named); empty `type`;
//! * references (`@<x.out::/ptr>`) to operations that do not exist. Names are matched exactly, as
//!   execution looks them up exactly, but a case-insensitive match is suggested ("did you mean");
//! * reference names that are neither `<operation>.out` nor a known token (`pop.agendaId`,
//!   `pop.operationName`, `pop.params`); malformed references (`@<` without `>`, a bad pointer); the
//!   obsolete `$$$name.out::/ptr` syntax;
//! * `params.dependsOn` naming unknown operations (or not a string / array of strings);
//! * an operation referencing or depending on itself; cycles through references **or** `dependsOn`,
//!   each named once as `a → b → c → a` (→ reads "depends on"). The dependencies found are the edges
//!   of an [`AgendaGraph`], whose [`AgendaGraph::cycles`] (petgraph, iterative, linear time) name one
//!   cycle per strongly connected component;
//! * payloads larger than [`ValidationOptions::max_payload_bytes`] as serialized JSON;
//! * malformed `params.retry`, `params.timeoutMs` or `params["agenda.operation.generator"]`.
//!
//! A generator's `payload.operations` (the `updateAgenda` input) describes operations to add: the
//! references there belong to those operations, so they are neither checked here nor dependencies of
//! the generator; [`validate_generated`] checks the operations when they are added.
//!
//! Everything is linear in the size of the agenda: each payload is walked once, its strings scanned
//! once by the reference parser; names are indexed once, in the graph.
//!
//! The checks live one concept per file: names (empty, duplicate), references (syntax,
//! tokens, unknown targets), `dependsOn`, payload (the walk and its size), params (retry, timeout,
//! generator) and cycles.
//!
//! ```
//! use pop_core::model::Agenda;
//! use pop_core::validate::{ValidationOptions, validate_agenda};
//! let agenda: Agenda = serde_json::from_value(serde_json::json!({"operations": [
//!     {"name": "a", "type": "t", "payload": {"x": "@<b.out>"}},
//!     {"name": "b", "type": "t", "payload": {"y": "@<A.out>"}},
//! ]})).unwrap();
//! let err = validate_agenda(&agenda, &ValidationOptions::default()).unwrap_err();
//! let problems = err.problem_list();
//! assert!(problems.iter().any(|p| p.message.contains("did you mean `a`?")));
//! ```

use crate::dag::{AgendaGraph, EdgeKind};
use crate::error::{Error, Problem, Result};
use crate::model::{Agenda, Operation};
use crate::refs::{AGENDA_ID, OPERATION_NAME, PARAMS};
use crate::walk::Walk;

mod cycles;
mod depends_on;
mod names;
mod params;
mod payload;
mod references;

pub use crate::dag::GENERATED_OPERATIONS_KEY;

/// The `pop.*` tokens an operation's payload may reference at run time.
pub const KNOWN_TOKENS: [&str; 3] = [AGENDA_ID, OPERATION_NAME, PARAMS];

/// Limits applied by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationOptions {
    /// The largest payload of one operation, in bytes of serialized JSON (default 1 MiB).
    pub max_payload_bytes: usize,
    /// The most operations an agenda may have (default 100 000); for generated operations, the
    /// existing and generated ones together.
    pub max_operations: usize,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self { max_payload_bytes: 1 << 20, max_operations: 100_000 }
    }
}

/// Every problem of a submitted agenda; `Ok(())` or `Err(Error::Invalid(Problems))` listing ALL problems.
pub fn validate_agenda(agenda: &Agenda, opts: &ValidationOptions) -> Result<()> {
    if agenda.operations.is_empty() {
        return Err(Error::problems(vec![
            Problem::new("the agenda has no operations: add at least one operation to `operations`")
                .field("operations"),
        ]));
    }
    finish(Checker::new(&[], &agenda.operations, opts, "operations").run())
}

/// Operations generated at run time (by a generator), checked against the agenda's existing operations:
/// names must not collide with existing ones, references/dependsOn may target existing or generated ops,
/// no cycles among them, same per-op checks.
///
/// The existing operations are not checked again (they were validated at submission). Cycles are
/// looked for among the generated operations: an existing operation cannot depend on a generated one,
/// since its references had to name operations that existed when it was validated.
pub fn validate_generated(existing: &[Operation], generated: &[Operation], opts: &ValidationOptions) -> Result<()> {
    if generated.is_empty() {
        return Ok(());
    }
    finish(Checker::new(existing, generated, opts, "generated").run())
}

/// The names of the operations `op` depends on: [`crate::dag::dependencies`], owned.
#[deprecated(note = "use pop_core::dag::dependencies (borrowed names) or pop_core::dag::AgendaGraph")]
pub fn dependencies(op: &Operation) -> Vec<String> {
    crate::dag::dependencies(op).into_iter().map(str::to_owned).collect()
}

fn finish(problems: Vec<Problem>) -> Result<()> {
    if problems.is_empty() { Ok(()) } else { Err(Error::problems(problems)) }
}

/// The checks of one validation: the operations, their graph, the problems found so far.
struct Checker<'a> {
    /// Existing operations first, then the new ones.
    ops: Vec<&'a Operation>,
    /// Index of the first new operation in `ops`.
    first_new: usize,
    /// Node `i` is `ops[i]`; names are indexed here. Edges: the dependencies of the new operations
    /// that name an operation exactly (none recorded for existing operations).
    graph: AgendaGraph<'a>,
    /// The dependencies of the operation being checked: (target, how), deduplicated when it is done.
    targets: Vec<(usize, EdgeKind)>,
    problems: Vec<Problem>,
    opts: &'a ValidationOptions,
    /// How new operations are named when they have no name: `operations[3]`, `generated[0]`.
    list: &'static str,
    /// Buffers for walking payloads.
    walk: Walk<'a>,
}

impl<'a> Checker<'a> {
    fn new(existing: &'a [Operation], new: &'a [Operation], opts: &'a ValidationOptions, list: &'static str) -> Self {
        let mut ops = Vec::with_capacity(existing.len() + new.len());
        ops.extend(existing.iter());
        ops.extend(new.iter());
        Self {
            graph: AgendaGraph::with_capacity(ops.len(), new.len() * 2),
            ops,
            first_new: existing.len(),
            targets: Vec::new(),
            problems: Vec::new(),
            opts,
            list,
            walk: Walk::default(),
        }
    }

    /// Runs every check; returns the problems found.
    fn run(&mut self) -> Vec<Problem> {
        let total = self.ops.len();
        if total > self.opts.max_operations {
            let what = if self.first_new > 0 {
                format!("{} existing and {} generated operations make {total}", self.first_new, total - self.first_new)
            } else {
                format!("the agenda has {total} operations")
            };
            self.problems.push(
                Problem::new(format!(
                    "{what}, more than the limit of {} (ValidationOptions::max_operations); split the work into \
                     several agendas (nothing else was checked)",
                    self.opts.max_operations
                ))
                .field(self.list),
            );
            return std::mem::take(&mut self.problems);
        }
        self.index_names();
        for i in self.first_new..total {
            self.check_operation(i);
        }
        self.report_cycles();
        std::mem::take(&mut self.problems)
    }

    fn is_unnamed(&self, i: usize) -> bool {
        self.ops[i].name.trim().is_empty()
    }

    /// `operations[3]` for a new operation.
    fn position(&self, i: usize) -> String {
        if i < self.first_new { format!("existing[{i}]") } else { format!("{}[{}]", self.list, i - self.first_new) }
    }

    /// A problem of operation `i` at `field`.
    fn problem(&self, i: usize, field: &str, message: String) -> Problem {
        if self.is_unnamed(i) {
            let position = self.position(i);
            Problem {
                operation: None,
                field: Some(format!("{position}.{field}")),
                message: format!("{position} (unnamed): {message}"),
            }
        } else {
            Problem { operation: Some(self.ops[i].name.clone()), field: Some(field.to_owned()), message }
        }
    }

    /// Records that operation `i` (being checked) depends on operation `j`.
    fn add_edge(&mut self, j: usize, kind: EdgeKind) {
        self.targets.push((j, kind));
    }

    fn check_operation(&mut self, i: usize) {
        let op = self.ops[i];
        if op.op_type.trim().is_empty() {
            let p = self.problem(
                i,
                "type",
                "the operation has no `type`: set it to the handler type that runs it (a key of the handler \
                 registry)"
                    .into(),
            );
            self.problems.push(p);
        }
        self.check_payload(i);
        self.check_depends_on(i);
        self.check_params(i);
        // Each dependency once, with the kind it was first found with.
        self.targets.sort_by_key(|&(j, _)| j);
        self.targets.dedup_by_key(|&mut (j, _)| j);
        for (j, kind) in self.targets.drain(..) {
            let added = self.graph.add_edge(j, i, kind);
            debug_assert!(added, "both operations are nodes of the graph");
        }
    }
}

#[cfg(test)]
mod tests;
