use super::*;
use crate::model::Operation;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn op(v: Value) -> Operation {
    serde_json::from_value(v).expect("operation parses")
}

fn agenda(ops: Value) -> Agenda {
    serde_json::from_value(json!({ "operations": ops })).expect("agenda parses")
}

/// A case of the dependency table: name, operation, expected dependencies.
type DepCase = (&'static str, Value, Vec<(&'static str, EdgeKind)>);

/// One operation of a random DAG: its dependencies (index, through a reference?) and its generator.
type Spec = (Vec<(usize, bool)>, Option<usize>);

#[test]
fn dependencies_table() {
    use EdgeKind::{DependsOn as D, Reference as R};
    let cases: Vec<DepCase> = vec![
        ("nothing", json!({"name": "x"}), vec![]),
        ("empty payload", json!({"name": "x", "payload": {}}), vec![]),
        ("whole-string reference", json!({"name": "x", "payload": "@<a.out>"}), vec![("a", R)]),
        (
            "references in document order, tokens excluded, each once",
            json!({"name": "x", "payload": {"a": "@<b.out::/f>", "b": ["@<pop.agendaId>", "@<c.out>-@<b.out>"],
                   "p": "@<pop.params::/k?>", "n": "@<pop.operationName>"}}),
            vec![("b", R), ("c", R)],
        ),
        (
            "a name without .out is still what it names",
            json!({"name": "x", "payload": {"a": "@<a::/x>", "b": "@<x.out.out>"}}),
            vec![("a", R), ("x.out", R)],
        ),
        (
            "malformed references are not dependencies",
            json!({"name": "x", "payload": {"m": "@<broken", "e": "@<>"}}),
            vec![],
        ),
        ("keys are never references", json!({"name": "x", "payload": {"@<a.out>": 1}}), vec![]),
        ("dependsOn comma string", json!({"name": "x", "params": {"dependsOn": " a, ,b "}}), vec![("a", D), ("b", D)]),
        (
            "dependsOn array, items with commas, non-strings skipped",
            json!({"name": "x", "params": {"dependsOn": ["a", " b ", "", "c,d", 7, null]}}),
            vec![("a", D), ("b", D), ("c", D), ("d", D)],
        ),
        ("dependsOn null or a number", json!({"name": "x", "params": {"dependsOn": 3}}), vec![]),
        (
            "references before dependsOn; a name in both counts once, as a reference",
            json!({"name": "x", "payload": {"in": "@<b.out>"}, "params": {"dependsOn": "a,b"}}),
            vec![("b", R), ("a", D)],
        ),
        (
            "a generator's payload.operations are templates",
            json!({"name": "gen", "params": {"agenda.operation.generator": {}, "dependsOn": "a"},
                   "payload": {"operations": [{"name": "g1", "payload": {"v": "@<b.out>"}}], "x": "@<c.out>"}}),
            vec![("c", R), ("a", D)],
        ),
        (
            "outside a generator, payload.operations is a payload like any other",
            json!({"name": "plain", "payload": {"operations": ["@<g1.out>"]}}),
            vec![("g1", R)],
        ),
    ];
    for (case, v, expected) in cases {
        let o = op(v);
        assert_eq!(dependencies_with_kinds(&o), expected, "{case}");
        let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        assert_eq!(dependencies(&o), names, "{case}");
        let mut raw = Vec::new();
        for_each_dependency(&o, |n, k| raw.push((n, k)));
        assert!(expected.iter().all(|e| raw.contains(e)), "{case}: the parser yields every dependency");
    }
}

#[test]
fn many_dependencies_are_deduplicated_in_order() {
    let refs: Vec<String> = (0..100).map(|i| format!("@<op{}.out>", i % 40)).collect();
    let o = op(json!({"name": "x", "payload": {"r": refs}, "params": {"dependsOn": "op5, extra, op39"}}));
    let got = dependencies(&o);
    let mut expected: Vec<String> = (0..40).map(|i| format!("op{i}")).collect();
    expected.push("extra".into());
    assert_eq!(got, expected);
}

