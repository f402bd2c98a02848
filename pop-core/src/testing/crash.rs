//! The crash test every embedded backend runs: a child process writes, queues, receives and acks
//! in a loop, printing a line for every operation whose future has completed (so is durable by the
//! backend's flush policy); the parent SIGKILLs it at pseudo-random moments (fixed seed), reopens the
//! database each time and checks that nothing reported durable was lost, that no acked item came
//! back, that no item was delivered twice while a lease on it was live, and whatever integrity
//! check the backend has.
//!
//! A backend's test file holds two tests: the child (`#[ignore]`d, it runs only when the parent
//! starts it) calls [`child`], and the parent calls [`parent`] with the child test's name.
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

use crate::Result;
use crate::model::{Agenda, AgendaProgress, Millis, OperationProgress, ProcessingState, ReadyAgenda};
use crate::queue::QueueBackend;
use crate::store::{IndexField, Kind, Store, StoreExt, WriteOp, create_op};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A store and the queue on the same database.
pub type Opened = (Arc<dyn Store>, Arc<dyn QueueBackend>);

const CHILD_ENV: &str = "POP_CRASH_CHILD";
const RUN_ENV: &str = "POP_CRASH_RUN";
const INSIGHT: &str = "crash-insight";
const TTL_MS: u64 = 1_500;

/// The wall clock in epoch ms.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// The id of an agenda's progress.
pub fn progress_id(agenda: &str) -> String {
    format!("{agenda}.p")
}

/// The submit batch of one agenda: the agenda, its progress, `ops` operation progresses and its ready
/// entry, as one atomic write (what the submit service writes).
pub fn submit_ops(agenda_id: &str, customer: &str, insight: &str, ops: usize, now: Millis) -> Vec<WriteOp> {
    let mut out = Vec::with_capacity(ops + 3);
    let mut agenda = Agenda {
        id: Some(agenda_id.to_owned()),
        customer_id: Some(customer.to_owned()),
        title: Some(format!("title of {agenda_id}")),
        link_id: Some(format!("link-{customer}")),
        ..Default::default()
    };
    out.extend(create_op(&mut agenda));
    let pid = progress_id(agenda_id);
    let mut progress = AgendaProgress {
        id: Some(pid.clone()),
        customer_id: Some(customer.to_owned()),
        agenda_id: Some(agenda_id.to_owned()),
        link_id: Some(format!("link-{customer}")),
        added_time: Some(now),
        ..Default::default()
    };
    out.extend(create_op(&mut progress));
    for i in 0..ops {
        let mut op = OperationProgress {
            id: Some(format!("{agenda_id}.op{i}")),
            customer_id: Some(customer.to_owned()),
            agenda_progress_id: Some(pid.clone()),
            operation: Some(format!("op{i}")),
            ..Default::default()
        };
        out.extend(create_op(&mut op));
    }
    out.push(WriteOp::ReadyInsert(ready(agenda_id, customer, insight, now)));
    out
}

/// A ready entry.
pub fn ready(agenda_id: &str, customer: &str, insight: &str, now: Millis) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("{agenda_id}.r"),
        insight_id: insight.to_owned(),
        agenda_id: agenda_id.to_owned(),
        customer_id: customer.to_owned(),
        added: now,
        priority: 0,
    }
}

