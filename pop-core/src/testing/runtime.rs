//! [`PodRuntime`] conformance cases.
//!
//! A runtime is tested through a [`RuntimeHarness`]: the runtime's test crate implements it to build a
//! runtime whose handler types behave as a case asks ([`Behaviour`]: succeed, report progress, fail,
//! hang, echo the payload, echo the launch's environment). How is the runtime's business: a shell
//! command line for local processes, a closure in-process, a scripted kubelet for a mock Kubernetes
//! API. What a runtime cannot do is said, not hidden: a harness returns a [`Skip`] with the reason, the
//! case prints `skipping <case>: <reason>` and checks nothing it cannot check.
//!
//! Every case builds its own runtime (fresh handles, an empty `list()`), and every wait is bounded
//! ([`EVENT_TIMEOUT`]), so a runtime that never ends a stream fails the case instead of hanging it.

use crate::error::Error;
use crate::model::OperationProgress;
use crate::runtime::{EventStream, Exit, LaunchRequest, Launched, LaunchedState, PodRuntime, RuntimeEvent};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long a case waits for a stream to end or an event to come.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a handler registered for a case behaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Behaviour {
    /// Succeeds with this output (`POP_RESULT <output>`, exit 0).
    Succeed(Value),
    /// Reports each percentage as progress (`POP_PROGRESS {"percentComplete": p}`), in order, then
    /// succeeds with `output`.
    ProgressThenSucceed {
        /// The percentages, in order.
        percents: Vec<f64>,
        /// The output.
        output: Value,
    },
    /// Writes `diagnostic` to its log (stderr) and fails with `exit_code`.
    Fail {
        /// The exit status (not 0).
        exit_code: i32,
        /// A line that must show up in the failure's message or diagnostic.
        diagnostic: String,
    },
    /// Runs until it is cancelled; it never ends by itself.
    HangUntilCancelled,
    /// Succeeds with the payload it received (decoded from whatever form the runtime used) as its output.
    EchoPayload,
    /// Succeeds with what it was told of its launch:
    /// `{"agendaId", "cid", "customerId", "operationName", "operationId"}` as strings (`AGENDA_ID`,
    /// `CID`, ... for a program) and `"lastProgress"`: the JSON of `LAST_PROGRESS`, or `null` when it
    /// was not given. The cases use values without quotes or backslashes, so a shell handler may
    /// print them with `printf`.
    EchoEnv,
}

/// One handler type a case needs.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerDef {
    /// The operation type.
    pub operation_type: String,
    /// How its handler behaves.
    pub behaviour: Behaviour,
}

impl HandlerDef {
    /// A handler type with a behaviour.
    pub fn new(operation_type: impl Into<String>, behaviour: Behaviour) -> Self {
        Self { operation_type: operation_type.into(), behaviour }
    }
}

/// Why a runtime cannot do something a case asks (printed as `skipping <case>: <reason>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl Skip {
    /// A skip with this reason.
    pub fn because(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a runtime can show, for the checks that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Above this many bytes of payload JSON the runtime passes the payload compressed; `Err(reason)`
    /// when it has no compressed form (the compressed-payload case is then skipped).
    pub compressed_payload_above: Result<usize, Skip>,
    /// `Ok` when a failed handler's exit status reaches [`Exit::code`]; `Err(reason)` when it cannot
    /// (the failure case then does not check the code, and says so).
    pub exit_codes: Result<(), Skip>,
}

/// What a runtime's test crate implements to run the suite.
#[async_trait]
pub trait RuntimeHarness: Send + Sync + 'static {
    /// A fresh runtime that runs exactly these handler types, each behaving as given; a behaviour it
    /// cannot have is `Err(Skip)` with the reason.
    async fn runtime(&self, handlers: &[HandlerDef]) -> Result<Arc<dyn PodRuntime>, Skip>;

    /// What the runtime can show.
    fn capabilities(&self) -> Capabilities;
}

/// What a case returns: `Err(Skip)` when the runtime cannot run it.
pub type CaseResult = Result<(), Skip>;

// ---------------------------------------------------------------------------------------------------
// helpers

fn request(agenda: &str, name: &str, op_type: &str, payload: Value) -> LaunchRequest {
    LaunchRequest {
        agenda_id: agenda.to_owned(),
        operation_name: name.to_owned(),
        operation_type: op_type.to_owned(),
        payload,
        ..LaunchRequest::default()
    }
}

