//! Chaos, end to end with real processes: `pop serve` and two `pop pool` processes under a steady
//! submission load while, every few seconds, a random one of the three is SIGKILLed and restarted
//! (the server too: on sled it owns the store, and its restart reopens it). At the end every agenda
//! is COMPLETE and succeeded, none is stuck, and no operation was started after it had succeeded
//! durably (checked through the handlers' side effects in a log file). Run on sled, on fjall (`--store fjall`), and on DynamoDB
//! (moto) when `POP_DYNAMODB_ENDPOINT` is set and the binary has the `dynamo` feature.
//!
//! `POP_CHAOS_SECS` sets how long the chaos lasts (default 40 s per backend in CI), `POP_CHAOS_SEED`
//! the victims' order (printed at the end):
//! `POP_CHAOS_SECS=600 cargo test -p pop-cli --all-features --test chaos -- --nocapture`.
#![cfg(unix)]

mod common;

use common::{POOL, Proc, auth_file, diamond, pop, provision, start, step_registry, succeeded};
use pop::core::model::{AgendaProgress, ProcessingState};
use pop::core::store::{IndexField, PageRequest};
use pop::http::Client;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LINK: &str = "chaos";

async fn all_progress(admin: &Client) -> pop::core::Result<Vec<AgendaProgress>> {
    Ok(admin.query::<AgendaProgress>(IndexField::LinkId, LINK, PageRequest::first(5000)).await?.items)
}

struct World {
    url: String,
    serve_args: Vec<String>,
    auth: PathBuf,
    registry: PathBuf,
    log: PathBuf,
}

impl World {
    fn serve(&self) -> Proc {
        let mut cmd = pop();
        cmd.args(["serve", "--lease-ttl-ms", "5000", "--reclaim-interval-ms", "300", "--listen"])
            .arg(self.url.trim_start_matches("http://"))
            .arg("--auth")
            .arg(&self.auth)
            .args(&self.serve_args)
            .stderr(Stdio::null());
        start(cmd, "pop serve ready").0
    }

    fn pool(&self, name: &str) -> Proc {
        let mut cmd = pop();
        cmd.args(["pool", "--server", &self.url, "--token", POOL, "--pool", "pool"])
            .args(["--max-running", "3", "--pull-count", "2", "--pull-wait-ms", "100"])
            .args(["--heartbeat-ms", "300", "--retry-for", "3"])
            .arg("--registry")
            .arg(&self.registry)
            .env("STEP_LOG", &self.log)
            .env("POOL_NAME", name)
            .stderr(Stdio::null());
        start(cmd, "pop pool ready").0
    }
}