/// The child's side: does nothing unless started by [`parent`]. `open` gets the directory and the
/// run number (a backend alternates its durable policies by it).
pub fn child(open: impl FnOnce(&Path, usize) -> Result<Opened>) {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let run: usize = std::env::var(RUN_ENV).ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let (store, q) = open(Path::new(&dir), run).expect("the child opens the database");
    rt.block_on(async move {
        // A newline first: libtest has printed "test crash_child ... " without one.
        println!();
        println!("READY");
        let mut tasks = Vec::new();
        for s in 0..3 {
            let (store, q) = (store.clone(), q.clone());
            tasks.push(tokio::spawn(async move {
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
            let (store, q) = (store.clone(), q.clone());
            tasks.push(tokio::spawn(async move {
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

    async fn check(&mut self, run: usize, store: &dyn Store, q: &dyn QueueBackend) {
        for a in &self.submitted {
            for (kind, id) in [(Kind::Agenda, a.clone()), (Kind::AgendaProgress, progress_id(a))] {
                if store.get(kind, &id).await.expect("get").is_none() {
                    self.violations.push(format!("run {run}: reported-durable {kind} {id} is lost"));
                }
            }
            let ops: Vec<OperationProgress> =
                store.query_all(IndexField::AgendaProgressId, &progress_id(a)).await.expect("query");
            if ops.len() != 2 {
                self.violations.push(format!("run {run}: {a} has {} operation progresses, not 2", ops.len()));
            }
            if !self.unreadying.contains(a) && store.ready_get(a).await.expect("ready_get").is_none() {
                self.violations.push(format!("run {run}: the ready entry of {a} is lost"));
            }
        }
        for a in &self.unreadied {
            if store.ready_get(a).await.expect("ready_get").is_some() {
                self.violations.push(format!("run {run}: the removed ready entry of {a} came back"));
            }
        }
        for a in &self.pushed {
            if !self.acking.contains(a) && !q.contains(INSIGHT, a).await.expect("contains") {
                self.violations.push(format!("run {run}: queue item {a} is lost (never acked)"));
            }
        }
        for a in &self.acked {
            if q.contains(INSIGHT, a).await.expect("contains") {
                self.violations.push(format!("run {run}: acked queue item {a} is back"));
            }
        }
        for (p, v) in &self.updated {
            let stored = store.get(Kind::AgendaProgress, p).await.expect("get").map_or(0, |r| r.version);
            if stored < *v {
                self.violations.push(format!("run {run}: progress {p} is at version {stored}, {v} was reported"));
            }
        }
    }
}

/// The parent's side: starts the child test `child_test` of the current test binary `kills` times
/// on `dir`, SIGKILLs it after 20–400 ms, reopens the database with `reopen` (which also returns the
/// problems of the backend's integrity check, if it has one) and checks it. Panics with every
/// violation found.
pub async fn parent(
    child_test: &str,
    dir: &Path,
    kills: usize,
    reopen: impl Fn(&Path) -> Result<(Opened, Vec<String>)>,
) {
    let exe = std::env::current_exe().expect("the test binary");
    // A fixed-seed xorshift: the same kill times every run.
    let mut seed: u64 = 0x5eed_5eed;
    let mut next_wait = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        20 + seed % 380
    };
    let mut model = Model::default();
    for run in 0..kills {
        let mut child = Command::new(&exe)
            .args([child_test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env(RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().expect("the child's stdout");
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
        let wait = next_wait();
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("wait for the child");
        assert!(!status.success(), "run {run}: the child was killed, not finished");
        let lines = reader.join().expect("the reader thread");
        for line in &lines {
            model.line(run, line);
        }
        let ((store, q), problems) = reopen(dir).unwrap_or_else(|e| panic!("run {run}: reopening after SIGKILL: {e}"));
        model.violations.extend(problems.into_iter().map(|p| format!("run {run}: integrity: {p}")));
        model.check(run, store.as_ref(), q.as_ref()).await;
        drop((store, q));
        assert!(model.violations.is_empty(), "after kill {run} ({wait} ms): {:#?}", model.violations);
        // Let some leases of the killed child lapse now and then, so later runs redeliver them.
        if run % 6 == 5 {
            std::thread::sleep(Duration::from_millis(TTL_MS));
        }
    }
    eprintln!(
        "crash test: {kills} kills, {} submitted, {} pushed, {} acked, {} redelivered after lease expiry",
        model.submitted.len(),
        model.pushed.len(),
        model.acked.len(),
        model.redeliveries
    );
    assert!(model.submitted.len() > 100 && model.acked.len() > 50, "the child did real work");
    assert!(model.redeliveries > 0, "some lapsed leases were delivered again");
}
