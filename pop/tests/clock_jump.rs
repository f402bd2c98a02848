//! A clock jump forward and back on one worker (issue 19): two instances in one process share one
//! sled store and queue, each with a scheduler, a reclaimer and a pool worker over in-process
//! handlers. Instance B's clock is the real one plus an adjustable offset; mid-run it jumps forward
//! by more than the lease TTL (+60 s: to B every lease of A looks expired, so B's reclaimer and
//! pulls take them over while A still runs them), later back behind the real time (-60 s: B's own
//! leases look expired to A at once, and A takes them over).
//!
//! What must hold: every agenda completes and succeeds; no operation starts after it had durably
//! succeeded (the store's successes are read before the handler log, as in
//! `pop-cli/tests/remote_pools.rs`); and the fence keeps a taken-over worker's results out: each
//! operation's stored result comes from exactly one handler run, and the input a downstream
//! operation consumed is its upstream's stored result (a zombie overwrite after it was consumed
//! would break that).

mod common;

use pop::{Clock, Pop, PopConfig, RuntimeRouter, SystemClock, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Insight, Millis, ProcessingState};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENDAS: usize = 30;
const LEASE_TTL_MS: u64 = 3000;
const JUMP_MS: i64 = 60_000;

/// The real clock plus an offset the test moves.
struct JumpClock(Arc<AtomicI64>);

impl Clock for JumpClock {
    fn now(&self) -> Millis {
        SystemClock.now() + self.0.load(Ordering::SeqCst)
    }
}

/// One handler event: a start or an end of a run, by instance, with the run's sequence number.
#[derive(Debug, Clone)]
struct Event {
    start: bool,
    instance: &'static str,
    agenda: String,
    op: String,
    seq: u64,
    /// The resolved `in` of the payload (the upstream's `seq`), if any.
    input: Option<u64>,
}

type Log = Arc<Mutex<Vec<Event>>>;

fn runtime(instance: &'static str, log: Log, seq: Arc<AtomicU64>) -> pop_exec::inprocess::InProcessRuntime {
    let rt = pop_exec::inprocess::InProcessRuntime::new();
    rt.register("step", move |ctx| {
        let (log, seq) = (log.clone(), seq.clone());
        async move {
            let n = seq.fetch_add(1, Ordering::SeqCst);
            let ev = |start| Event {
                start,
                instance,
                agenda: ctx.agenda_id().to_owned(),
                op: ctx.operation_name().to_owned(),
                seq: n,
                input: ctx.payload().get("in").and_then(Value::as_u64),
            };
            log.lock().unwrap().push(ev(true));
            let ms = ctx.payload().get("ms").and_then(Value::as_u64).unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            log.lock().unwrap().push(ev(false));
            Ok(json!({"seq": n, "by": instance}))
        }
    });
    rt
}

fn config(name: &str) -> PopConfig {
    PopConfig {
        instance_id: name.to_owned(),
        lease_ttl: Duration::from_millis(LEASE_TTL_MS),
        heartbeat: Duration::from_millis(400),
        reclaim_interval: Duration::from_millis(300),
        repair_interval: Duration::from_millis(1500),
        scheduler_interval: Duration::from_millis(100),
        scheduler_lease: Duration::from_millis(1500),
        ..PopConfig::default()
    }
}

/// Agenda `i`: a chain `a -> b` (and `-> c` for even `i`) of `step` operations of 50-200 ms, each
/// consuming its upstream's `seq`.
fn agenda(i: usize) -> Agenda {
    let ms = |k: usize| 50 + (i * 37 + k * 53) % 151;
    let mut ops = vec![
        json!({"name": "a", "type": "step", "payload": {"ms": ms(0)}}),
        json!({"name": "b", "type": "step", "payload": {"ms": ms(1), "in": "@<a.out::/seq>"}}),
    ];
    if i % 2 == 0 {
        ops.push(json!({"name": "c", "type": "step", "payload": {"ms": ms(2), "in": "@<b.out::/seq>"}}));
    }
    serde_json::from_value(json!({
        "customerId": format!("c{}", i % 3),
        "linkId": "jump",
        "params": {"maximumAttempts": 30},
        "operations": ops
    }))
    .unwrap()
}

