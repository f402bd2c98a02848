//! pop-store-dynamo against a LOCAL EMULATOR (moto's server mode on loopback), not AWS: operations per
//! second for get, put, CAS update, receive+ack and the submit batch — useful to catch regressions and
//! round-trip counts, not as a prediction of AWS latency — and the number of DynamoDB requests per
//! agenda lifecycle, counted by the backend's request counter:
//!
//! 1. the lifecycle spelled out on the Store / QueueBackend API (submit batch → schedule (ready list,
//!    queue push, ready remove) → receive → progress updates → ack), request by request;
//! 2. the real engine (`pop::Pop` on `DynamoStore` + `DynamoQueue`, in-process no-op handlers) running
//!    agendas from submit to COMPLETE, with its background loops' idle rate measured and subtracted.
//!
//! moto is a slow, single-threaded Python emulator: expect a few hundred single-item requests per
//! second, and transactions that slow down as a table grows (moto deep-copies every table a
//! transaction touches, once per item, to roll back) — the submit batch's number is moto's, not
//! DynamoDB's.
//!
//! Run: `eval "$(bash .ci/dynamo.sh)"; cargo bench -p pop-benches --bench dynamo`. Without
//! `POP_DYNAMODB_ENDPOINT` it prints why and exits. Without `--bench` (as under `cargo test --benches`)
//! it only runs the request counts, on few agendas.
#![allow(missing_docs, reason = "bench binary")]

#[path = "dynamo_support.rs"]
mod dynamo_support;

use criterion::{Criterion, Throughput};
use pop::{Pop, WorkerConfig};
use pop_benches::store::{customer_record, ready, submit_batch};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Insight, Millis, ProcessingState};
use pop_core::queue::QueueBackend;
use pop_core::store::{IndexField, Kind, PageRequest, Store, StoreExt, WriteOp, update_op};
use pop_store_dynamo::{DynamoBackend, DynamoConfig, RequestCounts};
use std::time::{Duration, Instant};

const LABEL: &str = "dynamodb-on-moto-local-emulator";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", dynamo_support::unique_id())
}

fn now() -> Millis {
    pop_core::testing::wall_clock()
}

/// A backend on fresh tables (moto copies a whole table for every transaction item, so each
/// benchmark gets its own small tables).
async fn fresh_backend(endpoint: &str) -> DynamoBackend {
    let prefix = format!("pop_bench{}_", &dynamo_support::unique_id());
    let b = DynamoBackend::connect(DynamoConfig::local(endpoint).table_prefix(prefix)).await.expect("connect");
    b.ensure_tables().await.expect("ensure_tables");
    b
}

