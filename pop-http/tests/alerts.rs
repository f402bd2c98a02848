//! Alerts end to end: an engine (in-memory store and queue, handlers in process) whose alerts go
//! through `WebhookSink` to a real HTTP receiver on 127.0.0.1.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use pop_core::authz::Principal;
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::{Agenda, Insight};
use pop_engine::alerts::AlertStatsSnapshot;
use pop_engine::{AlertConfig, Engine, EngineParts, WorkerConfig};
use pop_exec::inprocess::InProcessRuntime;
use pop_http::alerts::WebhookSink;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the receiver got, and how many requests it refuses with 500 before it accepts.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicUsize>,
    refuse_first: usize,
}

impl Receiver {
    fn alerts(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Receiver>, axum::Json(body): axum::Json<Value>) -> StatusCode {
    if r.requests.fetch_add(1, Ordering::SeqCst) < r.refuse_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.got.lock().unwrap().push(body);
    StatusCode::OK
}

/// A receiver on 127.0.0.1:0; its webhook URL.
async fn receiver(refuse_first: usize) -> (Receiver, String) {
    let r = Receiver { refuse_first, ..Receiver::default() };
    let app = axum::Router::new().route("/hooks/secret-token", post(hook)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hooks/secret-token"))
}

/// The process's metrics recorder (one per test binary), to read the alert counters.
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap())
}

fn su() -> Principal {
    Principal::superuser("t")
}

/// An engine alerting to `url`, with insight `media` in resource pool `encoders` for customer `acme`;
/// `ok` handlers succeed, `boom` handlers fail with "disk full".
async fn engine(url: &str, config: AlertConfig) -> Engine {
    engine_with_lease(url, config, Duration::from_secs(30)).await
}

async fn engine_with_lease(url: &str, config: AlertConfig, lease_ttl: Duration) -> Engine {
    metrics();
    let runtime = InProcessRuntime::new();
    runtime.register("ok", |_| async { Ok(json!({"done": true})) });
    runtime.register("boom", |_| async { Err("disk full".into()) });
    let mut parts = EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), Arc::new(runtime));
    parts.config.instance_id = "pop-test".into();
    parts.config.lease_ttl = lease_ttl;
    parts.alert_sink = Some(Arc::new(WebhookSink::new(url).unwrap()));
    parts.alert_config = config;
    let engine = Engine::new(parts);
    let insight = Insight {
        id: Some("media".into()),
        title: Some("media".into()),
        is_global: true,
        queue_size: Some(100),
        mappers: [("operationType".to_string(), vec!["ok".to_string(), "boom".to_string()])].into(),
        ..Default::default()
    };
    engine.objects().provision_pool(&su(), "encoders", "ops", insight, &["acme"]).await.unwrap();
    engine
}

/// Submits `probe` (ok) then `encode` (boom) for acme, with `maximumAttempts`.
async fn submit_failing(engine: &Engine, attempts: u32) -> String {
    let agenda: Agenda = serde_json::from_value(json!({
        "customerId": "acme",
        "cid": format!("cid-{attempts}"),
        "params": {"maximumAttempts": attempts},
        "operations": [
            {"name": "probe", "type": "ok", "payload": {}},
            {"name": "encode", "type": "boom", "payload": {"in": "@<probe.out::/done>"}}
        ]
    }))
    .unwrap();
    engine.agendas().submit(&su(), agenda).await.unwrap().id.unwrap()
}

async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn no_stalls() -> AlertConfig {
    AlertConfig { pool_idle: None, backoff: Duration::from_millis(50), ..AlertConfig::default() }
}

/// An agenda that fails with no attempts left raises exactly one alert naming the agenda, customer,
/// insight, failing operation and its message; one that fails with attempts left raises none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agenda_failed_for_good_alerts_once() {
    let (rx, url) = receiver(0).await;
    let engine = engine(&url, no_stalls()).await;
    engine.start_all(WorkerConfig::for_insights(["media"]));
    let retryable = submit_failing(&engine, 3).await;
    let final_ = submit_failing(&engine, 1).await;
    for id in [&retryable, &final_] {
        let id = id.clone();
        let e = engine.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = e.progress().agenda_progress(&su(), &id).await.unwrap();
            if p.processing_state_message.as_deref() == Some("failed") {
                break;
            }
            assert!(Instant::now() < deadline, "agenda {id} did not fail: {p:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    until("the alert", Duration::from_secs(10), || !rx.alerts().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = rx.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["kind"], "agendaFailed");
    assert_eq!(a["agendaId"], final_.as_str());
    assert_eq!(a["customerId"], "acme");
    assert_eq!(a["insightId"], "media");
    assert_eq!(a["resourcePoolId"], "encoders");
    assert_eq!(a["cid"], "cid-1");
    assert_eq!(a["attempts"], 1);
    assert_eq!(a["operation"], "encode");
    assert!(a["message"].as_str().unwrap().contains("disk full"), "{a}");
    assert_eq!(a["instance"], "pop-test");
    let text = a["text"].as_str().unwrap();
    assert!(
        text.contains(&final_) && text.contains("acme") && text.contains("encode") && text.contains("disk full"),
        "{text}"
    );
    let stats = engine.alert_stats().snapshot();
    assert_eq!(stats, AlertStatsSnapshot { raised: 1, sent: 1, retried: 0, dead_lettered: 0, dropped: 0 });
    let rendered = metrics().render();
    assert!(rendered.contains("pop_alerts_sent_total{kind=\"agendaFailed\"}"), "{rendered}");
    engine.shutdown().await;
}

/// A receiver that answers 500 twice gets the alert on the third attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_gets_the_alert_after_retries() {
    let (rx, url) = receiver(2).await;
    let engine = engine(&url, no_stalls()).await;
    engine.start_all(WorkerConfig::for_insights(["media"]));
    let id = submit_failing(&engine, 1).await;
    until("the alert", Duration::from_secs(20), || !rx.alerts().is_empty()).await;
    assert_eq!(rx.requests.load(Ordering::SeqCst), 3);
    assert_eq!(rx.alerts()[0]["agendaId"], id.as_str());
    let stats = engine.alert_stats().snapshot();
    assert_eq!((stats.sent, stats.retried, stats.dead_lettered), (1, 2, 0));
    engine.shutdown().await;
}

