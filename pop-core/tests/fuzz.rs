//! Fuzzing without a nightly toolchain: structure-aware proptest generators and byte-level mutation of
//! the original POP's documents, over every parser of pop-core that takes outside input: agenda JSON →
//! validation, the reference language (parse, resolve, substitute), template expansion and the handler
//! registry.
//!
//! Each case runs on its own thread under a time bound ([`bounded`]): a panic or a hang fails the case
//! with its input. Every error must say where: an `Invalid` problem names an operation or a field, a
//! JSON syntax error names a line and column.
//!
//! `cargo test -p pop-core --test fuzz` runs 256 cases per property; the long run is
//! `PROPTEST_CASES=100000 cargo test -p pop-core --test fuzz --release`. The mutation properties read
//! their seeds from `POP_COMPAT_FIXTURES` (skipped with a message when unset).

use pop_core::model::{Agenda, AgendaTemplate};
use pop_core::refs::{ParsedDocument, Template, resolve};
use pop_core::registry::HandlerRegistry;
use pop_core::validate::{ValidationOptions, validate_agenda};
use pop_core::{Error, compat};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// The most one case may take (debug build, loaded 2-core machine) before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread: a panic or a run past [`CASE_LIMIT`] fails with `input` in the message.
fn bounded<T: Send + 'static>(what: &str, input: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("fuzz-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a fuzz case thread");
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hang (over {CASE_LIMIT:?}) on input {input}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked on input {input}"),
    }
}

fn config() -> ProptestConfig {
    // `PROPTEST_CASES` overrides the default 256 cases.
    ProptestConfig { failure_persistence: None, max_shrink_iters: 2_000, ..ProptestConfig::default() }
}

/// Asserts that an error says where the problem is.
fn assert_located(what: &str, input: &str, e: &Error) {
    match e {
        Error::Invalid(problems) => {
            assert!(!problems.0.is_empty(), "{what}: Invalid with no problem on input {input}");
            for p in &problems.0 {
                // A problem of the whole document (its root has the wrong type) names the document.
                let whole = p.message.contains("expected a JSON object");
                let located = p.operation.is_some()
                    || p.field.is_some()
                    || whole
                    || (p.message.contains("line ") && p.message.contains("column "));
                assert!(located, "{what}: problem {p:?} names no operation, field or position on input {input}");
                assert!(!p.message.trim().is_empty(), "{what}: empty message on input {input}");
            }
        }
        other => panic!("{what}: expected Invalid, got {other:?} on input {input}"),
    }
}

fn assert_json_error_located(what: &str, input: &str, e: &serde_json::Error) {
    let msg = e.to_string();
    assert!(e.line() > 0 || msg.contains("line "), "{what}: JSON error without a position: {msg} on input {input}");
}

// ---------------------------------------------------------------------------------------------------
// Generators

/// Names: plain, dotted, reserved-looking, empty, blank, non-ASCII.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "encode", "probe"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["", " ", "a.out", "pop.agendaId", "a,b", "é", "a\u{0}b", "@<a>"])
            .prop_map(str::to_owned),
        1 => Just("x".repeat(300)),
        1 => "[a-z.,@<>?:/ ]{0,8}",
    ]
}

/// One piece of a string that may hold references: text, well-formed references of every shape, and
/// the fragments of malformed ones.
fn piece() -> impl Strategy<Value = String> {
    let target = prop_oneof![
        name().prop_map(|n| format!("{n}.out")),
        name(),
        prop::sample::select(vec!["pop.agendaId", "pop.operationName", "pop.params", "pop.payload", "pop.nope"])
            .prop_map(str::to_owned),
    ];
    let pointer = prop_oneof![
        Just(String::new()),
        "(/[a-z0-9~]{0,4}){1,3}".prop_map(|p| format!("::{p}")),
        prop::sample::select(vec!["::", "::/", "::/~", "::/~2", "::/0/1", "::a", ":/x", "::/a?b"])
            .prop_map(str::to_owned),
    ];
    let fallback = prop_oneof![Just(String::new()), Just("?".to_owned()), "\\?[a-z <>@]{0,5}"];
    prop_oneof![
        3 => "[a-z /.:?]{0,6}",
        4 => (target, pointer, fallback).prop_map(|(t, p, f)| format!("@<{t}{p}{f}>")),
        2 => prop::sample::select(vec!["@", "<", ">", "@<", "@<>", "@@<a>", "@<@<a>>", "@<a", "a>", "~", "\\", "\u{fffd}", "é"])
            .prop_map(str::to_owned),
    ]
}

