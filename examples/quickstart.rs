//! The POP quickstart: a whole embedded instance in a temporary directory.
//!
//! One resource pool with three insights (FIFO, Fairness, Priority), three customers — one of them
//! flooding the pool — and agendas from `examples/agendas/` that use references, `dependsOn`,
//! parallel branches, a generator and an operation that fails once and is retried. Handlers run as
//! real child processes: the original's `sample` handler (this binary re-run in handler mode) and
//! shell scripts from `examples/handlers/`. At the end, a table per customer shows fairness at work.
//!
//! Run: `cargo run --release --example quickstart` (add `-- --metrics` to print the instance's
//! metrics in Prometheus text format at the end).

use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Customer, Insight, ProcessingState, ResourcePool};
use pop_core::registry::HandlerRegistry;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "POP_QUICKSTART_ROLE";

fn main() -> ExitCode {
    // Handler mode: the registry runs this very binary as the `sample` handler.
    if std::env::var(ROLE).as_deref() == Ok("sample") {
        return pop_runtime_process::sample::main();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quickstart: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn registry(state_dir: &Path) -> Result<HandlerRegistry, Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let handlers = examples_dir().join("handlers");
    let doc = json!({
        "basePodConfig": {"reapCompletedPods": true},
        "sample": {"process": {"command": me, "env": {ROLE: "sample"}, "timeoutMs": 60000}},
        "shell.encode": {"process": {"command": "sh", "args": [handlers.join("encode.sh")], "maxConcurrent": 4}},
        "shell.flaky": {"process": {"command": "sh", "args": [handlers.join("flaky.sh")],
                                    "env": {"POP_QUICKSTART_STATE": state_dir}}}
    });
    Ok(HandlerRegistry::from_value(doc, "quickstart registry")?)
}

fn load(name: &str, customer: &str, priority: i32) -> Result<Agenda, Box<dyn std::error::Error>> {
    let path = examples_dir().join("agendas").join(name);
    let mut a: Agenda = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    a.customer_id = Some(customer.into());
    a.link_id = Some(format!("quickstart-{customer}"));
    a.priority = priority;
    Ok(a)
}

async fn setup(pop: &Pop, admin: &Principal) -> pop_core::Result<()> {
    let o = pop.objects();
    o.create(
        admin,
        ResourcePool {
            id: Some("studio".into()),
            customer_id: Some("operator".into()),
            title: Some("studio".into()),
            ..Default::default()
        },
    )
    .await?;
    for (id, algorithm, lane) in
        [("fifo", "FirstInFirstOut", "fifo"), ("fair", "Fairness", "fair"), ("priority", "Priority", "priority")]
    {
        o.create(
            admin,
            Insight {
                id: Some(id.into()),
                customer_id: Some("operator".into()),
                title: Some(format!("{algorithm} lane")),
                resource_pool_id: Some("studio".into()),
                is_global: true,
                queue_size: Some(2),
                scheduling_algorithm: Some(algorithm.into()),
                mappers: [("paramMap".to_string(), vec![format!("lane={lane}")])].into(),
                ..Default::default()
            },
        )
        .await?;
    }
    for (id, weight) in [("acme", 1), ("globex", 1), ("initech", 2)] {
        o.create(
            admin,
            Customer {
                id: Some(id.into()),
                customer_id: Some(id.into()),
                title: Some(id.into()),
                resource_pool_id: Some("studio".into()),
                weight,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let metrics = if std::env::args().any(|a| a == "--metrics") {
        Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
    } else {
        None
    };
    let tmp = tempfile::tempdir()?;
    println!("POP quickstart: embedded instance in {}", tmp.path().display());
    let runtime = RuntimeRouter::new()
        .with(Arc::new(pop_exec::inprocess::InProcessRuntime::new()))
        .with(Arc::new(pop_runtime_process::ProcessRuntime::new(registry(tmp.path())?)));
    let config = PopConfig {
        scheduler_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        ..PopConfig::default()
    };
    let pop = Pop::builder().sled_path(tmp.path().join("db"))?.runtime(Arc::new(runtime)).config(config).build()?;
    let admin = Principal::superuser("quickstart");
    setup(&pop, &admin).await?;

    // globex floods the Fairness lane first; acme and initech arrive after it.
    let mut submitted: Vec<(String, String)> = Vec::new();
    let mut submit = async |a: Agenda| -> pop_core::Result<()> {
        let customer = a.customer_id.clone().unwrap_or_default();
        let stored = pop.agendas().submit(&admin, a).await?;
        submitted.push((customer, stored.id.unwrap_or_default()));
        Ok(())
    };
    for _ in 0..16 {
        submit(load("media.json", "globex", 0)?).await?;
    }
    for _ in 0..4 {
        submit(load("media.json", "acme", 0)?).await?;
        submit(load("media.json", "initech", 0)?).await?;
    }
    for (i, c) in ["globex", "acme", "initech"].iter().enumerate() {
        submit(load("quick.json", c, 0)?).await?;
        submit(load("generator.json", c, i as i32)?).await?;
    }
    println!("submitted {} agendas; running with one pool worker (4 agendas at once)\n", submitted.len());
    pop.start_all(WorkerConfig { max_running: 4, ..WorkerConfig::for_insights(["fair", "fifo", "priority"]) });

    let ids: Vec<String> = submitted.iter().map(|(_, id)| id.clone()).collect();
    let mut last = String::new();
    let finals = pop::embedded::wait_all(&pop, &ids, Duration::from_millis(250), |all| {
        let done = all.iter().filter(|p| p.processing_state == ProcessingState::Complete).count();
        let running = all.iter().filter(|p| p.processing_state == ProcessingState::Executing).count();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for ((c, _), p) in submitted.iter().zip(all) {
            if p.processing_state == ProcessingState::Complete {
                *per.entry(c.as_str()).or_default() += 1;
            }
        }
        let line = format!(
            "[{:>5.1}s] {done:>2}/{} complete, {running} running   done per customer: {per:?}",
            started.elapsed().as_secs_f64(),
            all.len()
        );
        if line[9..] != last.get(9..).unwrap_or_default()[..] {
            println!("{line}");
            last = line;
        }
    })
    .await?;
    pop.shutdown().await;
    print_table(&submitted, &finals);
    if let Some(handle) = metrics {
        println!("\n# metrics (Prometheus text format)\n{}", handle.render());
    }
    let failed = finals.iter().filter(|p| p.processing_state_message.as_deref() != Some("succeeded")).count();
    println!("\nfinished in {:.1}s; {} agendas, {failed} failed", started.elapsed().as_secs_f64(), finals.len());
    Ok(failed == 0)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn print_table(submitted: &[(String, String)], finals: &[AgendaProgress]) {
    let mut rows: BTreeMap<&str, (usize, Vec<i64>, usize, usize)> = BTreeMap::new();
    for ((customer, _), p) in submitted.iter().zip(finals) {
        let row = rows.entry(customer.as_str()).or_default();
        row.0 += 1;
        if let (Some(s), Some(a)) = (p.started_time, p.added_time) {
            row.1.push(s - a);
        }
        if p.processing_state_message.as_deref() == Some("succeeded") {
            row.2 += 1;
        } else {
            row.3 += 1;
        }
    }
    println!("\n| customer | agendas | wait p50 (ms) | wait p99 (ms) | succeeded | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (c, (n, mut waits, ok, bad)) in rows {
        waits.sort_unstable();
        println!("| {c} | {n} | {} | {} | {ok} | {bad} |", percentile(&waits, 0.5), percentile(&waits, 0.99));
    }
}