async fn launch(rt: &dyn PodRuntime, req: LaunchRequest) -> Launched {
    let what = format!("launch of operation {} (type {})", req.operation_name, req.operation_type);
    match tokio::time::timeout(EVENT_TIMEOUT, rt.launch(req)).await {
        Ok(Ok(l)) => {
            assert!(!l.handle.is_empty(), "[{}] {what}: the handle is empty", rt.name());
            l
        }
        Ok(Err(e)) => panic!("[{}] {what}: unexpected error: {e}", rt.name()),
        Err(_) => panic!("[{}] {what}: did not return within {EVENT_TIMEOUT:?}", rt.name()),
    }
}

async fn next_event(events: &mut EventStream) -> Option<RuntimeEvent> {
    std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await
}

/// Reads events until one matches (returned with everything before it), or panics at the timeout.
async fn until(
    rt: &dyn PodRuntime,
    events: &mut EventStream,
    what: &str,
    f: impl Fn(&RuntimeEvent) -> bool,
) -> Vec<RuntimeEvent> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(e) = next_event(events).await {
            let hit = f(&e);
            seen.push(e);
            if hit {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(EVENT_TIMEOUT, wait).await {
        Ok(true) => seen,
        Ok(false) => panic!("[{}] the stream ended before {what}: {seen:?}", rt.name()),
        Err(_) => panic!("[{}] no {what} within {EVENT_TIMEOUT:?}", rt.name()),
    }
}

/// Every event to the end; checks the stream's shape: `Started` at most once and before any progress or
/// output, exactly one `Exited`, last.
async fn collect(rt: &dyn PodRuntime, mut events: EventStream, what: &str) -> (Vec<RuntimeEvent>, Exit) {
    let all = async {
        let mut all = Vec::new();
        while let Some(e) = next_event(&mut events).await {
            all.push(e);
        }
        all
    };
    let all = match tokio::time::timeout(EVENT_TIMEOUT, all).await {
        Ok(all) => all,
        Err(_) => panic!("[{}] {what}: the event stream did not end within {EVENT_TIMEOUT:?}", rt.name()),
    };
    check_shape(rt, &all, what)
}

fn check_shape(rt: &dyn PodRuntime, all: &[RuntimeEvent], what: &str) -> (Vec<RuntimeEvent>, Exit) {
    let name = rt.name();
    let exits = all.iter().filter(|e| matches!(e, RuntimeEvent::Exited(_))).count();
    assert_eq!(exits, 1, "[{name}] {what}: exactly one Exited expected: {all:?}");
    let exit = match all.last() {
        Some(RuntimeEvent::Exited(exit)) => exit.clone(),
        other => panic!("[{name}] {what}: the last event must be Exited, got {other:?}"),
    };
    let started: Vec<usize> =
        all.iter().enumerate().filter(|(_, e)| matches!(e, RuntimeEvent::Started)).map(|(i, _)| i).collect();
    assert!(started.len() <= 1, "[{name}] {what}: Started more than once: {all:?}");
    if let Some(first_report) =
        all.iter().position(|e| matches!(e, RuntimeEvent::Progress(_) | RuntimeEvent::Output(_)))
    {
        assert!(
            started.first().is_some_and(|s| *s < first_report),
            "[{name}] {what}: Started must come before any progress or output: {all:?}"
        );
    }
    (all.to_vec(), exit)
}

/// The percentages of a launch's progress events, in order (those that carry one).
pub fn progress_percents(events: &[RuntimeEvent]) -> Vec<f64> {
    events.iter().filter_map(|e| if let RuntimeEvent::Progress(p) = e { p.percent_complete } else { None }).collect()
}

fn outputs(events: &[RuntimeEvent]) -> Vec<&Value> {
    events.iter().filter_map(|e| if let RuntimeEvent::Output(v) = e { Some(v) } else { None }).collect()
}

fn last_output<'a>(rt: &dyn PodRuntime, events: &'a [RuntimeEvent], what: &str) -> &'a Value {
    match outputs(events).last() {
        Some(v) => v,
        None => panic!("[{}] {what}: no Output event: {events:?}", rt.name()),
    }
}

fn succeeded(rt: &dyn PodRuntime, exit: &Exit, events: &[RuntimeEvent], what: &str) {
    assert!(exit.success, "[{}] {what}: expected success, got {exit:?}; events {events:?}", rt.name());
}

