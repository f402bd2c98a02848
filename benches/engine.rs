//! End-to-end engine throughput: agendas per second through a whole embedded instance (sled with
//! group commit, in-process no-op handlers) and submit-to-start latency at that load.
//! `POP_BENCH_STORE=fjall` runs it on the fjall backend, `POP_BENCH_STORE=memory` on the in-memory
//! store (no durability: a bound, not a result).
//!
//! A plain bench binary (not criterion: one run is seconds long and the interesting numbers are
//! throughput and latency percentiles). Run: `cargo bench -p pop-benches --bench engine` (add
//! `--features mimalloc` for the allocator of the `pop` binary).
#![allow(missing_docs, reason = "bench binary")]

use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Insight, ProcessingState};
use pop_core::store::{IndexField, PageRequest, StoreExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// By default the bench runs on the system allocator, which is what a program embedding POP gets
/// unless it picks another. `--features mimalloc` measures with the `pop` binary's allocator (glibc's
/// malloc takes about a quarter of the engine's CPU).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn setup(pop: &Pop) {
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(env_or("POP_BENCH_QUEUE_SIZE", 512) as _),
        scheduling_algorithm: Some("Fairness".into()),
        mappers: [("operationType".to_string(), vec!["noop".to_string()])].into(),
        ..Default::default()
    };
    let customers: Vec<String> = (0..8).map(|c| format!("c{c}")).collect();
    let customers: Vec<&str> = customers.iter().map(String::as_str).collect();
    pop.objects()
        .provision_pool(&Principal::superuser("bench"), "p", "ops", insight, &customers)
        .await
        .expect("provision");
}

/// Concurrent submitting tasks (clients).
const SUBMITTERS: usize = 32;

/// Whether workers run while agendas are submitted (`Mixed`), or every agenda is submitted first and
/// the workers then drain the backlog (`Drain`: submission and execution measured apart).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Mixed,
    Drain,
}

/// A setting from the environment, `default` when unset; a value that is not a whole number stops
/// the bench saying which variable (a typo must not measure the default silently).
fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
    }
}

fn cpu() -> f64 {
    pop_benches::process_cpu_secs().unwrap_or(f64::NAN)
}

