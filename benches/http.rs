//! The HTTP API's cost: submissions and `getAgendaProgress` reads over loopback with 32 connections,
//! against the same engine called in-process.
//!
//! One process, two tokio runtimes: the server's (the engine, sled with group commit, axum) and the
//! load generator's, whose threads are named `bench-client` so that the server's CPU time can be read
//! apart from the client's (per-thread times from `/proc/self/task/*/stat`). The HTTP overhead of a
//! submission is then the server's CPU per submission over HTTP against the CPU of the same submission
//! made in-process, measured in the same run on the same instance.
//!
//! A plain bench binary (throughputs and CPU ratios, not criterion's per-iteration statistics). Run:
//! `cargo bench -p pop-benches --bench http`.
#![allow(missing_docs, reason = "bench binary")]

use pop::http::{ApiConfig, Client};
use pop::{Pop, PopConfig};
use pop_core::authz::Principal;
use pop_core::model::Insight;
use std::sync::Arc;
use std::time::Instant;

/// Concurrent clients: connections over HTTP, tasks in-process.
const CLIENTS: usize = 32;
const TOKEN: &str = "bench-superuser-token";
const CLIENT_THREAD: &str = "bench-client";

/// CPU seconds (user + system) of this process's threads by thread name (`comm`, truncated by the
/// kernel to 15 bytes).
fn cpu_by_name() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let secs = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
        *out.entry(name.to_owned()).or_insert(0.0) += secs(11) + secs(12);
    }
    out
}

/// CPU seconds of this process's threads, split into (server, client) by the thread name.
fn cpu_split() -> (f64, f64) {
    let (mut server, mut client) = (0.0, 0.0);
    for (name, used) in cpu_by_name() {
        if name.starts_with(CLIENT_THREAD) {
            client += used;
        } else {
            server += used;
        }
    }
    (server, client)
}

struct Measured {
    n: usize,
    secs: f64,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.n as f64 / self.secs
    }
    fn server_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.n as f64
    }
    fn client_us(&self) -> f64 {
        self.client_cpu * 1e6 / self.n as f64
    }
}

