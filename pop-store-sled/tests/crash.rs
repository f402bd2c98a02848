//! Crash test: a child process (this test binary, re-run as `crash_child`) submits agendas, moves them
//! to the queue, receives and acks them in a loop, printing a line for every operation whose future
//! has completed (so is durable by the flush policy). The parent SIGKILLs it at random moments
//! (fixed seed), reopens the database each time and checks that nothing reported durable was lost,
//! that no acked item came back, that no item was delivered twice while a lease on it was live, and
//! that every index entry points at a live object and every object is in its indexes.
//!
//! Kills alternate between group commit and flush-every-write. The test can fail: with
//! `POP_SLED_CRASH_POLICY=background` (sled's periodic flush, which promises nothing) it reports
//! lost agendas after the first kill.
//!
//! Lines the child prints (one operation each, after its future returned `Ok`):
//!
//! ```text
//! SUBMIT a        agenda + progress + 2 operation progresses + ready entry, one atomic write
//! PUSH a          pushed to the queue
//! UNREADYING a    about to remove the ready entry (printed before the write)
//! UNREADY a       ready entry removed
//! RECV a e n d    delivered with epoch e at time n, lease deadline d
//! ACKING a e      about to ack (printed before the call)
//! ACK a e         acked
//! UPDATE p v      progress p updated to version v
//! ERR msg         an unexpected error (fails the test)
//! ```

mod common;

use common::{now_ms, progress_id, ready, submit_ops};
use pop_core::model::{AgendaProgress, OperationProgress, ProcessingState};
use pop_core::queue::QueueBackend;
use pop_core::store::{IndexField, Kind, Store, StoreExt, WriteOp};
use pop_store_sled::{Config, FlushPolicy, SledStore};
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "POP_SLED_CRASH_CHILD";
const INSIGHT: &str = "crash-insight";
const TTL_MS: u64 = 1_500;
const KILLS: usize = 24;

fn policy_for(run: usize) -> FlushPolicy {
    match std::env::var("POP_SLED_CRASH_POLICY").as_deref() {
        // For checking that the test detects loss: a policy that does not wait for the disk.
        Ok("background") => FlushPolicy::Background { every_ms: 1_000 },
        _ if run % 2 == 0 => FlushPolicy::GroupCommit { max_delay_ms: 2 },
        _ => FlushPolicy::FlushEveryWrite,
    }
}

