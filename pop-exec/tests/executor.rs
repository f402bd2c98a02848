//! The async executor with the in-process runtime: every rule end to end, and the original's fixture.

use pop_core::model::{Agenda, AgendaProgress, Conclusion, Operation, OperationProgress, Params, ProcessingState};
use pop_core::runtime::{LaunchRequest, Launched, LaunchedInfo, PodRuntime};
use pop_core::{Error, Result};
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions, ProgressSink};
use pop_exec::inprocess::InProcessRuntime;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a generator added: parent, operations, params.
type Generated = (String, Vec<Operation>, Option<Params>);

#[derive(Default)]
struct RecordingSink {
    publishes: Mutex<Vec<(AgendaProgress, Vec<OperationProgress>)>>,
    generated: Mutex<Vec<Generated>>,
    fail_after: Option<usize>,
}

#[async_trait::async_trait]
impl ProgressSink for RecordingSink {
    async fn publish(&self, agenda: &AgendaProgress, changed: &[OperationProgress]) -> Result<()> {
        let mut p = self.publishes.lock().unwrap();
        if self.fail_after.is_some_and(|n| p.len() >= n) {
            return Err(Error::Conflict("lease lost: a newer executor holds agenda ag".into()));
        }
        p.push((agenda.clone(), changed.to_vec()));
        Ok(())
    }

    async fn operations_generated(
        &self,
        _agenda_id: &str,
        parent: &str,
        operations: &[Operation],
        params: Option<&Params>,
    ) -> Result<()> {
        self.generated.lock().unwrap().push((parent.to_owned(), operations.to_vec(), params.cloned()));
        Ok(())
    }
}

fn agenda(ops: Value) -> Agenda {
    serde_json::from_value(json!({"id": "ag", "progressId": "pg", "cid": "c1", "operations": ops})).unwrap()
}

fn opts() -> ExecutorOptions {
    ExecutorOptions { publish_interval: Duration::ZERO, ..ExecutorOptions::default() }
}

fn op_progress<'p>(p: &'p AgendaProgress, name: &str) -> &'p OperationProgress {
    p.operation_progress.iter().find(|o| o.operation.as_deref() == Some(name)).expect("op progress")
}

fn messages(p: &AgendaProgress) -> String {
    p.diagnostic_events.iter().filter_map(|d| d.message.clone()).collect::<Vec<_>>().join(" | ")
}

#[tokio::test]
async fn original_multi_sample_payload_runs_to_success_and_every_reference_resolves() {
    let Some(dir) = pop_core::compat::fixtures_dir("multi_sample_payload") else { return };
    let agenda: Agenda = serde_json::from_value(pop_core::compat::read_json(&dir, "agendas/multiSamplePayload.json"))
        .expect("fixture is an agenda");
    assert_eq!(agenda.operations.len(), 65);
    let seen: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let runtime = InProcessRuntime::new();
    let seen2 = seen.clone();
    runtime.register("sample", move |ctx| {
        let seen = seen2.clone();
        async move {
            seen.lock().unwrap().insert(ctx.operation_name().to_owned(), ctx.payload().clone());
            Ok(ctx.payload().get("resultPayload").cloned().unwrap_or(Value::Null))
        }
    });
    let sink = Arc::new(RecordingSink::default());
    let exec = Executor::new(Arc::new(runtime), sink.clone(), opts());
    let p = exec.run(agenda.clone(), None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(p.percent_complete, 100.0);
    assert_eq!(p.operation_progress.len(), 65);
    assert!(p.operation_progress.iter().all(OperationProgress::succeeded));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 65);
    for (name, payload) in seen.iter() {
        assert!(!payload.to_string().contains("@<"), "{name} has an unresolved reference: {payload}");
    }
    // Sample.65 logs `@<Sample.59.out::/actionData>`.
    let original = agenda.operation("Sample.65").unwrap();
    assert_eq!(original.payload["actions"][0]["paramsMap"]["logMessage"], "@<Sample.59.out::/actionData>");
    assert_eq!(seen["Sample.65"]["actions"][0]["paramsMap"]["logMessage"], "firstAction A");
    let publishes = sink.publishes.lock().unwrap();
    assert_eq!(publishes[0].0.processing_state, ProcessingState::Executing);
    let last = &publishes.last().unwrap().0;
    assert_eq!(last.processing_state, ProcessingState::Complete);
    assert_eq!(last.id.as_deref(), p.id.as_deref());
}

