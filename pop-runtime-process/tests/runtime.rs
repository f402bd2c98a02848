//! ProcessRuntime against real child processes (no mocks).

use futures_util::StreamExt;
use pop_core::Error;
use pop_core::model::OperationProgress;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{Exit, LaunchRequest, LaunchedState, LogStream, PodRuntime, RuntimeEvent};
use pop_core::testing::runtime::progress_percents;
use pop_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use serde_json::{Value, json};
use std::time::Duration;

const SAMPLE: &str = env!("CARGO_BIN_EXE_pop-sample-handler");

fn sh(script: &str) -> Value {
    json!({"command": "/bin/sh", "args": ["-c", script]})
}

fn runtime(types: Value, config: ProcessRuntimeConfig) -> ProcessRuntime {
    let mut doc = serde_json::Map::new();
    if let Value::Object(types) = types {
        for (t, process) in types {
            doc.insert(t, json!({"process": process}));
        }
    }
    let registry = HandlerRegistry::from_value(Value::Object(doc), "test").unwrap();
    ProcessRuntime::with_config(registry, config)
}

fn fast() -> ProcessRuntimeConfig {
    ProcessRuntimeConfig::default().kill_grace(Duration::from_millis(300)).drain_timeout(Duration::from_millis(500))
}

fn request(op_type: &str, payload: Value) -> LaunchRequest {
    LaunchRequest {
        agenda_id: "agenda-1".into(),
        operation_name: format!("{op_type}.1"),
        operation_type: op_type.into(),
        payload,
        ..LaunchRequest::default()
    }
}

/// Collects every event; the last one must be `Exited` and nothing may follow it.
async fn collect(events: pop_core::runtime::EventStream) -> (Vec<RuntimeEvent>, Exit) {
    let all: Vec<RuntimeEvent> = tokio::time::timeout(Duration::from_secs(60), events.collect())
        .await
        .expect("the operation did not end within 60 s");
    let exits = all.iter().filter(|e| matches!(e, RuntimeEvent::Exited(_))).count();
    assert_eq!(exits, 1, "exactly one Exited: {all:?}");
    match all.last() {
        Some(RuntimeEvent::Exited(exit)) => {
            let exit = exit.clone();
            (all, exit)
        }
        other => panic!("last event is not Exited: {other:?}"),
    }
}

async fn run(rt: &ProcessRuntime, req: LaunchRequest) -> (Vec<RuntimeEvent>, Exit) {
    let launched = rt.launch(req).await.unwrap();
    collect(launched.events).await
}