/// Runs `per_client` calls of `call` on each of [`CLIENTS`] tasks spawned on `rt`, measuring wall
/// time and the CPU split.
fn measure<F, Fut>(rt: &tokio::runtime::Runtime, per_client: usize, call: F) -> Measured
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let call = Arc::new(call);
    let (start, (s0, c0)) = (Instant::now(), cpu_split());
    rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let call = call.clone();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        call(c, i).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
    });
    let (secs, (s1, c1)) = (start.elapsed().as_secs_f64(), cpu_split());
    if std::env::var_os("POP_BENCH_THREADS").is_some() {
        eprintln!("{:?}", cpu_by_name());
    }
    Measured { n: per_client * CLIENTS, secs, server_cpu: s1 - s0, client_cpu: c1 - c0 }
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that fast.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (submits, reads) = if quick { (4, 8) } else { (250, 1000) };

    let server_rt =
        tokio::runtime::Builder::new_multi_thread().thread_name("pop-server").enable_all().build().expect("tokio");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .expect("tokio");

    let dir = tempfile::tempdir().expect("tempdir");
    let auth: pop::http::auth::AuthConfig =
        format!("anonymous = \"deny\"\n[[tokens]]\ntoken = \"{TOKEN}\"\nuser = \"bench\"\nsuperuser = true\n")
            .parse()
            .expect("auth config");
    let (pop, addr) = server_rt.block_on(async {
        let (store, queue) = pop_store_sled::open_both(
            pop_store_sled::Config::new(dir.path())
                .flush_policy(pop_store_sled::FlushPolicy::GroupCommit { max_delay_ms: 2 }),
        )
        .expect("sled");
        let pop = Pop::builder()
            .store(Arc::new(store))
            .queue(Arc::new(queue))
            .runtime(Arc::new(pop::RuntimeRouter::new().with(Arc::new(pop_exec::inprocess::InProcessRuntime::new()))))
            .authorizer(Arc::new(auth.authorizer().expect("authorizer")))
            .config(PopConfig::default())
            .build()
            .expect("pop");
        let insight = Insight {
            id: Some("i".into()),
            title: Some("i".into()),
            is_global: true,
            queue_size: Some(512),
            mappers: [("operationType".to_string(), vec!["noop".to_string()])].into(),
            ..Default::default()
        };
        let customers: Vec<String> = (0..8).map(|c| format!("c{c}")).collect();
        let customers: Vec<&str> = customers.iter().map(String::as_str).collect();
        pop.objects()
            .provision_pool(&Principal::superuser("bench"), "p", "ops", insight, &customers)
            .await
            .expect("provision");
        let router = pop::http::router(pop.engine().clone(), ApiConfig::new(auth));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(pop::http::serve(listener, router, std::future::pending()));
        (pop, addr)
    });
    let client = Client::new(&format!("http://{addr}")).expect("client").with_token(TOKEN);

    // warm-up: connections opened, sled's trees touched
    let c = client.clone();
    measure(&client_rt, 2, move |k, _| {
        let c = c.clone();
        async move {
            c.submit(&pop_benches::chain_agenda(&format!("c{}", k % 8), 1)).await.expect("submit");
        }
    });

    // in-process submissions: the engine's cost alone (every thread counts: no client threads run)
    let p = pop.clone();
    let direct = measure(&server_rt, submits, move |k, _| {
        let p = p.clone();
        async move {
            p.agendas()
                .submit(&Principal::superuser("bench"), pop_benches::chain_agenda(&format!("c{}", k % 8), 1))
                .await
                .expect("submit");
        }
    });
    // submissions over HTTP; the ids are kept for the reads
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, ids2) = (client.clone(), ids.clone());
    let http = measure(&client_rt, submits, move |k, _| {
        let (c, ids) = (c.clone(), ids2.clone());
        async move {
            let a = c.submit(&pop_benches::chain_agenda(&format!("c{}", k % 8), 1)).await.expect("submit");
            ids.lock().expect("ids").push(a.id.expect("submitted agenda has an id"));
        }
    });
    let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock().expect("ids")));
    // getAgendaProgress over HTTP, spread over the agendas
    let (c, ids2) = (client.clone(), ids.clone());
    let reads_m = measure(&client_rt, reads, move |k, i| {
        let (c, ids) = (c.clone(), ids2.clone());
        async move {
            let id = &ids[(k * 7919 + i) % ids.len()];
            c.agenda_progress(id).await.expect("progress");
        }
    });
    // the same reads in-process
    let (p, ids2) = (pop.clone(), ids.clone());
    let reads_direct = measure(&server_rt, reads, move |k, i| {
        let (p, ids) = (p.clone(), ids2.clone());
        async move {
            let id = &ids[(k * 7919 + i) % ids.len()];
            p.progress()
                .query(
                    &Principal::superuser("bench"),
                    pop_core::store::IndexField::AgendaId,
                    id,
                    pop_core::store::PageRequest::first(1),
                    true,
                )
                .await
                .expect("progress");
        }
    });

    println!("{CLIENTS} concurrent clients; CPU per request in µs (server threads / client threads)");
    println!("| | requests | requests/s | server CPU µs | client CPU µs |");
    println!("|---|---|---|---|---|");
    for (what, m) in [
        ("submit, in-process", &direct),
        ("submit over HTTP", &http),
        ("getAgendaProgress, in-process", &reads_direct),
        ("getAgendaProgress over HTTP", &reads_m),
    ] {
        println!("| {what} | {} | {:.0} | {:.0} | {:.0} |", m.n, m.per_sec(), m.server_us(), m.client_us());
    }
    println!(
        "HTTP adds {:.0} % to a submission's server CPU ({:.0} µs → {:.0} µs)",
        (http.server_us() / direct.server_us() - 1.0) * 100.0,
        direct.server_us(),
        http.server_us()
    );
    server_rt.block_on(pop.shutdown());
}