#[tokio::test]
async fn outputs_flow_into_references_and_progress_is_published() {
    let runtime = InProcessRuntime::new();
    runtime.register("double", |ctx| async move {
        ctx.progress(50.0);
        let n = ctx.payload()["n"].as_i64().ok_or("payload.n must be an integer")?;
        Ok(json!({"n": n * 2}))
    });
    let sink = Arc::new(RecordingSink::default());
    let exec = Executor::new(Arc::new(runtime), sink.clone(), opts());
    let a = agenda(json!([
        {"name": "one", "type": "double", "payload": {"n": 1}},
        {"name": "two", "type": "double", "payload": {"n": "@<one.out::/n>"}},
        {"name": "log", "type": "logMessages", "payload": {"logMessages": ["n=@<two.out::/n>"]}}
    ]));
    let p = exec.run(a, None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(op_progress(&p, "two").result_payload.as_deref(), Some(r#"{"n":4}"#));
    assert_eq!(op_progress(&p, "log").result_payload.as_deref(), Some("{}"));
    assert_eq!(op_progress(&p, "two").id.as_deref(), Some("pg-two"));
    let publishes = sink.publishes.lock().unwrap();
    // Every operation's final state was published, and no publish repeats an unchanged operation.
    let mut last_state: HashMap<String, OperationProgress> = HashMap::new();
    for (_, changed) in publishes.iter() {
        for c in changed {
            let name = c.operation.clone().unwrap();
            assert_ne!(last_state.get(&name), Some(c), "{name} published without a change");
            last_state.insert(name, c.clone());
        }
    }
    assert!(last_state.values().all(OperationProgress::succeeded));
}

#[tokio::test]
async fn a_panicking_handler_fails_its_operation_not_the_executor() {
    let runtime = InProcessRuntime::new();
    runtime.register("bad", |_| async move {
        if true {
            panic!("index out of bounds");
        }
        Ok(Value::Null)
    });
    let exec = Executor::new(Arc::new(runtime), Arc::new(RecordingSink::default()), opts());
    let p =
        exec.run(agenda(json!([{"name": "x", "type": "bad", "payload": {}}])), None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Failed));
    assert!(messages(&p).contains("panicked: index out of bounds"), "{}", messages(&p));
    assert_eq!(op_progress(&p, "x").conclusion(), Some(Conclusion::Failed));
}

/// A runtime whose launch errors, panics, or whose stream ends without an exit.
struct BrokenRuntime;

#[async_trait::async_trait]
impl PodRuntime for BrokenRuntime {
    fn name(&self) -> &str {
        "broken"
    }
    fn supports(&self, _operation_type: &str) -> bool {
        true
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        match request.operation_type.as_str() {
            "error" => Err(Error::backend("broken", "connection refused")),
            "panic" => panic!("launch bug"),
            _ => Ok(Launched {
                handle: "h".into(),
                events: Box::pin(futures_util::stream::iter(vec![pop_core::runtime::RuntimeEvent::Started])),
            }),
        }
    }
    async fn cancel(&self, _handle: &str) -> Result<()> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        Ok(vec![])
    }
    async fn cleanup(&self, _handle: &str) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn runtime_errors_panics_and_truncated_streams_fail_the_operation() {
    for (ty, expect) in [
        ("error", "could not launch operation x on the broken runtime"),
        ("panic", "panicked while launching operation x: launch bug"),
        ("truncated", "the events of operation x ended without an exit"),
    ] {
        let exec = Executor::new(Arc::new(BrokenRuntime), Arc::new(RecordingSink::default()), opts());
        let p = exec
            .run(agenda(json!([{"name": "x", "type": ty, "payload": {}}])), None, CancelToken::new())
            .await
            .unwrap();
        assert_eq!(p.conclusion(), Some(Conclusion::Failed));
        assert!(messages(&p).contains(expect), "{ty}: {}", messages(&p));
    }
}

#[tokio::test]
async fn unknown_operation_type_is_named_in_the_diagnostic() {
    let exec = Executor::new(Arc::new(InProcessRuntime::new()), Arc::new(RecordingSink::default()), opts());
    let p = exec
        .run(agenda(json!([{"name": "x", "type": "transcode", "payload": {}}])), None, CancelToken::new())
        .await
        .unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Failed));
    assert!(messages(&p).contains("unknown operation type \"transcode\" on operation x"), "{}", messages(&p));
}

