//! The dependency graph of an agenda, on [`petgraph`]: one parser of dependencies, one graph, and the
//! algorithms every other part of POP asks of it.
//!
//! * [`for_each_dependency`] / [`dependencies`]: what one operation depends on, parsed once: the
//!   operations its payload references (`@<x.out::/file>` → `x`; `pop.*` tokens excluded; a
//!   generator's `payload.operations` skipped) plus `params.dependsOn` (a comma string or a JSON
//!   array, read by [`Operation::depends_on_names`]). This graph (so its dependent closure) and
//!   [`dependencies`] use it; the executor's machine uses [`parsed_dependencies`], the same rule over the
//!   references it has parsed anyway to resolve payloads; validation, which looks at every string
//!   anyway, applies the same rule within its single walk (the same walker, the same skip of
//!   generator templates, the same `dependsOn` reader), and property tests check that each of these
//!   finds the same dependencies as [`for_each_dependency`].
//! * [`AgendaGraph`]: nodes are the operations (node `i` is operation `i` of the agenda), edges run
//!   from a dependency to its dependent (the order things run in), each with its [`EdgeKind`]:
//!   `reference`, `dependsOn`, or `generated` (from a generator to the operations it added,
//!   `params.generatedOperationParent`; kept apart from dependencies). Names are looked up as the
//!   executor looks them up: exactly, then case-insensitively; names found nowhere are listed by
//!   [`AgendaGraph::unresolved`] (validation reports them, with its own messages).
//! * [`AgendaGraph::cycles`]: every cycle, one per strongly connected component, named by its
//!   shortest loop through its first operation (petgraph's `toposort` proves most graphs acyclic in
//!   one pass; `kosaraju_scc`, iterative, finds the components of the others).
//! * [`AgendaGraph::topological_order`] and [`AgendaGraph::layers`] (a node's layer is the longest
//!   path to it from an operation that depends on nothing: what the console draws the DAG by).
//! * [`AgendaGraph::dependent_closure`]: the operations that depend, directly or not, on some seeds:
//!   what a rerun with `operationsToReset` resets.
//! * Export: [`AgendaGraph::to_dot`] (Graphviz, for `pop graph AGENDA.json`) and
//!   [`AgendaGraph::document`], a serde [`GraphDocument`] (nodes with name, type, layer and generated
//!   parent; edges with their kind) that HTTP can return.
//!
//! Every algorithm is iterative (a 100,000-operation chain does not overflow the stack) and linear in
//! nodes plus edges.
//!
//! ```
//! use pop_core::dag::{AgendaGraph, EdgeKind};
//! use pop_core::model::Agenda;
//! let agenda: Agenda = serde_json::from_value(serde_json::json!({"operations": [
//!     {"name": "probe", "type": "probe"},
//!     {"name": "encode", "type": "encode", "payload": {"in": "@<probe.out::/file>"}},
//!     {"name": "notify", "type": "mail", "params": {"dependsOn": "encode"}},
//!     {"name": "thumbs", "type": "thumbs", "payload": {"in": "@<probe.out::/file>"}}
//! ]})).unwrap();
//! let graph = AgendaGraph::new(&agenda);
//! assert!(graph.cycles().is_empty() && graph.unresolved().is_empty());
//! assert_eq!(graph.layers().unwrap(), [0, 1, 2, 1]);
//! let probe = graph.find("probe").unwrap();
//! assert_eq!(graph.names(&graph.dependent_closure([graph.find("encode").unwrap()])), ["encode", "notify"]);
//! assert_eq!(graph.dependent_closure([probe]).len(), 4);
//! let doc = graph.document();
//! assert_eq!(doc.edges[1].kind, EdgeKind::DependsOn);
//! assert!(graph.to_dot().contains("n1 -> n2 [style=dashed];"));
//! ```

mod algo;
mod deps;
mod export;

pub use algo::Cycle;
pub(crate) use deps::is_generator_template;
pub use deps::{
    EdgeKind, GENERATED_OPERATIONS_KEY, dependencies, dependencies_with_kinds, for_each_dependency, parsed_dependencies,
};
pub use export::{GraphDocument, GraphEdge, GraphNode, UnresolvedDependency};

use crate::model::{Agenda, Operation};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::borrow::Cow;
use std::collections::HashMap;

/// Maps keyed by operation names hash with foldhash (several times cheaper than SipHash on short names).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A dependency whose target no operation of the graph is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved<'a> {
    /// The operation (node index) that names it.
    pub operation: usize,
    /// The name, as written.
    pub name: &'a str,
    /// Where it was written: a reference, `dependsOn`, or `generatedOperationParent` (`Generated`).
    pub kind: EdgeKind,
}

/// The dependency graph of an agenda's operations. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct AgendaGraph<'a> {
    /// Node `i` is operation `i`; an edge runs from a dependency (or a generator) to its dependent.
    graph: DiGraph<&'a Operation, EdgeKind>,
    /// Exact name → first operation with it (blank names are not indexed).
    exact: FastMap<&'a str, u32>,
    /// Lower-cased name → first operation with it, for names that lower-casing changes (the others are
    /// found in `exact` under their lower-cased form).
    lower: FastMap<String, u32>,
    unresolved: Vec<Unresolved<'a>>,
}

impl<'a> AgendaGraph<'a> {
    /// The graph of an agenda: its operations, their dependencies and "generated by" edges.
    pub fn new(agenda: &'a Agenda) -> Self {
        Self::from_operations(&agenda.operations)
    }

