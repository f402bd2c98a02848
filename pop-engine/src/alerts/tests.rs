//! The pure parts of alerting (stall decisions, backoff, payload) and the delivery loop on a sink that
//! fails on demand. The end-to-end tests (an engine, a real HTTP receiver) are in pop-http.

use super::stall::{PoolObservation, StallDetector};
use super::*;
use std::sync::Mutex;

fn obs(waiting: usize, last_pull: Option<Millis>) -> PoolObservation {
    PoolObservation { pool_id: Some("p".into()), insight_ids: vec!["i".into()], waiting, last_pull }
}

/// One stalled alert when the pool has not pulled for the idle limit with agendas waiting, nothing more
/// while it stays stalled, one resumed alert at its next pull, and then it may stall again.
#[test]
fn a_pool_stalls_once_and_resumes_once() {
    let mut d = StallDetector::new(Duration::from_millis(1000), 0);
    let table: &[(Millis, usize, Option<Millis>, Option<&str>)] = &[
        (500, 3, None, None),                       // never pulled, within the limit (baseline: start)
        (999, 3, None, None),                       // still within
        (1000, 0, None, None),                      // over the limit, but nothing waits
        (1000, 3, None, Some("poolStalled")),       // over the limit with agendas waiting
        (5000, 9, None, None),                      // still stalled: no second alert
        (6000, 9, Some(5500), Some("poolResumed")), // pulled
        (6400, 9, Some(5500), None),                // idle 900 ms: fine
        (6600, 9, Some(5500), Some("poolStalled")), // idle 1100 ms: stalled again
        (7000, 9, Some(5500), None),
        (7100, 0, Some(7050), Some("poolResumed")),
    ];
    for (now, waiting, last_pull, want) in table {
        let got = d.observe(&obs(*waiting, *last_pull), *now);
        assert_eq!(got.as_ref().map(Alert::kind), *want, "at {now}: {got:?}");
    }
}

/// The alerts carry the idle time: since the last pull, or since watching began.
#[test]
fn stall_and_resume_report_the_idle_time() {
    let mut d = StallDetector::new(Duration::from_millis(100), 1000);
    let stalled = d.observe(&obs(2, None), 1250).unwrap();
    assert_eq!(
        stalled,
        Alert::PoolStalled {
            resource_pool_id: Some("p".into()),
            insight_ids: vec!["i".into()],
            waiting: 2,
            idle_ms: 250
        }
    );
    let resumed = d.observe(&obs(2, Some(1400)), 1450).unwrap();
    assert_eq!(
        resumed,
        Alert::PoolResumed { resource_pool_id: Some("p".into()), insight_ids: vec!["i".into()], idle_ms: 400 }
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let c = AlertConfig {
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        ..Default::default()
    };
    let waits: Vec<u128> = (1..=6).map(|n| c.wait_after(n).as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 500, 500, 500]);
    assert_eq!(c.wait_after(u32::MAX), Duration::from_millis(500), "no overflow");
}

/// The payload is Slack-compatible (`text`) with the alert's fields flat beside it, and reads back.
#[test]
fn the_payload_has_text_and_fields() {
    let alert = Alert::AgendaFailed {
        agenda_id: "a-1".into(),
        customer_id: Some("acme".into()),
        insight_id: Some("media".into()),
        resource_pool_id: Some("pool".into()),
        cid: None,
        attempts: 3,
        operation: Some("encode".into()),
        message: Some("exit code 1".into()),
    };
    let m = AlertMessage { text: alert.text(), instance: "pop-1".into(), time: 7, alert };
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["kind"], "agendaFailed");
    assert_eq!(v["agendaId"], "a-1");
    assert_eq!(v["operation"], "encode");
    assert_eq!(
        v["text"],
        "POP: agenda a-1 of customer acme failed for good on insight media after 3 attempt(s): operation encode failed: exit code 1"
    );
    assert_eq!(serde_json::from_value::<AlertMessage>(v).unwrap(), m);
}

/// A sink that fails its first `fail` deliveries and records every attempt.
struct Flaky {
    fail: Mutex<u32>,
    attempts: Mutex<Vec<(std::time::Instant, String)>>,
}