#[tokio::test(start_paused = true)]
async fn timeouts_cancel_the_handler_and_retries_follow_the_backoff() {
    let runtime = InProcessRuntime::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a2 = attempts.clone();
    let last_seen = Arc::new(Mutex::new(Vec::new()));
    let l2 = last_seen.clone();
    runtime.register("flaky", move |ctx| {
        let attempts = a2.clone();
        let last_seen = l2.clone();
        async move {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            last_seen.lock().unwrap().push(ctx.last_progress().map(|p| p.diagnostic_events.len()));
            if n == 1 {
                // Hangs: the timeout must cancel it.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if n == 2 {
                return Err("transient".into());
            }
            Ok(json!({"attempt": n}))
        }
    });
    let exec = Executor::new(Arc::new(runtime), Arc::new(RecordingSink::default()), opts());
    let a = agenda(json!([{"name": "x", "type": "flaky", "payload": {},
        "params": {"timeoutMs": 100, "retry": {"maxAttempts": 3, "backoffMs": 1000, "backoffMultiplier": 3}}}]));
    let started = tokio::time::Instant::now();
    let p = exec.run(a, None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let x = op_progress(&p, "x");
    assert_eq!(x.attempt_count, 3);
    assert_eq!(x.result_payload.as_deref(), Some(r#"{"attempt":3}"#));
    let diags: Vec<String> = x.diagnostic_events.iter().filter_map(|d| d.message.clone()).collect();
    assert!(diags[0].contains("timed out after 100 ms"), "{diags:?}");
    assert!(diags[1].contains("transient"), "{diags:?}");
    assert_eq!(*last_seen.lock().unwrap(), vec![None, Some(1), Some(2)], "retries get LAST_PROGRESS");
    // 100 ms timeout + 1 s + 3 s of backoff, not an hour.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(4100) && took < Duration::from_secs(60), "{took:?}");
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_kills_running_handlers_and_ends_cancelled() {
    let runtime = InProcessRuntime::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let d2 = dropped.clone();
    runtime.register("long", move |_| {
        let flag = DropFlag(d2.clone());
        async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Null)
        }
    });
    let exec = Executor::new(Arc::new(runtime), Arc::new(RecordingSink::default()), opts());
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c2.cancel();
    });
    let a = agenda(json!([
        {"name": "long", "type": "long", "payload": {}},
        {"name": "after", "type": "long", "payload": {"x": "@<long.out>"}}
    ]));
    let p = exec.run(a, None, cancel).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Cancelled), "{}", messages(&p));
    assert!(dropped.load(Ordering::SeqCst), "the handler task was aborted");
    assert_eq!(op_progress(&p, "long").conclusion(), Some(Conclusion::Cancelled));
    assert_eq!(op_progress(&p, "after").processing_state, ProcessingState::Waiting);
}

#[tokio::test(start_paused = true)]
async fn a_sink_error_stops_the_executor_and_cancels_handlers() {
    let runtime = InProcessRuntime::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let d2 = dropped.clone();
    runtime.register("long", move |_| {
        let flag = DropFlag(d2.clone());
        async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Null)
        }
    });
    // The first publishes succeed; the heartbeat after the lease is lost fails.
    let sink = Arc::new(RecordingSink { fail_after: Some(2), ..RecordingSink::default() });
    let exec =
        Executor::new(Arc::new(runtime), sink.clone(), ExecutorOptions { heartbeat: Duration::from_secs(1), ..opts() });
    let err = exec
        .run(agenda(json!([{"name": "long", "type": "long", "payload": {}}])), None, CancelToken::new())
        .await
        .expect_err("the sink failed");
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains("lease lost"));
    tokio::task::yield_now().await;
    assert!(dropped.load(Ordering::SeqCst), "running handlers were cancelled");
}

#[tokio::test(start_paused = true)]
async fn heartbeat_publishes_without_changes() {
    let runtime = InProcessRuntime::new();
    runtime.register("sleep", |_| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(Value::Null)
    });
    let sink = Arc::new(RecordingSink::default());
    let exec =
        Executor::new(Arc::new(runtime), sink.clone(), ExecutorOptions { heartbeat: Duration::from_secs(1), ..opts() });
    let p = exec
        .run(agenda(json!([{"name": "s", "type": "sleep", "payload": {}}])), None, CancelToken::new())
        .await
        .unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded));
    let publishes = sink.publishes.lock().unwrap();
    let heartbeats = publishes.iter().filter(|(_, changed)| changed.is_empty()).count();
    assert!(heartbeats >= 8, "{heartbeats} heartbeats in 10 s at 1 s");
    let times: Vec<i64> = publishes.iter().filter_map(|(a, _)| a.updated_time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "updatedTime moves forward");
}

