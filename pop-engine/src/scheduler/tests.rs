//! The scheduler pass and its stored state.

use super::*;
use crate::{Engine as Pop, EngineParts, RuntimeRouter};
use pop_core::authz::Principal;
use pop_core::clock::ManualClock;
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::Agenda;
use pop_sched::FairState;
use serde_json::json;

/// An instance on the memory store with a manual clock and insight `i` (operations of type `t`,
/// `algorithm`, queue size `queue_size`, and `aging_step_ms`) served by pool `p` for `customers`.
async fn with_insight(
    algorithm: &str,
    queue_size: u32,
    aging_step_ms: Option<u64>,
    customers: &[&str],
) -> (Pop, Arc<ManualClock>) {
    let mut parts =
        EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), Arc::new(RuntimeRouter::new()));
    let clock = Arc::new(ManualClock::default());
    parts.clock = clock.clone();
    let pop = Pop::new(parts);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(queue_size),
        scheduling_algorithm: Some(algorithm.into()),
        aging_step_ms,
        mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("t");
    pop.objects().provision_pool(&su, "p", "ops", insight, customers).await.unwrap();
    (pop, clock)
}

/// An instance with insight `i` (round robin, queue size 100) for customers `c1` and `c2`, each
/// with `n` ready agendas; returns the agenda ids.
async fn with_ready(n: usize) -> (Pop, Vec<String>) {
    let (pop, clock) = with_insight("Fairness", 100, None, &["c1", "c2"]).await;
    let su = Principal::superuser("t");
    let mut ids = Vec::new();
    for c in ["c1", "c2"] {
        for _ in 0..n {
            let agenda: Agenda = serde_json::from_value(
                json!({"customerId": c, "operations": [{"name": "a", "type": "t", "payload": {}}]}),
            )
            .unwrap();
            ids.push(pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap());
            // distinct submission times: within a customer the oldest is scheduled first, and
            // agendas submitted in the same millisecond would be ordered by their random ids
            clock.advance(1);
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

/// The pool time each customer got in a run, in ms of agenda wall time (completed − started), and
/// its completed agendas.
async fn pool_time(pop: &Pop, ids: &[(String, &'static str)]) -> HashMap<&'static str, (i64, usize)> {
    let su = Principal::superuser("t");
    let mut out: HashMap<&'static str, (i64, usize)> = HashMap::new();
    for (id, customer) in ids {
        let p = pop.progress().agenda_progress(&su, id).await.unwrap();
        if let (Some(s), Some(c)) = (p.started_time, p.completed_time) {
            let e = out.entry(customer).or_default();
            e.0 += c - s;
            e.1 += 1;
        }
    }
    out
}

/// Runs `light` (20 ms agendas) and `heavy` (200 ms agendas, 10× longer), both backlogged, through
/// a real engine (scheduler, pool worker with 2 slots, in-process handlers that sleep) for `run`
/// with insight algorithm `algorithm`; returns each customer's (pool time ms, completed agendas).
async fn unequal_sizes(algorithm: &str, run: std::time::Duration) -> HashMap<&'static str, (i64, usize)> {
    use std::time::Duration;
    let handlers = pop_exec::inprocess::InProcessRuntime::new();
    for (t, ms) in [("short", 20u64), ("long", 200)] {
        handlers.register(t, move |_| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({}))
        });
    }
    let mut parts = EngineParts::new(Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()), Arc::new(handlers));
    parts.config.scheduler_interval = Duration::from_millis(10);
    parts.config.cost_half_life = Duration::from_secs(60);
    let pop = Pop::new(parts);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(2),
        scheduling_algorithm: Some(algorithm.into()),
        mappers: [("operationType".to_string(), vec!["short".to_string(), "long".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("t");
    pop.objects().provision_pool(&su, "p", "ops", insight, &["light", "heavy"]).await.unwrap();
    let mut ids = Vec::new();
    for (customer, op_type, n) in [("light", "short", 400), ("heavy", "long", 60)] {
        for _ in 0..n {
            let agenda: Agenda = serde_json::from_value(
                json!({"customerId": customer, "operations": [{"name": "a", "type": op_type, "payload": {}}]}),
            )
            .unwrap();
            ids.push((pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap(), customer));
        }
    }
    pop.start_scheduler();
    pop.start_worker(crate::WorkerConfig {
        pull_count: 1,
        pull_wait: Duration::from_millis(5),
        max_running: 2,
        ..crate::WorkerConfig::for_insights(["i"])
    });
    tokio::time::sleep(run).await;
    pop.shutdown().await;
    let got = pool_time(&pop, &ids).await;
    for c in ["light", "heavy"] {
        let (_, n) = got.get(c).copied().unwrap_or_default();
        assert!(n < if c == "light" { 400 } else { 60 }, "{c} ran out of backlog: the run was not contended: {got:?}");
    }
    got
}

/// Cost-weighted fairness end to end: the engine records each finished agenda's cost, flushes it
/// into the insight's decayed costs, and `CostWeightedFairness` gives two customers — one with
/// agendas 10× longer — about half of the pool's time each (within 10 %); plain `Fairness` gives
/// them equal counts of agendas instead (so the heavy one takes most of the time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_weighted_fairness_shares_pool_time_and_plain_fairness_shares_counts() {
    let run = std::time::Duration::from_secs(5);
    let by_cost = unequal_sizes("CostWeightedFairness", run).await;
    let (light, heavy) = (by_cost["light"], by_cost["heavy"]);
    let share = heavy.0 as f64 / (heavy.0 + light.0) as f64;
    eprintln!("CostWeightedFairness: light {light:?}, heavy {heavy:?}: heavy's share of pool time {share:.3}");
    assert!((share - 0.5).abs() <= 0.05, "heavy's share of the pool's time is {share:.3}, not 0.5 ± 10 %");

    let by_count = unequal_sizes("Fairness", run).await;
    let (light, heavy) = (by_count["light"], by_count["heavy"]);
    let share = heavy.0 as f64 / (heavy.0 + light.0) as f64;
    eprintln!("Fairness: light {light:?}, heavy {heavy:?}: heavy's share of pool time {share:.3}");
    assert!(light.1.abs_diff(heavy.1) <= 2, "equal counts without cost weighting: {light:?} vs {heavy:?}");
    assert!(share > 0.8, "without cost weighting the heavy customer takes most of the time: {share:.3}");
}

/// Queued agendas per customer in insight `i`.
async fn queued_by_customer(pop: &Pop) -> std::collections::BTreeMap<String, usize> {
    pop.queue().count_by_customer("i").await.unwrap()
}

/// A customer at its execution limit is skipped (the other customer is served), `explain` says
/// why, and a finished agenda makes room for one more.
#[tokio::test]
async fn a_customer_at_its_execution_limit_is_skipped_and_explained() {
    let (pop, ids) = with_ready(5).await;
    let su = Principal::superuser("t");
    let mut c1: Customer = pop.objects().get(&su, "c1").await.unwrap();
    c1.execution_limit = Some(2);
    pop.objects().update(&su, c1).await.unwrap();
    assert_eq!(pop.schedule_once().await.unwrap(), 7, "2 of c1 (its limit) and all 5 of c2");
    assert_eq!(queued_by_customer(&pop).await, [("c1".to_string(), 2), ("c2".to_string(), 5)].into());
    // c1's third agenda is still ready: explain names the limit
    let e = pop.progress().explain(&su, &ids[2]).await.unwrap();
    assert_eq!(e.stage, "ready");
    assert!(e.reason.contains("customer c1 is at its execution limit (2 of 2"), "{}", e.reason);
    // nothing more for c1 while both are queued or running
    let leases = pop.pool().get_agendas(&su, "i", 7).await.unwrap();
    assert_eq!(pop.schedule_once().await.unwrap(), 0);
    // one of c1's finishes: one more of c1 is queued
    let done = leases.iter().find(|l| l.agenda.customer_id.as_deref() == Some("c1")).unwrap();
    pop.queue().ack(&done.lease.token).await.unwrap();
    assert_eq!(pop.schedule_once().await.unwrap(), 1);
    assert_eq!(queued_by_customer(&pop).await["c1"], 2);
}

/// The insight's execution limit caps queued + running agendas, and a second instance on the same
/// store and queue honours it too (the counts come from the shared queue, not from memory).
#[tokio::test]
async fn the_insight_execution_limit_holds_across_instances() {
    let clock = Arc::new(ManualClock::default());
    let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let engine = || {
        let mut parts = EngineParts::new(store.clone(), queue.clone(), Arc::new(RuntimeRouter::new()));
        parts.clock = clock.clone();
        Pop::new(parts)
    };
    let (a, b) = (engine(), engine());
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(100),
        execution_limit: Some(3),
        mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("t");
    a.objects().provision_pool(&su, "p", "ops", insight, &["c1"]).await.unwrap();
    for _ in 0..10 {
        let agenda: Agenda = serde_json::from_value(
            json!({"customerId": "c1", "operations": [{"name": "a", "type": "t", "payload": {}}]}),
        )
        .unwrap();
        a.agendas().submit(&su, agenda).await.unwrap();
    }
    assert_eq!(a.schedule_once().await.unwrap(), 3);
    let leases = a.pool().get_agendas(&su, "i", 2).await.unwrap();
    assert_eq!(a.schedule_once().await.unwrap(), 0, "2 running + 1 waiting = the limit");
    // the other instance takes over the insight's scheduler lease: it sees the same counts
    clock.advance(a.config().scheduler_lease.as_millis() as i64 + 1);
    assert_eq!(b.schedule_once().await.unwrap(), 0, "instance b honours the limit");
    a.queue().ack(&leases[0].lease.token).await.unwrap();
    assert_eq!(b.schedule_once().await.unwrap(), 1, "one finished: one more");
    assert_eq!(a.queue().len("i").await.unwrap(), 3);
}

/// `Insight.agingStepMs` sets `Priority`'s aging step per insight.
#[tokio::test]
async fn the_priority_aging_step_is_per_insight() {
    let mut view_insight = Insight { id: Some("i".into()), aging_step_ms: Some(10), ..Insight::default() };
    let entry = |id: &str, priority: i32, added: i64| ReadyAgenda {
        agenda_id: id.into(),
        customer_id: "c".into(),
        added,
        priority,
        ..ReadyAgenda::default()
    };
    // an old agenda of priority 0 against a new one of priority 5, 100 ms later
    let entries = vec![entry("new", 5, 100), entry("old", 0, 0)];
    let first = |insight: &Insight| {
        let view = ReadyView::new(
            insight,
            vec![CustomerReady { customer_id: "c", weight: 1, entries: &entries, runs: &[], key: 0 }],
            100,
        );
        let registry = pop_sched::Registry::new();
        let algo = registry.for_insight(&Insight { scheduling_algorithm: Some("Priority".into()), ..insight.clone() });
        algo.unwrap().pick(&view, &mut AlgorithmState::new(), 1).unwrap()[0].agenda_id.clone()
    };
    assert_eq!(first(&view_insight), "old", "aged 10 levels in 100 ms with a 10 ms step");
    view_insight.aging_step_ms = None;
    assert_eq!(first(&view_insight), "new", "the default step (60 s) has not aged it");
}

/// An algorithm that records the longest list the scheduler showed it and picks FIFO.
struct Recording {
    name: &'static str,
    in_order: bool,
    longest: std::sync::Mutex<usize>,
}

impl SchedulingAlgorithm for Recording {
    fn name(&self) -> &str {
        self.name
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, count: usize) -> Result<Vec<ReadyAgenda>> {
        let longest = view.customers.iter().map(|c| c.entries.len()).max().unwrap_or(0);
        let mut l = self.longest.lock().unwrap();
        *l = (*l).max(longest);
        SchedulingAlgorithm::pick(&pop_sched::FirstInFirstOut, view, state, count)
    }

    fn explain(&self, view: &ReadyView<'_>, state: &AlgorithmState, agenda_id: &str) -> Result<Option<Explanation>> {
        SchedulingAlgorithm::explain(&pop_sched::FirstInFirstOut, view, state, agenda_id)
    }

    fn in_run_order(&self) -> bool {
        self.in_order
    }
}

/// An algorithm that takes runs in order is shown only each run's first `free + 1` entries (the
/// store's `ready_heads`), one that does not the whole ready set; both queue the same agendas.
#[tokio::test]
async fn an_algorithm_in_run_order_reads_only_the_heads_of_a_long_backlog() {
    let mut queued = Vec::new();
    for in_order in [true, false] {
        let algo = Arc::new(Recording { name: "Recording", in_order, longest: std::sync::Mutex::new(0) });
        let clock = Arc::new(ManualClock::default());
        let mut parts = EngineParts::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryQueue::new()),
            Arc::new(RuntimeRouter::new()),
        );
        parts.clock = clock.clone();
        parts.algorithms.push(algo.clone());
        let pop = Pop::new(parts);
        let insight = Insight {
            id: Some("i".into()),
            title: Some("i".into()),
            is_global: true,
            queue_size: Some(4),
            scheduling_algorithm: Some("Recording".into()),
            mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
            ..Default::default()
        };
        let su = Principal::superuser("t");
        pop.objects().provision_pool(&su, "p", "ops", insight, &["c"]).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..30 {
            let agenda: Agenda = serde_json::from_value(
                json!({"customerId": "c", "operations": [{"name": "a", "type": "t", "payload": {}}]}),
            )
            .unwrap();
            ids.push(pop.agendas().submit(&su, agenda).await.unwrap().id);
            clock.advance(1);
        }
        assert_eq!(pop.schedule_once().await.unwrap(), 4);
        let shown = *algo.longest.lock().unwrap();
        if in_order {
            assert_eq!(shown, 5, "a refill of 4 reads 4 + 1 entries of the one run");
        } else {
            assert_eq!(shown, 30, "the whole ready set");
        }
        let leased = pop.pool().get_agendas(&su, "i", 4).await.unwrap();
        // by submission order
        queued.push(leased.iter().map(|l| ids.iter().position(|id| *id == l.progress.agenda_id)).collect::<Vec<_>>());
    }
    assert_eq!(queued[0], vec![Some(0), Some(1), Some(2), Some(3)], "the oldest first");
    assert_eq!(queued[0], queued[1], "the same agendas either way");
}

/// A customer whose execution limit leaves room for more than a refill reads per run: the scheduler
/// shows an algorithm in run order the first `room` of the customer's runs' heads, so an aged agenda
/// of a later run can go first — and `explain` says what the scheduler does, not that the limit
/// holds it back.
#[tokio::test]
async fn explain_agrees_with_the_heads_a_limited_customer_shows() {
    let (pop, clock) = with_insight("Priority", 8, Some(1_000), &["c1"]).await;
    let su = Principal::superuser("t");
    let mut c1: Customer = pop.objects().get(&su, "c1").await.unwrap();
    c1.execution_limit = Some(10);
    pop.objects().update(&su, c1).await.unwrap();
    let submit = |priority: i32| {
        let agenda: Agenda = serde_json::from_value(
            json!({"customerId": "c1", "priority": priority, "operations": [{"name": "a", "type": "t", "payload": {}}]}),
        )
        .unwrap();
        let pop = &pop;
        let su = &su;
        async move { pop.agendas().submit(su, agenda).await.unwrap().id.unwrap() }
    };
    // three of priority 0 an hour old (aged 3,600 levels), then twenty fresh ones of priority 5
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(submit(0).await);
        clock.advance(1);
    }
    clock.advance(3_600_000);
    for _ in 0..20 {
        submit(5).await;
        clock.advance(1);
    }
    // room 10, a refill of 8 reads 9 per run: c1 shows 9 of priority 5 and the oldest of priority 0
    let e = pop.progress().explain(&su, &old[0]).await.unwrap();
    assert_eq!(e.stage, "ready");
    assert_eq!(e.position, Some(0), "{}", e.reason);
    assert!(!e.reason.contains("execution limit"), "{}", e.reason);
    let e = pop.progress().explain(&su, &old[1]).await.unwrap();
    assert!(e.reason.contains("behind 21 earlier agendas of customer c1"), "{}", e.reason);
    assert_eq!(pop.schedule_once().await.unwrap(), 8);
    let queued: Vec<String> =
        pop.pool().get_agendas(&su, "i", 8).await.unwrap().into_iter().filter_map(|l| l.agenda.id).collect();
    assert!(queued.contains(&old[0]), "the aged agenda the explanation put first is queued");
    assert!(!queued.contains(&old[1]), "the next one was not shown");
}
