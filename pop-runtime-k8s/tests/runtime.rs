//! KubeRuntime against an in-process mock of the Kubernetes Pods API (see `mock/`): a real kube client,
//! real HTTP, real watches and log streams; the tests play the kubelet.

mod mock;

use futures_util::StreamExt;
use hyper::Method;
use mock::MockKube;
use pop_core::Error;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, LaunchedState, LogStream, PodRuntime, ProgressUpdate, RuntimeEvent};
use pop_runtime_k8s::{KubeConfig, KubeRuntime, PayloadMode, ReapPolicy, RetryPolicy, sequential_names};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const REGISTRY: &str = r#"{
  "basePodConfig": {"memoryRequestCount": "1000m", "cpuMinRequestCount": "1000m", "cpuMaxRequestCount": "1000m",
                    "podScheduledTimeoutMs": 600000, "reapCompletedPods": true, "pullAlways": true},
  "sample": {"configMapName": "pop-sample-01",
             "podConfig": {"imageName": "pop-sample:1.0.0", "namePrefix": "pop-sample",
                           "cpuMinRequestCount": "100m", "cpuMaxRequestCount": "250m"}},
  "picky": {"podConfig": {"imageName": "pop-picky:1", "namePrefix": "pop-picky", "podScheduledTimeoutMs": 1500}},
  "keep": {"podConfig": {"imageName": "pop-keep:1", "namePrefix": "pop-keep", "reapCompletedPods": false}}
}"#;

fn config() -> KubeConfig {
    KubeConfig {
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            watch_error_budget: Duration::from_secs(5),
        },
        log_drain_timeout: Duration::from_secs(3),
        name_generator: sequential_names(),
        ..KubeConfig::single_namespace("pop")
    }
}

fn runtime_with(mock: &MockKube, config: KubeConfig) -> KubeRuntime {
    let registry = HandlerRegistry::from_json_str(REGISTRY).expect("test registry");
    KubeRuntime::new(mock.client(), Arc::new(registry), config)
}

fn request(op_type: &str) -> LaunchRequest {
    LaunchRequest {
        agenda_id: "agenda-1".into(),
        agenda_progress_id: Some("progress-1".into()),
        cid: Some("cid-1".into()),
        customer_id: Some("Acme Corp".into()),
        insight_id: Some("insight-1".into()),
        operation_name: "probe".into(),
        operation_id: Some("op-1".into()),
        operation_type: op_type.into(),
        payload: json!({"file": "in.mp4"}),
        last_progress: None,
    }
}

async fn collect(events: pop_core::runtime::EventStream) -> Vec<RuntimeEvent> {
    tokio::time::timeout(Duration::from_secs(30), events.collect::<Vec<_>>())
        .await
        .expect("the event stream ended within 30 s")
}

fn exit(events: &[RuntimeEvent]) -> &pop_core::runtime::Exit {
    match events.last() {
        Some(RuntimeEvent::Exited(e)) => e,
        other => panic!("last event is not Exited: {other:?}"),
    }
}

fn outputs(events: &[RuntimeEvent]) -> Vec<Value> {
    events.iter().filter_map(|e| if let RuntimeEvent::Output(v) = e { Some(v.clone()) } else { None }).collect()
}