#[async_trait]
impl AlertSink for Flaky {
    async fn deliver(&self, m: &AlertMessage) -> std::result::Result<(), String> {
        self.attempts.lock().unwrap().push((std::time::Instant::now(), m.alert.kind().to_owned()));
        let mut fail = self.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(format!("refused ({} more)", *fail));
        }
        Ok(())
    }
}

fn stalled(waiting: usize) -> Alert {
    Alert::PoolStalled { resource_pool_id: None, insight_ids: vec!["i".into()], waiting, idle_ms: 1 }
}

async fn run(fail: u32, config: AlertConfig, alerts: Vec<Alert>) -> (Arc<Flaky>, AlertStatsSnapshot) {
    let sink = Arc::new(Flaky { fail: Mutex::new(fail), attempts: Mutex::new(Vec::new()) });
    let clock: Arc<dyn Clock> = Arc::new(pop_core::clock::SystemClock);
    let (raise, runner) = Alerts::new(Some(sink.clone()), &config, "pop-t".into(), clock);
    let signals = Arc::new(crate::Signals::new());
    let task = tokio::spawn(deliver_loop(runner.unwrap(), signals.clone(), || 42));
    let n = alerts.len() as u64;
    for a in alerts {
        raise.raise(a);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while {
        let s = raise.stats.snapshot();
        s.sent + s.dead_lettered < n
    } {
        assert!(std::time::Instant::now() < deadline, "not delivered in time: {:?}", raise.stats.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signals.shutdown();
    task.await.unwrap();
    (sink, raise.stats.snapshot())
}

/// Two refusals, then delivered on the third attempt after waits that grow.
#[tokio::test]
async fn a_refused_alert_is_retried_with_backoff() {
    let config = AlertConfig { backoff: Duration::from_millis(40), ..Default::default() };
    let (sink, stats) = run(2, config, vec![stalled(1)]).await;
    let attempts = sink.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] >= Duration::from_millis(40) && gaps[1] >= Duration::from_millis(80), "{gaps:?}");
    assert_eq!(stats, AlertStatsSnapshot { raised: 1, sent: 1, retried: 2, dead_lettered: 0, dropped: 0 });
}

/// Out of attempts: a JSON line in the dead-letter file with the attempts and the last error; the next
/// alert is delivered normally.
#[tokio::test]
async fn an_undeliverable_alert_is_dead_lettered() {
    let dir = std::env::temp_dir().join(format!("pop-alerts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dead.jsonl");
    let config = AlertConfig {
        attempts: 3,
        backoff: Duration::from_millis(1),
        dead_letter: Some(file.clone()),
        ..Default::default()
    };
    let (sink, stats) = run(3, config, vec![stalled(1), stalled(2)]).await;
    assert_eq!(sink.attempts.lock().unwrap().len(), 4);
    assert_eq!(stats.sent, 1);
    assert_eq!(stats.dead_lettered, 1);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["error"], "refused (0 more)");
    assert_eq!(lines[0]["failedAt"], 42);
    assert_eq!(lines[0]["alert"]["waiting"], 1);
    assert_eq!(lines[0]["alert"]["instance"], "pop-t");
    std::fs::remove_dir_all(&dir).ok();
}

/// A full channel drops (and counts) instead of blocking the path that raised the alert.
#[test]
fn raising_never_blocks() {
    let config = AlertConfig { capacity: 2, ..Default::default() };
    let sink: Arc<dyn AlertSink> = Arc::new(Flaky { fail: Mutex::new(0), attempts: Mutex::new(Vec::new()) });
    let (raise, _runner) = Alerts::new(Some(sink), &config, "pop-t".into(), Arc::new(pop_core::clock::SystemClock));
    for i in 0..5 {
        raise.raise(stalled(i));
    }
    let s = raise.stats.snapshot();
    assert_eq!((s.raised, s.dropped), (2, 3));
    let (off, none) = Alerts::new(None, &config, "pop-t".into(), Arc::new(pop_core::clock::SystemClock));
    assert!(!off.enabled() && none.is_none());
    off.raise(stalled(1));
    assert_eq!(off.stats.snapshot().dropped, 0);
}