fn ops_per_second(c: &mut Criterion, rt: &tokio::runtime::Runtime, endpoint: &str) {
    let mut g = c.benchmark_group(LABEL);
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(6));

    let b = rt.block_on(fresh_backend(endpoint));
    let store = b.store();
    let id = unique("c");
    rt.block_on(store.write(vec![WriteOp::Create(customer_record(&id))])).expect("seed");
    g.bench_function("get", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    store.get(Kind::Customer, &id).await.expect("get");
                }
                t.elapsed()
            })
        })
    });

    let b = rt.block_on(fresh_backend(endpoint));
    let store = b.store();
    g.bench_function("put (create)", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let ids: Vec<String> = (0..iters).map(|_| unique("c")).collect();
                let t = Instant::now();
                for id in &ids {
                    store.write(vec![WriteOp::Create(customer_record(id))]).await.expect("create");
                }
                t.elapsed()
            })
        })
    });

    let b = rt.block_on(fresh_backend(endpoint));
    let store = b.store();
    let id = unique("c");
    rt.block_on(store.write(vec![WriteOp::Create(customer_record(&id))])).expect("seed");
    g.bench_function("CAS update", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let mut version = store.get(Kind::Customer, &id).await.expect("get").expect("seeded").version;
                let t = Instant::now();
                for _ in 0..iters {
                    let mut record = customer_record(&id);
                    record.version = version + 1;
                    store.write(vec![WriteOp::Update { record, expected_version: version }]).await.expect("cas");
                    version += 1;
                }
                t.elapsed()
            })
        })
    });

    let b = rt.block_on(fresh_backend(endpoint));
    let queue = b.queue();
    g.bench_function("receive+ack", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let insight = unique("i");
                let t0 = now();
                for _ in 0..iters {
                    queue.push(&insight, ready(&insight, &unique("a")), t0).await.expect("push");
                }
                let t = Instant::now();
                for _ in 0..iters {
                    let leases = queue.receive(&insight, 1, 60_000, t0 + 1).await.expect("receive");
                    queue.ack(&leases[0].token).await.expect("ack");
                }
                t.elapsed()
            })
        })
    });

    let b = rt.block_on(fresh_backend(endpoint));
    let store = b.store();
    g.bench_function("submit batch (13 writes, 1 transaction)", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let batches: Vec<Vec<WriteOp>> = (0..iters).map(|_| submit_batch(&unique("a"), "i").0).collect();
                let t = Instant::now();
                for ops in batches {
                    store.write(ops).await.expect("submit");
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

fn print_counts(what: &str, counts: &RequestCounts, per: f64) {
    let by: Vec<String> = counts.by_action.iter().map(|(k, v)| format!("{k} {:.1}", *v as f64 / per)).collect();
    println!("{LABEL}: {what}: {:.1} requests ({})", counts.total as f64 / per, by.join(", "));
}

/// The lifecycle of one 10-operation agenda on the Store / QueueBackend API, the way an engine does
/// it with the fewest requests, counted phase by phase.
async fn api_lifecycle(endpoint: &str) {
    let b = fresh_backend(endpoint).await;
    let (store, queue) = (b.store(), b.queue());
    let insight = unique("i");
    let agenda_id = unique("a");
    let mut phases: Vec<(&str, RequestCounts)> = Vec::new();
    let mut mark = b.request_counts();
    let mut phase = |name: &'static str, b: &DynamoBackend| {
        let now = b.request_counts();
        phases.push((name, now.since(&mark)));
        mark = now;
    };

    let (ops, mut progress, mut op_progress) = submit_batch(&agenda_id, &insight);
    store.write(ops).await.expect("submit");
    phase("submit batch (agenda, progress, 10 operation progresses, ready entry)", &b);

    let listed = store.ready_list(&insight, PageRequest::first(100)).await.expect("ready list");
    assert_eq!(listed.items.len(), 1);
    phase("schedule: ready list", &b);
    assert!(queue.push(&insight, listed.items[0].clone(), now()).await.expect("push"));
    phase("schedule: queue push", &b);
    store.write(vec![WriteOp::ReadyRemove { agenda_id: agenda_id.clone() }]).await.expect("ready remove");
    phase("schedule: ready remove", &b);

    let leases = queue.receive(&insight, 1, 30_000, now()).await.expect("receive");
    assert_eq!(leases.len(), 1);
    phase("receive (1 agenda)", &b);
    let _agenda: Agenda = store.fetch(&agenda_id).await.expect("agenda");
    phase("worker reads the agenda", &b);

    // Each operation: started, then done, each with the agenda progress, one transaction per change.
    for op in &mut op_progress {
        for state in [ProcessingState::Executing, ProcessingState::Complete] {
            op.processing_state = state;
            progress.processing_state = ProcessingState::Executing;
            let writes = vec![update_op(op).expect("op"), update_op(&mut progress).expect("p")];
            store.write(writes).await.expect("progress update");
        }
    }
    phase("progress updates (10 operations x executing, complete; each with the agenda progress)", &b);

    queue.ack(&leases[0].token).await.expect("ack");
    phase("ack", &b);

    let total: u64 = phases.iter().map(|(_, c)| c.total).sum();
    for (name, c) in &phases {
        print_counts(&format!("API lifecycle: {name}"), c, 1.0);
    }
    println!("{LABEL}: API lifecycle of one 10-operation agenda: {total} DynamoDB requests in all");
}

async fn engine_setup(pop: &Pop, insight: &str) {
    let insight = Insight {
        id: Some(insight.into()),
        title: Some(insight.into()),
        is_global: true,
        queue_size: Some(64),
        mappers: [("operationType".to_string(), vec!["noop".to_string()])].into(),
        ..Default::default()
    };
    pop.objects()
        .provision_pool(&Principal::superuser("bench"), "p", "ops", insight, &["c0"])
        .await
        .expect("provision");
}

/// The real engine on DynamoDB: `agendas` agendas of `ops` operations from submit to COMPLETE.
async fn engine_lifecycle(endpoint: &str, ops: usize, agendas: usize) {
    let b = fresh_backend(endpoint).await;
    // Polling for completion goes through a second connection, so it is not counted.
    let observer = DynamoBackend::connect(b.config().clone()).await.expect("observer");
    let pop = dynamo_support::noop_engine(&b);
    engine_setup(&pop, "i").await;
    pop.start_all(WorkerConfig {
        max_running: 16,
        pull_count: 8,
        pull_wait: Duration::from_millis(50),
        ..WorkerConfig::for_insights(["i"])
    });
    // The background loops' requests when there is nothing to do.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start = b.request_counts();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = b.request_counts().since(&idle_start);
    let idle_per_sec = idle.total as f64 / t.elapsed().as_secs_f64();

    let su = Principal::superuser("bench");
    let before = b.request_counts();
    let start = Instant::now();
    for _ in 0..agendas {
        pop.agendas().submit(&su, pop_benches::chain_agenda("c0", ops)).await.expect("submit");
    }
    let observer_store = observer.store();
    loop {
        let all = observer_store.query_all::<AgendaProgress>(IndexField::LinkId, "bench").await.expect("progress");
        if all.len() == agendas && all.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "agendas did not complete in 10 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let used = b.request_counts().since(&before);
    pop.shutdown().await;
    let n = agendas as f64;
    let idle_share = idle_per_sec * elapsed.as_secs_f64();
    print_counts(
        &format!(
            "engine, {ops}-operation agendas ({agendas} in {:.1}s), all requests per agenda",
            elapsed.as_secs_f64()
        ),
        &used,
        n,
    );
    println!(
        "{LABEL}: engine, {ops}-operation agendas: idle background rate {idle_per_sec:.1} requests/s ({}); \
         per agenda without it: {:.1} requests",
        idle.by_action.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        (used.total as f64 - idle_share).max(0.0) / n
    );
}

fn main() {
    let Some(endpoint) = std::env::var("POP_DYNAMODB_ENDPOINT").ok().filter(|e| !e.trim().is_empty()) else {
        println!(
            "dynamo bench skipped: POP_DYNAMODB_ENDPOINT is not set (run `eval \"$(bash .ci/dynamo.sh)\"` to start \
             moto's server mode on loopback)"
        );
        return;
    };
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    println!("{LABEL}: every number below is measured against moto on 127.0.0.1 ({endpoint}), NOT AWS");
    rt.block_on(api_lifecycle(&endpoint));
    rt.block_on(engine_lifecycle(&endpoint, 1, if full { 40 } else { 4 }));
    rt.block_on(engine_lifecycle(&endpoint, 10, if full { 20 } else { 2 }));
    if full {
        let mut c = Criterion::default().configure_from_args();
        ops_per_second(&mut c, &rt, &endpoint);
        c.final_summary();
    }
}