async fn run(ops_per_agenda: usize, agendas: usize, mode: Mode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = pop_exec::inprocess::InProcessRuntime::new();
    rt.register("noop", |_ctx| async move { Ok(json!({"ok": true})) });
    let (store, queue): (Arc<dyn pop_core::store::Store>, Arc<dyn pop_core::queue::QueueBackend>) =
        if std::env::var("POP_BENCH_STORE").as_deref() == Ok("memory") {
            (Arc::new(pop_core::memory::MemoryStore::new()), Arc::new(pop_core::memory::MemoryQueue::new()))
        } else if std::env::var("POP_BENCH_STORE").as_deref() == Ok("fjall") {
            // fjall's default group commit syncs back to back; POP_BENCH_GROUP_COMMIT_MS spaces them
            let mut config = pop_store_fjall::Config::new(dir.path());
            if std::env::var_os("POP_BENCH_GROUP_COMMIT_MS").is_some() {
                config = config.flush_policy(pop_store_fjall::FlushPolicy::GroupCommit {
                    max_delay_ms: env_or("POP_BENCH_GROUP_COMMIT_MS", 0) as u64,
                });
            }
            let (s, q) = pop_store_fjall::open_both(config).expect("fjall");
            (Arc::new(s), Arc::new(q))
        } else {
            let (s, q) = pop_store_sled::open_both(pop_store_sled::Config::new(dir.path()).flush_policy(
                pop_store_sled::FlushPolicy::GroupCommit {
                    max_delay_ms: env_or("POP_BENCH_GROUP_COMMIT_MS", 2) as u64,
                },
            ))
            .expect("sled");
            (Arc::new(s), Arc::new(q))
        };
    let config = PopConfig {
        scheduler_interval: Duration::from_millis(5),
        heartbeat: Duration::from_secs(5),
        ..PopConfig::default()
    };
    let pop = Pop::builder()
        .store(store)
        .queue(queue)
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(rt))))
        .config(config)
        .build()
        .expect("pop");
    setup(&pop).await;
    let workers = WorkerConfig {
        max_running: env_or("POP_BENCH_MAX_RUNNING", 64),
        pull_count: env_or("POP_BENCH_PULL_COUNT", 32),
        pull_wait: Duration::from_millis(2),
        ..WorkerConfig::for_insights(["i"])
    };
    if mode == Mode::Mixed {
        pop.start_all(workers.clone());
    }
    let su = Principal::superuser("bench");
    let (start, cpu_start) = (Instant::now(), cpu());
    // 32 concurrent submitters
    let mut tasks = Vec::new();
    let submitters = env_or("POP_BENCH_SUBMITTERS", SUBMITTERS);
    for c in 0..submitters {
        let pop = pop.clone();
        let su = su.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..agendas / submitters {
                pop.agendas()
                    .submit(&su, pop_benches::chain_agenda(&format!("c{}", c % 8), ops_per_agenda))
                    .await
                    .expect("submit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    let total = agendas / submitters * submitters;
    let (submitted, submit_cpu) = (start.elapsed(), cpu() - cpu_start);
    let (start, cpu_start) = match mode {
        Mode::Mixed => (start, cpu_start),
        Mode::Drain => {
            println!(
                "{ops_per_agenda:>2}-operation agendas: submission alone: {total} in {:.2}s = {:.0} agendas/s, {:.2} ms CPU per agenda",
                submitted.as_secs_f64(),
                total as f64 / submitted.as_secs_f64(),
                submit_cpu * 1000.0 / total as f64
            );
            pop.start_all(workers);
            (Instant::now(), cpu())
        }
    };
    loop {
        // Cheap checks first (the queue and the ready set are empty), so that the bench's own polling
        // does not take CPU from the engine; then every progress is read once to confirm and measure.
        let queued = pop.queue().len("i").await.expect("queue length");
        let ready = pop.store().ready_list("i", PageRequest::first(1)).await.expect("ready set").items.len();
        if queued > 0 || ready > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let page = pop
            .store()
            .query_all::<pop_core::model::AgendaProgress>(IndexField::LinkId, "bench")
            .await
            .expect("progress");
        if page.len() == total && page.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            let elapsed = start.elapsed();
            let used = cpu() - cpu_start;
            let mut lat: Vec<i64> = page.iter().filter_map(|p| Some(p.started_time? - p.added_time?)).collect();
            lat.sort_unstable();
            let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
            let mut run_ms: Vec<i64> = page.iter().filter_map(|p| Some(p.completed_time? - p.started_time?)).collect();
            run_ms.sort_unstable();
            let what = match mode {
                Mode::Mixed => "submitted while running",
                Mode::Drain => "execution of the backlog alone",
            };
            println!(
                "{ops_per_agenda:>2}-operation agendas, {what}: {total} in {:.2}s = {:.0} agendas/s ({:.0} operations/s), {:.2} ms CPU per agenda; start-to-complete p50 {} ms, p99 {} ms",
                elapsed.as_secs_f64(),
                total as f64 / elapsed.as_secs_f64(),
                (total * ops_per_agenda) as f64 / elapsed.as_secs_f64(),
                used * 1000.0 / total as f64,
                run_ms[run_ms.len() / 2],
                run_ms[run_ms.len() * 99 / 100]
            );
            if mode == Mode::Mixed {
                println!(
                    "    submit phase {:.2}s; submit-to-start p50 {} ms, p99 {} ms",
                    submitted.as_secs_f64(),
                    pct(0.5),
                    pct(0.99)
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pop.shutdown().await;
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that fast.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        if quick {
            run(1, 64, Mode::Mixed).await;
            run(1, 64, Mode::Drain).await;
            return;
        }
        let n1 = env_or("POP_BENCH_AGENDAS", 4000);
        let only = std::env::var("POP_BENCH_ONLY").unwrap_or_default();
        const RUNS: [&str; 4] = ["1m", "1d", "10m", "10d"];
        if let Some(bad) = only.split(',').find(|o| !o.is_empty() && !RUNS.contains(o)) {
            panic!("POP_BENCH_ONLY: unknown run {bad:?} (the runs are {})", RUNS.join(", "));
        }
        let on = |k: &str| only.is_empty() || only.split(',').any(|o| o == k);
        if on("1m") {
            run(1, n1, Mode::Mixed).await;
        }
        if on("1d") {
            run(1, n1, Mode::Drain).await;
        }
        if on("10m") {
            run(10, 1000, Mode::Mixed).await;
        }
        if on("10d") {
            run(10, 1000, Mode::Drain).await;
        }
    });
}
