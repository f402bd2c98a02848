use super::*;
use crate::compat::{fixtures_dir, read_json};
use crate::dag::dependencies;
use proptest::prelude::*;
use serde_json::Value;
use serde_json::json;

fn agenda(ops: Value) -> Agenda {
    serde_json::from_value(json!({ "operations": ops })).unwrap()
}

fn problems_with(a: &Agenda, opts: &ValidationOptions) -> Vec<Problem> {
    match validate_agenda(a, opts) {
        Ok(()) => Vec::new(),
        Err(Error::Invalid(p)) => p.0,
        Err(other) => panic!("expected Invalid, got {other:?}"),
    }
}

fn problems(ops: Value) -> Vec<Problem> {
    problems_with(&agenda(ops), &ValidationOptions::default())
}

/// An expected problem: operation, field, a piece of the message.
type Expect = (Option<&'static str>, Option<&'static str>, &'static str);

fn check(case: &str, got: &[Problem], expected: &[Expect]) {
    assert_eq!(got.len(), expected.len(), "{case}: got {got:#?}");
    for (op, field, text) in expected {
        assert!(
            got.iter()
                .any(|p| p.operation.as_deref() == *op && p.field.as_deref() == *field && p.message.contains(text)),
            "{case}: no problem ({op:?}, {field:?}, {text:?}) in {got:#?}"
        );
    }
}

#[test]
fn table_of_rules() {
    let cases: Vec<(&str, Value, Vec<Expect>)> = vec![
        ("no operations", json!([]), vec![(None, Some("operations"), "no operations")]),
        (
            "empty name",
            json!([{"name": " ", "type": "t"}, {"name": "b", "type": "t"}]),
            vec![(None, Some("operations[0].name"), "operations[0] (unnamed): the operation has no name")],
        ),
        (
            "duplicate names, case-insensitively, both named",
            json!([{"name": "Enc", "type": "t"}, {"name": "x", "type": "t"}, {"name": "enc", "type": "t"}]),
            vec![(Some("enc"), Some("name"), "operations[0] `Enc` and operations[2] `enc`")],
        ),
        ("empty type", json!([{"name": "a", "type": ""}]), vec![(Some("a"), Some("type"), "has no `type`")]),
        (
            "reference to an unknown operation",
            json!([{"name": "a", "type": "t", "payload": {"in": ["@<nope.out::/f>"]}}]),
            vec![(Some("a"), Some("payload.in[0]"), "`@<nope.out::/f>` names an unknown operation: `nope` is not")],
        ),
        (
            "reference differing in case suggests the name",
            json!([{"name": "Sample.1", "type": "t"}, {"name": "b", "type": "t", "payload": {"x": "@<sample.1.out::/x>"}}]),
            vec![(Some("b"), Some("payload.x"), "did you mean `Sample.1`?")],
        ),
        (
            "reference without .out",
            json!([{"name": "a", "type": "t"}, {"name": "b", "type": "t", "payload": {"x": "@<a::/x>", "y": "@<zz>"}}]),
            vec![
                (Some("b"), Some("payload.x"), "write `@<a.out::/x>`"),
                (Some("b"), Some("payload.y"), "`zz` is neither an operation output"),
            ],
        ),
        (
            "unknown tokens",
            json!([{"name": "a", "type": "t", "payload": {"x": "@<pop.agendaID>", "y": "id-@<pop.payload>"}}]),
            vec![
                (Some("a"), Some("payload.x"), "unknown token `pop.agendaID`"),
                (Some("a"), Some("payload.y"), "only defined while a template is expanded"),
            ],
        ),
        (
            "known tokens are fine",
            json!([{"name": "a", "type": "t", "payload": {"x": "@<pop.agendaId>-@<pop.operationName>", "p": "@<pop.params::/k?>"}}]),
            vec![],
        ),
        (
            "dependsOn unknown or malformed",
            json!([
                {"name": "a", "type": "t", "params": {"dependsOn": "b, ghost"}},
                {"name": "b", "type": "t", "params": {"dependsOn": 5}},
                {"name": "c", "type": "t", "params": {"dependsOn": ["a", 3, "B"]}}
            ]),
            vec![
                (Some("a"), Some("params.dependsOn"), "`ghost` is not an operation"),
                (Some("b"), Some("params.dependsOn"), "got 5"),
                (Some("c"), Some("params.dependsOn"), "an array of strings"),
                (Some("c"), Some("params.dependsOn"), "did you mean `b`?"),
            ],
        ),
        (
            "self reference and self dependsOn (not also reported as cycles)",
            json!([
                {"name": "a", "type": "t", "payload": {"x": "@<a.out>"}},
                {"name": "b", "type": "t", "params": {"dependsOn": ["b"]}}
            ]),
            vec![
                (Some("a"), Some("payload.x"), "own output"),
                (Some("b"), Some("params.dependsOn"), "names the operation itself"),
            ],
        ),
        (
            "cycle through references",
            json!([
                {"name": "a", "type": "t", "payload": {"x": "@<b.out>"}},
                {"name": "b", "type": "t", "payload": {"x": "@<a.out::/y>"}}
            ]),
            vec![(Some("a"), None, "circular dependency: a → b → a")],
        ),
        (
            "cycle through dependsOn and a reference",
            json!([
                {"name": "a", "type": "t", "params": {"dependsOn": "c"}},
                {"name": "b", "type": "t", "payload": {"x": "@<a.out>"}},
                {"name": "c", "type": "t", "params": {"dependsOn": ["b"]}}
            ]),
            vec![(Some("a"), None, "circular dependency: a → c → b → a")],
        ),
        (
            "malformed references",
            json!([{"name": "a", "type": "t", "payload": {"x": "@<a.out", "y": "@<::/x>", "z": "@<pop.params::/~2>"}}]),
            vec![
                (Some("a"), Some("payload.x"), "malformed reference `@<a.out`"),
                (Some("a"), Some("payload.y"), "empty name"),
                (Some("a"), Some("payload.z"), "`~` must be followed by 0 or 1"),
            ],
        ),
        (
            "legacy $$$ syntax",
            json!([{"name": "sample.1", "type": "t"},
                   {"name": "b", "type": "t", "payload": {"m": ["log: $$$sample.1.out::/actionData now"]}}]),
            vec![(Some("b"), Some("payload.m[0]"), "write `@<sample.1.out::/actionData>` instead")],
        ),
        (
            "malformed retry, timeout and generator",
            json!([
                {"name": "a", "type": "t", "params": {"retry": "often", "timeoutMs": -5}},
                {"name": "b", "type": "t", "params": {"retry": {"maxAttempts": 0}, "timeoutMs": "1000"}},
                {"name": "c", "type": "t", "params": {"agenda.operation.generator": "yes"}},
                {"name": "d", "type": "t", "params": {"agenda.operation.generator":
                    {"operationsJsonPointer": "operations", "paramsJsonPointer": 4, "logOnly": 3}}},
                {"name": "e", "type": "t", "params": {"agenda.operation.generator": {"logOnly": "true"}}},
                {"name": "f", "type": "t", "params": {"retry": {"maxAttempts": 3}, "timeoutMs": 500,
                    "agenda.operation.generator": {"operationsJsonPointer": "/ops", "paramsJsonPointer": null}}}
            ]),
            vec![
                (Some("a"), Some("params.retry"), "not a retry policy"),
                (Some("a"), Some("params.timeoutMs"), "positive integer"),
                (Some("b"), Some("params.retry"), "at least 1"),
                (Some("c"), Some("params.agenda.operation.generator"), "must be an object"),
                (Some("d"), Some("params.agenda.operation.generator"), "starting with `/` (e.g. \"/operations\")"),
                (
                    Some("d"),
                    Some("params.agenda.operation.generator"),
                    "paramsJsonPointer` must be a JSON pointer string",
                ),
                (Some("d"), Some("params.agenda.operation.generator"), "logOnly` must be true or false"),
            ],
        ),
    ];
    for (case, ops, expected) in cases {
        check(case, &problems(ops), &expected);
    }
}

#[test]
fn a_generators_payload_operations_are_not_its_references() {
    // As `updateAgenda` input, `payload.operations` describes operations to add; they may reference each
    // other and the generator. Outside that key, and in a non-generator, references are checked as usual.
    let got = problems(json!([
        {"name": "gen", "type": "updateAgenda", "params": {"agenda.operation.generator": {}},
         "payload": {"operations": [{"name": "g1", "type": "t"}, {"name": "g2", "type": "t", "payload": {"v": "@<g1.out>"}},
                                    {"name": "g3", "type": "t", "payload": {"v": "@<gen.out>"}}],
                     "who": "@<nobody.out>"}},
        {"name": "plain", "type": "t", "payload": {"operations": ["@<g1.out>"]}}
    ]));
    check(
        "generator",
        &got,
        &[(Some("gen"), Some("payload.who"), "`nobody`"), (Some("plain"), Some("payload.operations[0]"), "`g1`")],
    );
    let gen_op: Operation = serde_json::from_value(json!({"name": "gen", "type": "updateAgenda",
        "params": {"agenda.operation.generator": {"operationsJsonPointer": "/operations"}, "dependsOn": "a"},
        "payload": {"operations": [{"name": "g1", "payload": {"v": "@<b.out>"}}], "x": "@<c.out>"}}))
    .unwrap();
    assert_eq!(dependencies(&gen_op), vec!["c", "a"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let got = problems(json!([
        {"name": "a", "type": "", "payload": {"x": "@<ghost.out>", "y": "$$$a.out"}},
        {"name": "A", "type": "t", "params": {"dependsOn": "nobody"}},
        {"name": "c", "type": "t", "payload": {"x": "@<d.out>"}},
        {"name": "d", "type": "t", "payload": {"x": "@<c.out>"}}
    ]));
    check(
        "many",
        &got,
        &[
            (Some("a"), Some("type"), "no `type`"),
            (Some("a"), Some("payload.x"), "`ghost`"),
            (Some("a"), Some("payload.y"), "obsolete `$$$`"),
            (Some("A"), Some("name"), "duplicate operation name"),
            (Some("A"), Some("params.dependsOn"), "`nobody`"),
            (Some("c"), None, "c → d → c"),
        ],
    );
    let err = validate_agenda(&agenda(json!([{"name": "a", "type": ""}])), &ValidationOptions::default()).unwrap_err();
    assert!(err.to_string().contains("operation a: the operation has no `type`"), "{err}");
}

#[test]
fn payload_size_limit_names_size_and_limit() {
    let opts = ValidationOptions { max_payload_bytes: 20, ..ValidationOptions::default() };
    let a = agenda(json!([
        {"name": "small", "type": "t", "payload": {"a": 1}},
        {"name": "big", "type": "t", "payload": {"data": "0123456789abcdef"}}
    ]));
    let got = problems_with(&a, &opts);
    // {"data":"0123456789abcdef"} is 27 bytes.
    check(
        "size",
        &got,
        &[(Some("big"), Some("payload"), "the payload is 27 bytes of JSON, over the limit of 20 bytes")],
    );
    assert!(validate_agenda(&a, &ValidationOptions::default()).is_ok());
}

#[test]
fn too_many_operations_is_one_problem() {
    let opts = ValidationOptions { max_operations: 2, ..ValidationOptions::default() };
    let got = problems_with(&agenda(json!([{"name": "a"}, {"name": "a"}, {"name": ""}])), &opts);
    check("max", &got, &[(None, Some("operations"), "the agenda has 3 operations, more than the limit of 2")]);
}

#[test]
fn original_cycle_case() {
    let got = problems(json!([
        {"name": "Op1", "type": "t", "payload": {"x": "@<Op2.out::/a>"}},
        {"name": "Op2", "type": "t", "payload": {"x": "@<Op3.out::/a>"}},
        {"name": "Op3", "type": "t", "payload": {"x": "@<Op4.out::/a>"}},
        {"name": "Op4", "type": "t", "payload": {"x": "@<Op1.out::/a>"}},
        {"name": "Op5", "type": "t", "payload": {"x": "@<Op1.out::/a>"}}
    ]));
    check("original", &got, &[(Some("Op1"), None, "circular dependency: Op1 → Op2 → Op3 → Op4 → Op1")]);
}

#[test]
fn each_cycle_is_named_once_and_extra_members_are_listed() {
    let got = problems(json!([
        {"name": "a", "type": "t", "params": {"dependsOn": "b"}},
        {"name": "b", "type": "t", "params": {"dependsOn": "a,c"}},
        {"name": "c", "type": "t", "params": {"dependsOn": "b"}},
        {"name": "x", "type": "t", "params": {"dependsOn": "y"}},
        {"name": "y", "type": "t", "params": {"dependsOn": "x"}}
    ]));
    check("two", &got, &[(Some("a"), None, "a → b → a (→ reads"), (Some("x"), None, "x → y → x")]);
    assert!(got[0].message.ends_with("; also caught in this tangle: c"), "{}", got[0].message);
}

#[test]
fn a_long_chain_cycle_does_not_overflow_the_stack() {
    let n = 50_000;
    let mut ops: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("op{i}"), "type": "t", "params": {"dependsOn": format!("op{}", i + 1)}}))
        .collect();
    ops[n - 1] = json!({"name": format!("op{}", n - 1), "type": "t", "payload": {"x": "@<op0.out>"}});
    let got = problems(Value::Array(ops));
    assert_eq!(got.len(), 1);
    assert!(got[0].message.starts_with("circular dependency: op0 → op1 → op2"), "{}", &got[0].message[..200]);
    assert!(got[0].message.contains("op49999 → op0 ("));
}