#[test]
fn depends_on_is_read_once() {
    let o = op(json!({"name": "x", "params": {"dependsOn": ["a, b", "c"]}}));
    assert_eq!(o.depends_on_names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(o.depends_on(), ["a", "b", "c"]);
}

#[test]
fn depends_on_names_split_as_split_trim_filter() {
    let items = [
        "",
        ",",
        " , ,",
        "a",
        " a ",
        "a,b",
        "a,,b,",
        ",a",
        "\ta\n,\u{3000}b\u{3000}",
        "é, ü ,x y",
        "\u{a0}",
        "a ,\u{2003}",
    ];
    for item in items {
        let expected: Vec<&str> = item.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        let o = op(json!({"name": "x", "params": {"dependsOn": item}}));
        assert_eq!(o.depends_on_names().collect::<Vec<_>>(), expected, "{item:?}");
        let o = op(json!({"name": "x", "params": {"dependsOn": [item, "z", item]}}));
        let mut twice = expected.clone();
        twice.push("z");
        twice.extend(&expected);
        assert_eq!(o.depends_on_names().collect::<Vec<_>>(), twice, "{item:?}");
    }
}

#[test]
fn graph_edges_kinds_and_lookups() {
    let a = agenda(json!([
        {"name": "Probe", "type": "probe"},
        {"name": "encode", "type": "enc", "payload": {"in": "@<probe.out::/f>", "x": "@<Probe.out>"}},
        {"name": "gen", "type": "updateAgenda", "params": {"dependsOn": "encode",
            "agenda.operation.generator": {}}, "payload": {"operations": [{"name": "p", "payload": "@<zz.out>"}]}},
        {"name": "part", "type": "t", "payload": {"v": "@<gen.out>"}, "params": {"generatedOperationParent": "gen"}},
        {"name": "lost", "type": "t", "payload": {"v": "@<ghost.out>"},
         "params": {"dependsOn": ["nobody"], "generatedOperationParent": "nogen"}},
        {"name": "selfish", "type": "t", "params": {"dependsOn": "selfish"}}
    ]));
    let g = AgendaGraph::new(&a);
    assert_eq!(g.len(), 6);
    assert_eq!(g.find("probe"), Some(0), "case-insensitively, as the executor finds it");
    assert_eq!(g.find_exact("probe"), None);
    assert_eq!(g.find_ignoring_case("PROBE"), Some(0));
    assert_eq!(g.find("ENCODE"), Some(1));
    let edges: Vec<(usize, usize, EdgeKind)> = g.edges().collect();
    assert_eq!(
        edges,
        [
            (0, 1, EdgeKind::Reference), // both spellings name Probe: one edge
            (1, 2, EdgeKind::DependsOn),
            (2, 3, EdgeKind::Reference),
            (2, 3, EdgeKind::Generated),
            (5, 5, EdgeKind::DependsOn),
        ]
    );
    assert_eq!(
        g.unresolved(),
        [
            Unresolved { operation: 4, name: "ghost", kind: EdgeKind::Reference },
            Unresolved { operation: 4, name: "nobody", kind: EdgeKind::DependsOn },
            Unresolved { operation: 4, name: "nogen", kind: EdgeKind::Generated },
        ]
    );
    assert_eq!(g.dependencies_of(3).collect::<Vec<_>>().len(), 2);
    assert!(g.has_edge(2, 3, EdgeKind::Generated) && !g.has_edge(3, 2, EdgeKind::Generated));
    assert_eq!(g.dependents_of(0).collect::<Vec<_>>(), [(1, EdgeKind::Reference)]);
    assert_eq!(g.dependencies_of(99).count(), 0);
    let mut g2 = g.clone();
    assert!(!g2.add_edge(0, 99, EdgeKind::DependsOn) && !g2.add_edge(99, 0, EdgeKind::DependsOn));
    assert!(g2.add_edge(0, 4, EdgeKind::DependsOn) && g2.has_edge(0, 4, EdgeKind::DependsOn));
    assert_eq!(g2.edge_count(), g.edge_count() + 1);
    // A self-dependency is a cycle of one.
    let cycles = g.cycles();
    assert_eq!(cycles, [Cycle { path: vec![5], members: vec![5] }]);
    assert_eq!(g.cycle_names(&cycles[0]), ["selfish", "selfish"]);
    assert!(g.topological_order().is_err() && g.layers().is_err());
}

#[test]
fn cycles_table() {
    let cases: Vec<(&str, Value, Vec<Vec<&str>>)> = vec![
        ("a DAG", json!([{"name": "a"}, {"name": "b", "params": {"dependsOn": "a"}}]), vec![]),
        (
            "two operations",
            json!([{"name": "a", "payload": "@<b.out>"}, {"name": "b", "params": {"dependsOn": "a"}}]),
            vec![vec!["a", "b", "a"]],
        ),
        (
            "the shortest loop through the first member; two components, in order",
            json!([
                {"name": "x", "params": {"dependsOn": "y"}},
                {"name": "a", "params": {"dependsOn": "b"}},
                {"name": "b", "params": {"dependsOn": "c, a"}},
                {"name": "c", "params": {"dependsOn": "b"}},
                {"name": "y", "params": {"dependsOn": "x"}},
                {"name": "free", "params": {"dependsOn": "a"}}
            ]),
            vec![vec!["x", "y", "x"], vec!["a", "b", "a"]],
        ),
        (
            "a loop of three through references and dependsOn",
            json!([
                {"name": "a", "params": {"dependsOn": "c"}},
                {"name": "b", "payload": {"x": "@<a.out>"}},
                {"name": "c", "params": {"dependsOn": ["b"]}}
            ]),
            vec![vec!["a", "c", "b", "a"]],
        ),
    ];
    for (case, ops, expected) in cases {
        let a = agenda(ops);
        let g = AgendaGraph::new(&a);
        let got: Vec<Vec<&str>> = g.cycles().iter().map(|c| g.cycle_names(c)).collect();
        assert_eq!(got, expected, "{case}");
        assert_eq!(g.topological_order().is_ok(), expected.is_empty(), "{case}");
    }
    let a = agenda(json!([
        {"name": "a", "params": {"dependsOn": "b"}},
        {"name": "b", "params": {"dependsOn": "a,c"}},
        {"name": "c", "params": {"dependsOn": "b"}}
    ]));
    let g = AgendaGraph::new(&a);
    assert_eq!(g.cycles(), [Cycle { path: vec![0, 1], members: vec![0, 1, 2] }]);
}

#[test]
fn layers_order_and_closure() {
    let a = agenda(json!([
        {"name": "probe", "type": "probe"},
        {"name": "encode", "type": "encode", "payload": {"in": "@<probe.out::/file>"}},
        {"name": "notify", "type": "mail", "params": {"dependsOn": "encode, probe"}},
        {"name": "thumbs", "type": "thumbs", "payload": {"in": "@<probe.out::/file>"}},
        {"name": "alone", "type": "t"},
        {"name": "gen", "type": "updateAgenda", "params": {"dependsOn": "alone", "agenda.operation.generator": {}}},
        {"name": "g1", "type": "t", "params": {"generatedOperationParent": "gen"}}
    ]));
    let g = AgendaGraph::new(&a);
    assert_eq!(g.layers().unwrap(), [0, 1, 2, 1, 0, 1, 2], "a layer is the longest path from a root");
    let order = g.topological_order().unwrap();
    let pos = |i: usize| order.iter().position(|&x| x == i).unwrap();
    assert_eq!(order.len(), 7);
    assert!(pos(0) < pos(1) && pos(1) < pos(2) && pos(0) < pos(3) && pos(5) < pos(6));
    assert_eq!(g.names(&g.dependent_closure([1])), ["encode", "notify"]);
    assert_eq!(g.names(&g.dependent_closure([0, 1, 99])), ["probe", "encode", "notify", "thumbs"]);
    assert_eq!(g.dependent_closure([4]), [4, 5], "generated-by edges are not followed");
    assert!(g.dependent_closure([]).is_empty());
}

#[test]
fn long_chains_do_not_overflow_the_stack() {
    let n = 100_000;
    let ops: Vec<Operation> = (0..n)
        .map(|i| {
            let deps = if i == 0 { json!(null) } else { json!(format!("op{}", i - 1)) };
            op(json!({"name": format!("op{i}"), "params": {"dependsOn": deps}}))
        })
        .collect();
    let g = AgendaGraph::from_operations(&ops);
    assert!(g.cycles().is_empty());
    let layers = g.layers().unwrap();
    assert_eq!(layers[n - 1], n - 1);
    assert_eq!(g.dependent_closure([0]).len(), n);
    let mut ops = ops;
    ops[0] = op(json!({"name": "op0", "params": {"dependsOn": format!("op{}", n - 1)}}));
    let g = AgendaGraph::from_operations(&ops);
    let cycles = g.cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].path.len(), n);
}

