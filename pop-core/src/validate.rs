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
//!   each named once as `a → b → c → a` (→ reads "depends on"). Cycles are found with an iterative
//!   Tarjan SCC pass (no recursion, linear time), one cycle named per strongly connected component;
//! * payloads larger than [`ValidationOptions::max_payload_bytes`] as serialized JSON;
//! * malformed `params.retry`, `params.timeoutMs` or `params["agenda.operation.generator"]`.
//!
//! A generator's `payload.operations` (the `updateAgenda` input) describes operations to add: the
//! references there belong to those operations, so they are neither checked here nor dependencies of
//! the generator; [`validate_generated`] checks the operations when they are added.
//!
//! Everything is linear in the size of the agenda (names are indexed in hash maps, lower-cased once).
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

use crate::error::{Error, Problem, Result};
use crate::model::{Agenda, Operation, param_keys};
use crate::refs::{AGENDA_ID, OPERATION_NAME, OUTPUT_SUFFIX, PARAMS, PAYLOAD, Piece, RefSpan, TRANSFORM_REQUEST, scan};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

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

/// The names of the operations `op` depends on: the operations of its references (`x.out` → `x`, pop.* tokens excluded) plus params.dependsOn, deduplicated, in first-seen order.
pub fn dependencies(op: &Operation) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Linear search while small; a set once an operation has many dependencies.
    let mut seen: Option<HashSet<String>> = None;
    let mut add = |name: &str| {
        let known = match &seen {
            Some(set) => set.contains(name),
            None => out.iter().any(|n| n == name),
        };
        if known {
            return;
        }
        out.push(name.to_owned());
        match &mut seen {
            Some(set) => {
                set.insert(name.to_owned());
            }
            None if out.len() > 32 => seen = Some(out.iter().cloned().collect()),
            None => {}
        }
    };
    walk_strings(&op.payload, |path, s| {
        if !s.contains('@') || is_generator_template(op, path) {
            return;
        }
        scan(s, |piece| {
            if let Some(target) = match piece {
                Piece::Ref(r) => r.operation(),
                _ => None,
            } {
                add(target);
            }
        });
    });
    for d in op.depends_on() {
        add(&d);
    }
    out
}

/// The payload key of a generator (`updateAgenda`) that describes the operations to add: their
/// references belong to those operations (checked by [`validate_generated`] when they are added), not
/// to the generator. The executor (`pop-exec`) reads it the same way.
pub const GENERATED_OPERATIONS_KEY: &str = "operations";