#[test]
fn compat_agenda_fixtures() {
    let Some(dir) = fixtures_dir("compat_agenda_fixtures") else { return };
    let opts = ValidationOptions::default();
    for name in ["payload.json", "multiSamplePayload.json", "filterAgenda.json", "sampleAgenda.json"] {
        let a: Agenda = serde_json::from_value(read_json(&dir, &format!("agendas/{name}"))).unwrap();
        if let Err(e) = validate_agenda(&a, &opts) {
            panic!("{name} should validate: {e}");
        }
    }
    let a: Agenda = serde_json::from_value(read_json(&dir, "agendas/multiSamplePayload.json")).unwrap();
    let deps: usize = a.operations.iter().map(|o| dependencies(o).len()).sum();
    assert!(deps > 20, "the 65-op fixture is a DAG with many references, saw {deps}");

    let noop: Agenda = serde_json::from_value(read_json(&dir, "agendas/NoopAgenda.json")).unwrap();
    check("NoopAgenda", &problems_with(&noop, &opts), &[(None, Some("operations"), "no operations")]);

    let legacy: Agenda = serde_json::from_value(read_json(&dir, "agendas/sampleActions-legacy-syntax.json")).unwrap();
    let field = Some("payload.actions[0].paramsMap.logMessage");
    let got = problems_with(&legacy, &opts);
    check(
        "legacy",
        &got,
        &[
            (Some("sample.2"), field, "write `@<sample.1.out::/actionData>` instead"),
            (Some("sample.3"), field, "write `@<sample.2.out::/actionData>` instead"),
        ],
    );
    assert!(got[0].message.starts_with("`$$$sample.1.out::/actionData` uses the obsolete `$$$` reference prefix"));
}