fn env_of(pod: &Value) -> Vec<(String, Value)> {
    pod["spec"]["containers"][0]["env"]
        .as_array()
        .map(|a| a.iter().map(|e| (e["name"].as_str().unwrap_or("").to_string(), e.clone())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn success_with_result_from_logs() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    assert_eq!(launched.handle, format!("{ns}/{name}"));
    assert_eq!(ns, "pop");
    assert_eq!(name, "pop-sample-00000001");
    let pod = mock.pod(&ns, &name).expect("created pod");
    let env = env_of(&pod);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("PAYLOAD").unwrap()["value"], json!(r#"{"file":"in.mp4"}"#));
    assert_eq!(get("POP_PAYLOAD_TYPE").unwrap()["value"], "envVar");
    assert_eq!(get("CUSTOMER_ID").unwrap()["value"], "Acme Corp");
    assert_eq!(get("MY_POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(pod["metadata"]["labels"]["pop/customer-id"], "Acme-Corp");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/managed-by"], "pop");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");

    mock.run(&ns, &name);
    mock.log(&ns, &name, "starting");
    mock.log(&ns, &name, r#"POP_PROGRESS {"percentComplete": 50, "processingStateMessage": "half"}"#);
    mock.log(&ns, &name, r#"POP_RESULT {"file": "out.mp4"}"#);
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;

    assert_eq!(events[0], RuntimeEvent::Started);
    assert!(events.contains(&RuntimeEvent::Log(LogStream::Stdout, "starting".into())), "{events:?}");
    assert!(events.contains(&RuntimeEvent::Progress(ProgressUpdate {
        percent_complete: Some(50.0),
        processing_state_message: Some("half".into()),
        ..Default::default()
    })));
    assert_eq!(outputs(&events), vec![json!({"file": "out.mp4"})]);
    let exit = exit(&events);
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.code, Some(0));
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await, "reapCompletedPods deletes the pod");
    assert!(
        !mock.requests().iter().any(|r| r.starts_with("GET /api/v1/namespaces/pop/pods/pop-sample-00000001?")),
        "the follower watches; it does not poll the pod"
    );
}

#[tokio::test]
async fn success_with_result_from_annotations_which_win_over_log_lines() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("keep")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    // Once the watch is open every change is seen (before, a list shows only the latest state).
    mock.wait_for_request("watch=true").await;
    mock.run(&ns, &name);
    mock.annotate(&ns, &name, "pop.report.progress", r#"{"processingState":"EXECUTING","percentComplete":30}"#);
    mock.log(&ns, &name, r#"POP_RESULT {"from": "log"}"#);
    mock.annotate(&ns, &name, "pop.report.payload", r#"{"from": "annotation"}"#);
    mock.annotate(
        &ns,
        &name,
        "pop.report.progress",
        r#"{"processingState":"COMPLETE","processingStateMessage":"succeeded","percentComplete":100}"#,
    );
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;
    let outs = outputs(&events);
    assert_eq!(outs.last(), Some(&json!({"from": "annotation"})), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Progress(p) if p.percent_complete == Some(30.0))));
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Progress(p) if p.percent_complete == Some(100.0))));
    assert!(exit(&events).success);
    // reapCompletedPods=false for this type: the pod stays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(mock.pod(&ns, &name).is_some());
}

#[tokio::test]
async fn annotation_reporting_failure_fails_even_when_the_pod_succeeded() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.annotate(
        &ns,
        &name,
        "pop.report.progress",
        r#"{"processingState":"COMPLETE","processingStateMessage":"failed","diagnosticEvents":[{"message":"bad input"}]}"#,
    );
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(exit.message.contains("reported failed"), "{}", exit.message);
    assert_eq!(exit.diagnostic.as_ref().and_then(|d| d.message.as_deref()), Some("bad input"));
}

#[tokio::test]
async fn failure_carries_the_log_tail() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    for i in 0..15 {
        mock.log(&ns, &name, &format!("line {i}"));
    }
    mock.terminate(&ns, &name, 3);
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert_eq!(exit.code, Some(3));
    assert!(exit.message.starts_with("Kubernetes pod failed: pop/pop-sample-"), "{}", exit.message);
    assert!(exit.message.contains("exit code 3"), "{}", exit.message);
    let tail = &exit.diagnostic.as_ref().expect("diagnostic").payload;
    let expected: Vec<Value> = (5..15).map(|i| json!(format!("line {i}"))).collect();
    assert_eq!(tail, &Value::Array(expected));
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn unschedulable_pod_times_out_with_the_reason() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("picky")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.unschedulable(&ns, &name, "0/3 nodes are available: 3 Insufficient cpu.");
    let events = collect(launched.events).await;
    assert!(!events.contains(&RuntimeEvent::Started));
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(exit.message.contains("was not running after 1500 ms"), "{}", exit.message);
    assert!(exit.message.contains("Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."), "{}", exit.message);
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await, "the unscheduled pod is deleted");
}