#[test]
fn document_and_dot() {
    let a = agenda(json!([
        {"name": "probe", "type": "probe"},
        {"name": "en\"code", "type": "enc\\", "payload": {"in": "@<probe.out::/file>"}},
        {"name": "notify", "type": "mail", "params": {"dependsOn": "en\"code"}},
        {"name": "part", "type": "t", "params": {"generatedOperationParent": "probe"}},
        {"name": "odd", "type": "t", "params": {"dependsOn": "ghost"}}
    ]));
    let g = AgendaGraph::new(&a);
    let doc = g.document();
    let v = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        v,
        json!({
            "nodes": [
                {"name": "probe", "type": "probe", "layer": 0},
                {"name": "en\"code", "type": "enc\\", "layer": 1},
                {"name": "notify", "type": "mail", "layer": 2},
                {"name": "part", "type": "t", "layer": 1, "generatedParent": "probe"},
                {"name": "odd", "type": "t", "layer": 0}
            ],
            "edges": [
                {"from": "probe", "to": "en\"code", "kind": "reference"},
                {"from": "en\"code", "to": "notify", "kind": "dependsOn"},
                {"from": "probe", "to": "part", "kind": "generated"}
            ],
            "unresolved": [{"operation": "odd", "name": "ghost", "kind": "dependsOn"}]
        })
    );
    let back: GraphDocument = serde_json::from_value(v).unwrap();
    assert_eq!(back, doc);

    let dot = g.to_dot();
    assert_eq!(
        dot,
        "digraph agenda {\n  rankdir=TB;\n  node [shape=box];\n  n0 [label=\"probe\\n(probe)\"];\n  \
         n1 [label=\"en\\\"code\\n(enc\\\\)\"];\n  n2 [label=\"notify\\n(mail)\"];\n  n3 [label=\"part\\n(t)\"];\n  \
         n4 [label=\"odd\\n(t)\"];\n  n0 -> n1;\n  n1 -> n2 [style=dashed];\n  \
         n0 -> n3 [style=dotted, label=\"generated\"];\n}\n"
    );
    let shape = parse_dot(&dot);
    assert_eq!(shape.nodes.len(), 5);
    assert_eq!(shape.edges, [(0, 1, ""), (1, 2, "dashed"), (0, 3, "dotted")]);

    let cyclic =
        agenda(json!([{"name": "a", "params": {"dependsOn": "b"}}, {"name": "b", "params": {"dependsOn": "a"}}]));
    let doc = AgendaGraph::new(&cyclic).document();
    assert!(doc.nodes.iter().all(|n| n.layer.is_none()));
    assert_eq!(doc.cycles, [vec!["a", "b", "a"]]);
}

