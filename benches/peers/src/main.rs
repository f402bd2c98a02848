//! POP against its peers, the Rust side (run by `benches/peers/run.sh`, which see).
//!
//! ```text
//! pop-peers dag <pop|dagrs> <operations>   layered DAG (width 10, fan-in 10) of no-op operations
//! pop-peers e2e [sled|fjall]                POP embedded (durable group commit) end to end
//! ```
//!
//! Every measurement prints one JSON line on stdout; the script gathers them into a table. Memory is
//! the process's peak resident set (`VmHWM`) above its resident set before the workload was built
//! (the same measure as the Python peers), so each size runs in a fresh process.

use async_trait::async_trait;
use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Conclusion, Insight, Operation, ProcessingState};
use pop_core::store::StoreExt;
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions, NullSink};
use pop_exec::inprocess::InProcessRuntime;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Operations per layer of the layered DAG.
const WIDTH: usize = 10;

/// This process's CPU time (user + system, every thread) in seconds.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The layered DAG as a POP agenda: `n` no-op operations in layers of [`WIDTH`], each depending on every
/// operation of the layer before (`dependsOn`).
fn layered_agenda(n: usize) -> Agenda {
    let operations = (0..n)
        .map(|i| {
            let layer = i / WIDTH;
            let params = (layer > 0).then(|| {
                let deps: Vec<Value> =
                    ((layer - 1) * WIDTH..layer * WIDTH).map(|d| Value::String(format!("n{d}"))).collect();
                json!({"dependsOn": deps}).as_object().cloned().unwrap_or_default()
            });
            Operation {
                name: format!("n{i}"),
                op_type: "noop".into(),
                payload: json!({}),
                params,
                ..Operation::default()
            }
        })
        .collect();
    Agenda { id: Some("peer".into()), progress_id: Some("peer-p".into()), operations, ..Agenda::default() }
}

/// A no-op dagrs action.
struct Noop;

#[async_trait]
impl dagrs::Action for Noop {
    async fn run(&self, _: &mut dagrs::InChannels, _: &mut dagrs::OutChannels, _: Arc<dagrs::EnvVar>) -> dagrs::Output {
        dagrs::Output::empty()
    }
}

/// The layered DAG as a dagrs graph, built and run.
async fn run_dagrs(n: usize) {
    let mut table = dagrs::NodeTable::new();
    let mut graph = dagrs::Graph::new();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let node = dagrs::DefaultNode::with_action(format!("n{i}"), Noop, &mut table);
        ids.push(graph.add_node(node).expect("dagrs add_node"));
    }
    for layer in 1..n.div_ceil(WIDTH) {
        let next: Vec<_> = ids[layer * WIDTH..((layer + 1) * WIDTH).min(n)].to_vec();
        for &from in &ids[(layer - 1) * WIDTH..layer * WIDTH] {
            graph.add_edge(from, next.iter().copied()).expect("dagrs add_edge");
        }
    }
    graph.async_start().await.expect("dagrs run");
}

async fn run_pop(exec: &Executor, n: usize) {
    let p = exec.run(layered_agenda(n), None, CancelToken::new()).await.expect("pop-exec run");
    assert_eq!(p.conclusion(), Some(Conclusion::Succeeded));
}

/// One size of the layered DAG on one engine: one run for the peak memory, then runs repeated to about
/// 100,000 operations in all for the times (wall and CPU per operation).
fn dag(engine: &str, n: usize) {
    // The same runtime for both engines: tokio's default (a worker thread per core).
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let runtime = InProcessRuntime::new();
    runtime.register("noop", |_| async { Ok(Value::Null) });
    let exec = Executor::new(Arc::new(runtime), Arc::new(NullSink), ExecutorOptions::default());
    let one = |rt: &tokio::runtime::Runtime| match engine {
        "pop" => rt.block_on(run_pop(&exec, n)),
        "dagrs" => rt.block_on(run_dagrs(n)),
        other => panic!("unknown engine {other}: pop or dagrs"),
    };
    let base = status_bytes("VmRSS");
    one(&rt);
    let peak = status_bytes("VmHWM").saturating_sub(base);
    let reps = (100_000 / n).max(1);
    let (start, cpu) = (Instant::now(), cpu_secs());
    for _ in 0..reps {
        one(&rt);
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let ops = (n * reps) as f64;
    println!(
        "{}",
        json!({"bench": "dag", "peer": if engine == "pop" { "pop-exec" } else { "dagrs" }, "ops": n, "runs": reps,
               "us_per_op": wall * 1e6 / ops, "cpu_us_per_op": cpu * 1e6 / ops, "peak_bytes_per_op": peak as f64 / n as f64})
    );
}

/// A chain of `ops` no-op operations (each waits for the one before).
fn chain(customer: &str, ops: usize) -> Agenda {
    let ops: Vec<_> = (0..ops)
        .map(|i| {
            if i == 0 {
                json!({"name": "op0", "type": "noop", "payload": {}})
            } else {
                json!({"name": format!("op{i}"), "type": "noop", "payload": {}, "params": {"dependsOn": [format!("op{}", i - 1)]}})
            }
        })
        .collect();
    serde_json::from_value(json!({"customerId": customer, "linkId": "peer", "operations": ops})).expect("chain")
}

/// The embedded store of an end-to-end run.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    /// sled with its default group commit (2 ms).
    Sled,
    /// fjall with its default group commit (syncs back to back).
    Fjall,
}