    /// The graph of these operations (e.g. an agenda's operations followed by generated ones).
    pub fn from_operations(ops: &'a [Operation]) -> Self {
        let mut g = Self::with_capacity(ops.len(), ops.len() * 2);
        for op in ops {
            g.add_operation(op);
        }
        let mut found: Vec<(u32, EdgeKind)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            for_each_dependency(op, |name, kind| match g.find(name) {
                Some(j) => found.push((j as u32, kind)),
                None => g.unresolved.push(Unresolved { operation: i, name, kind }),
            });
            // Once per dependency, the first kind it was found with (references come first).
            found.sort_by_key(|&(j, _)| j);
            found.dedup_by_key(|&mut (j, _)| j);
            for (j, kind) in found.drain(..) {
                g.add_edge(j as usize, i, kind);
            }
            if let Some(parent) = op.generated_parent() {
                match g.find(parent) {
                    Some(j) => {
                        g.add_edge(j, i, EdgeKind::Generated);
                    }
                    None => g.unresolved.push(Unresolved { operation: i, name: parent, kind: EdgeKind::Generated }),
                }
            }
        }
        g
    }

    /// An empty graph with room for `nodes` operations and `edges` edges, to be filled with
    /// [`AgendaGraph::add_operation`] and [`AgendaGraph::add_edge`] (validation does, with its own
    /// name rules).
    pub fn with_capacity(nodes: usize, edges: usize) -> Self {
        Self {
            graph: DiGraph::with_capacity(nodes, edges),
            exact: FastMap::with_capacity_and_hasher(nodes, Default::default()),
            lower: FastMap::default(),
            unresolved: Vec::new(),
        }
    }

    /// Adds an operation as the next node and indexes its name (the first operation of a name keeps
    /// it; blank names are not indexed). Returns its index. Edges are not added.
    pub fn add_operation(&mut self, op: &'a Operation) -> usize {
        let i = self.graph.add_node(op).index();
        if !op.name.trim().is_empty() {
            self.exact.entry(op.name.as_str()).or_insert(i as u32);
            if let Cow::Owned(lower) = lowercase(&op.name) {
                self.lower.entry(lower).or_insert(i as u32);
            }
        }
        i
    }

    /// Adds an edge: `dependent` depends on `dependency` (or, for [`EdgeKind::Generated`], was
    /// generated by it). Returns `false`, adding nothing, when either index is not a node of the graph.
    /// Adding the same edge twice draws it twice.
    pub fn add_edge(&mut self, dependency: usize, dependent: usize, kind: EdgeKind) -> bool {
        let n = self.graph.node_count();
        if dependency >= n || dependent >= n {
            return false;
        }
        self.graph.add_edge(NodeIndex::new(dependency), NodeIndex::new(dependent), kind);
        true
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no operation.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The number of edges (of every kind).
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The operation of node `i`.
    pub fn operation(&self, i: usize) -> Option<&'a Operation> {
        self.graph.node_weight(NodeIndex::new(i)).copied()
    }

    /// The operation named exactly `name`.
    pub fn find_exact(&self, name: &str) -> Option<usize> {
        self.exact.get(name).map(|&i| i as usize)
    }

    /// The first operation whose name equals `name` case-insensitively.
    pub fn find_ignoring_case(&self, name: &str) -> Option<usize> {
        let lower = lowercase(name);
        let a = self.exact.get(&*lower);
        let b = self.lower.get(&*lower);
        match (a, b) {
            (Some(&a), Some(&b)) => Some(a.min(b) as usize),
            (Some(&i), None) | (None, Some(&i)) => Some(i as usize),
            (None, None) => None,
        }
    }

    /// The operation named `name`, as the executor finds it: exactly, else case-insensitively.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.find_exact(name).or_else(|| self.find_ignoring_case(name))
    }

    /// The names of these nodes (unknown indices are skipped).
    pub fn names(&self, nodes: &[usize]) -> Vec<&'a str> {
        nodes.iter().filter_map(|&i| self.operation(i)).map(|op| op.name.as_str()).collect()
    }

    /// The dependencies named by operations that no operation of the graph has (filled by
    /// [`AgendaGraph::new`] and [`AgendaGraph::from_operations`]).
    pub fn unresolved(&self) -> &[Unresolved<'a>] {
        &self.unresolved
    }

    /// The edges into node `i`: `(dependency or generator, kind)`.
    pub fn dependencies_of(&self, i: usize) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        self.edges_at(i, Direction::Incoming)
    }

    /// The edges out of node `i`: `(dependent or generated operation, kind)`.
    pub fn dependents_of(&self, i: usize) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        self.edges_at(i, Direction::Outgoing)
    }

    fn edges_at(&self, i: usize, dir: Direction) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        let valid = i < self.graph.node_count();
        valid.then(|| self.graph.edges_directed(NodeIndex::new(i), dir)).into_iter().flatten().map(move |e| {
            let other = if dir == Direction::Incoming { e.source() } else { e.target() };
            (other.index(), *e.weight())
        })
    }

    /// Every edge as `(dependency, dependent, kind)`, in the order they were added.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize, EdgeKind)> + '_ {
        self.graph.raw_edges().iter().map(|e| (e.source().index(), e.target().index(), e.weight))
    }

    /// The petgraph graph itself, for algorithms this module does not wrap. Node `i` is operation `i`;
    /// edges run from dependency to dependent.
    pub fn petgraph(&self) -> &DiGraph<&'a Operation, EdgeKind> {
        &self.graph
    }
}

/// `name` lower-cased, borrowed when lower-casing changes nothing (the common case: no allocation).
fn lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        let lower = name.to_lowercase();
        if lower == name { Cow::Borrowed(name) } else { Cow::Owned(lower) }
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests;
