//! Kill and restart: an instance in a child process is SIGKILLed mid-run several times (fixed seed);
//! restarted on the same directory every agenda completes, none is lost, none runs twice at once, and
//! operations that had succeeded are not run again.
//!
//! The child is this test binary itself, re-run with `POP_KILL_CHILD=<dir>` (see `child`).

#![cfg(feature = "sled")]

mod common;

use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Insight, OperationProgress, ProcessingState};
use pop_core::store::{Kind, PageRequest, Store};
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const AGENDAS: usize = 24;

fn config() -> PopConfig {
    PopConfig {
        lease_ttl: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(300),
        reclaim_interval: Duration::from_millis(300),
        repair_interval: Duration::from_millis(1000),
        scheduler_interval: Duration::from_millis(100),
        scheduler_lease: Duration::from_millis(1000),
        ..PopConfig::default()
    }
}

fn open(dir: &Path, log: PathBuf) -> Pop {
    let rt = common::step_runtime(log);
    Pop::builder()
        .sled_path(dir.join("db"))
        .unwrap()
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(rt))))
        .config(config())
        .build()
        .unwrap()
}

fn agenda(i: usize) -> Agenda {
    common::step_agenda(i, "kill", 400)
}

/// The child role: open the instance, submit the agendas once, run until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let Ok(dir) = std::env::var("POP_KILL_CHILD") else { return };
    let dir = PathBuf::from(dir);
    let pop = open(&dir, dir.join("handler.log"));
    let su = Principal::superuser("test");
    if !dir.join("submitted").exists() {
        let insight = Insight {
            id: Some("insight".into()),
            title: Some("i".into()),
            is_global: true,
            queue_size: Some(4),
            scheduling_algorithm: Some("Fairness".into()),
            mappers: [("operationType".to_string(), vec!["step".to_string()])].into(),
            ..Default::default()
        };
        pop.objects().provision_pool(&su, "pool", "ops", insight, &["c0", "c1", "c2"]).await.unwrap();
        let mut ids = String::new();
        for i in 0..AGENDAS {
            let a = pop.agendas().submit(&su, agenda(i)).await.unwrap();
            ids.push_str(a.id.as_deref().unwrap());
            ids.push('\n');
        }
        std::fs::write(dir.join("ids"), ids).unwrap();
        std::fs::write(dir.join("submitted"), b"yes").unwrap();
    }
    pop.start_all(WorkerConfig { max_running: 4, ..WorkerConfig::for_insights(["insight"]) });
    println!("CHILD READY");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

fn spawn_child(dir: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("POP_KILL_CHILD", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn succeeded_ops(dir: &Path) -> (HashSet<(String, String)>, Vec<AgendaProgress>) {
    let (store, _queue) = pop_store_sled::open_both(pop_store_sled::Config::new(dir.join("db"))).unwrap();
    let mut done = HashSet::new();
    let ops = store.scan(Kind::OperationProgress, PageRequest::first(100_000)).await.unwrap();
    for r in &ops.items {
        let op: OperationProgress = pop_core::store::from_record(r).unwrap();
        if op.succeeded() {
            let agenda = op.agenda_progress_id.clone().unwrap_or_default();
            done.insert((agenda, op.operation.clone().unwrap_or_default()));
        }
    }
    let progress = store.scan(Kind::AgendaProgress, PageRequest::first(100_000)).await.unwrap();
    let list = progress.items.iter().map(|r| pop_core::store::from_record::<AgendaProgress>(r).unwrap()).collect();
    (done, list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instances_lose_nothing_and_never_rerun_succeeded_operations() {
    if std::env::var("POP_KILL_CHILD").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("handler.log");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let kills = 6;
    // (log offset at the kill, ops durable at the kill keyed by (progress id, op name))
    let mut checkpoints: Vec<(usize, HashSet<(String, String)>)> = Vec::new();
    for k in 0..kills {
        let mut child = spawn_child(dir);
        let wait = if k == 0 { 1200 } else { rng.gen_range(300..1500) };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let offset = std::fs::read_to_string(&log).map(|s| s.len()).unwrap_or(0);
        let (done, _) = succeeded_ops(dir).await;
        checkpoints.push((offset, done));
    }
    // a last instance runs everything to the end
    let mut child = spawn_child(dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let finals = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().ok();
        child.wait().ok();
        let (_, progress) = succeeded_ops(dir).await;
        if progress.len() == AGENDAS && progress.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            break progress;
        }
        assert!(std::time::Instant::now() < deadline, "agendas did not complete: {progress:#?}");
        child = spawn_child(dir);
        tokio::time::sleep(Duration::from_millis(3000)).await;
    };
    // none lost: every agenda succeeded
    for p in &finals {
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{p:#?}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    // map agenda id -> progress id, to compare log lines with durable op progress
    let by_agenda: HashMap<String, String> =
        finals.iter().map(|p| (p.agenda_id.clone().unwrap(), p.id.clone().unwrap())).collect();
    // succeeded operations are never started again after they were durable
    for (offset, done) in &checkpoints {
        for line in text[*offset..].lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts[0] != "start" {
                continue;
            }
            let key = (by_agenda[parts[1]].clone(), parts[2].to_string());
            assert!(!done.contains(&key), "operation {key:?} ran again after it had succeeded: {line}");
        }
    }
    // never two executions of one agenda at once in one instance: per (pid, agenda, op) starts and ends alternate
    let mut open_ops: HashMap<(String, String, String), usize> = HashMap::new();
    for line in text.lines() {
        let p: Vec<&str> = line.split(' ').collect();
        let key = (p[3].to_string(), p[1].to_string(), p[2].to_string());
        let n = open_ops.entry(key.clone()).or_default();
        if p[0] == "start" {
            *n += 1;
            assert!(*n <= 1, "two executions of {key:?} at once");
        } else {
            *n = n.saturating_sub(1);
        }
    }
    // the kills really landed mid-run: several instances ran handlers, and some operation was cut off
    let pids: HashSet<&str> = text.lines().filter_map(|l| l.split(' ').nth(3)).collect();
    let interrupted = open_ops.values().filter(|n| **n > 0).count()
        + text.lines().filter(|l| l.starts_with("start")).count()
        - text.lines().filter(|l| l.starts_with("end")).count();
    eprintln!("{} of {} instances ran handlers; {interrupted} operations cut by a kill", pids.len(), kills + 1);
    assert!(pids.len() >= 3, "only {} instances ran handlers", pids.len());
    assert!(interrupted > 0, "no kill interrupted a running operation");
    // every operation of every agenda ended successfully at least once
    for p in &finals {
        let a = p.agenda_id.as_deref().unwrap();
        for op in ["a", "b", "c", "d"] {
            assert!(text.contains(&format!("end {a} {op} ")), "{a} {op} never finished");
        }
    }
}