/// A small xorshift: the victims' order, reproducible from the seed it prints.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn run(backend: &str, serve_args: Vec<String>) {
    let secs: u64 = std::env::var("POP_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (auth, registry) = (auth_file(tmp.path()), step_registry(tmp.path()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let world = World {
        url: format!("http://127.0.0.1:{port}"),
        serve_args,
        auth,
        registry,
        log: tmp.path().join("steps.log"),
    };
    let server = world.serve();
    let admin = Client::new(&world.url).unwrap().with_token(common::ADMIN);
    provision(&admin, "pool", "main", &["c0", "c1", "c2"], 6).await;
    let mut procs = vec![server, world.pool("p1"), world.pool("p2")];

    // The load: one submission every 250 ms, retried while the server is down.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let submitter = {
        let (admin, acknowledged, stop) = (admin.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut refused = 0_usize;
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match admin.submit(&diamond(i, LINK, [100, 300, 100, 50])).await {
                    Ok(a) => acknowledged.lock().expect("lock").push(a.id.expect("id")),
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            refused
        })
    };

    // The chaos: every 2-5 s a random process is SIGKILLed and restarted 0.2-1 s later. Between
    // kills, snapshots: the durable successes first, then the log's length (a start logged past
    // that offset must not be one of them).
    let seed = std::env::var("POP_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut killed = [0_usize; 3];
    let mut snapshots: Vec<(HashSet<(String, String)>, usize)> = Vec::new();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let pause = Instant::now() + Duration::from_millis(2000 + rng.next(3000));
        while Instant::now() < pause {
            if let Ok(p) = all_progress(&admin).await {
                let offset = std::fs::metadata(&world.log).map(|m| m.len() as usize).unwrap_or(0);
                snapshots.push((succeeded(&p), offset));
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let victim = rng.next(3) as usize;
        procs[victim].sigkill();
        killed[victim] += 1;
        tokio::time::sleep(Duration::from_millis(200 + rng.next(800))).await;
        procs[victim] = if victim == 0 { world.serve() } else { world.pool(&format!("p{victim}")) };
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = submitter.await.expect("submitter");
    let acknowledged = acknowledged.lock().expect("lock").clone();

    // Everything completes (an agenda leased by a killed pool comes back after the lease time).
    let deadline = Instant::now() + Duration::from_secs(120);
    let finals = loop {
        let all = all_progress(&admin).await.unwrap_or_default();
        if !all.is_empty() && all.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: agendas stuck after the chaos: {:?}",
            all.iter()
                .filter(|p| p.processing_state != ProcessingState::Complete)
                .map(|p| (&p.agenda_id, p.processing_state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let stored: HashSet<String> = finals.iter().filter_map(|p| p.agenda_id.clone()).collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "{backend}: acknowledged agenda {id} was lost");
    }
    for p in &finals {
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{backend}: {p:#?}");
    }
    let text = std::fs::read_to_string(&world.log).expect("the log");
    for (durable, offset) in &snapshots {
        for line in text[*offset..].lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts[0] == "start" {
                let key = (parts[1].to_owned(), parts[2].to_owned());
                assert!(!durable.contains(&key), "{backend}: {key:?} ran again after it had succeeded: {line}");
            }
        }
    }
    // every operation of every agenda ended at least once
    let ends: HashSet<(String, String)> = text
        .lines()
        .filter(|l| l.starts_with("end "))
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[1].to_owned(), parts[2].to_owned())
        })
        .collect();
    let starts = text.lines().filter(|l| l.starts_with("start ")).count();
    for id in &stored {
        for op in ["a", "b", "c", "d"] {
            assert!(ends.contains(&(id.clone(), op.to_owned())), "{backend}: {id} {op} never finished");
        }
    }
    let reruns = starts.saturating_sub(stored.len() * 4);
    eprintln!(
        "chaos {backend}: {secs} s, seed {seed}, kills server {} / pool p1 {} / pool p2 {}; {} agendas stored \
         ({} acknowledged, {refused} submissions refused while the server was down), all COMPLETE and succeeded; \
         {} operation starts for {} operations ({reruns} re-runs of operations that had not succeeded durably); \
         {} snapshots checked, no start after a durable success",
        killed[0],
        killed[1],
        killed[2],
        stored.len(),
        acknowledged.len(),
        starts,
        stored.len() * 4,
        snapshots.len()
    );
    assert!(killed.iter().sum::<usize>() >= 3, "{backend}: too few kills ({secs} s)");
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_sled() {
    let data = tempfile::tempdir().expect("tempdir");
    run("sled", vec!["--data".into(), data.path().join("db").display().to_string()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_fjall() {
    let data = tempfile::tempdir().expect("tempdir");
    run("fjall", vec!["--store".into(), "fjall".into(), "--data".into(), data.path().join("db").display().to_string()])
        .await;
}

#[cfg(feature = "dynamo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_dynamodb() {
    let Ok(endpoint) = std::env::var("POP_DYNAMODB_ENDPOINT") else {
        eprintln!("POP_DYNAMODB_ENDPOINT is not set: the DynamoDB chaos test is skipped");
        return;
    };
    let prefix = format!("ch{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    run(
        "dynamodb",
        vec![
            "--store".into(),
            "dynamo".into(),
            "--dynamodb-endpoint".into(),
            endpoint,
            "--table-prefix".into(),
            prefix,
        ],
    )
    .await;
}