async fn running_state(rt: &dyn PodRuntime, handle: &str) -> Option<LaunchedState> {
    match rt.list().await {
        Ok(all) => all.into_iter().find(|i| i.handle == handle).map(|i| i.state),
        Err(e) => panic!("[{}] list: unexpected error: {e}", rt.name()),
    }
}

/// A payload of about `bytes` bytes of JSON, deterministic and only partly compressible.
pub fn sized_payload(bytes: usize) -> Value {
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut items = Vec::new();
    let mut size = 20;
    while size < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let item = json!({"id": x % 1_000_000, "w": words[(x % 10) as usize], "v": (x >> 20) % 99_991, "é": "ü"});
        size += item.to_string().len() + 1;
        items.push(item);
    }
    json!({"items": items, "n": items.len()})
}

// ---------------------------------------------------------------------------------------------------
// cases

/// A handler that succeeds: `Started`, its output, then one successful `Exited`, last.
pub async fn launch_to_result(h: &dyn RuntimeHarness) -> CaseResult {
    let output = json!({"answer": 42, "nested": {"list": [1, "two", null, true]}, "text": "héllo wörld"});
    let rt = h.runtime(&[HandlerDef::new("conf-succeed", Behaviour::Succeed(output.clone()))]).await?;
    let rt = &*rt;
    assert!(rt.supports("conf-succeed"), "[{}] supports() must be true for a registered type", rt.name());
    let launched = launch(rt, request("conf-agenda-1", "succeed.1", "conf-succeed", json!({}))).await;
    let (events, exit) = collect(rt, launched.events, "a succeeding handler").await;
    succeeded(rt, &exit, &events, "a succeeding handler");
    assert!(events.contains(&RuntimeEvent::Started), "[{}] no Started: {events:?}", rt.name());
    assert_eq!(last_output(rt, &events, "a succeeding handler"), &output, "[{}] the output", rt.name());
    Ok(())
}

/// Progress reports arrive as `Progress` events, in order, before the output.
pub async fn progress_in_order(h: &dyn RuntimeHarness) -> CaseResult {
    let percents = vec![10.0, 25.5, 40.0, 70.0, 100.0];
    let output = json!({"done": true});
    let rt = h
        .runtime(&[HandlerDef::new(
            "conf-progress",
            Behaviour::ProgressThenSucceed { percents: percents.clone(), output: output.clone() },
        )])
        .await?;
    let rt = &*rt;
    let launched = launch(rt, request("conf-agenda-2", "progress.1", "conf-progress", json!({}))).await;
    let (events, exit) = collect(rt, launched.events, "a handler reporting progress").await;
    succeeded(rt, &exit, &events, "a handler reporting progress");
    assert_eq!(progress_percents(&events), percents, "[{}] progress, in order: {events:?}", rt.name());
    let last_progress = events.iter().rposition(|e| matches!(e, RuntimeEvent::Progress(_)));
    let output_at = events.iter().position(|e| matches!(e, RuntimeEvent::Output(_)));
    assert!(
        matches!((last_progress, output_at), (Some(p), Some(o)) if p < o),
        "[{}] the output comes after the progress it follows: {events:?}",
        rt.name()
    );
    assert_eq!(last_output(rt, &events, "a handler reporting progress"), &output);
    Ok(())
}

/// A failing handler ends with a failed `Exited` whose message or diagnostic shows what it wrote, and
/// (where the runtime carries it) its exit code.
pub async fn failure_exits_with_diagnostics(h: &dyn RuntimeHarness) -> CaseResult {
    let diagnostic = "disk on fire at sector 7f3a".to_owned();
    let rt = h
        .runtime(&[HandlerDef::new("conf-fail", Behaviour::Fail { exit_code: 3, diagnostic: diagnostic.clone() })])
        .await?;
    let rt = &*rt;
    let launched = launch(rt, request("conf-agenda-3", "fail.1", "conf-fail", json!({}))).await;
    let (events, exit) = collect(rt, launched.events, "a failing handler").await;
    let name = rt.name();
    assert!(!exit.success, "[{name}] a failing handler must not succeed: {exit:?}");
    assert!(!exit.message.is_empty(), "[{name}] a failure needs a message");
    let Some(d) = &exit.diagnostic else { panic!("[{name}] a failure needs a diagnostic: {exit:?}") };
    let shown = format!("{} {}", exit.message, serde_json::to_string(d).unwrap_or_default());
    assert!(shown.contains(&diagnostic), "[{name}] the failure must show {diagnostic:?}: {exit:?}");
    assert!(outputs(&events).is_empty(), "[{name}] a failing handler has no output: {events:?}");
    match h.capabilities().exit_codes {
        Ok(()) => assert_eq!(exit.code, Some(3), "[{name}] the exit code: {exit:?}"),
        Err(why) => eprintln!("failure_exits_with_diagnostics: exit code not checked: {why}"),
    }
    Ok(())
}