#[tokio::test]
async fn log_silence_fails_and_deletes_the_pod() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, KubeConfig { log_silence_timeout: Some(Duration::from_millis(1500)), ..config() });
    let launched = rt.launch(request("keep")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, "one line, then nothing");
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(exit.message.contains("wrote no log line for 1500 ms"), "{}", exit.message);
    assert_eq!(exit.diagnostic.as_ref().unwrap().payload, json!(["one line, then nothing"]));
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await, "even with reapCompletedPods=false");
}

#[tokio::test]
async fn external_deletion_fails_with_the_reason() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, "working");
    tokio::time::sleep(Duration::from_millis(200)).await;
    mock.delete_externally(&ns, &name, "Evicted", "The node was low on resource: memory.");
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(exit.message.contains("deleted by someone else"), "{}", exit.message);
    assert!(exit.message.contains("Evicted: The node was low on resource: memory."), "{}", exit.message);
}

#[tokio::test]
async fn graceful_external_deletion_is_named_in_the_failure() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("keep")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, "working");
    mock.request_deletion(&ns, &name);
    mock.log(&ns, &name, "got SIGTERM");
    mock.terminate(&ns, &name, 143);
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert_eq!(exit.code, Some(143));
    assert!(exit.message.contains("exit code 143"), "{}", exit.message);
    assert!(exit.message.contains("deleted by someone else"), "{}", exit.message);
    assert_eq!(exit.diagnostic.as_ref().unwrap().payload, json!(["working", "got SIGTERM"]));
}

#[tokio::test]
async fn cancel_deletes_the_pod_and_ends_the_stream() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, "working");
    tokio::time::sleep(Duration::from_millis(200)).await;
    rt.cancel(&launched.handle).await.expect("cancel");
    assert!(mock.pod(&ns, &name).is_none());
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(exit.message.starts_with("cancelled"), "{}", exit.message);
    // Cancelling what is gone is a no-op; a malformed handle is invalid input.
    rt.cancel(&launched.handle).await.expect("second cancel is a no-op");
    assert!(matches!(rt.cancel("no-slash").await, Err(Error::Invalid(_))));
}

#[tokio::test]
async fn api_errors_are_retried_then_recovered_from() {
    let mock = MockKube::start().await;
    mock.fail_next(Method::POST, "/api/v1/namespaces/pop/pods", 500, 2);
    mock.fail_next(Method::GET, "watch=true", 503, 2);
    mock.fail_next(Method::GET, "/log", 500, 2);
    mock.fail_next(Method::DELETE, "/pods/", 500, 1);
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch survives two 500s");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, r#"POP_RESULT {"ok": true}"#);
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;
    assert!(exit(&events).success, "{events:?}");
    assert_eq!(outputs(&events), vec![json!({"ok": true})]);
    let posts = mock.requests().iter().filter(|r| r.starts_with("POST ")).count();
    assert_eq!(posts, 3);
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await, "delete retried after a 500");
}

#[tokio::test]
async fn api_errors_give_up_after_the_bounded_attempts() {
    let mock = MockKube::start().await;
    mock.fail_next(Method::POST, "/pods", 500, 100);
    let rt = runtime_with(&mock, config());
    let err = rt.launch(request("sample")).await.expect_err("creation keeps failing");
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert!(err.to_string().contains("gave up after 4 attempts"), "{err}");
    assert!(err.to_string().contains("operation probe of agenda agenda-1"), "{err}");
    assert_eq!(mock.requests().iter().filter(|r| r.starts_with("POST ")).count(), 4);

    let mock = MockKube::start().await;
    mock.fail_next(Method::POST, "/pods", 403, 1);
    let rt = runtime_with(&mock, config());
    let err = rt.launch(request("sample")).await.expect_err("forbidden");
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    assert_eq!(mock.requests().iter().filter(|r| r.starts_with("POST ")).count(), 1, "4xx is not retried");
}

