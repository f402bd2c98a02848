//! The documented shell handler (examples/handlers/hello.sh) works, through its documented registry.

use futures_util::StreamExt;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, LogStream, PodRuntime, RuntimeEvent};
use pop_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use serde_json::{Value, json};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

async fn run(rt: &ProcessRuntime, op_type: &str, payload: Value) -> Vec<RuntimeEvent> {
    let req = LaunchRequest {
        agenda_id: "a-1".into(),
        operation_name: "greet".into(),
        operation_type: op_type.into(),
        payload,
        ..LaunchRequest::default()
    };
    let launched = rt.launch(req).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), launched.events.collect()).await.unwrap()
}

fn output(events: &[RuntimeEvent]) -> Option<Value> {
    events.iter().rev().find_map(|e| match e {
        RuntimeEvent::Output(v) => Some(v.clone()),
        _ => None,
    })
}

fn exit(events: &[RuntimeEvent]) -> pop_core::runtime::Exit {
    match events.last() {
        Some(RuntimeEvent::Exited(e)) => e.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hello_sh_through_the_example_registry() {
    // The example registry names the script relative to the package root (the tests' working directory).
    let registry = HandlerRegistry::from_path(format!("{DIR}/examples/handlers/registry.json")).unwrap();
    assert!(registry.handler("sample").unwrap().process.is_some());
    let rt = ProcessRuntime::new(registry);
    let events = run(&rt, "hello", json!({"name": "world"})).await;
    assert!(exit(&events).success, "{events:?}");
    assert_eq!(output(&events), Some(json!({"greeting": "hello", "operation": "greet", "payload": {"name": "world"}})));
    let percents: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Progress(p) => p.percent_complete,
            _ => None,
        })
        .collect();
    assert_eq!(percents, vec![10.0, 90.0]);
    assert!(
        events.iter().any(
            |e| matches!(e, RuntimeEvent::Log(LogStream::Stderr, l) if l.contains("operation greet of agenda a-1"))
        )
    );
}

#[tokio::test]
async fn hello_sh_reads_the_compressed_payload_and_fails_when_asked() {
    let script = format!("{DIR}/examples/handlers/hello.sh");
    let registry = HandlerRegistry::from_value(
        json!({
            "hello": {"process": {"command": "/bin/sh", "args": [script]}},
            "failing": {"process": {"command": "/bin/sh", "args": [script], "env": {"HELLO_FAIL": "1"}}}
        }),
        "test",
    )
    .unwrap();
    let rt =
        ProcessRuntime::with_config(registry, ProcessRuntimeConfig::default().compress_threshold(64).chunk_size(50));
    let payload = json!({"items": (0..200).map(|i| json!({"i": i})).collect::<Vec<_>>()});
    let events = run(&rt, "hello", payload.clone()).await;
    assert!(exit(&events).success, "{events:?}");
    assert_eq!(output(&events).unwrap()["payload"], payload);

    let events = run(&rt, "failing", json!({})).await;
    let e = exit(&events);
    assert!(!e.success);
    assert_eq!(e.code, Some(3));
    let last = &e.diagnostic.unwrap().payload["lastLines"];
    assert!(last.to_string().contains("failing as asked"), "{last}");
}