/// What a DOT text from [`AgendaGraph::to_dot`] holds: node ids with their labels, edges with their style.
struct DotShape {
    nodes: Vec<(usize, String)>,
    edges: Vec<(usize, usize, &'static str)>,
}

/// A strict reader of the DOT subset `to_dot` writes; panics on anything else.
fn parse_dot(dot: &str) -> DotShape {
    let mut lines = dot.lines();
    assert_eq!(lines.next(), Some("digraph agenda {"));
    assert_eq!(lines.next(), Some("  rankdir=TB;"));
    assert_eq!(lines.next(), Some("  node [shape=box];"));
    let mut shape = DotShape { nodes: Vec::new(), edges: Vec::new() };
    let id = |s: &str| -> usize { s.strip_prefix('n').and_then(|n| n.parse().ok()).expect("node id n<index>") };
    let mut closed = false;
    for line in lines {
        assert!(!closed, "nothing after the closing brace: {line:?}");
        if line == "}" {
            closed = true;
            continue;
        }
        let body = line.strip_prefix("  ").and_then(|l| l.strip_suffix(';')).expect("an indented statement");
        if let Some((from, rest)) = body.split_once(" -> ") {
            let (to, style) = match rest.split_once(' ') {
                None => (rest, ""),
                Some((to, "[style=dashed]")) => (to, "dashed"),
                Some((to, "[style=dotted, label=\"generated\"]")) => (to, "dotted"),
                Some((_, other)) => panic!("unexpected edge attributes {other}"),
            };
            shape.edges.push((id(from), id(to), style));
        } else {
            let (node, label) = body.split_once(" [label=\"").expect("a node statement");
            let label = label.strip_suffix("\"]").expect("a quoted label");
            // Inside the label, every `"` is escaped.
            let unescaped_quote = label.char_indices().any(|(i, c)| c == '"' && !label[..i].ends_with('\\'));
            assert!(!unescaped_quote, "label {label}");
            shape.nodes.push((id(node), label.to_owned()));
        }
    }
    assert!(closed, "the graph is closed");
    shape
}

/// A random DAG: operation `i` depends on some `j < i`, through a reference or dependsOn; some
/// operations are generated by an earlier one.
fn dag() -> impl Strategy<Value = Vec<Spec>> {
    (1usize..40).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                (
                    proptest::collection::vec((0..i.max(1), any::<bool>()), 0..4.min(i + 1)),
                    proptest::option::weighted(0.2, 0..i.max(1)),
                )
            })
            .collect::<Vec<_>>()
    })
}