/// A receiver that is down: after the attempts, the alert is a line of the dead-letter file with the
/// last error (which does not show the webhook's secret path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_receiver_dead_letters_the_alert() {
    let url = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hooks/secret-token", closed.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.dead.jsonl");
    let config =
        AlertConfig { attempts: 3, backoff: Duration::from_millis(20), dead_letter: Some(file.clone()), ..no_stalls() };
    let engine = engine(&url, config).await;
    engine.start_all(WorkerConfig::for_insights(["media"]));
    let id = submit_failing(&engine, 1).await;
    until("the dead letter", Duration::from_secs(20), || engine.alert_stats().snapshot().dead_lettered == 1).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["alert"]["kind"], "agendaFailed");
    assert_eq!(lines[0]["alert"]["agendaId"], id.as_str());
    let error = lines[0]["error"].as_str().unwrap();
    assert!(error.starts_with("POST http://127.0.0.1:"), "{error}");
    assert!(!error.contains("secret-token"), "the webhook path stays out of the error: {error}");
    assert_eq!(engine.alert_stats().snapshot().retried, 2);
    let rendered = metrics().render();
    assert!(rendered.contains("pop_alerts_failed_total{kind=\"agendaFailed\"}"), "{rendered}");
    engine.shutdown().await;
}

/// A pool that does not pull while an agenda waits: one "stalled" alert; its worker starts: one
/// "resumed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_stops_pulling_alerts_stalled_then_resumed() {
    let (rx, url) = receiver(0).await;
    let config = AlertConfig { pool_idle: Some(Duration::from_millis(300)), ..no_stalls() };
    let engine = engine(&url, config).await;
    engine.start_scheduler();
    let agenda: Agenda = serde_json::from_value(json!({
        "customerId": "acme", "operations": [{"name": "a", "type": "ok", "payload": {}}]
    }))
    .unwrap();
    engine.agendas().submit(&su(), agenda).await.unwrap();
    until("the stalled alert", Duration::from_secs(10), || !rx.alerts().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.alerts().len(), 1, "one alert while stalled: {:#?}", rx.alerts());
    let stalled = &rx.alerts()[0];
    assert_eq!(stalled["kind"], "poolStalled");
    assert_eq!(stalled["resourcePoolId"], "encoders");
    assert_eq!(stalled["insightIds"], json!(["media"]));
    assert_eq!(stalled["waiting"], 1);
    assert!(stalled["idleMs"].as_u64().unwrap() >= 300, "{stalled}");

    engine.start_worker(WorkerConfig::for_insights(["media"]));
    until("the resumed alert", Duration::from_secs(10), || rx.alerts().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let alerts = rx.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[1]["kind"], "poolResumed");
    assert_eq!(alerts[1]["resourcePoolId"], "encoders");
    assert!(alerts[1]["idleMs"].as_u64().unwrap() >= 300, "{}", alerts[1]);
    assert!(alerts[1]["text"].as_str().unwrap().contains("pulls again"));
    engine.shutdown().await;
}

/// An agenda whose only attempt is lost (its worker stopped heartbeating) fails for good in the
/// reclaimer: one alert, without an operation, with the reclaimer's diagnostic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agenda_failed_by_the_reclaimer_alerts_once() {
    let (rx, url) = receiver(0).await;
    let engine = engine_with_lease(&url, no_stalls(), Duration::from_millis(1000)).await;
    engine.start_scheduler();
    let id = submit_failing(&engine, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let lease = loop {
        let mut leases = engine.pool().get_agendas(&su(), "media", 1).await.unwrap();
        if let Some(l) = leases.pop() {
            break l;
        }
        assert!(Instant::now() < deadline, "the agenda was never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lease.agenda.id.as_deref(), Some(id.as_str()));
    // the pool "dies": no heartbeat, the lease expires, the reclaimer counts the lost attempt
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = engine.reclaim_once().await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    until("the alert", Duration::from_secs(10), || !rx.alerts().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = rx.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kind"], "agendaFailed");
    assert_eq!(alerts[0]["agendaId"], id.as_str());
    assert_eq!(alerts[0]["operation"], Value::Null);
    assert!(alerts[0]["message"].as_str().unwrap().contains("no attempts left"), "{}", alerts[0]);
    engine.shutdown().await;
}
