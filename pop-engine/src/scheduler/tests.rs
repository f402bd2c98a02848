//! The scheduler pass and its stored state.

use super::*;
use crate::{Engine as Pop, EngineParts, RuntimeRouter};
use pop_core::authz::Principal;
use pop_core::clock::ManualClock;
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::Agenda;
use pop_sched::FairState;
use serde_json::json;

/// An instance with insight `i` (round robin, queue size 100) for customers `c1` and `c2`, each
/// with `n` ready agendas; returns the agenda ids.
async fn with_ready(n: usize) -> (Pop, Vec<String>) {
    let mut parts =
        EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), Arc::new(RuntimeRouter::new()));
    parts.clock = Arc::new(ManualClock::default());
    let pop = Pop::new(parts);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(100),
        scheduling_algorithm: Some("Fairness".into()),
        mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("t");
    pop.objects().provision_pool(&su, "p", "ops", insight, &["c1", "c2"]).await.unwrap();
    let mut ids = Vec::new();
    for c in ["c1", "c2"] {
        for _ in 0..n {
            let agenda: Agenda = serde_json::from_value(
                json!({"customerId": c, "operations": [{"name": "a", "type": "t", "payload": {}}]}),
            )
            .unwrap();
            ids.push(pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap());
        }
    }
    (pop, ids)
}

/// A stored state the algorithm cannot read: explain still answers, and the scheduler keeps a
/// copy of the document under another key, schedules from a fresh state and replaces the stored
/// one with it.
#[tokio::test]
async fn a_corrupt_state_is_kept_aside_and_scheduling_goes_on() {
    let (pop, ids) = with_ready(2).await;
    let corrupt = br#"{"algorithm":"RoundRobin","state":{"v":1,"used":{"c1":[1000,1,7,1]}}}"#.to_vec();
    let record = Record {
        kind: Kind::InsightSchedule,
        id: "i".into(),
        version: 1,
        indexes: vec![],
        phase: None,
        body: corrupt.clone(),
    };
    pop.store().write(vec![WriteOp::Create(record)]).await.unwrap();
    let version = pop.store().get(Kind::InsightSchedule, "i").await.unwrap().unwrap().version;

    let mut positions = Vec::new();
    for id in &ids {
        positions.push(explain(pop.ctx(), "i", id).await.unwrap().expect("explained from a fresh state").position);
    }
    positions.sort_unstable();
    assert_eq!(positions, [0, 1, 2, 3]);

    assert_eq!(pop.schedule_once().await.unwrap(), 4, "scheduling went on");
    let copy = pop.store().get(Kind::InsightSchedule, &format!("i#corrupt-v{version}")).await.unwrap();
    assert_eq!(copy.map(|r| r.body), Some(corrupt), "the unreadable document is kept");
    let saved = pop.store().get(Kind::InsightSchedule, "i").await.unwrap().unwrap();
    let state = AlgorithmState::from_json(saved.body);
    let insight = Insight { id: Some("i".into()), ..Insight::default() };
    let fair = state.state::<FairState>("RoundRobin", &insight).expect("the fresh state was saved");
    assert_eq!(fair.customers().len(), 0, "both customers drained: {fair:?}");
}

/// Each pass stores the algorithm's state (its typed form in the envelope) for the next one.
#[tokio::test]
async fn the_state_is_stored_for_the_next_pass() {
    let (pop, _) = with_ready(1).await;
    let (state, version) = load_state(pop.ctx(), "i").await.unwrap();
    assert!(state.is_fresh() && version.is_none());
    assert_eq!(pop.schedule_once().await.unwrap(), 2);
    let (state, version) = load_state(pop.ctx(), "i").await.unwrap();
    assert!(version.is_some());
    let doc = String::from_utf8(state.to_json().unwrap()).unwrap();
    assert!(doc.starts_with(r#"{"algorithm":"RoundRobin","state":{"v":1,"#), "{doc}");
    let insight = Insight { id: Some("i".into()), ..Insight::default() };
    assert!(state.state::<FairState>("RoundRobin", &insight).is_ok(), "{doc}");
}

/// `queueSize` caps the agendas *waiting* in the queue, not the ones pools run: the original's
/// insight document (its `DataGenerator` example, with queueSize 5) keeps five waiting however many
/// are leased, and leased agendas whose lease expires count as waiting again.
#[tokio::test]
async fn queue_size_counts_waiting_agendas_not_running_ones() {
    let clock = Arc::new(ManualClock::default());
    let mut parts =
        EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), Arc::new(RuntimeRouter::new()));
    parts.clock = clock.clone();
    let pop = Pop::new(parts);
    let insight: Insight = serde_json::from_value(json!({
        "id": "9384932rfdiofjwoiejf", "queueName": "aws:queue:my-queue", "queueSize": 5,
        "schedulingAlgorithm": "FirstInFirstOut", "title": "Insight-1", "customerId": "ops",
        "mappers": {"operationType": ["sample"]}, "isGlobal": true
    }))
    .unwrap();
    let su = Principal::superuser("t");
    pop.objects().provision_pool(&su, "p", "ops", insight, &["c"]).await.unwrap();
    for _ in 0..20 {
        let agenda: Agenda = serde_json::from_value(
            json!({"customerId": "c", "operations": [{"name": "a", "type": "sample", "payload": {}}]}),
        )
        .unwrap();
        pop.agendas().submit(&su, agenda).await.unwrap();
    }
    let q = "9384932rfdiofjwoiejf";
    let now = || pop.clock().now();
    assert_eq!(pop.schedule_once().await.unwrap(), 5);
    assert_eq!(pop.queue().waiting(q, now()).await.unwrap(), 5);
    // a pool runs three: the refill keeps five waiting beside them
    let leased = pop.pool().get_agendas(&su, q, 3).await.unwrap();
    assert_eq!(leased.len(), 3);
    assert_eq!(pop.schedule_once().await.unwrap(), 3);
    assert_eq!((pop.queue().waiting(q, now()).await.unwrap(), pop.queue().leased(q, now()).await.unwrap()), (5, 3));
    // above the low-water mark nothing is refilled
    pop.pool().get_agendas(&su, q, 2).await.unwrap();
    assert_eq!(pop.schedule_once().await.unwrap(), 0, "3 waiting > 5/2: no refill yet");
    // their leases expire: they wait again, and count as waiting
    clock.advance(pop.config().lease_ttl.as_millis() as i64 + 1);
    assert_eq!(pop.queue().waiting(q, now()).await.unwrap(), 8);
    assert_eq!(pop.schedule_once().await.unwrap(), 0);
}