fn build(spec: &[Spec]) -> Vec<Operation> {
    spec.iter()
        .enumerate()
        .map(|(i, (ds, parent))| {
            let refs: Vec<String> =
                ds.iter().filter(|(j, r)| *r && *j < i).map(|(j, _)| format!("@<op{j}.out::/v?>")).collect();
            let depends: Vec<String> =
                ds.iter().filter(|(j, r)| !*r && *j < i).map(|(j, _)| format!("op{j}")).collect();
            let mut params = json!({"dependsOn": depends});
            if let Some(p) = parent.filter(|&p| p < i) {
                params["generatedOperationParent"] = json!(format!("op{p}"));
            }
            op(json!({"name": format!("op{i}"), "type": "t", "payload": {"refs": refs}, "params": params}))
        })
        .collect()
}

/// Which operations reach which along dependency edges (not "generated"), by repeated relaxation: an
/// independent oracle for the closure.
fn reachability(g: &AgendaGraph<'_>) -> Vec<BTreeSet<usize>> {
    let n = g.len();
    let mut reach: Vec<BTreeSet<usize>> = (0..n).map(|i| BTreeSet::from([i])).collect();
    loop {
        let mut changed = false;
        for (from, to, kind) in g.edges() {
            if !kind.is_dependency() {
                continue;
            }
            let add: Vec<usize> = reach[to].iter().copied().filter(|x| !reach[from].contains(x)).collect();
            changed |= !add.is_empty();
            reach[from].extend(add);
        }
        if !changed {
            return reach;
        }
    }
}

