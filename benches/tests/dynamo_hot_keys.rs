//! Hot partition keys of ONE insight on DynamoDB, measured in the emulator (moto on loopback, not
//! AWS): a burst of 1-operation agendas runs through the real engine (submit → schedule → pull →
//! finish) with the tables' shard count at 1 (the unsharded layout) and at 8, while an SDK
//! interceptor counts every write request per partition key value — of the tables and of the
//! indexes whose partition a write changes (`ready.by_insight` by `ri`, the objects' `by_<field>`
//! indexes by `x_<field>`, `by_kind` on creates) — next to the backend's request counter.
//!
//! Asserts that with 8 shards no queue partition (`q`: the table and its `by_push` / `by_deadline`
//! indexes) and no ready-index partition (`ri`) takes more than 2.5/8 of the insight's writes there,
//! and that at least 7 of the 8 get some; prints requests per agenda by action and the busiest keys.
//!
//! Run: `eval "$(bash .ci/dynamo.sh)"; cargo test -p pop-benches --test dynamo_hot_keys -- --nocapture`
//! (`POP_HOT_KEYS_AGENDAS` sets the burst, default 64). Skips, saying why, without
//! `POP_DYNAMODB_ENDPOINT`.
#![allow(missing_docs, reason = "test")]

#[path = "../dynamo_support.rs"]
mod dynamo_support;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use pop::WorkerConfig;
use pop_core::authz::Principal;
use pop_core::model::{AgendaProgress, Insight, ProcessingState};
use pop_core::store::{IndexField, StoreExt};
use pop_store_dynamo::{DynamoBackend, DynamoConfig, RequestCounts};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes per (table or index, partition key value), from the request bodies.
#[derive(Debug, Default)]
struct Writes {
    prefix: String,
    by_key: Mutex<BTreeMap<(String, String), u64>>,
    /// The `ri` each agenda's ready entry was last put with: a ready delete (keyed by agenda id
    /// only) removes the index entry in that partition.
    ready_ri: Mutex<HashMap<String, String>>,
}

fn s_attr(v: &Value, name: &str) -> Option<String> {
    v.get(name)?.get("S")?.as_str().map(str::to_owned)
}

impl Writes {
    fn add(&self, place: String, key: String) {
        *self.by_key.lock().unwrap().entry((place, key)).or_insert(0) += 1;
    }

    /// One written item: `put` carries the whole item, otherwise `key` only.
    fn item(&self, table: &str, item: &Value, put: bool, create: bool) {
        let Some(table) = table.strip_prefix(&self.prefix) else { return };
        match table {
            "queue" => {
                // The table's partition; `by_push` (partition q) and `by_deadline` (lq = q while
                // leased) are ALL-projection indexes on the same value, written along.
                if let Some(q) = s_attr(item, "q") {
                    self.add("queue q (and its indexes)".into(), q);
                }
            }
            "ready" => {
                let Some(a) = s_attr(item, "a") else { return };
                self.add("ready a".into(), a.clone());
                if put {
                    if let Some(ri) = s_attr(item, "ri") {
                        self.ready_ri.lock().unwrap().insert(a, ri.clone());
                        self.add("ready.by_insight ri".into(), ri);
                    }
                } else if let Some(ri) = self.ready_ri.lock().unwrap().get(&a).cloned() {
                    self.add("ready.by_insight ri".into(), ri);
                }
            }
            "leases" => {
                if let Some(n) = s_attr(item, "n") {
                    self.add("leases n".into(), n);
                }
            }
            "objects" => {
                if let Some(pk) = s_attr(item, "pk") {
                    self.add("objects pk".into(), pk);
                }
                if put {
                    for (name, _) in item.as_object().into_iter().flatten() {
                        if let Some(field) = name.strip_prefix("x_") {
                            self.add(format!("objects.by_{field}"), s_attr(item, name).unwrap_or_default());
                        }
                    }
                    if create && let Some(kd) = s_attr(item, "kd") {
                        self.add("objects.by_kind".into(), kd);
                    }
                }
            }
            _ => {}
        }
    }

