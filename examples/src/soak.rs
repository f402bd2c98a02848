//! The soak: mixed load on an embedded instance (sled + in-process and process handlers) for a
//! while, sampling the process's resident memory and open file descriptors (from `/proc/self`) and
//! the sled directory's size at each interval, with a data reaper on a short age so the store stays
//! bounded. `cargo run --release -p pop-examples --example soak -- --minutes 30`; the test
//! `examples/tests/soak.rs` runs a bounded version.

use pop::timed::{DataReaperConfig, TimedConfig, Timing};
use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, Customer, Insight, ProcessingState, ResourcePool};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long and how often.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Total duration.
    pub duration: Duration,
    /// Sampling interval.
    pub sample_every: Duration,
    /// Age after which the data reaper deletes a finished agenda.
    pub reap_age: Duration,
    /// Agendas submitted per second.
    pub rate: u32,
}

/// One sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the start.
    pub at_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// The sled directory's size, KiB.
    pub dir_kib: u64,
    /// Agendas submitted so far.
    pub submitted: u64,
    /// Agendas complete so far.
    pub completed: u64,
    /// Agendas deleted by the data reaper so far.
    pub reaped: u64,
    /// Live keys in all of the database's trees: what the store holds, as opposed to the
    /// directory's size, which also holds sled's log segments not yet reclaimed.
    pub live_keys: u64,
}

/// The outcome: the samples and the least-squares slopes per minute.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Samples, the first taken after a warm-up interval.
    pub samples: Vec<Sample>,
    /// RSS slope, KiB per minute (over the samples after the first).
    pub rss_slope_kib_per_min: f64,
    /// File descriptor slope, per minute.
    pub fd_slope_per_min: f64,
    /// Directory size slope, KiB per minute.
    pub dir_slope_kib_per_min: f64,
    /// Directory size slope over the second half of the run, KiB per minute (sled reclaims its
    /// log segments lazily: the directory levels off once the reaper's deletions keep pace).
    pub dir_slope_late_kib_per_min: f64,
    /// Live keys slope, keys per minute.
    pub keys_slope_per_min: f64,
    /// Live keys per tree at the end (the non-empty ones).
    pub trees_at_end: Vec<(String, usize)>,
    /// Errors met by the load (submissions, reads).
    pub errors: u64,
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0)
}

fn dir_kib(path: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::read_dir(p) {
            Ok(d) => d
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum(),
            Err(_) => 0,
        }
    }
    walk(path) / 1024
}

/// Keys in each of the database's trees, by name.
fn tree_sizes(db: &sled::Db) -> Vec<(String, usize)> {
    db.tree_names()
        .into_iter()
        .filter_map(|name| {
            let tree = db.open_tree(&name).ok()?;
            Some((String::from_utf8_lossy(&name).into_owned(), tree.len()))
        })
        .collect()
}

/// Least-squares slope of `y` over `x` (per unit of `x`).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den }
}

fn agenda(i: u64) -> Agenda {
    let customer = format!("c{}", i % 3);
    // Mixed: in-process steps, a process handler, now and then an operation that fails once and is
    // retried, and big-ish payloads.
    let ops = if i % 5 == 0 {
        serde_json::json!([
            {"name": "a", "type": "work", "payload": {"i": i, "pad": "x".repeat(2000)}},
            {"name": "p", "type": "proc", "payload": {"in": "@<a.out>"}},
            {"name": "b", "type": "flaky", "payload": {"in": "@<p.out>"}, "params": {"retry": {"maxAttempts": 3, "backoffMs": 10}}}
        ])
    } else {
        serde_json::json!([
            {"name": "a", "type": "work", "payload": {"i": i}},
            {"name": "b", "type": "work", "payload": {"x": "@<a.out>"}},
            {"name": "c", "type": "work", "payload": {"x": "@<a.out>"}},
            {"name": "d", "type": "work", "payload": {"b": "@<b.out>", "c": "@<c.out>"}}
        ])
    };
    serde_json::from_value(
        serde_json::json!({"customerId": customer, "linkId": format!("soak-{i}"), "operations": ops}),
    )
    .expect("a valid agenda")
}