#[test]
fn generated_operations() {
    let existing = agenda(json!([
        {"name": "Gen", "type": "updateAgenda"},
        {"name": "probe", "type": "t"}
    ]))
    .operations;
    let opts = ValidationOptions::default();
    let ok = agenda(json!([
        {"name": "part1", "type": "t", "payload": {"in": "@<probe.out::/f>"}, "params": {"generatedOperationParent": "Gen"}},
        {"name": "part2", "type": "t", "payload": {"in": "@<part1.out>"}, "params": {"dependsOn": "Gen"}}
    ]))
    .operations;
    assert!(validate_generated(&existing, &ok, &opts).is_ok());
    assert!(validate_generated(&existing, &[], &opts).is_ok());

    let bad = agenda(json!([
        {"name": "gen", "type": "t"},
        {"name": "p", "type": "t", "payload": {"in": "@<ghost.out>"}, "params": {"dependsOn": "q"}},
        {"name": "q", "type": "t", "payload": {"in": "@<p.out>"}},
        {"name": "", "type": "t"}
    ]))
    .operations;
    let got = match validate_generated(&existing, &bad, &opts) {
        Err(Error::Invalid(p)) => p.0,
        other => panic!("{other:?}"),
    };
    check(
        "generated",
        &got,
        &[
            (Some("gen"), Some("name"), "has the name of an existing operation `Gen`"),
            (Some("p"), Some("payload.in"), "`ghost` is neither in the agenda nor among the generated operations"),
            (Some("p"), None, "p → q → p"),
            (None, Some("generated[3].name"), "generated[3] (unnamed)"),
        ],
    );

    let limit = ValidationOptions { max_operations: 3, ..opts };
    let got = validate_generated(&existing, &ok, &limit).unwrap_err();
    assert!(got.to_string().contains("2 existing and 2 generated operations make 4"), "{got}");
}