    fn request(&self, action: &str, body: &Value) {
        let table = body["TableName"].as_str().unwrap_or_default();
        let create =
            |b: &Value| b["ConditionExpression"].as_str().is_some_and(|c| c.starts_with("attribute_not_exists"));
        match action {
            "PutItem" => self.item(table, &body["Item"], true, create(body)),
            "UpdateItem" | "DeleteItem" => self.item(table, &body["Key"], false, false),
            "TransactWriteItems" => {
                for t in body["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(p) = t.get("Put") {
                        self.item(p["TableName"].as_str().unwrap_or_default(), &p["Item"], true, create(p));
                    }
                    for kind in ["Update", "Delete"] {
                        if let Some(u) = t.get(kind) {
                            self.item(u["TableName"].as_str().unwrap_or_default(), &u["Key"], false, false);
                        }
                    }
                }
            }
            "BatchWriteItem" => {
                for (table, reqs) in body["RequestItems"].as_object().into_iter().flatten() {
                    for r in reqs.as_array().into_iter().flatten() {
                        if let Some(p) = r.get("PutRequest") {
                            self.item(table, &p["Item"], true, false);
                        }
                        if let Some(d) = r.get("DeleteRequest") {
                            self.item(table, &d["Key"], false, false);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.by_key.lock().unwrap().clone()
    }
}

#[derive(Debug)]
struct KeyCounter(Arc<Writes>);

impl Intercept for KeyCounter {
    fn name(&self) -> &'static str {
        "hot-key-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let action = request.headers().get("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("");
        if let Some(body) = request.body().bytes()
            && let Ok(json) = serde_json::from_slice::<Value>(body)
        {
            self.0.request(action, &json);
        }
        Ok(())
    }
}

struct Run {
    shards: u32,
    agendas: usize,
    elapsed: Duration,
    used: RequestCounts,
    idle_per_sec: f64,
    /// The idle background requests (scheduler, reclaimer and worker polls) and over how long.
    idle: (RequestCounts, Duration),
    writes: BTreeMap<(String, String), u64>,
}

const WRITE_ACTIONS: [&str; 5] = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"];

impl Run {
    fn per_agenda(&self, n: u64) -> f64 {
        n as f64 / self.agendas as f64
    }

    /// Writes per partition value of `place`, only the values of the measured insight `i`.
    fn place(&self, place: &str) -> Vec<(String, u64)> {
        self.writes.iter().filter(|((p, _), _)| p == place).map(|((_, k), v)| (k.clone(), *v)).collect()
    }

    fn report(&self) {
        let n = self.agendas as f64;
        let by: Vec<String> = self.used.by_action.iter().map(|(k, v)| format!("{k} {:.2}", *v as f64 / n)).collect();
        let idle = self.idle_per_sec * self.elapsed.as_secs_f64();
        println!(
            "shards {}: {} agendas in {:.1}s: {:.2} requests per agenda ({}); {:.2} beyond the idle rate of {:.1}/s",
            self.shards,
            self.agendas,
            self.elapsed.as_secs_f64(),
            self.used.total as f64 / n,
            by.join(", "),
            (self.used.total as f64 - idle).max(0.0) / n,
            self.idle_per_sec
        );
        let get = |c: &RequestCounts, a: &str| c.by_action.get(a).copied().unwrap_or(0);
        let writes: u64 = WRITE_ACTIONS.iter().map(|a| get(&self.used, a)).sum();
        let (idle, idle_for) = &self.idle;
        let idle_rate = |a: &str| get(idle, a) as f64 / idle_for.as_secs_f64();
        println!(
            "shards {}: per agenda: {:.2} writes, {:.2} reads (Query {:.2}); idle background: {} over {:.1}s \
             ({:.1} Query/s)",
            self.shards,
            writes as f64 / n,
            (self.used.total - writes) as f64 / n,
            get(&self.used, "Query") as f64 / n,
            idle.by_action.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            idle_for.as_secs_f64(),
            idle_rate("Query")
        );
        let mut keys: Vec<(&(String, String), &u64)> = self.writes.iter().collect();
        keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        println!("shards {}: busiest partition keys (writes per agenda; writes/s in this run):", self.shards);
        for ((place, key), count) in keys.into_iter().take(16) {
            println!(
                "  {place:<28} {key:<40} {:>6.2} per agenda  {:>6.1}/s",
                self.per_agenda(*count),
                *count as f64 / self.elapsed.as_secs_f64()
            );
        }
    }
}

async fn run(endpoint: &str, shards: u32, agendas: usize) -> Run {
    let prefix = format!("pop_hot{}_", &dynamo_support::unique_id());
    let writes = Arc::new(Writes { prefix: prefix.clone(), ..Writes::default() });
    let cfg = DynamoConfig::local(endpoint).table_prefix(prefix).shards(shards);
    let counter = KeyCounter(writes.clone());
    let b = DynamoBackend::connect_with(cfg.clone(), move |c| c.interceptor(counter)).await.expect("connect");
    b.ensure_tables().await.expect("ensure_tables");
    // Polling for completion goes through a second connection, so it is not counted.
    let observer = DynamoBackend::connect(cfg).await.expect("observer");
    let pop = dynamo_support::noop_engine(&b);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(64),
        mappers: [("operationType".to_string(), vec!["noop".to_string()])].into(),
        ..Default::default()
    };
    let su = Principal::superuser("hot-keys");
    pop.objects().provision_pool(&su, "p", "ops", insight, &["c0"]).await.expect("provision");
    pop.start_all(WorkerConfig {
        max_running: 16,
        pull_count: 8,
        pull_wait: Duration::from_millis(50),
        ..WorkerConfig::for_insights(["i"])
    });
    // The background loops' requests when there is nothing to do.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_start = b.request_counts();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = (b.request_counts().since(&idle_start), t.elapsed());
    let idle_per_sec = idle.0.total as f64 / idle.1.as_secs_f64();

    let writes_before = writes.snapshot();
    let before = b.request_counts();
    let start = Instant::now();
    for _ in 0..agendas {
        pop.agendas().submit(&su, pop_benches::chain_agenda("c0", 1)).await.expect("submit");
    }
    let observer_store = observer.store();
    loop {
        let all = observer_store.query_all::<AgendaProgress>(IndexField::LinkId, "bench").await.expect("progress");
        if all.len() == agendas && all.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "agendas did not complete in 5 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let used = b.request_counts().since(&before);
    let mut run_writes = writes.snapshot();
    for (k, v) in &mut run_writes {
        *v -= writes_before.get(k).copied().unwrap_or(0);
    }
    run_writes.retain(|_, v| *v > 0);
    pop.shutdown().await;
    Run { shards, agendas, elapsed, used, idle_per_sec, idle, writes: run_writes }
}

/// Asserts the insight's writes on `place` are spread over `shards` values, none above 2.5/N of them.
fn assert_spread(run: &Run, place: &str) -> (u64, u64) {
    let keys = run.place(place);
    let keys: Vec<&(String, u64)> = keys.iter().filter(|(k, _)| k.starts_with("i#")).collect();
    let total: u64 = keys.iter().map(|(_, v)| v).sum();
    let max = keys.iter().map(|(_, v)| *v).max().unwrap_or(0);
    // Agenda ids are random: with 64 agendas one of 8 shards is left empty 0.16% of the time.
    assert!(keys.len() + 1 >= run.shards as usize, "{place}: the shards take the writes: {keys:?}");
    let bound = (total as f64 * 2.5 / f64::from(run.shards)).ceil() as u64;
    assert!(max <= bound, "{place}: the busiest shard took {max} of {total} writes (bound {bound}): {keys:?}");
    (total, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_insight_spreads_its_hot_writes_over_the_shards() {
    let Some(endpoint) = std::env::var("POP_DYNAMODB_ENDPOINT").ok().filter(|e| !e.trim().is_empty()) else {
        eprintln!(
            "skipping dynamo_hot_keys: POP_DYNAMODB_ENDPOINT is not set (run `eval \"$(bash .ci/dynamo.sh)\"` to start \
             moto's server mode on loopback)"
        );
        return;
    };
    let agendas: usize = std::env::var("POP_HOT_KEYS_AGENDAS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    println!("every number below is measured against moto on 127.0.0.1 ({endpoint}), NOT AWS");
    let mut runs = Vec::new();
    for shards in [1, 8] {
        let run = run(&endpoint, shards, agendas).await;
        run.report();
        runs.push(run);
    }
    let (one, eight) = (&runs[0], &runs[1]);
    // Unsharded, one value takes all of the insight's queue and ready-index writes.
    let q1 = one.place("queue q (and its indexes)");
    assert_eq!(q1.len(), 1, "{q1:?}");
    let (q_total, q_max) = assert_spread(eight, "queue q (and its indexes)");
    let (r_total, r_max) = assert_spread(eight, "ready.by_insight ri");
    let r1: u64 = one.place("ready.by_insight ri").iter().map(|(_, v)| v).sum();
    for (name, run, total, max) in [
        ("queue", eight, q_total, q_max),
        ("ready index", eight, r_total, r_max),
        ("queue", one, q1[0].1, q1[0].1),
        ("ready index", one, r1, r1),
    ] {
        let per_agenda_busiest = max as f64 / run.agendas as f64;
        println!(
            "shards {}: {name}: {:.2} writes per agenda over all shards, {:.2} on the busiest key → one insight \
             tops out near {:.0} agendas/s (1,000 writes/s per key)",
            run.shards,
            total as f64 / run.agendas as f64,
            per_agenda_busiest,
            1000.0 / per_agenda_busiest
        );
    }
    for run in &runs {
        for (place, key) in [("leases n", "scheduler/i"), ("objects pk", "insightSchedule#i")] {
            let n = run.writes.get(&(place.to_owned(), key.to_owned())).copied().unwrap_or(0);
            println!(
                "shards {}: {key}: {n} writes in {:.1}s ({:.1}/s), not per agenda",
                run.shards,
                run.elapsed.as_secs_f64(),
                n as f64 / run.elapsed.as_secs_f64()
            );
        }
    }
}