/// `cancel` stops a running handler: its stream ends with a failed `Exited`; it is no longer listed
/// as running; cancelling again is not an error.
pub async fn cancel_stops_a_running_handler(h: &dyn RuntimeHarness) -> CaseResult {
    let rt = h.runtime(&[HandlerDef::new("conf-hang", Behaviour::HangUntilCancelled)]).await?;
    let rt = &*rt;
    let name = rt.name();
    let mut launched = launch(rt, request("conf-agenda-4", "hang.1", "conf-hang", json!({}))).await;
    let before = until(rt, &mut launched.events, "Started", |e| matches!(e, RuntimeEvent::Started)).await;
    assert_eq!(running_state(rt, &launched.handle).await, Some(LaunchedState::Running), "[{name}] listed as running");
    if let Err(e) = rt.cancel(&launched.handle).await {
        panic!("[{name}] cancel: unexpected error: {e}");
    }
    let (rest, exit) = {
        let rest = async {
            let mut rest = Vec::new();
            while let Some(e) = next_event(&mut launched.events).await {
                rest.push(e);
            }
            rest
        };
        match tokio::time::timeout(EVENT_TIMEOUT, rest).await {
            Ok(rest) => {
                let all: Vec<RuntimeEvent> = before.into_iter().chain(rest).collect();
                check_shape(rt, &all, "a cancelled handler")
            }
            Err(_) => panic!("[{name}] the stream of a cancelled handler did not end within {EVENT_TIMEOUT:?}"),
        }
    };
    assert!(!exit.success, "[{name}] a cancelled handler must not succeed: {exit:?} ({rest:?})");
    assert_ne!(
        running_state(rt, &launched.handle).await,
        Some(LaunchedState::Running),
        "[{name}] a cancelled handler is not listed as running"
    );
    if let Err(e) = rt.cancel(&launched.handle).await {
        panic!("[{name}] cancelling a finished operation must be a no-op, got {e}");
    }
    Ok(())
}

/// A small payload with awkward content (unicode, quotes, backslashes, newlines, numbers of every
/// kind) reaches the handler unchanged.
pub async fn payload_inline_reaches_the_handler(h: &dyn RuntimeHarness) -> CaseResult {
    let payload = json!({
        "text": "quotes \" and 'single', back\\slash, new\nline, tab\t, unicode ✓ 日本語 🚀",
        "numbers": [0, -1, 1.5, 1e-7, 9_007_199_254_740_993_u64, -42.25],
        "flags": [true, false, null],
        "empty": {}, "nested": {"a": [{"b": [[]]}]},
        "dollar": "$HOME `id` $(id)", "percent": "%s %d %%"
    });
    let rt = h.runtime(&[HandlerDef::new("conf-echo", Behaviour::EchoPayload)]).await?;
    let rt = &*rt;
    let launched = launch(rt, request("conf-agenda-5", "echo.1", "conf-echo", payload.clone())).await;
    let (events, exit) = collect(rt, launched.events, "an echoing handler").await;
    succeeded(rt, &exit, &events, "an echoing handler");
    assert_eq!(last_output(rt, &events, "an echoing handler"), &payload, "[{}] the payload, unchanged", rt.name());
    Ok(())
}

/// A payload above the runtime's compression threshold (compressed in chunks) reaches the handler
/// unchanged.
pub async fn payload_compressed_reaches_the_handler(h: &dyn RuntimeHarness) -> CaseResult {
    let threshold = h.capabilities().compressed_payload_above?;
    let payload = sized_payload(threshold + threshold / 2 + 1024);
    let size = payload.to_string().len();
    assert!(size > threshold, "sized_payload: {size} <= {threshold}");
    let rt = h.runtime(&[HandlerDef::new("conf-echo", Behaviour::EchoPayload)]).await?;
    let rt = &*rt;
    let launched = launch(rt, request("conf-agenda-6", "echo.big", "conf-echo", payload.clone())).await;
    let (events, exit) = collect(rt, launched.events, "an echoing handler with a large payload").await;
    succeeded(rt, &exit, &events, "an echoing handler with a large payload");
    let echoed = last_output(rt, &events, "an echoing handler with a large payload");
    assert!(echoed == &payload, "[{}] the {size}-byte payload came back changed", rt.name());
    Ok(())
}

