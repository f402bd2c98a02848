//! Observability (issue 8): the context of an agenda reaches the log lines of every layer. A layer on
//! the global subscriber records each event with the fields of the spans around it; an agenda runs
//! through the scheduler, the worker, the executor and the process runtime, and the runtime's own
//! lines (here the warning about a malformed `POP_PROGRESS` line, logged by the task reading the
//! handler's output) carry the agenda id, cid and operation name.

#![cfg(all(feature = "process", unix))]

mod common;

use common::*;
use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::model::ProcessingState;
use pop_core::registry::HandlerRegistry;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Field name → value, of an event or a span.
#[derive(Default, Clone, Debug)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Every event, with its own fields and those of the spans in scope (innermost wins), plus
/// `spans` = the span names from the root down.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Fields>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut names = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                names.push(span.name());
                if let Some(f) = span.extensions().get::<Fields>() {
                    for (k, v) in &f.0 {
                        fields.0.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        names.reverse();
        fields.0.insert("spans".into(), names.join(">"));
        if let Ok(mut all) = self.0.lock() {
            all.push(fields);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agenda_context_reaches_scheduler_worker_executor_and_runtime_lines() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone())).unwrap();

    let registry = HandlerRegistry::from_value(
        json!({"noop": {"process": {"command": "sh", "args": ["-c",
            "echo 'POP_PROGRESS this is not json'; echo 'POP_RESULT {\"ok\": true}'"]}}}),
        "tracing registry",
    )
    .unwrap();
    let runtime = RuntimeRouter::new().with(Arc::new(pop_runtime_process::ProcessRuntime::new(registry)));
    let config = PopConfig { scheduler_interval: Duration::from_millis(20), ..PopConfig::default() };
    let pop: Pop = memory_pop(Arc::new(runtime), config);
    setup(&pop, &["acme"], None, 10).await;
    let mut submitted = agenda("acme", json!([{"name": "encode", "type": "noop", "payload": {}}]));
    submitted.cid = Some("cid-trace-1".into());
    let submitted = pop.agendas().submit(&customer("acme"), submitted).await.unwrap();
    let agenda_id = submitted.id.clone().unwrap();
    pop.start_all(WorkerConfig::for_insights(["insight"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = pop.progress().agenda_progress(&admin(), &agenda_id).await.unwrap();
        if p.processing_state == ProcessingState::Complete {
            assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{p:#?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the agenda did not complete: {p:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pop.shutdown().await;

    let events = capture.0.lock().unwrap().clone();
    let find = |what: &str, pred: &dyn Fn(&Fields) -> bool| -> Fields {
        events.iter().find(|e| pred(e)).cloned().unwrap_or_else(|| {
            let seen: Vec<String> = events
                .iter()
                .map(|e| format!("{} [{}]", e.0.get("message").cloned().unwrap_or_default(), e.0["spans"]))
                .collect();
            panic!("no {what} event; events seen:\n{}", seen.join("\n"))
        })
    };
    let msg = |e: &Fields, m: &str| e.0.get("message").is_some_and(|s| s.contains(m));

    // the scheduler: the pick is logged in the insight's `schedule` span, with the agenda id
    let queued = find("scheduler `queued`", &|e| msg(e, "queued") && e.0.get("agenda_id") == Some(&agenda_id));
    assert_eq!(queued.0["spans"], "schedule");
    assert_eq!(queued.0.get("insight_id").map(String::as_str), Some("insight"));

    // the runtime's reader task: worker `execute` > executor `agenda` > `operation`, with the context
    let malformed = find("malformed POP_PROGRESS", &|e| msg(e, "malformed POP_PROGRESS"));
    assert_eq!(malformed.0["spans"], "execute>agenda>operation", "{malformed:?}");
    assert_eq!(malformed.0.get("agenda_id"), Some(&agenda_id));
    assert_eq!(malformed.0.get("cid").map(String::as_str), Some("cid-trace-1"));
    assert_eq!(malformed.0.get("operation").map(String::as_str), Some("encode"));
    assert_eq!(malformed.0.get("op_type").map(String::as_str), Some("noop"));

    // the end of the operation and of the agenda, in their spans
    let ended = find("operation ended", &|e| msg(e, "operation ended"));
    assert_eq!(ended.0.get("operation").map(String::as_str), Some("encode"));
    assert_eq!(ended.0.get("cid").map(String::as_str), Some("cid-trace-1"));
    let finished = find("agenda finished", &|e| msg(e, "agenda finished") && e.0.get("agenda_id") == Some(&agenda_id));
    assert!(finished.0["spans"].starts_with("execute"), "{finished:?}");
}