#[tokio::test]
async fn parallelism_cap_holds_under_the_executor() {
    let runtime = InProcessRuntime::new();
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (r2, m2) = (running.clone(), max.clone());
    runtime.register("t", move |_| {
        let (running, max) = (r2.clone(), m2.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let ops: Vec<Value> = (0..60).map(|i| json!({"name": format!("o{i}"), "type": "t", "payload": {}})).collect();
    let exec = Executor::new(
        Arc::new(runtime),
        Arc::new(RecordingSink::default()),
        ExecutorOptions { parallelism: 4, ..opts() },
    );
    let p = exec.run(agenda(Value::Array(ops)), None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded));
    let max = max.load(Ordering::SeqCst);
    assert!((1..=4).contains(&max), "max concurrent {max}");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_the_others() {
    let runtime = InProcessRuntime::new();
    runtime.register("fail", |_| async move { Err("bad input".into()) });
    runtime.register("long", |_| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Value::Null)
    });
    let a = agenda(json!([
        {"name": "long", "type": "long", "payload": {}},
        {"name": "bad", "type": "fail", "payload": {}}
    ]));
    let exec = Executor::new(
        Arc::new(runtime.clone()),
        Arc::new(RecordingSink::default()),
        ExecutorOptions { fail_fast: true, ..opts() },
    );
    let started = tokio::time::Instant::now();
    let p = exec.run(a.clone(), None, CancelToken::new()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(p.conclusion(), Some(Conclusion::Failed));
    assert_eq!(op_progress(&p, "long").conclusion(), Some(Conclusion::Cancelled));
    assert!(messages(&p).contains("operation bad failed: bad input"), "{}", messages(&p));
}

#[tokio::test]
async fn generator_operations_run_and_are_handed_to_the_sink() {
    let runtime = InProcessRuntime::new();
    runtime.register("echo", |ctx| async move { Ok(ctx.payload().clone()) });
    let sink = Arc::new(RecordingSink::default());
    let exec = Executor::new(Arc::new(runtime), sink.clone(), opts());
    let a = agenda(json!([
        {"name": "gen", "type": "updateAgenda",
         "params": {"agenda.operation.generator": {"operationsJsonPointer": "/operations", "paramsJsonPointer": "/params"}},
         "payload": {
             "operations": [
                 {"name": "g1", "type": "echo", "payload": {"v": "@<pop.params::/size>"}},
                 {"name": "g2", "type": "echo", "payload": {"v": "@<g1.out::/v>"}}
             ],
             "params": {"size": 3}
         }}
    ]));
    let p = exec.run(a, None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(p.operation_progress.len(), 3);
    assert_eq!(op_progress(&p, "g2").result_payload.as_deref(), Some(r#"{"v":3}"#));
    assert_eq!(op_progress(&p, "g2").id.as_deref(), Some("pg-g2"));
    let generated = sink.generated.lock().unwrap();
    assert_eq!(generated.len(), 1);
    assert_eq!(generated[0].0, "gen");
    assert_eq!(generated[0].1.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);
    assert_eq!(generated[0].1[0].generated_parent(), Some("gen"));
    assert_eq!(p.params.as_ref().unwrap()["size"], 3);
}

#[tokio::test]
async fn a_resumed_run_reruns_only_what_did_not_succeed() {
    let runtime = InProcessRuntime::new();
    let runs: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let fail_b = Arc::new(AtomicBool::new(true));
    let (r2, f2) = (runs.clone(), fail_b.clone());
    runtime.register("t", move |ctx| {
        let (runs, fail_b) = (r2.clone(), f2.clone());
        async move {
            runs.lock().unwrap().push((ctx.operation_name().to_owned(), ctx.last_progress().is_some()));
            if ctx.operation_name() == "b" && fail_b.load(Ordering::SeqCst) {
                return Err("first time fails".into());
            }
            Ok(json!({"from": ctx.operation_name(), "in": ctx.payload().clone()}))
        }
    });
    let a = agenda(json!([
        {"name": "a", "type": "t", "payload": {}},
        {"name": "b", "type": "t", "payload": {"x": "@<a.out::/from>"}},
        {"name": "c", "type": "t", "payload": {"x": "@<b.out::/from>"}}
    ]));
    let exec = Executor::new(Arc::new(runtime), Arc::new(RecordingSink::default()), opts());
    let first = exec.run(a.clone(), None, CancelToken::new()).await.unwrap();
    assert_eq!(first.conclusion(), Some(Conclusion::Failed));
    fail_b.store(false, Ordering::SeqCst);
    runs.lock().unwrap().clear();
    let second = exec.run(a, Some(first), CancelToken::new()).await.unwrap();
    assert_eq!(second.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&second));
    assert_eq!(*runs.lock().unwrap(), vec![("b".to_owned(), true), ("c".to_owned(), false)]);
    assert_eq!(op_progress(&second, "b").result_payload.as_deref(), Some(r#"{"from":"b","in":{"x":"a"}}"#));
}

/// The in-process runtime behind launches that wait before they answer (as a process or Pod runtime's do),
/// and one type whose launch panics after waiting.
struct WaitingLaunches(InProcessRuntime);

#[async_trait::async_trait]
impl PodRuntime for WaitingLaunches {
    fn name(&self) -> &str {
        "waiting"
    }
    fn supports(&self, operation_type: &str) -> bool {
        self.0.supports(operation_type)
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if request.operation_type == "panic-later" {
            panic!("late launch bug");
        }
        self.0.launch(request).await
    }
    async fn cancel(&self, handle: &str) -> Result<()> {
        self.0.cancel(handle).await
    }
    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        self.0.list().await
    }
    async fn cleanup(&self, handle: &str) -> Result<()> {
        self.0.cleanup(handle).await
    }
}

#[tokio::test]
async fn launches_that_wait_are_followed_to_the_end() {
    let inner = InProcessRuntime::new();
    inner.register("t", |ctx| async move { Ok(json!({"n": ctx.payload()["n"].as_i64().unwrap_or(0) + 1})) });
    let exec = Executor::new(Arc::new(WaitingLaunches(inner)), Arc::new(RecordingSink::default()), opts());
    let ops = json!([
        {"name": "a", "type": "t", "payload": {"n": 1}},
        {"name": "b", "type": "t", "payload": {"n": "@<a.out::/n>"}},
        {"name": "c", "type": "t", "payload": {"n": "@<b.out::/n>"}}
    ]);
    let p = exec.run(agenda(ops), None, CancelToken::new()).await.unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(op_progress(&p, "c").result_payload.as_deref(), Some(r#"{"n":4}"#));
    let p = exec
        .run(agenda(json!([{"name": "x", "type": "panic-later", "payload": {}}])), None, CancelToken::new())
        .await
        .unwrap();
    assert_eq!(p.conclusion(), Some(Conclusion::Failed));
    assert!(messages(&p).contains("panicked while launching operation x: late launch bug"), "{}", messages(&p));
}

#[tokio::test]
async fn inline_handlers_run_a_dag_as_spawned_ones_do() {
    let runtime = InProcessRuntime::new();
    // Ends at its first poll (no task of its own).
    runtime.register_inline("now", |ctx| async move { Ok(json!({"v": ctx.payload()["v"].clone()})) });
    // Waits, so it is spawned after its first poll.
    runtime.register_inline("later", |ctx| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(ctx.payload().clone())
    });
    runtime.register_inline("boom", |_| async move {
        if true {
            panic!("inline bug");
        }
        Ok(Value::Null)
    });
    let exec = Executor::new(Arc::new(runtime), Arc::new(RecordingSink::default()), opts());
    let ok = agenda(json!([
        {"name": "a", "type": "now", "payload": {"v": 7}},
        {"name": "b", "type": "later", "payload": {"got": "@<a.out::/v>"}},
        {"name": "c", "type": "now", "payload": {"v": "@<b.out::/got>"}, "params": {"dependsOn": ["a"]}},
    ]));
    let p = exec.run(ok, None, CancelToken::new()).await.expect("run");
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{}", messages(&p));
    assert_eq!(op_progress(&p, "b").result_payload.as_deref(), Some(r#"{"got":7}"#));
    assert_eq!(op_progress(&p, "c").result_payload.as_deref(), Some(r#"{"v":7}"#));
    let failing = agenda(json!([
        {"name": "a", "type": "now", "payload": {"v": 1}},
        {"name": "x", "type": "boom", "payload": {}, "params": {"dependsOn": ["a"]}},
    ]));
    let p = exec.run(failing, None, CancelToken::new()).await.expect("run");
    assert_eq!(p.conclusion(), Some(Conclusion::Failed));
    let x = op_progress(&p, "x");
    assert!(
        x.diagnostic_events.iter().any(|d| d.message.as_deref().is_some_and(|m| m.contains("panicked: inline bug")))
    );
}