/// The launch's ids (`AGENDA_ID`, `CID`, `CUSTOMER_ID`, `OPERATION_NAME`, `OPERATION_ID`) reach the
/// handler; `LAST_PROGRESS` only on a re-run, unchanged.
pub async fn env_reaches_the_handler(h: &dyn RuntimeHarness) -> CaseResult {
    let rt = h.runtime(&[HandlerDef::new("conf-env", Behaviour::EchoEnv)]).await?;
    let rt = &*rt;
    let name = rt.name();
    let req = LaunchRequest {
        agenda_id: "conf-agenda-7".into(),
        agenda_progress_id: Some("conf-progress-7".into()),
        cid: Some("cid-7f3a".into()),
        customer_id: Some("customer-7".into()),
        insight_id: Some("insight-7".into()),
        operation_name: "env.first".into(),
        operation_id: Some("op-7".into()),
        operation_type: "conf-env".into(),
        payload: json!({"x": 1}),
        last_progress: None,
    };
    let launched = launch(rt, req.clone()).await;
    let (events, exit) = collect(rt, launched.events, "a first run").await;
    succeeded(rt, &exit, &events, "a first run");
    let seen = last_output(rt, &events, "a first run");
    for (key, want) in [
        ("agendaId", "conf-agenda-7"),
        ("cid", "cid-7f3a"),
        ("customerId", "customer-7"),
        ("operationName", "env.first"),
        ("operationId", "op-7"),
    ] {
        assert_eq!(seen[key], want, "[{name}] {key} as the handler saw it: {seen}");
    }
    assert_eq!(seen["lastProgress"], Value::Null, "[{name}] a first run has no LAST_PROGRESS: {seen}");

    let last: OperationProgress = match serde_json::from_value(json!({
        "processingState": "COMPLETE", "processingStateMessage": "failed", "percentComplete": 40.0,
        "operation": "env.rerun", "params": {"resumeAt": 12, "jobInfo": {"jobId": "123456-987654"}}
    })) {
        Ok(p) => p,
        Err(e) => panic!("the case's OperationProgress does not parse: {e}"),
    };
    let rerun = LaunchRequest { operation_name: "env.rerun".into(), last_progress: Some(last.clone()), ..req };
    let launched = launch(rt, rerun).await;
    let (events, exit) = collect(rt, launched.events, "a re-run").await;
    succeeded(rt, &exit, &events, "a re-run");
    let seen = last_output(rt, &events, "a re-run");
    assert_eq!(seen["operationName"], "env.rerun", "[{name}] {seen}");
    match serde_json::from_value::<OperationProgress>(seen["lastProgress"].clone()) {
        Ok(p) => assert_eq!(p, last, "[{name}] LAST_PROGRESS as the handler saw it"),
        Err(e) => panic!("[{name}] LAST_PROGRESS as the handler saw it is not an OperationProgress ({e}): {seen}"),
    }
    Ok(())
}