#[test]
fn dependencies_in_first_seen_order() {
    let op: Operation = serde_json::from_value(json!({
        "name": "x", "type": "t",
        "payload": {"a": "@<b.out::/f>", "b": ["@<pop.agendaId>", "@<c.out>-@<b.out>"], "m": "@<broken"},
        "params": {"dependsOn": "b, d,,"}
    }))
    .unwrap();
    assert_eq!(dependencies(&op), vec!["b", "c", "d"]);
    let none: Operation = serde_json::from_value(json!({"name": "x", "type": "t"})).unwrap();
    assert!(dependencies(&none).is_empty());
}

/// A random DAG: operation `i` depends on some `j < i`, half through references and half through dependsOn.
fn dag() -> impl Strategy<Value = Vec<Vec<(usize, bool)>>> {
    (2usize..40).prop_flat_map(|n| {
        (0..n).map(|i| proptest::collection::vec((0..i.max(1), any::<bool>()), 0..4.min(i + 1))).collect::<Vec<_>>()
    })
}

fn build(deps: &[Vec<(usize, bool)>]) -> Agenda {
    let ops: Vec<Value> = deps
        .iter()
        .enumerate()
        .map(|(i, ds)| {
            let refs: Vec<String> =
                ds.iter().filter(|(j, r)| *r && *j < i).map(|(j, _)| format!("@<op{j}.out::/v?>")).collect();
            let depends: Vec<String> =
                ds.iter().filter(|(j, r)| !*r && *j < i).map(|(j, _)| format!("op{j}")).collect();
            json!({"name": format!("op{i}"), "type": "t", "payload": {"refs": refs}, "params": {"dependsOn": depends}})
        })
        .collect();
    agenda(Value::Array(ops))
}