impl Backend {
    /// The name in the report.
    fn peer(self) -> &'static str {
        match self {
            Backend::Sled => "pop",
            Backend::Fjall => "pop (fjall)",
        }
    }
}

async fn embedded(dir: &std::path::Path, backend: Backend) -> Pop {
    let rt = InProcessRuntime::new();
    rt.register("noop", |_ctx| async move { Ok(json!({})) });
    let (store, queue): (Arc<dyn pop_core::store::Store>, Arc<dyn pop_core::queue::QueueBackend>) = match backend {
        Backend::Sled => {
            let (s, q) = pop_store_sled::open_both(pop_store_sled::Config::new(dir)).expect("sled");
            (Arc::new(s), Arc::new(q))
        }
        Backend::Fjall => {
            let (s, q) = pop_store_fjall::open_both(pop_store_fjall::Config::new(dir)).expect("fjall");
            (Arc::new(s), Arc::new(q))
        }
    };
    let config = PopConfig { scheduler_interval: Duration::from_millis(5), ..PopConfig::default() };
    let pop = Pop::builder()
        .store(store)
        .queue(queue)
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(rt))))
        .config(config)
        .build()
        .expect("pop");
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(512),
        scheduling_algorithm: Some("FirstInFirstOut".into()),
        mappers: [("operationType".to_string(), vec!["noop".to_string()])].into(),
        ..Default::default()
    };
    pop.objects().provision_pool(&Principal::superuser("peer"), "p", "ops", insight, &["c"]).await.expect("provision");
    pop.start_all(WorkerConfig {
        max_running: 64,
        pull_count: 32,
        pull_wait: Duration::from_millis(2),
        ..WorkerConfig::for_insights(["i"])
    });
    pop
}

/// Waits until the agenda's progress is COMPLETE; returns it.
async fn wait_done(pop: &Pop, progress_id: &str) -> AgendaProgress {
    loop {
        if let Some(p) = pop.store().get_obj::<AgendaProgress>(progress_id).await.expect("progress")
            && p.processing_state == ProcessingState::Complete
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Closed loop: `clients` concurrent clients each submit a workflow and wait for it to finish, `total`
/// workflows in all; workflows/s and submit-to-finish latency.
async fn closed_loop(pop: &Pop, peer: &str, ops: usize, clients: usize, total: usize) {
    let su = Principal::superuser("peer");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (pop, su) = (pop.clone(), su.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..total / clients {
                let t = Instant::now();
                let a = pop.agendas().submit(&su, chain("c", ops)).await.expect("submit");
                wait_done(&pop, a.progress_id.as_deref().expect("progress id")).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({"bench": "e2e", "peer": peer, "ops": ops, "clients": clients, "workflows": lat.len(),
               "per_sec": lat.len() as f64 / secs, "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99)})
    );
}

/// A burst: `count` workflows of `ops` operations submitted at once (32 submitters); when the first one
/// finishes, the median one and the last one, from the start of the burst.
async fn burst(pop: &Pop, peer: &str, ops: usize, count: usize) {
    let su = Principal::superuser("peer");
    let t0 = now_ms();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (pop, su) = (pop.clone(), su.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..count / 32 + 1 {
                let a = pop.agendas().submit(&su, chain("c", ops)).await.expect("submit");
                ids.push(a.progress_id.expect("progress id"));
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.expect("submitter"));
    }
    ids.truncate(count); // the extra ones run too, unmeasured
    let submitted = now_ms() - t0;
    let mut done = Vec::new();
    for id in &ids {
        let p = wait_done(pop, id).await;
        done.push(p.completed_time.map_or(f64::NAN, |c| c as f64 - t0));
    }
    done.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({"bench": "burst", "peer": peer, "ops": ops, "workflows": count, "submitted_ms": submitted,
               "first_ms": done[0], "p50_ms": pct(&done, 0.5), "last_ms": done[done.len() - 1]})
    );
}

fn e2e(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let peer = backend.peer();
    rt.block_on(async {
        for (what, ops, clients, total) in [("1-op", 1, 32, 3200), ("10-op", 10, 32, 960)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let pop = embedded(dir.path(), backend).await;
            eprintln!("{peer} e2e {what} ...");
            closed_loop(&pop, peer, ops, clients, total).await;
            pop.shutdown().await;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pop = embedded(dir.path(), backend).await;
        eprintln!("{peer} burst ...");
        burst(&pop, peer, 10, 1000).await;
        pop.shutdown().await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("dag") => {
            let engine = args.get(2).map_or("pop", String::as_str);
            let n = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
            dag(engine, n);
        }
        Some("e2e") => match args.get(2).map_or("sled", String::as_str) {
            "sled" => e2e(Backend::Sled),
            "fjall" => e2e(Backend::Fjall),
            other => {
                eprintln!("pop-peers e2e {other}: unknown store (sled or fjall)");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: pop-peers dag <pop|dagrs> <operations> | pop-peers e2e [sled|fjall]");
            std::process::exit(2);
        }
    }
}