/// `list` shows a running launch with its agenda, name and type; `cleanup` stops it, ends its stream
/// and removes it from the list; a second `cleanup` is not an error.
pub async fn list_shows_the_launch_and_cleanup_removes_it(h: &dyn RuntimeHarness) -> CaseResult {
    let rt = h
        .runtime(&[
            HandlerDef::new("conf-hang", Behaviour::HangUntilCancelled),
            HandlerDef::new("conf-succeed", Behaviour::Succeed(json!(1))),
        ])
        .await?;
    let rt = &*rt;
    let name = rt.name();
    let mut launched = launch(rt, request("conf-agenda-8", "listed.1", "conf-hang", json!({}))).await;
    let before = until(rt, &mut launched.events, "Started", |e| matches!(e, RuntimeEvent::Started)).await;
    let listed = match rt.list().await {
        Ok(all) => all,
        Err(e) => panic!("[{name}] list: unexpected error: {e}"),
    };
    let Some(info) = listed.iter().find(|i| i.handle == launched.handle) else {
        panic!("[{name}] list does not show {}: {listed:?}", launched.handle)
    };
    assert_eq!(info.agenda_id, "conf-agenda-8", "[{name}] {info:?}");
    assert_eq!(info.operation_name, "listed.1", "[{name}] {info:?}");
    assert_eq!(info.operation_type, "conf-hang", "[{name}] {info:?}");
    assert_eq!(info.state, LaunchedState::Running, "[{name}] {info:?}");
    assert!(info.started > 0 && info.finished.is_none(), "[{name}] {info:?}");

    if let Err(e) = rt.cleanup(&launched.handle).await {
        panic!("[{name}] cleanup: unexpected error: {e}");
    }
    let rest = async {
        let mut rest = Vec::new();
        while let Some(e) = next_event(&mut launched.events).await {
            rest.push(e);
        }
        rest
    };
    let rest = match tokio::time::timeout(EVENT_TIMEOUT, rest).await {
        Ok(rest) => rest,
        Err(_) => panic!("[{name}] the stream of a cleaned-up handler did not end within {EVENT_TIMEOUT:?}"),
    };
    let all: Vec<RuntimeEvent> = before.into_iter().chain(rest).collect();
    let (_, exit) = check_shape(rt, &all, "a cleaned-up handler");
    assert!(!exit.success, "[{name}] a handler stopped by cleanup must not succeed: {exit:?}");
    assert_eq!(running_state(rt, &launched.handle).await, None, "[{name}] cleanup removes it from list()");
    if let Err(e) = rt.cleanup(&launched.handle).await {
        panic!("[{name}] a second cleanup must be a no-op (the reaper may repeat itself), got {e}");
    }
    Ok(())
}

/// An operation type the runtime has no handler for: `supports` is false and `launch` is
/// `Error::Invalid` naming the type; nothing is listed.
pub async fn unsupported_type_is_a_typed_error(h: &dyn RuntimeHarness) -> CaseResult {
    let rt = h.runtime(&[HandlerDef::new("conf-succeed", Behaviour::Succeed(json!(null)))]).await?;
    let rt = &*rt;
    let name = rt.name();
    let unknown = format!("conf-unknown-{}", uuid::Uuid::new_v4().simple());
    assert!(!rt.supports(&unknown), "[{name}] supports({unknown}) must be false");
    match rt.launch(request("conf-agenda-9", "unknown.1", &unknown, json!({}))).await {
        Err(e @ Error::Invalid(_)) => {
            assert!(e.to_string().contains(&unknown), "[{name}] the error must name the type {unknown}: {e}");
        }
        Err(e) => panic!("[{name}] an unknown type must be Error::Invalid, got {e:?}"),
        Ok(l) => panic!("[{name}] launching unknown type {unknown} succeeded with handle {}", l.handle),
    }
    match rt.list().await {
        Ok(all) => assert!(all.is_empty(), "[{name}] nothing was launched: {all:?}"),
        Err(e) => panic!("[{name}] list: unexpected error: {e}"),
    }
    Ok(())
}

/// 24 launches at once all run to their own result, with distinct handles.
pub async fn many_concurrent_launches(h: &dyn RuntimeHarness) -> CaseResult {
    const N: usize = 24;
    let rt = h.runtime(&[HandlerDef::new("conf-echo", Behaviour::EchoPayload)]).await?;
    let mut tasks = Vec::new();
    for i in 0..N {
        let rt = Arc::clone(&rt);
        tasks.push(tokio::spawn(async move {
            let payload = json!({"i": i, "pad": "x".repeat(i * 10)});
            let launched =
                launch(&*rt, request("conf-agenda-10", &format!("many.{i}"), "conf-echo", payload.clone())).await;
            let handle = launched.handle.clone();
            let (events, exit) = collect(&*rt, launched.events, &format!("concurrent launch {i}")).await;
            succeeded(&*rt, &exit, &events, &format!("concurrent launch {i}"));
            let out = last_output(&*rt, &events, &format!("concurrent launch {i}")).clone();
            assert_eq!(out, payload, "[{}] concurrent launch {i} got another's result", rt.name());
            handle
        }));
    }
    let mut handles = std::collections::HashSet::new();
    for t in tasks {
        handles.insert(super::join(t).await);
    }
    assert_eq!(handles.len(), N, "[{}] handles must be distinct", rt.name());
    Ok(())
}