proptest! {
    #[test]
    fn validation_finds_the_edges_the_graph_finds(deps in dag()) {
        // Validation records the dependencies it checks as the edges of its graph; on a valid agenda they
        // are exactly those of the graph built by the one dependency parser.
        let a = build(&deps);
        let opts = ValidationOptions::default();
        let mut checker = Checker::new(&[], &a.operations, &opts, "operations");
        prop_assert!(checker.run().is_empty());
        let mut seen: Vec<(usize, usize, EdgeKind)> = checker.graph.edges().collect();
        let mut expected: Vec<(usize, usize, EdgeKind)> = crate::dag::AgendaGraph::new(&a).edges().collect();
        seen.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn random_dags_validate_and_a_back_edge_is_a_named_cycle(
        deps in dag(),
        pick in any::<(prop::sample::Index, prop::sample::Index, bool)>(),
    ) {
        let n = deps.len();
        let a = build(&deps);
        prop_assert!(validate_agenda(&a, &ValidationOptions::default()).is_ok());

        // A back edge lo → hi (lo depends on hi), with hi reaching lo through forward edges or directly.
        let (x, y, by_ref) = pick;
        let (mut lo, mut hi) = (x.index(n), y.index(n));
        if lo == hi { hi = (hi + 1) % n; }
        if lo > hi { std::mem::swap(&mut lo, &mut hi); }
        let mut deps = deps;
        deps[hi].push((lo, true)); // make sure hi depends on lo, so the back edge closes a cycle
        let mut a = build(&deps);
        let op = &mut a.operations[lo];
        if by_ref {
            op.payload = json!({"back": format!("@<op{hi}.out>")});
        } else {
            op.params = Some(json!({"dependsOn": format!("op{hi}")}).as_object().unwrap().clone());
        }
        let got = problems_with(&a, &ValidationOptions::default());
        prop_assert_eq!(got.len(), 1, "{:?}", got);
        let msg = &got[0].message;
        let cycle = msg.strip_prefix("circular dependency: ").and_then(|m| m.split(" (").next()).unwrap();
        let names: Vec<&str> = cycle.split(" → ").collect();
        prop_assert_eq!(names.first(), names.last());
        let lo_name = format!("op{lo}");
        let hi_name = format!("op{hi}");
        prop_assert!(names.contains(&lo_name.as_str()) && names.contains(&hi_name.as_str()), "{}", msg);
        // Every step of the named cycle is a real dependency.
        for w in names.windows(2) {
            let from = a.operation(w[0]).unwrap();
            prop_assert!(dependencies(from).iter().any(|d| *d == w[1]), "{} does not depend on {}", w[0], w[1]);
        }
    }
}