proptest! {
    #[test]
    fn random_dags_order_layers_closure_and_export(spec in dag(), seeds in proptest::collection::vec(any::<prop::sample::Index>(), 0..4)) {
        let ops = build(&spec);
        let g = AgendaGraph::from_operations(&ops);
        prop_assert!(g.unresolved().is_empty());
        prop_assert!(g.cycles().is_empty());

        // Topological order: a permutation in which every edge goes forwards.
        let order = g.topological_order().unwrap();
        let mut pos = vec![usize::MAX; g.len()];
        for (k, &i) in order.iter().enumerate() {
            prop_assert_eq!(pos[i], usize::MAX, "each operation once");
            pos[i] = k;
        }
        prop_assert!(pos.iter().all(|&p| p < g.len()));
        for (from, to, _) in g.edges() {
            prop_assert!(pos[from] < pos[to], "edge {} -> {} goes backwards", from, to);
        }

        // Layers: every edge goes from a lower to a higher layer, and each layer is the longest path
        // (an operation above 0 has a predecessor exactly one layer up).
        let layers = g.layers().unwrap();
        for (from, to, _) in g.edges() {
            prop_assert!(layers[from] < layers[to]);
        }
        for i in 0..g.len() {
            let preds: Vec<usize> = g.dependencies_of(i).map(|(j, _)| j).collect();
            if preds.is_empty() {
                prop_assert_eq!(layers[i], 0);
            } else {
                prop_assert_eq!(layers[i], preds.iter().map(|&j| layers[j] + 1).max().unwrap());
            }
        }

        // The dependent closure of the seeds is what they reach.
        let seeds: Vec<usize> = seeds.iter().map(|s| s.index(g.len())).collect();
        let reach = reachability(&g);
        let expected: BTreeSet<usize> = seeds.iter().flat_map(|&s| reach[s].iter().copied()).collect();
        let got = g.dependent_closure(seeds.iter().copied());
        prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());

        // DOT: one node per operation, one edge line per edge, in the same order.
        let shape = parse_dot(&g.to_dot());
        prop_assert_eq!(shape.nodes.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..g.len()).collect::<Vec<_>>());
        let edges: Vec<(usize, usize)> = g.edges().map(|(a, b, _)| (a, b)).collect();
        prop_assert_eq!(shape.edges.iter().map(|&(a, b, _)| (a, b)).collect::<Vec<_>>(), edges);

        // The JSON document has the same nodes, edges and layers.
        let doc = g.document();
        prop_assert_eq!(doc.nodes.len(), g.len());
        prop_assert_eq!(doc.edges.len(), g.edge_count());
        prop_assert!(doc.nodes.iter().zip(&layers).all(|(n, &l)| n.layer == Some(l)));
    }

    #[test]
    fn a_back_edge_is_a_cycle_naming_its_members(
        spec in dag(),
        pick in any::<(prop::sample::Index, prop::sample::Index, bool)>(),
    ) {
        let n = spec.len();
        prop_assume!(n >= 2);
        let (x, y, by_ref) = pick;
        let (mut lo, mut hi) = (x.index(n), y.index(n));
        if lo == hi { hi = (hi + 1) % n; }
        if lo > hi { std::mem::swap(&mut lo, &mut hi); }
        let mut spec = spec;
        spec[hi].0.push((lo, true)); // hi depends on lo ...
        let mut ops = build(&spec);
        // ... and lo on hi: a cycle.
        ops[lo] = if by_ref {
            op(json!({"name": format!("op{lo}"), "payload": {"back": format!("@<op{hi}.out>")}}))
        } else {
            op(json!({"name": format!("op{lo}"), "params": {"dependsOn": format!("op{hi}")}}))
        };
        let g = AgendaGraph::from_operations(&ops);
        let cycles = g.cycles();
        prop_assert_eq!(cycles.len(), 1, "{:?}", cycles);
        let c = &cycles[0];
        prop_assert!(c.members.contains(&lo) && c.members.contains(&hi));
        prop_assert!(c.path.contains(&lo) && c.path.contains(&hi), "the shortest loop through lo passes hi: {:?}", c);
        prop_assert_eq!(c.path[0], c.members[0]);
        // Each step of the named loop is a real edge ("depends on": backwards along the graph's edges).
        let names = g.cycle_names(c);
        for w in c.path.iter().chain(c.path.first()).collect::<Vec<_>>().windows(2) {
            prop_assert!(g.dependencies_of(*w[0]).any(|(j, _)| j == *w[1]), "{:?}", names);
        }
        prop_assert!(g.topological_order().is_err());
        prop_assert!(g.layers().is_err());
    }
}

/// Payloads with references, tokens, malformed references and `operations` keys.
fn arb_payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        Just(json!(3)),
        prop::sample::select(vec![
            "plain",
            "@<a.out>",
            "@<B.out::/x?>",
            "in @<c.out::/f> and @<a.out>",
            "@<pop.agendaId>",
            "@<broken",
            "@<>",
            "x@y",
            "@<d>",
            "$$$e.out",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(prop::sample::select(vec!["operations", "k", "in"]), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_parsed_form_finds_what_the_scanning_form_finds(
        payload in arb_payload(),
        generator in any::<bool>(),
        depends in prop::option::of(prop::sample::select(vec!["a, z", "", "q"])),
    ) {
        let mut params = json!({});
        if generator {
            params["agenda.operation.generator"] = json!({});
        }
        if let Some(d) = depends {
            params["dependsOn"] = json!(d);
        }
        let o = op(json!({"name": "x", "type": "t", "payload": payload, "params": params}));
        let mut scanned = Vec::new();
        for_each_dependency(&o, |n, k| scanned.push((n.to_owned(), k)));
        // As the executor parses it: a generator's `operations` is taken out first.
        let mut parsed_payload = o.payload.clone();
        if let (true, Value::Object(map)) = (generator, &mut parsed_payload) {
            map.remove(GENERATED_OPERATIONS_KEY);
        }
        let doc = crate::refs::ParsedDocument::parse(parsed_payload);
        let parsed: Vec<(String, EdgeKind)> =
            parsed_dependencies(&o, doc.references()).map(|(n, k)| (n.to_owned(), k)).collect();
        prop_assert_eq!(scanned, parsed);
    }
}
