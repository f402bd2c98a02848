//! Core benches: reference parsing and resolution, validation, dependencies and template expansion, on
//! the original's 65-operation agenda (`$POP_COMPAT_FIXTURES/agendas/multiSamplePayload.json`, or an
//! equivalent generated one when the variable is unset) and on a generated 10,000-operation layered DAG
//! (1,000 layers of 10; every operation references all 10 of the previous layer: fan-out and fan-in 10).
//!
//! Run: `cargo bench -p pop-benches --bench core`.
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pop_benches::thread_cpu_secs;
use pop_core::dag::dependencies;
use pop_core::model::{Agenda, AgendaTemplate};
use pop_core::refs::ParsedDocument;
use pop_core::validate::{ValidationOptions, validate_agenda};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hint::black_box;

/// The original's 65-operation agenda, or one of the same shape (65 `sample` operations, the last 25
/// each referencing an earlier one's `/actionData`).
fn agenda_65() -> (Agenda, &'static str) {
    if let Some(dir) = pop_core::compat::fixtures_dir("core bench (65-op fixture)") {
        let v = pop_core::compat::read_json(&dir, "agendas/multiSamplePayload.json");
        match serde_json::from_value::<Agenda>(v) {
            Ok(a) => return (a, "fixture"),
            Err(e) => eprintln!("multiSamplePayload.json does not parse ({e}); using a generated agenda"),
        }
    }
    let ops: Vec<Value> = (1..=65)
        .map(|i| {
            let message = if i > 40 {
                format!("@<Sample.{}.out::/actionData>", (i * 7) % 40 + 1)
            } else {
                "a log message".into()
            };
            json!({"id": i.to_string(), "name": format!("Sample.{i}"), "type": "sample", "payload": {
                "actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 3000, "logMessage": message}}],
                "resultPayload": {"actionData": "firstAction A"}
            }})
        })
        .collect();
    (serde_json::from_value(json!({ "operations": ops })).expect("generated agenda parses"), "generated")
}

/// `layers` layers of `width` operations; each references every operation of the previous layer.
fn layered(layers: usize, width: usize) -> Agenda {
    let mut ops = Vec::with_capacity(layers * width);
    for l in 0..layers {
        for w in 0..width {
            let inputs: Vec<String> = if l == 0 {
                Vec::new()
            } else {
                (0..width).map(|p| format!("@<op.{}.{p}.out::/file>", l - 1)).collect()
            };
            ops.push(json!({
                "name": format!("op.{l}.{w}"),
                "type": "encode",
                "payload": {"inputs": inputs, "preset": "hd", "label": "layer @<pop.agendaId>", "n": l * width + w},
                "params": {"timeoutMs": 60_000}
            }));
        }
    }
    serde_json::from_value(json!({ "operations": ops })).expect("generated agenda parses")
}

/// Every operation's output, as the executor holds them once all operations are done.
fn outputs(agenda: &Agenda) -> HashMap<String, Value> {
    let mut ctx: HashMap<String, Value> = agenda
        .operations
        .iter()
        .map(|o| (format!("{}.out", o.name), json!({"file": format!("{}.mp4", o.name), "actionData": "done"})))
        .collect();
    ctx.insert("pop.agendaId".into(), json!("agenda-1"));
    ctx
}

fn bench_agenda(c: &mut Criterion, label: &str, agenda: &Agenda) {
    let n = agenda.operations.len() as u64;
    let opts = ValidationOptions::default();
    assert!(validate_agenda(agenda, &opts).is_ok(), "{label} must validate");
    let ctx = outputs(agenda);
    let parsed: Vec<ParsedDocument> =
        agenda.operations.iter().map(|o| ParsedDocument::parse(o.payload.clone())).collect();

    let mut g = c.benchmark_group(format!("core/{label}"));
    g.throughput(Throughput::Elements(n));
    g.bench_function("validate_agenda", |b| b.iter(|| validate_agenda(black_box(agenda), &opts)));
    g.bench_function("dependencies", |b| {
        b.iter(|| agenda.operations.iter().map(|o| dependencies(black_box(o)).len()).sum::<usize>())
    });
    g.bench_function("refs_parse", |b| {
        b.iter(|| {
            agenda
                .operations
                .iter()
                .map(|o| ParsedDocument::parse(black_box(o.payload.clone())).sites().len())
                .sum::<usize>()
        })
    });
    g.bench_function("refs_resolve_parsed", |b| {
        b.iter(|| parsed.iter().map(|d| d.resolve(black_box(&ctx)).missing.len()).sum::<usize>())
    });
    g.finish();
}