fn ref_string() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..6).prop_map(|p| p.concat())
}

/// A JSON value whose strings may hold references.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ref_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop_oneof!["[a-z]{1,4}", name(), ref_string()], inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `params` of an operation: dependsOn in every form, retry, timeouts, generators, junk.
fn op_params() -> impl Strategy<Value = Value> {
    let depends = prop_oneof![
        name().prop_map(Value::String),
        prop::collection::vec(name(), 0..4).prop_map(|v| json!(v)),
        prop::collection::vec(name(), 0..4).prop_map(|v| json!(v.join(","))),
        json_value(),
    ];
    (
        prop::option::of(depends),
        prop::option::of(prop_oneof![
            json_value(),
            (any::<i32>(), any::<i64>(), any::<f64>()).prop_map(|(a, b, m)| {
                json!({"maxAttempts": a, "backoffMs": b, "backoffMultiplier": serde_json::Number::from_f64(m)})
            }),
        ]),
        prop::option::of(prop_oneof![any::<i64>().prop_map(Value::from), json_value()]),
        prop::option::of(json_value()),
        prop::collection::vec(("[a-zA-Z.]{1,12}", json_value()), 0..3),
    )
        .prop_map(|(dep, retry, timeout, generator, extra)| {
            let mut m = serde_json::Map::new();
            if let Some(d) = dep {
                m.insert("dependsOn".into(), d);
            }
            if let Some(r) = retry {
                m.insert("retry".into(), r);
            }
            if let Some(t) = timeout {
                m.insert("timeoutMs".into(), t);
            }
            if let Some(g) = generator {
                m.insert("agenda.operation.generator".into(), g);
            }
            m.extend(extra);
            Value::Object(m)
        })
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::option::of(name()),
        prop::option::of(prop_oneof![name().prop_map(Value::String), json_value()]),
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![op_params(), json_value()]),
        prop::option::of(prop_oneof![name().prop_map(Value::String), any::<i64>().prop_map(Value::from)]),
    )
        .prop_map(|(name, ty, payload, params, id)| {
            let mut m = serde_json::Map::new();
            if let Some(n) = name {
                m.insert("name".into(), Value::String(n));
            }
            if let Some(t) = ty {
                m.insert("type".into(), t);
            }
            if let Some(p) = payload {
                m.insert("payload".into(), p);
            }
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            if let Some(i) = id {
                m.insert("id".into(), i);
            }
            Value::Object(m)
        })
}

fn agenda_json() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(operation(), 0..8),
        prop::option::of(json_value()),
        prop::option::of(name()),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(ops, params, customer, priority)| {
            let mut m = serde_json::Map::new();
            m.insert("operations".into(), Value::Array(ops));
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            if let Some(c) = customer {
                m.insert("customerId".into(), Value::String(c));
            }
            if let Some(p) = priority {
                m.insert("priority".into(), Value::from(p));
            }
            Value::Object(m)
        })
}

// ---------------------------------------------------------------------------------------------------
// Byte-level mutation

/// Bytes that matter to JSON and to the reference language.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"@<",
    b">",
    b"::/",
    b"?",
    b"~",
    b"null",
    b"true",
    b"-0",
    b"1e999999",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"0.0000001e-400",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\"@<a.out::/x?>\"",
    b"\"dependsOn\"",
    b"\"operations\"",
    b"\"basePodConfig\"",
    b"\"process\"",
    b"\"podConfig\"",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// One mutation: `(kind, position, argument)`.