/// Whether `path` is inside a generator's `payload.operations`.
fn is_generator_template(op: &Operation, path: &[PathStep<'_>]) -> bool {
    matches!(path.first(), Some(PathStep::Key(k)) if *k == GENERATED_OPERATIONS_KEY) && op.generator().is_some()
}

fn finish(problems: Vec<Problem>) -> Result<()> {
    if problems.is_empty() { Ok(()) } else { Err(Error::problems(problems)) }
}

/// One step of a borrowed path into a payload.
#[derive(Clone, Copy)]
enum PathStep<'a> {
    Key(&'a str),
    Index(usize),
}

fn display_path(prefix: &str, path: &[PathStep<'_>]) -> String {
    let mut out = String::from(prefix);
    for step in path {
        match step {
            PathStep::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathStep::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Calls `f(path, text)` for every string leaf of `root` (object values and array items), in document
/// order, without recursion. Returns an upper bound of the document's size as serialized JSON (every
/// string byte counted as a 6-byte escape, every number and container as 25 bytes, plus one separator
/// per item), so that the exact size need only be computed for documents that might be too large.
fn walk_strings<'a>(root: &'a Value, f: impl FnMut(&[PathStep<'a>], &'a str)) -> usize {
    walk_strings_with(&mut Walk::default(), root, f)
}

/// The buffers of [`walk_strings`], reused from one document to the next.
#[derive(Default)]
struct Walk<'a> {
    /// The containers being iterated, innermost last.
    frames: Vec<Frame<'a>>,
    /// The path to the current container's children (one step per frame but the root's).
    path: Vec<PathStep<'a>>,
}

enum Frame<'a> {
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    Object(serde_json::map::Iter<'a>),
}

/// The size bound of a scalar (see [`walk_strings`]).
fn scalar_bound(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::String(s) => s.len().saturating_mul(6).saturating_add(2),
        _ => 25,
    }
}

fn walk_strings_with<'a>(walk: &mut Walk<'a>, root: &'a Value, mut f: impl FnMut(&[PathStep<'a>], &'a str)) -> usize {
    let Walk { frames, path } = walk;
    frames.clear();
    path.clear();
    let mut bound = scalar_bound(root);
    match root {
        Value::String(s) => {
            f(path, s);
            return bound;
        }
        Value::Array(items) => frames.push(Frame::Array(items.iter().enumerate())),
        Value::Object(map) => frames.push(Frame::Object(map.iter())),
        _ => return bound,
    }
    while let Some(frame) = frames.last_mut() {
        let (step, v) = match frame {
            Frame::Array(it) => match it.next() {
                Some((i, v)) => (PathStep::Index(i), v),
                None => {
                    frames.pop();
                    path.pop();
                    continue;
                }
            },
            Frame::Object(it) => match it.next() {
                Some((k, v)) => {
                    bound = bound.saturating_add(k.len().saturating_mul(6).saturating_add(4));
                    (PathStep::Key(k.as_str()), v)
                }
                None => {
                    frames.pop();
                    path.pop();
                    continue;
                }
            },
        };
        bound = bound.saturating_add(scalar_bound(v) + 1);
        match v {
            Value::String(s) => {
                path.push(step);
                f(path, s);
                path.pop();
            }
            Value::Array(items) => {
                path.push(step);
                frames.push(Frame::Array(items.iter().enumerate()));
            }
            Value::Object(map) => {
                path.push(step);
                frames.push(Frame::Object(map.iter()));
            }
            _ => {}
        }
    }
    bound
}

/// Counts the bytes of serialized JSON without building the string.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_size(v: &Value) -> usize {
    let mut count = ByteCount(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

struct Checker<'a> {
    /// Existing operations first, then the new ones.
    ops: Vec<&'a Operation>,
    /// Index of the first new operation in `ops`.
    first_new: usize,
    /// Exact name → first operation with it.
    exact: HashMap<&'a str, usize>,
    /// Lower-cased name → first operation with it.
    lower: HashMap<String, usize>,
    /// Dependencies (indices into `ops`) of the new operations, flat: those of new operation `k`
    /// (`index - first_new`) are `targets[starts[k]..starts[k + 1]]`.
    targets: Vec<usize>,
    /// Where each new operation's dependencies start in `targets` (one more entry than operations checked).
    starts: Vec<usize>,
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
            ops,
            first_new: existing.len(),
            exact: HashMap::with_capacity(existing.len() + new.len()),
            lower: HashMap::with_capacity(existing.len() + new.len()),
            targets: Vec::with_capacity(new.len() * 2),
            starts: {
                let mut starts = Vec::with_capacity(new.len() + 1);
                starts.push(0);
                starts
            },
            problems: Vec::new(),
            opts,
            list,
            walk: Walk::default(),
        }
    }

    fn run(mut self) -> Vec<Problem> {
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
            return self.problems;
        }
        self.index_names();
        for i in self.first_new..total {
            self.check_operation(i);
        }
        self.find_cycles();
        self.problems
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

    fn index_names(&mut self) {
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            if op.name.trim().is_empty() {
                if i >= self.first_new {
                    let p = self.problem(
                        i,
                        "name",
                        "the operation has no name: give every operation a unique name (references use it)".into(),
                    );
                    self.problems.push(p);
                }
                continue;
            }
            let lower = op.name.to_lowercase();
            match self.lower.get(&lower) {
                Some(&j) if i >= self.first_new => {
                    let other = &self.ops[j].name;
                    let message = if j < self.first_new {
                        format!(
                            "the generated operation `{}` has the name of an existing operation `{other}` (names are \
                             compared case-insensitively); give it another name",
                            op.name
                        )
                    } else {
                        format!(
                            "duplicate operation name: {} `{other}` and {} `{}` (names are compared \
                             case-insensitively); rename one of them",
                            self.position(j),
                            self.position(i),
                            op.name
                        )
                    };
                    let p = self.problem(i, "name", message);
                    self.problems.push(p);
                }
                Some(_) => {}
                None => {
                    self.lower.insert(lower, i);
                }
            }
            self.exact.entry(op.name.as_str()).or_insert(i);
        }
    }

    /// Where the operation named `target` is: `Ok(index)`, or `Err(message tail)` saying it is unknown.
    fn find(&self, target: &str) -> std::result::Result<usize, String> {
        if let Some(&j) = self.exact.get(target) {
            return Ok(j);
        }
        let scope = if self.first_new > 0 {
            "neither in the agenda nor among the generated operations"
        } else {
            "not an operation of the agenda"
        };
        match self.lower.get(&target.to_lowercase()) {
            Some(&j) => Err(format!(
                "`{target}` is {scope} (names are matched exactly here); did you mean `{}`?",
                self.ops[j].name
            )),
            None => Err(format!("`{target}` is {scope}")),
        }
    }

    /// The dependencies of operation `v` (none recorded for existing operations).
    fn out(&self, v: usize) -> &[usize] {
        if v < self.first_new {
            return &[];
        }
        let k = v - self.first_new;
        match (self.starts.get(k), self.starts.get(k + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a..b],
            _ => &[],
        }
    }

    fn add_edge(&mut self, i: usize, j: usize) {
        debug_assert_eq!(self.starts.len(), i - self.first_new + 1, "edges are added for the operation being checked");
        self.targets.push(j);
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
        // Deduplicate this operation's targets in place.
        let start = self.starts[i - self.first_new];
        self.targets[start..].sort_unstable();
        let mut kept = start;
        for r in start..self.targets.len() {
            if kept == start || self.targets[r] != self.targets[kept - 1] {
                self.targets[kept] = self.targets[r];
                kept += 1;
            }
        }
        self.targets.truncate(kept);
        self.starts.push(kept);
    }

    fn check_payload(&mut self, i: usize) {
        let op: &'a Operation = self.ops[i];
        let mut walk = std::mem::take(&mut self.walk);
        let bound = walk_strings_with(&mut walk, &op.payload, |path, text| self.check_string(i, path, text));
        self.walk = walk;
        if bound > self.opts.max_payload_bytes {
            let size = json_size(&op.payload);
            if size > self.opts.max_payload_bytes {
                let p = self.problem(
                    i,
                    "payload",
                    format!(
                        "the payload is {size} bytes of JSON, over the limit of {} bytes \
                         (ValidationOptions::max_payload_bytes); pass large data by location (a URL or a path) \
                         instead",
                        self.opts.max_payload_bytes
                    ),
                );
                self.problems.push(p);
            }
        }
    }

    /// Checks one string leaf of operation `i`'s payload: legacy syntax, malformed and unknown references.
    fn check_string(&mut self, i: usize, path: &[PathStep<'_>], text: &str) {
        if is_generator_template(self.ops[i], path) {
            return;
        }
        if text.contains('$') && text.contains("$$$") {
            for legacy in legacy_references(text) {
                let message = if legacy.len() > 3 {
                    format!(
                        "`{legacy}` uses the obsolete `$$$` reference prefix, which POP does not resolve; write \
                         `@<{}>` instead",
                        &legacy[3..]
                    )
                } else {
                    "`$$$` is the obsolete reference prefix, which POP does not resolve; write references as \
                     `@<name.out::/pointer>`"
                        .to_owned()
                };
                let p = self.problem(i, &display_path("payload", path), message);
                self.problems.push(p);
            }
        }
        if !text.contains('@') {
            return;
        }
        scan(text, |piece| match piece {
            Piece::Text(_) => {}
            Piece::Ref(r) => self.check_reference(i, path, &r),
            Piece::Malformed { text, message } => {
                let p =
                    self.problem(i, &display_path("payload", path), format!("malformed reference `{text}`: {message}"));
                self.problems.push(p);
            }
        });
    }

    fn check_reference(&mut self, i: usize, path: &[PathStep<'_>], r: &RefSpan<'_>) {
        let name = r.name;
        let message = if r.is_token() {
            if KNOWN_TOKENS.contains(&name) {
                return;
            }
            if name == PAYLOAD || name == TRANSFORM_REQUEST {
                format!(
                    "reference `{}`: `{name}` is only defined while a template is expanded; an agenda cannot use it",
                    r.raw
                )
            } else {
                format!(
                    "reference `{}`: unknown token `{name}`; the known tokens are {}",
                    r.raw,
                    KNOWN_TOKENS.join(", ")
                )
            }
        } else if let Some(target) = name.strip_suffix(OUTPUT_SUFFIX) {
            match self.find(target) {
                Ok(j) if j == i => {
                    format!(
                        "reference `{}` names the operation's own output: an operation cannot depend on itself",
                        r.raw
                    )
                }
                Ok(j) => {
                    self.add_edge(i, j);
                    return;
                }
                Err(why) => format!("reference `{}` names an unknown operation: {why}", r.raw),
            }
        } else {
            let known = self.exact.get(name).or_else(|| self.lower.get(&name.to_lowercase())).copied();
            match known {
                Some(j) => {
                    let target = &self.ops[j].name;
                    let rest = r.raw.get(2 + name.len()..r.raw.len().saturating_sub(1)).unwrap_or("");
                    format!(
                        "reference `{}` names operation `{target}` without `{OUTPUT_SUFFIX}`; write \
                         `@<{target}{OUTPUT_SUFFIX}{rest}>` to use its output",
                        r.raw
                    )
                }
                None => format!(
                    "reference `{}`: `{name}` is neither an operation output (`<operation>{OUTPUT_SUFFIX}`) nor a known \
                     token ({})",
                    r.raw,
                    KNOWN_TOKENS.join(", ")
                ),
            }
        };
        let p = self.problem(i, &display_path("payload", path), message);
        self.problems.push(p);
    }

    fn check_depends_on(&mut self, i: usize) {
        let op = self.ops[i];
        let field = format!("params.{}", param_keys::DEPENDS_ON);
        let raw = op.params.as_ref().and_then(|p| p.get(param_keys::DEPENDS_ON));
        match raw {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Array(items)) => {
                if items.iter().any(|v| !v.is_string()) {
                    let p = self.problem(
                        i,
                        &field,
                        "`dependsOn` must list operation names: a comma-separated string or an array of strings".into(),
                    );
                    self.problems.push(p);
                }
            }
            Some(other) => {
                let p = self.problem(
                    i,
                    &field,
                    format!("`dependsOn` must be a comma-separated string or an array of operation names, got {other}"),
                );
                self.problems.push(p);
            }
        }
        for target in op.depends_on() {
            let message = match self.find(&target) {
                Ok(j) if j == i => {
                    "`dependsOn` names the operation itself: an operation cannot depend on itself".into()
                }
                Ok(j) => {
                    self.add_edge(i, j);
                    continue;
                }
                Err(why) => format!("`dependsOn` names an unknown operation: {why}"),
            };
            let p = self.problem(i, &field, message);
            self.problems.push(p);
        }
    }

    fn check_params(&mut self, i: usize) {
        let op = self.ops[i];
        let retry_field = format!("params.{}", param_keys::RETRY);
        match op.retry_policy() {
            Err(message) => {
                let p = self.problem(i, &retry_field, message);
                self.problems.push(p);
            }
            Ok(Some(policy)) if policy.max_attempts == 0 => {
                let p = self.problem(
                    i,
                    &retry_field,
                    "params.retry.maxAttempts counts every attempt including the first: it must be at least 1".into(),
                );
                self.problems.push(p);
            }
            Ok(_) => {}
        }
        if let Err(message) = op.timeout_ms() {
            let p = self.problem(i, &format!("params.{}", param_keys::TIMEOUT_MS), message);
            self.problems.push(p);
        }
        if let Some(generator) = op.generator() {
            let field = format!("params.{}", param_keys::GENERATOR);
            for message in generator_problems(generator) {
                let p = self.problem(i, &field, message);
                self.problems.push(p);
            }
        }
    }

    /// Tarjan's strongly connected components over the new operations, iteratively; names one cycle per
    /// component of more than one operation.
    fn find_cycles(&mut self) {
        let n = self.ops.len();
        let first = self.first_new;
        const UNSEEN: usize = usize::MAX;
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut components: Vec<Vec<usize>> = Vec::new();
        let mut next = 0usize;
        // (node, position of the next edge to follow)
        let mut calls: Vec<(usize, usize)> = Vec::new();
        let out = |v: usize| self.out(v);
        for root in first..n {
            if index[root] != UNSEEN {
                continue;
            }
            calls.push((root, 0));
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
                let edges = out(v);
                if *pos < edges.len() {
                    let w = edges[*pos];
                    *pos += 1;
                    if index[w] == UNSEEN {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        calls.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        components.push(component);
                    }
                }
            }
        }
        components.sort_by_key(|c| c.iter().copied().min().unwrap_or(0));
        for component in components {
            let problem = self.cycle_problem(&component);
            self.problems.push(problem);
        }
    }

    /// The shortest cycle through the component's first operation, named `a → b → c → a`.
    fn cycle_problem(&self, component: &[usize]) -> Problem {
        let members: HashSet<usize> = component.iter().copied().collect();
        let start = component.iter().copied().min().unwrap_or(0);
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'bfs: while let Some(v) = queue.pop_front() {
            for &w in self.out(v) {
                if !members.contains(&w) {
                    continue;
                }
                if w == start {
                    last = Some(v);
                    break 'bfs;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(w) {
                    e.insert(v);
                    queue.push_back(w);
                }
            }
        }
        let mut cycle = vec![start];
        let mut v = last.unwrap_or(start);
        let mut back = Vec::new();
        while v != start {
            back.push(v);
            match parent.get(&v) {
                Some(&p) => v = p,
                None => break,
            }
        }
        cycle.extend(back.into_iter().rev());
        cycle.push(start);
        let names: Vec<&str> = cycle.iter().map(|&v| self.ops[v].name.as_str()).collect();
        let mut message = format!(
            "circular dependency: {} (→ reads \"depends on\", through a reference or dependsOn), so none of these \
             operations can ever start; remove one of the dependencies",
            names.join(" → ")
        );
        let on_cycle: HashSet<usize> = cycle.iter().copied().collect();
        let mut others: Vec<usize> = component.iter().copied().filter(|v| !on_cycle.contains(v)).collect();
        if !others.is_empty() {
            others.sort_unstable();
            let shown: Vec<&str> = others.iter().take(10).map(|&v| self.ops[v].name.as_str()).collect();
            let _ = write!(message, "; also caught in this tangle: {}", shown.join(", "));
            if others.len() > shown.len() {
                let _ = write!(message, " and {} more", others.len() - shown.len());
            }
        }
        let mut p = Problem::new(message);
        p.operation = (!self.is_unnamed(start)).then(|| self.ops[start].name.clone());
        p
    }
}

