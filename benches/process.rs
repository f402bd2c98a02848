//! Benches for pop-runtime-process: launch-to-result overhead of one operation, and throughput with
//! 2, 8 and 32 concurrent operations (real child processes).
//!
//! `cargo bench -p pop-benches --bench process`. The sample handler binary is looked up in
//! `POP_SAMPLE_HANDLER`, then next to this bench's target directory (building it with cargo if missing).
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, PodRuntime, RuntimeEvent};
use pop_runtime_process::{ProcessRuntime, collect_events};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn sample_handler() -> PathBuf {
    if let Some(p) = std::env::var_os("POP_SAMPLE_HANDLER") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/process-<hash> → target/<profile>/pop-sample-handler
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target profile directory").to_path_buf();
    let bin = profile_dir.join("pop-sample-handler");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "pop-runtime-process", "--bin", "pop-sample-handler"])
            .status()
            .expect("run cargo build for pop-sample-handler");
        assert!(status.success(), "building pop-sample-handler failed");
    }
    assert!(bin.exists(), "pop-sample-handler not found at {} (set POP_SAMPLE_HANDLER)", bin.display());
    bin
}

fn runtime() -> ProcessRuntime {
    let registry = HandlerRegistry::from_value(
        json!({
            "trivial": {"process": {"command": "/bin/sh", "args": ["-c", "echo POP_RESULT {}"]}},
            "sample": {"process": {"command": sample_handler()}},
        }),
        "bench",
    )
    .expect("bench registry");
    ProcessRuntime::new(registry)
}

fn sample_payload() -> Value {
    json!({
        "actions": [
            {"action": "log", "paramsMap": {"sleepMilliseconds": 0, "logMessage": "This is a custom log message"}},
        ],
        "resultPayload": {"actionData": "firstAction"}
    })
}

fn request(op_type: &str, payload: Value, i: usize) -> LaunchRequest {
    LaunchRequest {
        agenda_id: "bench".into(),
        operation_name: format!("op{i}"),
        operation_type: op_type.into(),
        payload,
        ..LaunchRequest::default()
    }
}

async fn one(rt: &ProcessRuntime, op_type: &str, payload: Value, i: usize) {
    let launched = rt.launch(request(op_type, payload, i)).await.expect("launch");
    let handle = launched.handle.clone();
    let events = collect_events(launched.events).await;
    match events.last() {
        Some(RuntimeEvent::Exited(e)) if e.success => {}
        other => panic!("operation failed: {other:?}"),
    }
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Output(_))), "no output");
    rt.cleanup(&handle).await.expect("cleanup");
}

fn launch_to_result(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let rt = runtime();
    let mut group = c.benchmark_group("process/launch_to_result");
    group.sample_size(50).measurement_time(Duration::from_secs(8));
    group.bench_function("trivial_sh", |b| b.iter(|| tokio.block_on(one(&rt, "trivial", json!({}), 0))));
    group.bench_function("sample_handler", |b| b.iter(|| tokio.block_on(one(&rt, "sample", sample_payload(), 0))));
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let rt = runtime();
    let mut group = c.benchmark_group("process/throughput");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for n in [2usize, 8, 32] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("trivial_sh", n), &n, |b, &n| {
            b.iter(|| {
                tokio.block_on(async {
                    let tasks: Vec<_> = (0..n)
                        .map(|i| {
                            let rt = rt.clone();
                            tokio::spawn(async move { one(&rt, "trivial", json!({}), i).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("operation task");
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, launch_to_result, throughput);
criterion_main!(benches);