#[tokio::test]
async fn broken_log_streams_reconnect_without_repeating_lines() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    for i in 0..3 {
        mock.log(&ns, &name, &format!("a{i}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.interrupt_logs(&ns, &name);
    for i in 0..3 {
        mock.log(&ns, &name, &format!("b{i}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.interrupt_logs(&ns, &name);
    mock.log(&ns, &name, "c0");
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;
    let logs: Vec<String> = events
        .iter()
        .filter_map(|e| if let RuntimeEvent::Log(LogStream::Stdout, l) = e { Some(l.clone()) } else { None })
        .collect();
    assert_eq!(logs, ["a0", "a1", "a2", "b0", "b1", "b2", "c0"]);
    let log_requests = mock.requests().iter().filter(|r| r.contains("/log?")).count();
    assert!(log_requests >= 3, "reconnected: {log_requests} log requests");
}

#[tokio::test]
async fn unknown_types_are_invalid_and_name_the_operation() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, config());
    assert!(rt.supports("sample"));
    assert!(!rt.supports("encode"));
    let err = rt.launch(request("encode")).await.expect_err("unknown type");
    assert!(matches!(err, Error::Invalid(_)));
    let problem = &err.problem_list()[0];
    assert_eq!(problem.operation.as_deref(), Some("probe"));
    assert!(problem.message.contains("encode"), "{err}");
    assert!(mock.requests().is_empty(), "nothing reaches the API");
}

#[tokio::test]
async fn compressed_payloads_and_namespace_per_customer() {
    let mock = MockKube::start().await;
    let rt = runtime_with(
        &mock,
        KubeConfig {
            payload_mode: PayloadMode::Compressed,
            namespace: pop_runtime_k8s::NamespaceMode::PerCustomer { prefix: "pop-".into(), fallback: "pop".into() },
            ..config()
        },
    );
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    assert_eq!(ns, "pop-acme-corp");
    assert_eq!(launched.handle, format!("pop-acme-corp/{name}"));
    let env = env_of(&mock.pod(&ns, &name).unwrap());
    assert!(env.iter().any(|(n, v)| n == "POP_PAYLOAD_TYPE" && v["value"] == "compressedEnvVar"));
    assert!(env.iter().any(|(n, _)| n == "POP_COMPRESSED_PAYLOAD_0"));
    assert!(!env.iter().any(|(n, _)| n == "PAYLOAD"));
    let listed = rt.list().await.expect("list across namespaces");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, launched.handle);
    assert_eq!(listed[0].operation_name, "probe");
    assert!(mock.requests().iter().any(|r| r.starts_with("GET /api/v1/pods?")), "per-customer lists all namespaces");
    rt.cancel(&launched.handle).await.expect("cancel");
    let _ = collect(launched.events).await;
    let no_customer = LaunchRequest { customer_id: None, ..request("sample") };
    let launched = rt.launch(no_customer).await.expect("launch");
    assert!(launched.handle.starts_with("pop/"), "{}", launched.handle);
    rt.cleanup(&launched.handle).await.expect("cleanup");
    let _ = collect(launched.events).await;
}

/// Runs a launched Pod to success and waits for its stream to end.
async fn finish(mock: &MockKube, launched: pop_core::runtime::Launched) {
    let (ns, name) = launched.handle.split_once('/').expect("ns/name handle");
    mock.wait_for_request("watch=true").await;
    mock.run(ns, name);
    mock.terminate(ns, name, 0);
    let events = collect(launched.events).await;
    assert!(exit(&events).success, "{events:?}");
}

#[tokio::test]
async fn mapped_namespaces_place_pods_and_the_reaper_finds_them_there() {
    let mock = MockKube::start().await;
    let namespace = pop_runtime_k8s::NamespaceMode::Mapped {
        by_customer: [("Acme Corp".to_string(), "tenant-acme".to_string())].into(),
        by_insight: [("insight-2".to_string(), "queue-two".to_string())].into(),
        default: "pop-shared".into(),
    };
    let rt = runtime_with(&mock, KubeConfig { namespace, ..config() });
    let req = |customer: Option<&str>, insight: Option<&str>| LaunchRequest {
        customer_id: customer.map(str::to_string),
        insight_id: insight.map(str::to_string),
        ..request("keep")
    };
    let mut handles = Vec::new();
    for (customer, insight, expected) in [
        (Some("Acme Corp"), Some("insight-1"), "tenant-acme"),
        (Some("Acme Corp"), Some("insight-2"), "tenant-acme"), // the customer's entry wins
        (Some("Other"), Some("insight-2"), "queue-two"),
        (None, None, "pop-shared"),
    ] {
        let launched = rt.launch(req(customer, insight)).await.expect("launch");
        let (ns, name) = launched.handle.split_once('/').expect("ns/name");
        assert_eq!(ns, expected, "{customer:?} {insight:?}");
        let pod = mock.pod(ns, name).expect("the pod is in the mapped namespace");
        assert_eq!(pod["metadata"]["namespace"], expected);
        handles.push(launched.handle.clone());
        finish(&mock, launched).await;
    }
    let old = "2020-01-01T00:00:00Z";
    mock.insert_pod(stored_pod("queue-two", "left-by-another-worker", true, "Succeeded", old, Some(old)));
    mock.insert_pod(stored_pod("elsewhere", "not-in-the-map", true, "Succeeded", old, Some(old)));

    let mut listed: Vec<String> = rt.list().await.expect("list").into_iter().map(|i| i.handle).collect();
    listed.sort();
    let mut expected = handles.clone();
    expected.push("queue-two/left-by-another-worker".into());
    expected.sort();
    assert_eq!(listed, expected);
    let requests = mock.requests();
    for ns in ["tenant-acme", "queue-two", "pop-shared"] {
        let prefix = format!("GET /api/v1/namespaces/{ns}/pods?");
        assert!(requests.iter().any(|r| r.starts_with(&prefix) && r.contains("labelSelector")), "{ns}");
    }
    assert!(!requests.iter().any(|r| r.starts_with("GET /api/v1/pods")), "mapped namespaces need no cluster-wide list");

    // One namespace that cannot be listed does not hide the others; the report names it.
    mock.fail_next(Method::GET, "/api/v1/namespaces/queue-two/pods?", 403, 1);
    let report = rt
        .reap(ReapPolicy { finished_older_than: Duration::ZERO, running_older_than: None, batch_size: 2 })
        .await
        .expect("reap");
    assert_eq!(report.unlisted.len(), 1, "{report:?}");
    assert_eq!(report.unlisted[0].0, "namespace queue-two");
    assert!(report.unlisted[0].1.contains("403") || report.unlisted[0].1.contains("injected"), "{report:?}");
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut not_queue_two: Vec<String> = handles.iter().filter(|h| !h.starts_with("queue-two/")).cloned().collect();
    not_queue_two.sort();
    assert_eq!(deleted, not_queue_two);

    // Then the reaper finds what is left there.
    let report = rt
        .reap(ReapPolicy { finished_older_than: Duration::ZERO, running_older_than: None, batch_size: 2 })
        .await
        .expect("reap");
    assert!(report.unlisted.is_empty());
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let queue_two: Vec<String> = expected.iter().filter(|h| h.starts_with("queue-two/")).cloned().collect();
    assert_eq!(deleted, queue_two);
    assert_eq!(mock.pod_handles(), ["elsewhere/not-in-the-map"], "only the unmapped namespace's pod is left");

    // No namespace can be listed: the error itself.
    for ns in ["tenant-acme", "queue-two", "pop-shared"] {
        mock.fail_next(Method::GET, &format!("/api/v1/namespaces/{ns}/pods?"), 403, 1);
    }
    let e = rt.list().await.expect_err("every namespace forbidden");
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
}

#[tokio::test]
async fn namespace_per_insight_lists_only_the_namespaces_it_may_use() {
    let mock = MockKube::start().await;
    let namespace = KubeConfig::namespace_per_insight("pop-q-", "pop").namespace;
    let rt = runtime_with(&mock, KubeConfig { namespace, ..config() });
    let launched = rt.launch(request("keep")).await.expect("launch");
    assert!(launched.handle.starts_with("pop-q-insight-1/"), "{}", launched.handle);
    let handle = launched.handle.clone();
    finish(&mock, launched).await;
    let no_insight = rt.launch(LaunchRequest { insight_id: None, ..request("keep") }).await.expect("launch");
    assert!(no_insight.handle.starts_with("pop/"), "{}", no_insight.handle);
    let fallback = no_insight.handle.clone();
    finish(&mock, no_insight).await;
    let old = "2020-01-01T00:00:00Z";
    mock.insert_pod(stored_pod("pop-q-video", "other-insight", true, "Succeeded", old, Some(old)));
    mock.insert_pod(stored_pod("tenant-x", "another-pop", true, "Succeeded", old, Some(old)));

    let mut listed: Vec<String> = rt.list().await.expect("list").into_iter().map(|i| i.handle).collect();
    listed.sort();
    let mut expected = vec![handle, fallback, "pop-q-video/other-insight".to_string()];
    expected.sort();
    assert_eq!(listed, expected, "the pod of tenant-x is not this runtime's to see");
    assert!(mock.requests().iter().any(|r| r.starts_with("GET /api/v1/pods?")), "a cluster-wide list");
    let report = rt
        .reap(ReapPolicy { finished_older_than: Duration::ZERO, running_older_than: None, batch_size: 50 })
        .await
        .expect("reap");
    assert_eq!(report.deleted.len(), 3, "{report:?}");
    assert_eq!(mock.pod_handles(), ["tenant-x/another-pop"]);
}

#[tokio::test]
async fn wrong_namespace_names_fail_launch_and_list_naming_the_entry() {
    let mock = MockKube::start().await;
    let namespace = pop_runtime_k8s::NamespaceMode::Mapped {
        by_customer: [("Acme Corp".to_string(), "Tenant_Acme".to_string())].into(),
        by_insight: Default::default(),
        default: "pop".into(),
    };
    let rt = runtime_with(&mock, KubeConfig { namespace, ..config() });
    let e = rt.launch(request("sample")).await.expect_err("bad namespace");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert_eq!(e.problem_list()[0].field.as_deref(), Some(r#"namespace.by_customer["Acme Corp"]"#));
    assert!(e.to_string().contains(r#""Tenant_Acme" is not a valid namespace name"#), "{e}");
    let e = rt.list().await.expect_err("bad namespace");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert!(rt.pod_for(&request("sample")).is_err());
    assert!(mock.requests().is_empty(), "nothing reaches the API");
}

fn stored_pod(ns: &str, name: &str, managed: bool, phase: &str, created: &str, finished: Option<&str>) -> Value {
    let mut labels = json!({"app": "x"});
    if managed {
        labels["app.kubernetes.io/managed-by"] = json!("pop");
        labels["pop/agenda-id"] = json!("agenda-label");
    }
    let mut status = json!({"phase": phase, "startTime": created});
    if let Some(f) = finished {
        status["containerStatuses"] = json!([{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "finishedAt": f}}}]);
    }
    json!({"metadata": {"name": name, "namespace": ns, "labels": labels, "creationTimestamp": created,
        "annotations": {"pop/agenda-id": format!("agenda of {name}"), "pop/operation-name": "op",
                        "pop/operation-type": "sample"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": status})
}

#[tokio::test]
async fn list_and_reap_in_batches() {
    let mock = MockKube::start().await;
    let old = "2020-01-01T00:00:00Z";
    let recent = k8s_openapi::jiff::Timestamp::now().to_string();
    mock.insert_pod(stored_pod("pop", "old-done-1", true, "Succeeded", old, Some(old)));
    mock.insert_pod(stored_pod("pop", "old-done-2", true, "Failed", old, Some(old)));
    mock.insert_pod(stored_pod("pop", "old-done-3", true, "Succeeded", old, None));
    mock.insert_pod(stored_pod("pop", "new-done", true, "Succeeded", &recent, Some(&recent)));
    mock.insert_pod(stored_pod("pop", "old-running", true, "Running", old, None));
    mock.insert_pod(stored_pod("pop", "not-ours", false, "Succeeded", old, Some(old)));
    mock.insert_pod(stored_pod("elsewhere", "other-ns", true, "Succeeded", old, Some(old)));
    let rt = runtime_with(&mock, config());

    let mut infos = rt.list().await.expect("list");
    infos.sort_by(|a, b| a.handle.cmp(&b.handle));
    let handles: Vec<&str> = infos.iter().map(|i| i.handle.as_str()).collect();
    assert_eq!(handles, ["pop/new-done", "pop/old-done-1", "pop/old-done-2", "pop/old-done-3", "pop/old-running"]);
    let running = &infos[4];
    assert_eq!(running.state, LaunchedState::Running);
    assert_eq!(running.finished, None);
    assert_eq!(running.agenda_id, "agenda of old-running");
    assert_eq!(running.operation_type, "sample");
    assert_eq!(infos[1].state, LaunchedState::Finished);
    assert_eq!(infos[1].started, 1_577_836_800_000);
    assert_eq!(infos[1].finished, Some(1_577_836_800_000));

    let report = rt
        .reap(ReapPolicy { finished_older_than: Duration::from_secs(3600), running_older_than: None, batch_size: 2 })
        .await
        .expect("reap");
    assert_eq!(report.examined, 5);
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["pop/old-done-1", "pop/old-done-2", "pop/old-done-3"]);
    assert!(report.failed.is_empty());
    let mut left = mock.pod_handles();
    left.sort();
    assert_eq!(left, ["elsewhere/other-ns", "pop/new-done", "pop/not-ours", "pop/old-running"]);

    let report = rt
        .reap(ReapPolicy {
            finished_older_than: Duration::from_secs(3600),
            running_older_than: Some(Duration::from_secs(3600)),
            batch_size: 50,
        })
        .await
        .expect("reap stuck");
    assert_eq!(report.deleted, ["pop/old-running"]);
}

#[tokio::test]
async fn a_watch_that_keeps_failing_fails_the_operation_within_its_budget() {
    let mock = MockKube::start().await;
    mock.fail_next(Method::GET, "fieldSelector=metadata.name", 500, 10_000);
    let mut cfg = config();
    cfg.retry.watch_error_budget = Duration::from_millis(800);
    let rt = runtime_with(&mock, cfg);
    let launched = rt.launch(request("sample")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    let events = collect(launched.events).await;
    let exit = exit(&events);
    assert!(!exit.success);
    assert!(
        exit.message.contains("lost the watch of pod pop/pop-sample-00000001 for more than 800 ms"),
        "{}",
        exit.message
    );
    assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await, "the unwatched pod is deleted");
}

#[tokio::test]
async fn broken_output_rules_fail_the_operation_as_for_a_process() {
    let mock = MockKube::start().await;
    let rt = runtime_with(&mock, KubeConfig { max_line_bytes: 64, max_result_bytes: 16, ..config() });

    // A malformed POP_RESULT line fails an operation whose container succeeded; a malformed
    // POP_PROGRESS line is only logged.
    let launched = rt.launch(request("keep")).await.expect("launch");
    let (ns, name) = mock.wait_for_pod().await;
    mock.run(&ns, &name);
    mock.log(&ns, &name, "POP_PROGRESS {bad");
    mock.log(&ns, &name, "POP_RESULT {oops");
    mock.terminate(&ns, &name, 0);
    let events = collect(launched.events).await;
    assert!(events.contains(&RuntimeEvent::Log(LogStream::Stdout, "POP_PROGRESS {bad".into())), "{events:?}");
    let e = exit(&events);
    assert!(!e.success);
    assert_eq!(e.code, Some(0));
    assert!(e.message.contains("malformed POP_RESULT line"), "{}", e.message);
    assert!(e.message.contains(&format!("pod {ns}/{name}")) && e.message.contains("exit code 0"), "{}", e.message);
    assert_eq!(e.diagnostic.as_ref().unwrap().payload, json!(["POP_PROGRESS {bad", "POP_RESULT {oops"]));
    rt.cleanup(&launched.handle).await.expect("cleanup");

    // An over-long line is never passed on whole and fails the operation; so does an oversized result.
    for (line, expected) in [
        ("x".repeat(500), "line longer than the limit of 64 bytes"),
        (format!("POP_RESULT \"{}\"", "y".repeat(30)), "larger than the limit of 16 bytes"),
    ] {
        let launched = rt.launch(request("sample")).await.expect("launch");
        let (ns, name) = mock.wait_for_pod().await;
        mock.run(&ns, &name);
        mock.log(&ns, &name, &line);
        mock.log(&ns, &name, "after");
        mock.terminate(&ns, &name, 0);
        let events = collect(launched.events).await;
        let logs: Vec<&String> =
            events.iter().filter_map(|e| if let RuntimeEvent::Log(_, l) = e { Some(l) } else { None }).collect();
        assert!(logs.iter().all(|l| l.len() < 300), "{logs:?}");
        assert_eq!(logs.last().map(|l| l.as_str()), Some("after"), "the log goes on after the long line");
        assert!(outputs(&events).is_empty());
        let e = exit(&events);
        assert!(!e.success);
        assert!(e.message.contains(expected), "{}", e.message);
        assert!(mock.wait_gone(&ns, &name, Duration::from_secs(5)).await);
    }
}

#[tokio::test]
async fn a_wrong_pod_config_field_is_refused_naming_type_and_field() {
    let mock = MockKube::start().await;
    let registry = HandlerRegistry::from_json_str(
        r#"{"basePodConfig": {"pullAlways": true},
            "good": {"podConfig": {"imageName": "i"}},
            "bad": {"podConfig": {"imageName": "i", "podRetryCount": "many"}}}"#,
    )
    .expect("the registry itself keeps Pod configs as JSON");
    let e = KubeRuntime::check_registry(&registry).expect_err("a wrong field");
    assert!(e.to_string().contains("bad.podConfig.podRetryCount"), "{e}");
    let rt = KubeRuntime::new(mock.client(), Arc::new(registry), config());
    let e = rt.launch(LaunchRequest { operation_type: "bad".into(), ..request("bad") }).await.expect_err("bad");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let problem = &e.problem_list()[0];
    assert_eq!(problem.operation.as_deref(), Some("probe"));
    assert_eq!(problem.field.as_deref(), Some("bad.podConfig.podRetryCount"));
    assert!(problem.message.contains("operation type bad") && problem.message.contains("inline"), "{e}");
    assert!(mock.requests().is_empty(), "nothing reaches the API");
    let launched = rt.launch(request("good")).await.expect("the other types still launch");
    rt.cleanup(&launched.handle).await.expect("cleanup");
    let _ = collect(launched.events).await;
}
