//! Resource-aware admission in a real engine: scheduler, pool worker, in-process handlers.

use super::Capacity;
use crate::{Engine as Pop, EngineParts, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::{Agenda, AgendaProgress, Insight, ProcessingState};
use pop_core::store::{Kind, Store, StoreExt};
use pop_exec::inprocess::InProcessRuntime;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The running sum of the handlers' `cpu` (millicores) and its peak.
#[derive(Default)]
struct Load {
    now: AtomicU64,
    peak: AtomicU64,
}

/// An engine whose handler `t` holds `payload.cpu` millicores for `payload.ms`, insight `i` (FIFO),
/// and a worker of capacity `capacity` with `max_backfill`.
async fn engine(capacity: &str, max_backfill: usize) -> (Pop, Arc<Load>) {
    let load = Arc::new(Load::default());
    let handlers = InProcessRuntime::new();
    let l = load.clone();
    handlers.register("t", move |ctx| {
        let l = l.clone();
        let cpu = ctx.payload()["cpu"].as_u64().unwrap_or(0);
        let ms = ctx.payload()["ms"].as_u64().unwrap_or(20);
        async move {
            let now = l.now.fetch_add(cpu, Ordering::SeqCst) + cpu;
            l.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            l.now.fetch_sub(cpu, Ordering::SeqCst);
            Ok(json!({}))
        }
    });
    let mut capacity = Capacity::parse(capacity).unwrap();
    capacity.max_backfill = max_backfill;
    let pop = running(Arc::new(MemoryStore::new()), handlers, Some(capacity)).await;
    (pop, load)
}

/// An engine on `store` with `handlers`, insight `i` (FIFO, operations of type `t`) for customer `c`,
/// its scheduler and a worker (4 at a time, of `capacity` when given) started.
async fn running(store: Arc<dyn Store>, handlers: InProcessRuntime, capacity: Option<Capacity>) -> Pop {
    let mut parts = EngineParts::new(store, Arc::new(MemoryQueue::new()), Arc::new(handlers));
    parts.config.scheduler_interval = Duration::from_millis(10);
    let pop = Pop::new(parts);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(100),
        scheduling_algorithm: Some("FirstInFirstOut".into()),
        mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("t");
    pop.objects().provision_pool(&su, "p", "ops", insight, &["c"]).await.unwrap();
    pop.start_scheduler();
    pop.start_worker(WorkerConfig {
        pull_count: 4,
        pull_wait: Duration::from_millis(5),
        max_running: 4,
        capacity,
        ..WorkerConfig::for_insights(["i"])
    });
    pop
}

/// Submits an agenda demanding `cpu` cores (explicitly) whose one operation holds them for `ms`.
async fn submit(pop: &Pop, cpu: u64, ms: u64) -> String {
    let agenda: Agenda = serde_json::from_value(json!({
        "customerId": "c",
        "params": {"resources": format!("cpu={cpu}")},
        "operations": [{"name": "a", "type": "t", "payload": {"cpu": cpu * 1000, "ms": ms}}]
    }))
    .unwrap();
    let id = pop.agendas().submit(&Principal::superuser("t"), agenda).await.unwrap().id.unwrap();
    // FIFO orders by submission time (ms), then id
    tokio::time::sleep(Duration::from_millis(2)).await;
    id
}

async fn wait_complete(pop: &Pop, ids: &[String], within: Duration) {
    let su = Principal::superuser("t");
    let until = std::time::Instant::now() + within;
    for id in ids {
        loop {
            let p = pop.progress().agenda_progress(&su, id).await.unwrap();
            if p.processing_state == ProcessingState::Complete {
                break;
            }
            assert!(std::time::Instant::now() < until, "agenda {id} not complete in {within:?}: {p:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A worker of capacity cpu=2 with agendas demanding 1 and 2 CPUs: the handlers' running sum never
/// exceeds 2 (and reaches it), every agenda succeeds with one attempt (being held back counts
/// none), and the large agenda starts after at most `max_backfill` of the small ones queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_never_exceeded_and_the_large_agenda_is_not_starved() {
    let (pop, load) = engine("cpu=2", 2).await;
    let mut before = Vec::new();
    for _ in 0..6 {
        before.push(submit(&pop, 1, 30).await);
    }
    let big = submit(&pop, 2, 30).await;
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(submit(&pop, 1, 30).await);
    }
    let all: Vec<String> = before.iter().chain([&big]).chain(&after).cloned().collect();
    wait_complete(&pop, &all, Duration::from_secs(30)).await;
    pop.shutdown().await;
    let peak = load.peak.load(Ordering::SeqCst);
    assert!(peak <= 2000, "the pool's capacity (2 CPUs) was exceeded: {peak} millicores ran at once");
    assert_eq!(peak, 2000, "the pool was never full");
    let su = Principal::superuser("t");
    let mut started = std::collections::HashMap::new();
    for id in &all {
        let p = pop.progress().agenda_progress(&su, id).await.unwrap();
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{id}: {p:?}");
        assert_eq!(p.attempts_completed, 1, "{id}: held back must not count an attempt");
        started.insert(id.clone(), p.started_time.unwrap());
    }
    let big_start = started[&big];
    let overtook = after.iter().filter(|id| started[*id] < big_start).count();
    eprintln!("small agendas queued behind the large one that started before it: {overtook}");
    assert!(overtook <= 2, "{overtook} smaller agendas started past the large one (max_backfill 2)");
}

/// An agenda held back says so in `explain`; one that can never fit fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_agenda_is_explained_and_one_that_never_fits_fails() {
    let (pop, _) = engine("cpu=1", 0).await;
    let su = Principal::superuser("t");
    let long = submit(&pop, 1, 1500).await;
    let held = submit(&pop, 1, 10).await;
    let huge = submit(&pop, 3, 10).await;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = pop.progress().explain(&su, &held).await.unwrap();
        if e.reason.contains("held back by pool admission") {
            assert!(e.reason.contains("cpu=1"), "{}", e.reason);
            assert_eq!(e.stage, "queued");
            break;
        }
        assert!(std::time::Instant::now() < until, "never explained as held back: {e:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_complete(&pop, &[long.clone(), held.clone(), huge.clone()], Duration::from_secs(20)).await;
    let p = pop.progress().agenda_progress(&su, &huge).await.unwrap();
    assert_eq!(p.processing_state_message.as_deref(), Some("failed"));
    let why = p.diagnostic_events.iter().filter_map(|d| d.message.clone()).collect::<Vec<_>>().join("; ");
    assert!(why.contains("never fit") && why.contains("3 cpu"), "{why}");
    let p = pop.progress().agenda_progress(&su, &held).await.unwrap();
    assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"));
    pop.shutdown().await;
}

/// A one-operation agenda run by a worker reads its agenda progress once, at the pull: the
/// executor's first report ("executing", which the pull already wrote) is not read back, and the
/// finish writes over the progress the lease last wrote.
#[tokio::test]
async fn a_run_reads_its_agenda_progress_once() {
    let store = Arc::new(crate::observed::Observed::default());
    let handlers = InProcessRuntime::new();
    handlers.register("t", |_| async { Ok(json!({})) });
    let pop = running(store.clone(), handlers, None).await;
    let su = Principal::superuser("t");
    let agenda: Agenda =
        serde_json::from_value(json!({"customerId": "c", "operations": [{"name": "a", "type": "t", "payload": {}}]}))
            .unwrap();
    let agenda = pop.agendas().submit(&su, agenda).await.unwrap();
    let progress_id = agenda.progress_id.unwrap();
    let mut done = false;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // read past the log
        let p: Option<AgendaProgress> = store.inner.get_obj(&progress_id).await.unwrap();
        if p.is_some_and(|p| p.processing_state == ProcessingState::Complete) {
            done = true;
            break;
        }
    }
    assert!(done, "the agenda did not complete");
    let reads = store.reads.lock().unwrap().clone();
    let progress_reads = reads.iter().filter(|k| **k == Kind::AgendaProgress).count();
    assert_eq!(progress_reads, 1, "agenda progress reads: {reads:?}");
}
