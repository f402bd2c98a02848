//! The graph as Graphviz DOT and as a JSON document.

use super::{AgendaGraph, EdgeKind};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The graph as a JSON document (what HTTP returns and the console draws).
///
/// ```json
/// {"nodes": [{"name": "probe", "type": "probe", "layer": 0},
///            {"name": "encode", "type": "encode", "layer": 1}],
///  "edges": [{"from": "probe", "to": "encode", "kind": "reference"}]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphDocument {
    /// The operations, in the agenda's order.
    pub nodes: Vec<GraphNode>,
    /// The edges, from the dependency (or generator) to the dependent (or generated operation).
    pub edges: Vec<GraphEdge>,
    /// Each cycle's operations in "depends on" order, closed (`["a", "b", "a"]`); empty for a DAG.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cycles: Vec<Vec<String>>,
    /// Dependencies on operations the agenda does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<UnresolvedDependency>,
}

/// One operation of a [`GraphDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphNode {
    /// The operation's name.
    pub name: String,
    /// The operation's type.
    #[serde(rename = "type")]
    pub op_type: String,
    /// Its layer ([`AgendaGraph::layers`]); `None` when the graph has a cycle.
    pub layer: Option<usize>,
    /// The generator that added it (`params.generatedOperationParent`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_parent: Option<String>,
}

/// One edge of a [`GraphDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphEdge {
    /// The dependency (or generator).
    pub from: String,
    /// The dependent (or generated operation).
    pub to: String,
    /// `reference`, `dependsOn` or `generated`.
    pub kind: EdgeKind,
}

/// A dependency on an operation the agenda does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnresolvedDependency {
    /// The operation that names it.
    pub operation: String,
    /// The name it gives.
    pub name: String,
    /// Where: `reference`, `dependsOn` or `generated` (`generatedOperationParent`).
    pub kind: EdgeKind,
}

impl AgendaGraph<'_> {
    /// The graph as a [`GraphDocument`].
    pub fn document(&self) -> GraphDocument {
        let (layers, cycles) = match self.layers() {
            Ok(layers) => (Some(layers), Vec::new()),
            Err(cycles) => (None, cycles),
        };
        let name = |i: usize| self.operation(i).map(|op| op.name.clone()).unwrap_or_default();
        GraphDocument {
            nodes: self
                .graph
                .node_weights()
                .enumerate()
                .map(|(i, op)| GraphNode {
                    name: op.name.clone(),
                    op_type: op.op_type.clone(),
                    layer: layers.as_ref().and_then(|l| l.get(i).copied()),
                    generated_parent: op.generated_parent().map(str::to_owned),
                })
                .collect(),
            edges: self.edges().map(|(from, to, kind)| GraphEdge { from: name(from), to: name(to), kind }).collect(),
            cycles: cycles.iter().map(|c| self.cycle_names(c).into_iter().map(str::to_owned).collect()).collect(),
            unresolved: self
                .unresolved
                .iter()
                .map(|u| UnresolvedDependency { operation: name(u.operation), name: u.name.to_owned(), kind: u.kind })
                .collect(),
        }
    }

    /// The graph in Graphviz DOT: one box per operation (`n<index>`, labelled with its name and type),
    /// one arrow per edge from dependency to dependent: solid for a reference, dashed for `dependsOn`,
    /// dotted and labelled for "generated". `dot -Tsvg` draws it top-down.
    ///
    /// ```text
    /// digraph agenda {
    ///   rankdir=TB;
    ///   node [shape=box];
    ///   n0 [label="probe\n(probe)"];
    ///   n1 [label="encode\n(encode)"];
    ///   n0 -> n1;
    /// }
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::with_capacity(64 + self.len() * 40 + self.edge_count() * 16);
        out.push_str("digraph agenda {\n  rankdir=TB;\n  node [shape=box];\n");
        for (i, op) in self.graph.node_weights().enumerate() {
            let _ = writeln!(out, "  n{i} [label=\"{}\\n({})\"];", dot_escape(&op.name), dot_escape(&op.op_type));
        }
        for (from, to, kind) in self.edges() {
            let style = match kind {
                EdgeKind::Reference => "",
                EdgeKind::DependsOn => " [style=dashed]",
                EdgeKind::Generated => " [style=dotted, label=\"generated\"]",
            };
            let _ = writeln!(out, "  n{from} -> n{to}{style};");
        }
        out.push_str("}\n");
        out
    }
}

/// Text for a double-quoted DOT string: `"` and `\` escaped, line breaks as `\n`.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}