fn core(c: &mut Criterion) {
    let (a65, source) = agenda_65();
    eprintln!("core bench: 65-op agenda from the {source}");
    bench_agenda(c, "65ops", &a65);
    let big = layered(1_000, 10);
    bench_agenda(c, "10k_layered", &big);

    let mut g = c.benchmark_group("core/validate_layered");
    g.sample_size(20);
    for (layers, width) in [(100, 10), (1_000, 10), (10_000, 10)] {
        let a = layered(layers, width);
        g.throughput(Throughput::Elements((layers * width) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(layers * width), &a, |b, a| {
            b.iter(|| validate_agenda(black_box(a), &ValidationOptions::default()))
        });
    }
    g.finish();

    let template: AgendaTemplate = serde_json::from_value(json!({
        "title": "encode",
        "staticParameters": {"preset": "hd"},
        "agenda": {"operations": [
            {"name": "probe", "type": "probe", "payload": {"file": "@<pop.payload::/file>"}},
            {"name": "encode", "type": "encode", "payload": {"in": "@<probe.out::/file>", "preset": "@<preset>"}}
        ]}
    }))
    .expect("template parses");
    let payload = json!({"file": "dog.mp4"});
    c.bench_function("core/template_expand_2ops", |b| {
        b.iter(|| pop_core::template::expand(black_box(&template), black_box(&payload)))
    });
}

/// CPU time per call of `f`, run until it has used at least one CPU-second: on a shared machine, wall
/// time also counts the time other processes hold the cores; CPU time does not.
fn cpu_per_call(mut f: impl FnMut()) -> Option<f64> {
    let start = thread_cpu_secs()?;
    let mut calls = 0u64;
    let mut spent = 0.0;
    while spent < 1.0 {
        f();
        calls += 1;
        spent = thread_cpu_secs()? - start;
    }
    Some(spent / calls as f64)
}

/// Prints the CPU time per call of the main measurements.
fn cpu_table(c: &mut Criterion) {
    let _ = c;
    if thread_cpu_secs().is_none() {
        println!("cpu: /proc/thread-self/stat unavailable; skipping the CPU-time table");
        return;
    }
    let opts = ValidationOptions::default();
    let (a65, _) = agenda_65();
    let big = layered(1_000, 10);
    let ctx = outputs(&big);
    let parsed: Vec<ParsedDocument> = big.operations.iter().map(|o| ParsedDocument::parse(o.payload.clone())).collect();
    println!("cpu: CPU time per call (this thread's user+system time)");
    let rows: Vec<(&str, Option<f64>)> = vec![
        ("validate_agenda 65 ops", cpu_per_call(|| drop(black_box(validate_agenda(black_box(&a65), &opts))))),
        ("validate_agenda 10k layered", cpu_per_call(|| drop(black_box(validate_agenda(black_box(&big), &opts))))),
        (
            "refs_resolve_parsed 10k layered",
            cpu_per_call(|| {
                black_box(parsed.iter().map(|d| d.resolve(&ctx).missing.len()).sum::<usize>());
            }),
        ),
    ];
    for (name, t) in rows {
        match t {
            Some(t) => println!("cpu: {name:<34} {:>10.3} ms", t * 1e3),
            None => println!("cpu: {name:<34} unavailable"),
        }
    }
}

criterion_group!(benches, core, cpu_table);
criterion_main!(benches);