async fn setup(pop: &Pop, admin: &Principal) -> pop_core::Result<()> {
    let o = pop.objects();
    o.create(
        admin,
        ResourcePool {
            id: Some("soak".into()),
            customer_id: Some("ops".into()),
            title: Some("soak".into()),
            ..Default::default()
        },
    )
    .await?;
    o.create(
        admin,
        Insight {
            id: Some("soak".into()),
            customer_id: Some("ops".into()),
            title: Some("soak".into()),
            resource_pool_id: Some("soak".into()),
            is_global: true,
            queue_size: Some(16),
            scheduling_algorithm: Some("Fairness".into()),
            mappers: [("operationType".to_string(), vec!["work".into(), "proc".into(), "flaky".into()])].into(),
            ..Default::default()
        },
    )
    .await?;
    for c in ["c0", "c1", "c2"] {
        o.create(
            admin,
            Customer {
                id: Some(c.into()),
                customer_id: Some(c.into()),
                title: Some(c.into()),
                resource_pool_id: Some("soak".into()),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// Runs the soak in `dir` and prints a line per sample.
///
/// # Errors
/// Setting up the instance.
pub async fn run(dir: &Path, config: SoakConfig) -> Result<SoakReport, Box<dyn std::error::Error>> {
    let handlers = pop_exec::inprocess::InProcessRuntime::new();
    handlers.register("work", |_ctx| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(serde_json::json!({"ok": true}))
    });
    let flaky_calls = Arc::new(AtomicU64::new(0));
    let calls = Arc::clone(&flaky_calls);
    handlers.register("flaky", move |_ctx| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            if n % 2 == 0 {
                Err("fails once, then succeeds".into())
            } else {
                Ok(serde_json::json!({"ok": true}))
            }
        }
    });
    let script = dir.join("proc.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'POP_RESULT {\"ok\": true}'\n")?;
    let mut perms = std::fs::metadata(&script)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms)?;
    let registry = pop_core::registry::HandlerRegistry::from_json_str(
        &serde_json::json!({"proc": {"process": {"command": script}}}).to_string(),
    )?;
    let runtime = RuntimeRouter::new()
        .with(Arc::new(handlers))
        .with(Arc::new(pop_runtime_process::ProcessRuntime::new(registry)));
    let db = dir.join("db");
    let pop_config = PopConfig {
        scheduler_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        ..PopConfig::default()
    };
    let (store, queue) = pop::sled::open_both(pop::sled::Config::new(&db))?;
    let sled_db = store.sled_db().clone();
    let pop = Pop::builder()
        .store(Arc::new(store))
        .queue(Arc::new(queue))
        .runtime(Arc::new(runtime))
        .config(pop_config)
        .build()?;
    let admin = Principal::superuser("soak");
    setup(&pop, &admin).await?;
    pop.start_scheduler();
    pop.start_reclaimer();
    pop.start_worker(WorkerConfig { max_running: 8, ..WorkerConfig::for_insights(["soak"]) });
    let every =
        Timing { enabled: true, interval: config.reap_age / 2, budget: Duration::from_secs(30), dry_run: false };
    pop.start_timed(TimedConfig {
        data_reaper: DataReaperConfig { timing: every.clone(), agenda_ttl: config.reap_age, batch_size: 25 },
        ..TimedConfig::default()
    });

    let started = Instant::now();
    let submitted = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let load = {
        let (pop, submitted, completed, errors) =
            (pop.clone(), Arc::clone(&submitted), Arc::clone(&completed), Arc::clone(&errors));
        let admin = admin.clone();
        let until = started + config.duration;
        let gap = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
        tokio::spawn(async move {
            let mut open: Vec<String> = Vec::new();
            let mut i = 0_u64;
            while Instant::now() < until {
                match pop.agendas().submit(&admin, agenda(i)).await {
                    Ok(a) => {
                        submitted.fetch_add(1, Ordering::Relaxed);
                        open.extend(a.id);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
                // Reads: the progress of the open agendas, forgetting the finished ones.
                if i % 10 == 0 {
                    let mut still = Vec::new();
                    for id in open.drain(..) {
                        match pop.progress().agenda_progress(&admin, &id).await {
                            Ok(p) if p.processing_state == ProcessingState::Complete => {
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => still.push(id),
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    open = still;
                }
                tokio::time::sleep(gap).await;
            }
        })
    };

    // A warm-up interval, then the samples.
    let mut samples = Vec::new();
    println!("| minute | RSS (MiB) | open fds | sled dir (MiB) | live keys | submitted | complete | reaped |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    loop {
        tokio::time::sleep(config.sample_every).await;
        let s = Sample {
            at_s: started.elapsed().as_secs_f64(),
            rss_kib: proc_status_kib("VmRSS:"),
            fds: open_fds(),
            dir_kib: dir_kib(&db),
            submitted: submitted.load(Ordering::Relaxed),
            completed: completed.load(Ordering::Relaxed),
            reaped: pop.timed_stats().snapshot().1.acted,
            live_keys: tree_sizes(&sled_db).iter().map(|(_, n)| *n as u64).sum(),
        };
        println!(
            "| {:.1} | {:.1} | {} | {:.1} | {} | {} | {} | {} |",
            s.at_s / 60.0,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.dir_kib as f64 / 1024.0,
            s.live_keys,
            s.submitted,
            s.completed,
            s.reaped
        );
        samples.push(s);
        if started.elapsed() >= config.duration {
            break;
        }
    }
    load.await?;
    pop.shutdown().await;
    let trees_at_end: Vec<(String, usize)> = tree_sizes(&sled_db).into_iter().filter(|(_, n)| *n > 0).collect();
    let tail: Vec<&Sample> = samples.iter().skip(1).collect();
    let late: Vec<&Sample> = samples.iter().skip(samples.len() / 2).collect();
    let per_min = |from: &[&Sample], f: &dyn Fn(&Sample) -> f64| {
        slope(&from.iter().map(|s| (s.at_s / 60.0, f(s))).collect::<Vec<_>>())
    };
    let report = SoakReport {
        rss_slope_kib_per_min: per_min(&tail, &|s| s.rss_kib as f64),
        fd_slope_per_min: per_min(&tail, &|s| s.fds as f64),
        dir_slope_kib_per_min: per_min(&tail, &|s| s.dir_kib as f64),
        dir_slope_late_kib_per_min: per_min(&late, &|s| s.dir_kib as f64),
        keys_slope_per_min: per_min(&tail, &|s| s.live_keys as f64),
        trees_at_end,
        errors: errors.load(Ordering::Relaxed),
        samples,
    };
    println!(
        "slopes (after the first sample): RSS {:+.1} KiB/min, fds {:+.2}/min, sled dir {:+.1} KiB/min \
         ({:+.1} KiB/min over the second half), live keys {:+.1}/min; {} errors",
        report.rss_slope_kib_per_min,
        report.fd_slope_per_min,
        report.dir_slope_kib_per_min,
        report.dir_slope_late_kib_per_min,
        report.keys_slope_per_min,
        report.errors
    );
    println!("live keys per tree at the end: {:?}", report.trees_at_end);
    Ok(report)
}