fn instance(
    store: Arc<dyn pop_core::store::Store>,
    queue: Arc<dyn pop_core::queue::QueueBackend>,
    name: &'static str,
    log: &Log,
    seq: &Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
) -> Pop {
    let rt = runtime(name, log.clone(), seq.clone());
    Pop::builder()
        .store(store)
        .queue(queue)
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(rt))))
        .config(config(name))
        .clock(clock)
        .build()
        .unwrap()
}

async fn all_progress(pop: &Pop, su: &Principal, ids: &[String]) -> Vec<AgendaProgress> {
    let mut all = Vec::new();
    for id in ids {
        all.push(pop.progress().agenda_progress(su, id).await.unwrap());
    }
    all
}

/// `(agenda, operation)` of every durable success.
fn succeeded(progress: &[AgendaProgress], ids: &[String]) -> HashSet<(String, String)> {
    progress
        .iter()
        .zip(ids)
        .flat_map(|(p, id)| {
            p.operation_progress
                .iter()
                .filter(|o| o.succeeded())
                .map(move |o| (id.clone(), o.operation.clone().unwrap_or_default()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_forward_and_back_on_one_worker_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, queue) = pop::sled::open_both(pop::sled::Config::new(tmp.path())).unwrap();
    let (store, queue): (Arc<dyn pop_core::store::Store>, Arc<dyn pop_core::queue::QueueBackend>) =
        (Arc::new(store), Arc::new(queue));
    let log: Log = Arc::default();
    let seq = Arc::new(AtomicU64::new(1));
    let offset = Arc::new(AtomicI64::new(0));
    let a = instance(store.clone(), queue.clone(), "A", &log, &seq, Arc::new(SystemClock));
    let b = instance(store, queue, "B", &log, &seq, Arc::new(JumpClock(offset.clone())));

    let su = Principal::superuser("test");
    let insight = Insight {
        id: Some("insight".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(4),
        scheduling_algorithm: Some("Fairness".into()),
        mappers: [("operationType".to_string(), vec!["step".to_string()])].into(),
        ..Default::default()
    };
    a.objects().provision_pool(&su, "pool", "ops", insight, &["c0", "c1", "c2"]).await.unwrap();
    let worker = || WorkerConfig { max_running: 2, pull_count: 1, ..WorkerConfig::for_insights(["insight"]) };
    a.start_all(worker());
    b.start_all(worker());
    let mut ids = Vec::new();
    for i in 0..AGENDAS {
        ids.push(a.agendas().submit(&su, agenda(i)).await.unwrap().id.unwrap());
    }

    // Run, snapshotting the durable successes then the log's length: a start logged after that
    // length for an operation in the snapshot re-ran a durable success.
    let mut snapshots: Vec<(HashSet<(String, String)>, usize)> = Vec::new();
    let (mut jumped_forward, mut jumped_back) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(150);
    let finals = loop {
        let all = all_progress(&a, &su, &ids).await;
        let len = log.lock().unwrap().len();
        snapshots.push((succeeded(&all, &ids), len));
        let done = all.iter().filter(|p| p.processing_state == ProcessingState::Complete).count();
        if done == AGENDAS {
            break all;
        }
        // both instances must be running operations before the jump, so that B has leases of A's to take
        let running_both = {
            let l = log.lock().unwrap();
            l.iter().any(|e| e.instance == "A") && l.iter().any(|e| e.instance == "B")
        };
        if jumped_forward.is_none() && running_both && done >= 4 {
            offset.store(JUMP_MS, Ordering::SeqCst);
            jumped_forward = Some((done, len));
            eprintln!("B's clock jumps +{JUMP_MS} ms with {done}/{AGENDAS} agendas done");
        } else if jumped_back.is_none() && jumped_forward.is_some_and(|(d, _)| done >= d + 8) {
            offset.store(-JUMP_MS, Ordering::SeqCst);
            jumped_back = Some((done, len));
            eprintln!("B's clock jumps back to {} ms behind with {done}/{AGENDAS} agendas done", JUMP_MS);
        }
        assert!(Instant::now() < deadline, "agendas did not complete in 150 s: {all:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (jf, jb) = (jumped_forward.expect("no forward jump"), jumped_back.expect("no backward jump"));
    assert!(jb.0 < AGENDAS, "the backward jump came after everything had completed");

    let log = log.lock().unwrap().clone();
    // every agenda succeeded
    for p in &finals {
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{p:#?}");
    }
    // no operation started after it had durably succeeded
    for (done, len) in &snapshots {
        for e in log[*len..].iter().filter(|e| e.start) {
            assert!(
                !done.contains(&(e.agenda.clone(), e.op.clone())),
                "{} {} started again in {} (run {}) after it had durably succeeded",
                e.agenda,
                e.op,
                e.instance,
                e.seq
            );
        }
    }
    // the fence: each stored result comes from one run that ended, and downstream consumed it
    let mut result_of: HashMap<(String, String), u64> = HashMap::new();
    for (p, id) in finals.iter().zip(&ids) {
        for o in &p.operation_progress {
            let op = o.operation.clone().unwrap_or_default();
            let out: Value = serde_json::from_str(o.result_payload.as_deref().unwrap_or("null")).unwrap();
            let n = out.get("seq").and_then(Value::as_u64).unwrap_or_else(|| panic!("{id} {op}: no result: {o:#?}"));
            let ended: Vec<&Event> = log.iter().filter(|e| !e.start && e.seq == n).collect();
            assert_eq!(ended.len(), 1, "{id} {op}: stored result of run {n}, which did not end once");
            assert!(ended[0].agenda == *id && ended[0].op == op, "{id} {op}: stored result of another run");
            assert_eq!(out.get("by").and_then(Value::as_str), Some(ended[0].instance));
            result_of.insert((id.clone(), op), n);
        }
    }
    for (id, op, up) in ids.iter().flat_map(|id| [(id, "b", "a"), (id, "c", "b")]) {
        let Some(n) = result_of.get(&(id.clone(), op.to_owned())) else { continue };
        let run = log.iter().find(|e| e.start && e.seq == *n).unwrap();
        assert_eq!(
            run.input,
            result_of.get(&(id.clone(), up.to_owned())).copied(),
            "{id} {op}: consumed a result of {up} that is not the stored one (a fenced-out write landed)"
        );
    }

    // the summary: runs per operation, re-runs, and results that were discarded (a run that ended
    // but whose result is not the stored one: its lease had been taken over)
    let starts = log.iter().filter(|e| e.start).count();
    let ops: usize = finals.iter().map(|p| p.operation_progress.len()).sum();
    let discarded = log.iter().filter(|e| !e.start && !result_of.values().any(|n| *n == e.seq)).count();
    let unfinished = starts - log.iter().filter(|e| !e.start).count();
    let by = |i: &str, r: std::ops::Range<usize>| log[r].iter().filter(|e| e.start && e.instance == i).count();
    // operations run in both instances: the jumps moved them
    let moved = {
        let mut runs: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
        for e in log.iter().filter(|e| e.start) {
            runs.entry((&e.agenda, &e.op)).or_default().insert(e.instance);
        }
        runs.values().filter(|i| i.len() > 1).count()
    };
    eprintln!(
        "clock jump: {ops} operations, {starts} runs ({} re-runs), {moved} run in both instances, \
         {discarded} results discarded (lease taken over), {unfinished} runs cut; runs A/B: before the jump {}/{}, \
         while B was +{JUMP_MS} ms {}/{}, while B was -{JUMP_MS} ms {}/{}; forward at {}/{AGENDAS} done, back at {}/{AGENDAS}",
        starts - ops,
        by("A", 0..jf.1),
        by("B", 0..jf.1),
        by("A", jf.1..jb.1),
        by("B", jf.1..jb.1),
        by("A", jb.1..log.len()),
        by("B", jb.1..log.len()),
        jf.0,
        jb.0
    );
}