/// The child's side; does nothing unless started by `crash_recovery`.
#[test]
#[ignore = "the child process of crash_recovery; it runs only when POP_SLED_CRASH_CHILD is set"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let run: usize = std::env::var("POP_SLED_CRASH_RUN").ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let store = SledStore::open(Config::new(&dir).flush_policy(policy_for(run))).unwrap();
        // A newline first: libtest has printed "test crash_child ... " without one.
        println!();
        println!("READY");
        let mut tasks = Vec::new();
        for s in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let q = store.queue();
                for i in 0.. {
                    let a = format!("r{run}-s{s}-{i}");
                    let customer = format!("c{}", i % 3);
                    if let Err(e) = store.write(submit_ops(&a, &customer, INSIGHT, 2, now_ms())).await {
                        println!("ERR submit {a}: {e}");
                        return;
                    }
                    println!("SUBMIT {a}");
                    match q.push(INSIGHT, ready(&a, &customer, INSIGHT, now_ms()), now_ms()).await {
                        Ok(true) => println!("PUSH {a}"),
                        other => println!("ERR push {a}: {other:?}"),
                    }
                    println!("UNREADYING {a}");
                    match store.write(vec![WriteOp::ReadyRemove { agenda_id: a.clone() }]).await {
                        Ok(()) => println!("UNREADY {a}"),
                        Err(e) => println!("ERR unready {a}: {e}"),
                    }
                }
            }));
        }
        for _ in 0..2 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let q = store.queue();
                loop {
                    let now = now_ms();
                    let leases = match q.receive(INSIGHT, 2, TTL_MS, now).await {
                        Ok(l) => l,
                        Err(e) => {
                            println!("ERR receive: {e}");
                            return;
                        }
                    };
                    if leases.is_empty() {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    for l in leases {
                        let (a, e) = (&l.token.agenda_id, l.token.epoch);
                        println!("RECV {a} {e} {now} {}", l.deadline);
                        println!("ACKING {a} {e}");
                        match q.ack(&l.token).await {
                            Ok(()) => println!("ACK {a} {e}"),
                            // Only acceptable if the lease lapsed and another delivery took over.
                            Err(err) if err.is_conflict() && now_ms() >= l.deadline => continue,
                            Err(err) => {
                                println!("ERR ack {a}: {err}");
                                continue;
                            }
                        }
                        let pid = progress_id(a);
                        let mut p: AgendaProgress = match store.fetch(&pid).await {
                            Ok(p) => p,
                            Err(err) => {
                                println!("ERR fetch {pid}: {err}");
                                continue;
                            }
                        };
                        p.processing_state = ProcessingState::Complete;
                        match store.update_obj(&mut p).await {
                            Ok(()) => println!("UPDATE {pid} {}", p.version),
                            Err(err) if err.is_conflict() => {}
                            Err(err) => println!("ERR update {pid}: {err}"),
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[derive(Default)]
struct Model {
    submitted: HashSet<String>,
    pushed: HashSet<String>,
    unreadying: HashSet<String>,
    unreadied: HashSet<String>,
    /// agenda → (epoch, now, deadline) of its last reported delivery.
    last_recv: HashMap<String, (u64, i64, i64)>,
    acking: HashSet<String>,
    acked: HashSet<String>,
    updated: HashMap<String, u64>,
    redeliveries: usize,
    violations: Vec<String>,
}

impl Model {
    fn line(&mut self, run: usize, line: &str) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
        match f.as_slice() {
            ["SUBMIT", a] => drop(self.submitted.insert(a.to_string())),
            ["PUSH", a] => drop(self.pushed.insert(a.to_string())),
            ["UNREADYING", a] => drop(self.unreadying.insert(a.to_string())),
            ["UNREADY", a] => drop(self.unreadied.insert(a.to_string())),
            ["RECV", a, ..] => {
                let (e, n, d) = (num(2) as u64, num(3), num(4));
                if self.acked.contains(*a) {
                    self.violations.push(format!("run {run}: acked agenda {a} delivered again (epoch {e})"));
                }
                if let Some((e0, _, d0)) = self.last_recv.get(*a) {
                    self.redeliveries += 1;
                    if e <= *e0 {
                        self.violations.push(format!("run {run}: {a} redelivered with epoch {e} <= {e0}"));
                    }
                    if n < *d0 {
                        self.violations.push(format!("run {run}: {a} delivered at {n} while its lease ran to {d0}"));
                    }
                }
                self.last_recv.insert(a.to_string(), (e, n, d));
            }
            ["ACKING", a, _] => drop(self.acking.insert(a.to_string())),
            ["ACK", a, _] => drop(self.acked.insert(a.to_string())),
            ["UPDATE", p, v] => {
                let v = v.parse().unwrap_or(0);
                let e = self.updated.entry(p.to_string()).or_default();
                *e = (*e).max(v);
            }
            ["READY"] => {}
            _ if line.starts_with("ERR") => self.violations.push(format!("run {run}: child reported {line}")),
            _ => {} // libtest's own output
        }
    }

    async fn check(&mut self, run: usize, store: &SledStore) {
        let report = store.check_integrity().unwrap();
        for p in report.problems {
            self.violations.push(format!("run {run}: integrity: {p}"));
        }
        let q = store.queue();
        for a in &self.submitted {
            for (kind, id) in [(Kind::Agenda, a.clone()), (Kind::AgendaProgress, progress_id(a))] {
                if store.get(kind, &id).await.unwrap().is_none() {
                    self.violations.push(format!("run {run}: reported-durable {kind} {id} is lost"));
                }
            }
            let ops: Vec<OperationProgress> =
                store.query_all(IndexField::AgendaProgressId, &progress_id(a)).await.unwrap();
            if ops.len() != 2 {
                self.violations.push(format!("run {run}: {a} has {} operation progresses, not 2", ops.len()));
            }
            if !self.unreadying.contains(a) && store.ready_get(a).await.unwrap().is_none() {
                self.violations.push(format!("run {run}: the ready entry of {a} is lost"));
            }
        }
        for a in &self.unreadied {
            if store.ready_get(a).await.unwrap().is_some() {
                self.violations.push(format!("run {run}: the removed ready entry of {a} came back"));
            }
        }
        for a in &self.pushed {
            if !self.acking.contains(a) && !q.contains(INSIGHT, a).await.unwrap() {
                self.violations.push(format!("run {run}: queue item {a} is lost (never acked)"));
            }
        }
        for a in &self.acked {
            if q.contains(INSIGHT, a).await.unwrap() {
                self.violations.push(format!("run {run}: acked queue item {a} is back"));
            }
        }
        for (p, v) in &self.updated {
            let stored = store.get(Kind::AgendaProgress, p).await.unwrap().map_or(0, |r| r.version);
            if stored < *v {
                self.violations.push(format!("run {run}: progress {p} is at version {stored}, {v} was reported"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_5eed);
    let mut model = Model::default();
    for run in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("POP_SLED_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "READY" {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).expect("the child opened the database");
        let wait = rng.gen_range(20..400);
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "run {run}: the child was killed, not finished");
        let lines = reader.join().unwrap();
        for line in &lines {
            model.line(run, line);
        }
        let store = SledStore::open(Config::new(dir.path()).flush_policy(FlushPolicy::FlushEveryWrite))
            .unwrap_or_else(|e| panic!("run {run}: reopening after SIGKILL: {e}"));
        model.check(run, &store).await;
        drop(store);
        assert!(model.violations.is_empty(), "after kill {run} ({wait} ms): {:#?}", model.violations);
        // Let some leases of the killed child lapse now and then, so later runs redeliver them.
        if run % 6 == 5 {
            std::thread::sleep(Duration::from_millis(TTL_MS));
        }
    }
    eprintln!(
        "crash test: {KILLS} kills, {} submitted, {} pushed, {} acked, {} redelivered after lease expiry",
        model.submitted.len(),
        model.pushed.len(),
        model.acked.len(),
        model.redeliveries
    );
    assert!(model.submitted.len() > 100 && model.acked.len() > 50, "the child did real work");
    assert!(model.redeliveries > 0, "some lapsed leases were delivered again");
}