type Mutation = (u8, usize, usize);

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec((0u8..6, any::<usize>(), any::<usize>()), 1..8)
}

fn mutate(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(kind, pos, arg) in muts {
        let at = if out.is_empty() { 0 } else { pos % (out.len() + 1) };
        match kind {
            // flip a bit
            0 if at < out.len() => out[at] ^= 1 << (arg % 8),
            // replace a byte
            1 if at < out.len() => out[at] = arg as u8,
            // insert an interesting token
            2 => {
                let tok = INTERESTING[arg % INTERESTING.len()];
                out.splice(at..at, tok.iter().copied());
            }
            // delete a range
            3 => {
                let end = (at + arg % 16 + 1).min(out.len());
                out.drain(at..end);
            }
            // duplicate a range
            4 => {
                let end = (at + arg % 64 + 1).min(out.len());
                let chunk: Vec<u8> = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            // truncate
            _ => out.truncate(at),
        }
    }
    out
}

/// The seed documents of a corpus subdirectory, or none (with a message) when the corpus is absent.
fn seeds(sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Some(dir) = compat::fixtures_dir(&format!("fuzz mutation of {sub}")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
        .unwrap_or_else(|e| panic!("read {sub}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

// ---------------------------------------------------------------------------------------------------
// The checks, shared by the generated and the mutated inputs

/// Agenda JSON bytes → parse → validate.
fn check_agenda_bytes(bytes: Vec<u8>) {
    let input = show(&bytes);
    let input2 = input.clone();
    bounded("agenda", &input, move || match serde_json::from_slice::<Agenda>(&bytes) {
        Err(e) => assert_json_error_located("agenda parse", &input2, &e),
        Ok(agenda) => {
            if let Err(e) = validate_agenda(&agenda, &ValidationOptions::default()) {
                assert_located("validate_agenda", &input2, &e);
            }
            // Whatever validates also builds its DAG and resolves every payload without a panic.
            for op in &agenda.operations {
                let _ = resolve(&op.payload, &HashMap::<String, Value>::new());
            }
        }
    });
}

/// Registry JSON text → parse.
fn check_registry_bytes(bytes: Vec<u8>) {
    let input = show(&bytes);
    let input2 = input.clone();
    bounded("registry", &input, move || {
        let Ok(text) = String::from_utf8(bytes) else { return };
        match HandlerRegistry::from_json_str(&text) {
            Err(e) => assert_located("registry", &input2, &e),
            Ok(reg) => {
                for t in reg.types().map(str::to_owned).collect::<Vec<_>>() {
                    reg.handler(&t).expect("a listed type has a handler");
                }
                let e = reg.handler("\u{0}no such type").unwrap_err();
                assert_located("registry unknown type", &input2, &e);
            }
        }
    });
}

/// Template JSON + payload → expand → validate.
fn check_template(template: Vec<u8>, payload: Value) {
    let input = format!("template {} payload {payload}", show(&template));
    let input2 = input.clone();
    bounded("template", &input, move || {
        let template: AgendaTemplate = match serde_json::from_slice(&template) {
            Ok(t) => t,
            Err(e) => return assert_json_error_located("template parse", &input2, &e),
        };
        match pop_core::template::expand(&template, &payload) {
            Err(e) => assert_located("expand", &input2, &e),
            Ok(agenda) => {
                if let Err(e) = validate_agenda(&agenda, &ValidationOptions::default()) {
                    assert_located("validate expanded", &input2, &e);
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// Generated agendas: parse and validation never panic or hang; every problem says where.
    #[test]
    fn generated_agendas(agenda in agenda_json()) {
        check_agenda_bytes(serde_json::to_vec(&agenda).unwrap());
    }

    /// Generated strings: the reference parser finds what it reports, and resolution against an empty
    /// context changes nothing and reports every name as missing or invalid.
    #[test]
    fn generated_reference_strings(s in ref_string(), doc in json_value()) {
        let input = format!("{s:?} / {doc}");
        bounded("refs", &input.clone(), move || {
            let (template, malformed) = Template::parse(&s);
            for m in &malformed {
                assert!(s.contains(&m.text), "malformed text {:?} not in {s:?}", m.text);
                assert!(!m.message.is_empty());
            }
            if let Some(t) = &template {
                for r in t.references() {
                    assert!(s.contains(&r.raw), "reference {:?} not in {s:?}", r.raw);
                    assert!(r.raw.starts_with("@<") && r.raw.ends_with('>'), "reference {:?}", r.raw);
                }
            }
            let doc = json!({"s": s, "doc": doc, "arr": [s, doc]});
            let parsed = ParsedDocument::parse(doc.clone());
            let empty = HashMap::<String, Value>::new();
            let r = parsed.resolve(&empty);
            assert_eq!(r.value, doc, "resolving against nothing changed the document");
            for inv in &r.invalid {
                assert!(!inv.reference.is_empty() && !inv.message.is_empty(), "{inv:?}");
            }
        });
    }

    /// Generated strings against a context that has every generated name, with values of every type.
    #[test]
    fn generated_substitution(doc in json_value(), values in prop::collection::vec(json_value(), 1..4)) {
        let input = format!("{doc} / {values:?}");
        bounded("substitute", &input.clone(), move || {
            let mut ctx: HashMap<String, Value> = HashMap::new();
            for (i, n) in ["a", "b", "c", "encode", "probe"].iter().enumerate() {
                ctx.insert(format!("{n}.out"), values[i % values.len()].clone());
                ctx.insert((*n).to_owned(), values[(i + 1) % values.len()].clone());
            }
            ctx.insert("pop.agendaId".into(), json!("agenda-1"));
            let r = resolve(&doc, &ctx);
            for inv in &r.invalid {
                assert!(!inv.reference.is_empty() && !inv.message.is_empty(), "{inv:?}");
                assert!(inv.message.contains(&inv.reference) || inv.message.contains("pointer")
                    || inv.message.contains("@<"), "invalid reference message names nothing: {inv:?}");
            }
            // Resolving the result again is stable for what had no missing names.
            let _ = resolve(&r.value, &ctx);
        });
    }

    /// Generated templates and payloads: expansion never panics; every problem says where.
    #[test]
    fn generated_templates(
        ops in prop::collection::vec(operation(), 0..5),
        statics in prop::option::of(prop::collection::vec((prop_oneof![name(), Just("pop.payload".to_owned())], json_value()), 0..4)),
        payload in json_value(),
        agenda_shape in 0u8..4,
    ) {
        let agenda = match agenda_shape {
            0 => json!({"operations": ops}),
            1 => Value::Null,
            2 => json!(ops),
            _ => json!({"operations": ops, "params": {"x": "@<pop.payload>"}, "title": "@<title>"}),
        };
        let mut t = json!({"agenda": agenda});
        if let Some(s) = statics {
            t["staticParameters"] = Value::Object(s.into_iter().collect());
        }
        check_template(serde_json::to_vec(&t).unwrap(), payload);
    }

    /// Generated registries: process sections of every shape, Pod configs of every shape.
    #[test]
    fn generated_registries(
        entries in prop::collection::vec((name(), prop_oneof![
            json_value(),
            (prop::option::of(json_value()), prop::option::of(json_value()), prop::option::of(json_value()))
                .prop_map(|(cm, pod, process)| {
                    let mut m = serde_json::Map::new();
                    if let Some(v) = cm { m.insert("configMapName".into(), v); }
                    if let Some(v) = pod { m.insert("podConfig".into(), v); }
                    if let Some(v) = process { m.insert("process".into(), v); }
                    Value::Object(m)
                }),
            (name(), prop::option::of(any::<i64>()), prop::option::of(any::<i64>()), prop::option::of(json_value()))
                .prop_map(|(cmd, t, c, env)| json!({"process": {"command": cmd, "timeoutMs": t, "maxConcurrent": c, "env": env}})),
            (name(), prop::option::of(prop::collection::vec(name(), 0..3)), prop::option::of(any::<i64>()),
             prop::option::of(any::<u64>()), prop::option::of(json_value()))
                .prop_map(|(cmd, inherit, cpu, mem, other)| json!({"process": {"command": cmd, "inheritEnv": inherit,
                    "limits": {"cpuSeconds": cpu, "memoryBytes": mem, "openFiles": other}}})),
        ]), 0..5),
        base in prop::option::of(json_value()),
    ) {
        let mut m: serde_json::Map<String, Value> = entries.into_iter().collect();
        if let Some(b) = base {
            m.insert("basePodConfig".into(), b);
        }
        check_registry_bytes(serde_json::to_vec(&Value::Object(m)).unwrap());
    }

    /// Raw bytes (not JSON at all, mostly) through every parser.
    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_agenda_bytes(bytes.clone());
        check_registry_bytes(bytes.clone());
        check_template(bytes, Value::Null);
    }

    /// The original's agendas, mutated byte by byte.
    #[test]
    fn mutated_agendas(pick in any::<usize>(), muts in mutations()) {
        let seeds = seeds("agendas");
        if !seeds.is_empty() {
            check_agenda_bytes(mutate(&seeds[pick % seeds.len()].1, &muts));
        }
    }

    /// The original's registries, mutated byte by byte.
    #[test]
    fn mutated_registries(pick in any::<usize>(), muts in mutations()) {
        let seeds = seeds("registry");
        if !seeds.is_empty() {
            check_registry_bytes(mutate(&seeds[pick % seeds.len()].1, &muts));
        }
    }

    /// The original's template and its parameters, each mutated byte by byte.
    #[test]
    fn mutated_templates(muts in mutations(), pmuts in prop::option::of(mutations())) {
        let seeds = seeds("templates");
        if seeds.is_empty() {
            return Ok(());
        }
        let find = |n: &str| seeds.iter().find(|(p, _)| p.ends_with(n)).map(|(_, b)| b.clone()).unwrap();
        let template = mutate(&find("AgendaTemplate.json"), &muts);
        let params = find("AgendaTemplateParameters.json");
        let params = match pmuts { Some(m) => mutate(&params, &m), None => params };
        let payload = serde_json::from_slice(&params).unwrap_or(Value::Null);
        check_template(template, payload);
    }

    /// The original's reference documents and contexts, mutated, resolved against each other.
    #[test]
    fn mutated_references(pick in any::<usize>(), ctx_pick in any::<usize>(), muts in mutations()) {
        let seeds = seeds("references");
        if seeds.is_empty() {
            return Ok(());
        }
        let doc = mutate(&seeds[pick % seeds.len()].1, &muts);
        let ctx = seeds[ctx_pick % seeds.len()].1.clone();
        let input = show(&doc);
        bounded("references", &input.clone(), move || {
            let Ok(doc) = serde_json::from_slice::<Value>(&doc) else { return };
            let ctx: serde_json::Map<String, Value> = match serde_json::from_slice(&ctx) {
                Ok(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            let r = resolve(&doc, &ctx);
            for inv in &r.invalid {
                assert!(!inv.message.is_empty(), "{inv:?} on {input}");
            }
        });
    }
}

/// The corpus is there in CI: say how many seeds each mutation property drew from.
#[test]
fn seed_corpus_is_read() {
    for sub in ["agendas", "registry", "templates", "references"] {
        let s = seeds(sub);
        if compat::fixtures_dir("seed count").is_some() {
            assert!(!s.is_empty(), "no seed in {sub}");
        }
    }
}