/// The `$$$…` words of a string (the obsolete reference syntax).
fn legacy_references(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("$$$") {
        let tail = &rest[start..];
        let end = tail[3..].find(|c: char| c.is_whitespace() || c == '"' || c == '\'').map_or(tail.len(), |e| e + 3);
        out.push(&tail[..end]);
        rest = &tail[end.max(3)..];
    }
    out
}

/// What is wrong with a generator's settings `{operationsJsonPointer?, paramsJsonPointer?, logOnly?}`
/// (`operationsJsonPointer` defaults to `/operations`, as the executor reads it).
fn generator_problems(v: &Value) -> Vec<String> {
    let key = param_keys::GENERATOR;
    let Value::Object(map) = v else {
        return vec![format!(
            "`{key}` must be an object {{\"operationsJsonPointer\": \"/operations\", \"paramsJsonPointer\": \
             \"/params\", \"logOnly\": false}}, got {v}"
        )];
    };
    let mut out = Vec::new();
    if let Some(p) = map.get("operationsJsonPointer").filter(|p| !p.is_null()) {
        out.extend(pointer_problem(key, "operationsJsonPointer", p));
    }
    if let Some(p) = map.get("paramsJsonPointer").filter(|p| !p.is_null()) {
        out.extend(pointer_problem(key, "paramsJsonPointer", p));
    }
    match map.get("logOnly") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {}
        Some(other) => out.push(format!("`{key}.logOnly` must be true or false, got {other}")),
    }
    out
}

fn pointer_problem(key: &str, field: &str, p: &Value) -> Option<String> {
    let Value::String(s) = p else {
        return Some(format!("`{key}.{field}` must be a JSON pointer string such as \"/operations\", got {p}"));
    };
    if !s.is_empty() && !s.starts_with('/') {
        return Some(format!("`{key}.{field}` must be a JSON pointer starting with `/` (e.g. \"/{s}\"), got {s:?}"));
    }
    let bytes = s.as_bytes();
    for (idx, b) in bytes.iter().enumerate() {
        if *b == b'~' && !matches!(bytes.get(idx + 1), Some(b'0') | Some(b'1')) {
            return Some(format!(
                "`{key}.{field}` is not a valid JSON pointer ({s:?}): `~` must be followed by 0 or 1"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests;