fn logs(events: &[RuntimeEvent], stream: LogStream) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Log(s, l) if *s == stream => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn outputs(events: &[RuntimeEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Output(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Whether a process is gone (no /proc entry, or a zombie: dead, waiting for its reaper).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
    }
}

async fn wait_gone(pid: u32) -> bool {
    for _ in 0..100 {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn diagnostic_payload(exit: &Exit) -> Value {
    exit.diagnostic.as_ref().map(|d| d.payload.clone()).unwrap_or(Value::Null)
}

fn status_code(exit: &Exit) -> Option<String> {
    exit.diagnostic.as_ref().and_then(|d| d.status_code.clone())
}

#[tokio::test]
async fn success_with_result() {
    let rt = runtime(
        json!({"t": sh(r#"echo hello; echo err >&2; echo "POP_RESULT {\"ok\": true, \"n\": 1}"; echo bye"#)}),
        fast(),
    );
    let launched = rt.launch(request("t", json!({}))).await.unwrap();
    let handle = launched.handle.clone();
    let (events, exit) = collect(launched.events).await;
    assert_eq!(events.first(), Some(&RuntimeEvent::Started));
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.code, Some(0));
    assert!(exit.diagnostic.is_none());
    assert_eq!(outputs(&events), vec![json!({"ok": true, "n": 1})]);
    assert_eq!(logs(&events, LogStream::Stdout), vec!["hello", "bye"]);
    assert_eq!(logs(&events, LogStream::Stderr), vec!["err"]);
    let list = rt.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].handle, handle);
    assert_eq!(list[0].state, LaunchedState::Finished);
    assert_eq!(list[0].operation_type, "t");
    assert_eq!(list[0].agenda_id, "agenda-1");
    assert!(list[0].finished.unwrap() >= list[0].started);
}

#[tokio::test]
async fn last_result_wins() {
    let rt = runtime(json!({"t": sh(r#"echo 'POP_RESULT {"v":1}'; echo 'POP_RESULT {"v":2}'"#)}), fast());
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(exit.success);
    assert_eq!(outputs(&events), vec![json!({"v": 1}), json!({"v": 2})]);
}

#[tokio::test]
async fn non_zero_exit_carries_code_and_last_lines() {
    let rt = runtime(
        json!({"t": sh("for i in 1 2 3 4 5; do echo line$i; done; echo boom >&2; exit 3")}),
        fast().tail_lines(3),
    );
    let (_, exit) = run(&rt, request("t", json!({}))).await;
    assert!(!exit.success);
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.signal, None);
    assert!(exit.message.contains("exit code 3") && exit.message.contains("t.1"), "{}", exit.message);
    assert_eq!(status_code(&exit).as_deref(), Some("EXIT_CODE"));
    let p = diagnostic_payload(&exit);
    assert_eq!(p["exitCode"], 3);
    let last: Vec<&str> = p["lastLines"].as_array().unwrap().iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert_eq!(last, vec!["line4", "line5", "boom"]);
    assert_eq!(p["lastLines"][2]["stream"], "stderr");
}

#[tokio::test]
async fn death_by_signal() {
    let rt = runtime(json!({"t": sh("echo dying; kill -KILL $$")}), fast());
    let (_, exit) = run(&rt, request("t", json!({}))).await;
    assert!(!exit.success);
    assert_eq!(exit.code, None);
    assert_eq!(exit.signal, Some(9));
    assert!(exit.message.contains("SIGKILL"), "{}", exit.message);
    assert_eq!(status_code(&exit).as_deref(), Some("SIGNAL"));
    assert_eq!(diagnostic_payload(&exit)["signalName"], "SIGKILL");
    assert_eq!(diagnostic_payload(&exit)["lastLines"][0]["line"], "dying");
}

fn grandchild_pid(events: &[RuntimeEvent]) -> u32 {
    logs(events, LogStream::Stdout)
        .iter()
        .find_map(|l| l.strip_prefix("grandchild ").and_then(|p| p.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no grandchild line in {events:?}"))
}

#[tokio::test]
async fn timeout_kills_the_whole_group_even_when_it_ignores_sigterm() {
    // The shell and its grandchild ignore SIGTERM: only the SIGKILL after the grace period ends them.
    let mut process = sh(r#"trap '' TERM; sleep 1000 & echo "grandchild $!"; wait; wait"#);
    process["timeoutMs"] = json!(400);
    let rt = runtime(json!({"t": process}), fast());
    let started = std::time::Instant::now();
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!exit.success);
    assert!(exit.message.contains("timed out after 400 ms"), "{}", exit.message);
    assert_eq!(status_code(&exit).as_deref(), Some("TIMEOUT"));
    assert_eq!(exit.signal, Some(9), "SIGTERM was ignored, so SIGKILL ended it: {exit:?}");
    let gc = grandchild_pid(&events);
    assert!(wait_gone(gc).await, "grandchild {gc} still alive");
}

#[tokio::test]
async fn timeout_sigterm_ends_group() {
    let mut process = sh(r#"sleep 1000 & echo "grandchild $!"; wait"#);
    process["timeoutMs"] = json!(300);
    let rt = runtime(json!({"t": process}), ProcessRuntimeConfig::default().kill_grace(Duration::from_secs(30)));
    let started = std::time::Instant::now();
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(started.elapsed() < Duration::from_secs(10), "SIGTERM sufficed; no need to wait for the grace");
    assert_eq!(exit.signal, Some(15), "{exit:?}");
    let gc = grandchild_pid(&events);
    assert!(wait_gone(gc).await, "grandchild {gc} still alive");
}

#[tokio::test]
async fn processes_left_behind_die_with_the_handler() {
    // The grandchild detaches its output, so nothing holds the pipes; it still must not outlive the operation.
    let rt =
        runtime(json!({"t": sh(r#"sleep 1000 >/dev/null 2>&1 & echo "grandchild $!"; echo 'POP_RESULT {}'"#)}), fast());
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(exit.success, "{exit:?}");
    let gc = grandchild_pid(&events);
    assert!(wait_gone(gc).await, "grandchild {gc} outlived its handler");
}

#[tokio::test]
async fn cancel_terminates_a_running_operation() {
    let rt = runtime(json!({"t": sh(r#"sleep 1000 & echo "grandchild $!"; wait"#)}), fast());
    let mut launched = rt.launch(request("t", json!({}))).await.unwrap();
    let mut events = Vec::new();
    // Wait until the grandchild is up.
    while let Some(e) = launched.events.next().await {
        let is_gc = matches!(&e, RuntimeEvent::Log(_, l) if l.starts_with("grandchild"));
        events.push(e);
        if is_gc {
            break;
        }
    }
    assert_eq!(rt.list().await.unwrap()[0].state, LaunchedState::Running);
    let pid = rt.pid(&launched.handle).unwrap();
    rt.cancel(&launched.handle).await.unwrap();
    let (rest, exit) = collect(launched.events).await;
    events.extend(rest);
    assert!(!exit.success);
    assert_eq!(status_code(&exit).as_deref(), Some("CANCELLED"));
    assert!(exit.message.contains("cancelled"), "{}", exit.message);
    assert!(wait_gone(pid).await);
    assert!(wait_gone(grandchild_pid(&events)).await);
    // Cancelling a finished operation is a no-op; an unknown handle is NotFound.
    rt.cancel(&launched.handle).await.unwrap();
    assert!(rt.cancel("nope").await.unwrap_err().is_not_found());
}

fn big_payload(bytes: usize) -> Value {
    // Deterministic, only partly compressible text.
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut items = Vec::new();
    let mut size = 0;
    while size < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let item = json!({"id": x % 1_000_000, "w": words[(x % 10) as usize], "v": (x >> 20) % 99_991});
        size += item.to_string().len() + 1;
        items.push(item);
    }
    Value::Array(items)
}

#[tokio::test]
async fn huge_payload_goes_compressed_and_the_helper_decodes_it() {
    let data = big_payload(1_000_000);
    let payload = json!({"actions": [], "resultPayload": {"data": data}});
    assert!(payload.to_string().len() > 1_000_000);
    let rt = runtime(json!({"sample": {"command": SAMPLE}, "env": sh("env")}), fast());

    // The sample handler reads the payload through pop_runtime_process::handler and echoes resultPayload.
    let (events, exit) = run(&rt, request("sample", payload.clone())).await;
    assert!(exit.success, "{exit:?}");
    assert_eq!(outputs(&events), vec![payload["resultPayload"].clone()]);

    // What the handler saw: the compressed form, in chunks of at most 100 000 characters, no PAYLOAD.
    let (events, exit) = run(&rt, request("env", payload)).await;
    assert!(exit.success, "{exit:?}");
    let lines = logs(&events, LogStream::Stdout);
    assert!(lines.iter().any(|l| l == "POP_PAYLOAD_TYPE=compressedEnvVar"));
    let chunks: Vec<&String> = lines.iter().filter(|l| l.starts_with("POP_COMPRESSED_PAYLOAD_")).collect();
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.split_once('=').unwrap().1.len() <= 100_000));
    assert!(!lines.iter().any(|l| l.starts_with("PAYLOAD=")));
}

#[tokio::test]
async fn threshold_is_configurable() {
    let rt = runtime(json!({"sample": {"command": SAMPLE}}), fast().compress_threshold(10).chunk_size(16));
    let payload = json!({"resultPayload": {"x": "a".repeat(500)}});
    let (events, exit) = run(&rt, request("sample", payload.clone())).await;
    assert!(exit.success, "{exit:?}");
    assert_eq!(outputs(&events), vec![payload["resultPayload"].clone()]);
}

#[tokio::test]
async fn all_env_vars_present() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = sh("env; echo cwd=$(pwd)");
    process["env"] = json!({"FOO": "bar", "PAYLOAD": "overridden by the protocol"});
    process["workingDir"] = json!(dir.path());
    let rt = runtime(json!({"t": process}), fast());
    let last = OperationProgress { percent_complete: 40.0, ..OperationProgress::default() };
    let req = LaunchRequest {
        agenda_id: "ag-7".into(),
        agenda_progress_id: Some("ap-7".into()),
        cid: Some("cid-7".into()),
        customer_id: Some("cust-7".into()),
        insight_id: Some("ins".into()),
        operation_name: "encode".into(),
        operation_id: Some("op-7".into()),
        operation_type: "t".into(),
        payload: json!({"x": 1}),
        last_progress: Some(last.clone()),
    };
    let (events, exit) = run(&rt, req).await;
    assert!(exit.success, "{exit:?}");
    let lines = logs(&events, LogStream::Stdout);
    let has = |l: &str| lines.iter().any(|x| x == l);
    for expected in [
        r#"PAYLOAD={"x":1}"#,
        "POP_PAYLOAD_TYPE=envVar",
        "AGENDA_ID=ag-7",
        "CID=cid-7",
        "CUSTOMER_ID=cust-7",
        "OPERATION_NAME=encode",
        "OPERATION_ID=op-7",
        "LOG_LEVEL=INFO",
        "FOO=bar",
        &format!("LAST_PROGRESS={}", serde_json::to_string(&last).unwrap()),
        &format!("cwd={}", dir.path().canonicalize().unwrap().display()),
    ] {
        assert!(has(expected), "missing {expected} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l.starts_with("POP_COMPRESSED_PAYLOAD_")));
}

#[tokio::test]
async fn last_progress_is_passed_on_a_rerun() {
    let last: OperationProgress = match pop_core::compat::fixtures_dir("last_progress_is_passed_on_a_rerun") {
        Some(dir) => serde_json::from_value(pop_core::compat::read_json(&dir, "objects/lastProgress.json")).unwrap(),
        None => serde_json::from_str(r#"{"params":{"jobInfo":{"jobId":"123456-987654"}}}"#).unwrap(),
    };
    let rt = runtime(
        json!({"t": sh(r#"echo "POP_RESULT $LAST_PROGRESS""#), "u": sh("echo \"POP_RESULT {\\\"set\\\": \\\"${LAST_PROGRESS+yes}\\\"}\"")}),
        fast(),
    );
    let mut req = request("t", json!({}));
    req.last_progress = Some(last.clone());
    let (events, exit) = run(&rt, req).await;
    assert!(exit.success, "{exit:?}");
    let seen: OperationProgress = serde_json::from_value(outputs(&events)[0].clone()).unwrap();
    assert_eq!(seen, last);
    assert_eq!(seen.params.unwrap()["jobInfo"]["jobId"], "123456-987654");
    // A first run has no LAST_PROGRESS at all.
    let (events, _) = run(&rt, request("u", json!({}))).await;
    assert_eq!(outputs(&events), vec![json!({"set": ""})]);
}

#[tokio::test]
async fn progress_lines_arrive_in_order() {
    let rt = runtime(
        json!({"t": sh(r#"i=1; while [ $i -le 30 ]; do echo "POP_PROGRESS {\"percentComplete\": $i, \"processingStateMessage\": \"step $i\"}"; i=$((i+1)); done"#)}),
        fast(),
    );
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(exit.success);
    assert_eq!(progress_percents(&events), (1..=30).map(f64::from).collect::<Vec<_>>());
    let first = events.iter().find_map(|e| match e {
        RuntimeEvent::Progress(p) => p.processing_state_message.clone(),
        _ => None,
    });
    assert_eq!(first.as_deref(), Some("step 1"));
}

#[tokio::test]
async fn progress_arrives_while_the_handler_runs() {
    let rt = runtime(json!({"t": sh(r#"echo 'POP_PROGRESS {"percentComplete": 10}'; sleep 30"#)}), fast());
    let mut launched = rt.launch(request("t", json!({}))).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = launched.events.next().await {
            if let RuntimeEvent::Progress(p) = e {
                return p.percent_complete;
            }
        }
        None
    })
    .await
    .expect("progress was not streamed before the handler ended");
    assert_eq!(got, Some(10.0));
    rt.cleanup(&launched.handle).await.unwrap();
}

#[tokio::test]
async fn oversized_line_fails_the_operation_without_buffering_it() {
    // An endless line with no newline at all: must fail once it passes the bound.
    let rt = runtime(
        json!({"endless": sh("yes | tr -d '\\n'"), "long": sh("head -c 5000 /dev/zero | tr '\\0' a; echo; echo after")}),
        fast().max_line_bytes(1024),
    );
    let (_, exit) = run(&rt, request("endless", json!({}))).await;
    assert!(!exit.success);
    assert_eq!(status_code(&exit).as_deref(), Some("LINE_TOO_LONG"));
    assert!(exit.message.contains("1024 bytes") && exit.message.contains("stdout"), "{}", exit.message);

    let (events, exit) = run(&rt, request("long", json!({}))).await;
    assert!(!exit.success);
    assert_eq!(status_code(&exit).as_deref(), Some("LINE_TOO_LONG"));
    assert!(logs(&events, LogStream::Stdout).iter().all(|l| l.len() <= 1024));
}

#[tokio::test]
async fn oversized_stderr_line_also_fails() {
    let rt = runtime(json!({"t": sh("head -c 3000 /dev/zero | tr '\\0' b >&2; echo >&2")}), fast().max_line_bytes(100));
    let (_, exit) = run(&rt, request("t", json!({}))).await;
    assert_eq!(status_code(&exit).as_deref(), Some("LINE_TOO_LONG"));
    assert!(exit.message.contains("stderr"), "{}", exit.message);
}

#[tokio::test]
async fn malformed_progress_is_logged_and_ignored() {
    let rt = runtime(
        json!({"t": sh(r#"echo 'POP_PROGRESS {bad'; echo 'POP_PROGRESS {"percentComplete": 5}'; echo 'POP_RESULT {"a":1}'"#)}),
        fast(),
    );
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(exit.success, "{exit:?}");
    assert_eq!(progress_percents(&events), vec![5.0]);
    assert_eq!(logs(&events, LogStream::Stdout), vec!["POP_PROGRESS {bad"]);
    assert_eq!(outputs(&events), vec![json!({"a": 1})]);
}

#[tokio::test]
async fn malformed_result_fails_with_the_parse_error() {
    let rt = runtime(json!({"t": sh(r#"echo 'POP_RESULT {oops}'"#)}), fast());
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(!exit.success);
    assert_eq!(exit.code, Some(0), "the process itself succeeded");
    assert_eq!(status_code(&exit).as_deref(), Some("MALFORMED_RESULT"));
    assert!(exit.message.contains("malformed POP_RESULT line: key must be a string"), "{}", exit.message);
    assert!(outputs(&events).is_empty());
}

#[tokio::test]
async fn concurrency_cap_holds_under_50_simultaneous_launches() {
    let dir = tempfile::tempdir().unwrap();
    // Each handler marks itself running, counts the marks, and reports the count.
    let script = r#"touch "$DIR/run.$$"; n=$(ls "$DIR" | grep -c '^run\.'); sleep 0.15; rm "$DIR/run.$$"; echo "POP_RESULT {\"n\": $n}""#;
    let mut capped = sh(script);
    capped["maxConcurrent"] = json!(3);
    capped["env"] = json!({"DIR": dir.path().join("capped")});
    let mut free = sh(script);
    free["env"] = json!({"DIR": dir.path().join("free")});
    std::fs::create_dir(dir.path().join("capped")).unwrap();
    std::fs::create_dir(dir.path().join("free")).unwrap();
    let rt = runtime(json!({"capped": capped, "free": free}), fast());

    let max_seen = |rt: ProcessRuntime, t: &'static str, n: usize| async move {
        let mut launches = Vec::new();
        for _ in 0..n {
            launches.push(rt.launch(request(t, json!({}))).await.unwrap());
        }
        let results = futures_util::future::join_all(launches.into_iter().map(|l| collect(l.events))).await;
        let mut counts = Vec::new();
        for (events, exit) in results {
            assert!(exit.success, "{exit:?}");
            counts.push(outputs(&events)[0]["n"].as_u64().unwrap());
        }
        counts
    };
    let counts = max_seen(rt.clone(), "capped", 50).await;
    assert_eq!(counts.len(), 50);
    assert!(counts.iter().all(|n| *n <= 3), "cap exceeded: {counts:?}");
    assert_eq!(counts.iter().max(), Some(&3), "the cap is used fully: {counts:?}");
    // The same measurement without a cap sees more at once (so the counter can tell).
    let counts = max_seen(rt.clone(), "free", 12).await;
    assert!(counts.iter().max().unwrap() > &3, "{counts:?}");
}

#[tokio::test]
async fn cancel_while_waiting_for_a_slot() {
    let mut p = sh("sleep 1000");
    p["maxConcurrent"] = json!(1);
    let rt = runtime(json!({"t": p}), fast());
    let first = rt.launch(request("t", json!({}))).await.unwrap();
    let second = rt.launch(request("t", json!({}))).await.unwrap();
    rt.cancel(&second.handle).await.unwrap();
    let (events, exit) = collect(second.events).await;
    assert!(!events.contains(&RuntimeEvent::Started));
    assert!(exit.message.contains("before it started"), "{}", exit.message);
    rt.cleanup(&first.handle).await.unwrap();
    assert!(rt.list().await.unwrap().iter().all(|i| i.handle != first.handle));
}

#[tokio::test]
async fn list_and_cleanup_for_the_reaper() {
    let rt = runtime(json!({"slow": sh(r#"sleep 1000 & echo "grandchild $!"; wait"#), "quick": sh("true")}), fast());
    let quick = rt.launch(request("quick", json!({}))).await.unwrap();
    let quick_handle = quick.handle.clone();
    collect(quick.events).await;
    let mut slow = rt.launch(request("slow", json!({}))).await.unwrap();
    let mut gc = None;
    while let Some(e) = slow.events.next().await {
        if let RuntimeEvent::Log(_, l) = &e {
            if let Some(p) = l.strip_prefix("grandchild ") {
                gc = p.trim().parse::<u32>().ok();
                break;
            }
        }
    }
    let gc = gc.unwrap();
    let pid = rt.pid(&slow.handle).unwrap();
    let list = rt.list().await.unwrap();
    assert_eq!(list.len(), 2);
    let state = |h: &str| list.iter().find(|i| i.handle == h).map(|i| (i.state, i.finished.is_some()));
    assert_eq!(state(&quick_handle), Some((LaunchedState::Finished, true)));
    assert_eq!(state(&slow.handle), Some((LaunchedState::Running, false)));

    rt.cleanup(&slow.handle).await.unwrap();
    assert!(wait_gone(pid).await, "handler {pid} survived cleanup");
    assert!(wait_gone(gc).await, "grandchild {gc} survived cleanup");
    rt.cleanup(&quick_handle).await.unwrap();
    rt.cleanup(&quick_handle).await.unwrap(); // idempotent
    assert!(rt.list().await.unwrap().is_empty());
    // The stream still ends properly.
    let (_, exit) = collect(slow.events).await;
    assert!(!exit.success);
}

#[tokio::test]
async fn unknown_type_names_type_and_registry() {
    let registry = HandlerRegistry::from_json_str(
        r#"{"t": {"process": {"command": "true"}}, "podOnly": {"podConfig": {"imageName": "x"}}}"#,
    )
    .unwrap();
    let rt = ProcessRuntime::new(registry);
    assert!(rt.supports("t"));
    assert!(!rt.supports("nope"));
    assert!(!rt.supports("podOnly"));
    let err = rt.launch(request("nope", json!({}))).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    let msg = err.to_string();
    assert!(msg.contains("\"nope\"") && msg.contains("inline") && msg.contains("nope.1"), "{msg}");
    let msg = rt.launch(request("podOnly", json!({}))).await.unwrap_err().to_string();
    assert!(msg.contains("podOnly") && msg.contains("process"), "{msg}");
    assert!(rt.list().await.unwrap().is_empty(), "nothing launched");
}

#[tokio::test]
async fn spawn_failure_is_a_clear_failed_exit() {
    let rt = runtime(json!({"t": {"command": "/nonexistent/handler-binary"}}), fast());
    let (events, exit) = run(&rt, request("t", json!({}))).await;
    assert!(!events.contains(&RuntimeEvent::Started));
    assert_eq!(status_code(&exit).as_deref(), Some("SPAWN_FAILED"));
    assert!(exit.message.contains("/nonexistent/handler-binary"), "{}", exit.message);
}

#[tokio::test]
async fn compat_registries_load_into_the_runtime() {
    let Some(dir) = pop_core::compat::fixtures_dir("compat_registries_load_into_the_runtime") else { return };
    for file in
        ["defaultConfigMap.json", "puller-registry.json", "testConfigMap.json", "testConfigMap_BaseConfigMap.json"]
    {
        let path = dir.join("registry").join(file);
        let rt = ProcessRuntime::from_path(&path, ProcessRuntimeConfig::default()).unwrap();
        let t = rt.registry().types().next().unwrap().to_string();
        assert!(!rt.supports(&t), "{file}: pod-only types are not local processes");
        let msg = rt.launch(request(&t, json!({}))).await.unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}

fn fixture_sample_payload(sleep_ms: u64) -> Option<Value> {
    let dir = pop_core::compat::fixtures_dir("sample handler on the fixture payload")?;
    let agenda = pop_core::compat::read_json(&dir, "agendas/payload.json");
    let mut payload = agenda["operations"][0]["payload"].clone();
    payload["actions"][0]["paramsMap"]["sleepMilliseconds"] = json!(sleep_ms);
    Some(payload)
}

#[tokio::test]
async fn sample_handler_runs_the_original_payload() {
    let Some(payload) = fixture_sample_payload(20) else { return };
    let rt = runtime(json!({"sample": {"command": SAMPLE}}), fast());
    let (events, exit) = run(&rt, request("sample", payload)).await;
    assert!(exit.success, "{exit:?} {events:?}");
    assert_eq!(outputs(&events), vec![json!({"actionData": "firstAction"})]);
    assert_eq!(progress_percents(&events), vec![50.0, 100.0]);
    assert!(logs(&events, LogStream::Stdout).contains(&"This is a custom log message".to_string()));
}

#[tokio::test]
async fn sample_handler_failures() {
    let rt = runtime(json!({"sample": {"command": SAMPLE}}), fast());
    let (events, exit) = run(
        &rt,
        request(
            "sample",
            json!({"actions": [
            {"action": "log", "paramsMap": {"logMessage": "first"}},
            {"action": "exception", "paramsMap": {"exceptionMessage": "requested failure"}}
        ], "resultPayload": {}}),
        ),
    )
    .await;
    assert!(!exit.success);
    assert_eq!(exit.code, Some(1));
    assert_eq!(progress_percents(&events), vec![50.0]);
    assert!(logs(&events, LogStream::Stderr).iter().any(|l| l.contains("requested failure")), "{events:?}");
    assert!(outputs(&events).is_empty());

    let (events, exit) = run(
        &rt,
        request(
            "sample",
            json!({"actions": [{"action": "externalExecute", "paramsMap": {"externalArgs": ["no-such-program-xyz"]}}]}),
        ),
    )
    .await;
    assert!(!exit.success);
    assert!(
        logs(&events, LogStream::Stderr).iter().any(|l| l.contains("\"no-such-program-xyz\" not found")),
        "{events:?}"
    );

    let (events, exit) = run(
        &rt,
        request("sample", json!({"actions": [{"action": "externalExecute", "paramsMap": {"externalArgs": ["sh", "-c", "echo POP_RESULT '{}'; exit 4"]}}]})),
    )
    .await;
    assert!(!exit.success);
    assert!(outputs(&events).is_empty(), "an external program cannot forge protocol lines");
    assert!(logs(&events, LogStream::Stderr).iter().any(|l| l.contains("exit status: 4")), "{events:?}");
}
