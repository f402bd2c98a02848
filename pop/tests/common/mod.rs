//! Shared setup for the pop integration tests.
#![allow(dead_code, reason = "each test binary uses a different part")]

use pop::{Pop, PopConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, Insight};
use serde_json::json;
use std::sync::Arc;

pub const POOL_OWNER: &str = "ops";

pub fn ops() -> Principal {
    Principal::customer("ops-user", [POOL_OWNER])
}

pub fn admin() -> Principal {
    Principal::superuser("admin")
}

pub fn customer(id: &str) -> Principal {
    Principal::customer(format!("{id}-user"), [id])
}

/// Creates a pool `pool`, an insight `insight` for the given customers (FIFO unless `algorithm`), and
/// self-owned customers.
pub async fn setup(pop: &Pop, customers: &[&str], algorithm: Option<&str>, queue_size: u32) {
    let insight = Insight {
        id: Some("insight".into()),
        title: Some("main".into()),
        queue_size: Some(queue_size),
        scheduling_algorithm: algorithm.map(str::to_owned),
        allowed_customer_ids: customers.iter().map(|c| c.to_string()).collect(),
        mappers: [(
            "operationType".to_string(),
            vec!["noop".to_string(), "sample".to_string(), "fail".to_string(), "sleep".to_string()],
        )]
        .into(),
        ..Default::default()
    };
    pop.objects().provision_pool(&admin(), "pool", POOL_OWNER, insight, customers).await.unwrap();
}

pub fn agenda(customer: &str, ops: serde_json::Value) -> Agenda {
    serde_json::from_value(json!({"customerId": customer, "linkId": format!("link-{customer}"), "operations": ops}))
        .unwrap()
}

pub fn chain(customer: &str, op_type: &str, n: usize) -> Agenda {
    let ops: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"name": "op0", "type": op_type, "payload": {"i": 0}})
            } else {
                json!({"name": format!("op{i}"), "type": op_type, "payload": {"prev": format!("@<op{}.out::/i?>", i - 1), "i": i}})
            }
        })
        .collect();
    agenda(customer, json!(ops))
}

pub fn memory_pop(runtime: Arc<dyn pop_core::runtime::PodRuntime>, config: PopConfig) -> Pop {
    Pop::builder()
        .store(Arc::new(pop_core::memory::MemoryStore::new()))
        .queue(Arc::new(pop_core::memory::MemoryQueue::new()))
        .runtime(runtime)
        .config(config)
        .build()
        .unwrap()
}

/// Appends a line to a file and syncs it (logs that must survive a SIGKILL of the writer).
pub fn append(path: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(line.as_bytes()).unwrap();
    f.sync_data().unwrap();
}

/// Epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// An in-process runtime whose `step` handler sleeps `payload.ms` and logs
/// `start|end <agenda> <operation> <pid> <epoch ms>` lines to `log`.
pub fn step_runtime(log: std::path::PathBuf) -> pop_exec::inprocess::InProcessRuntime {
    let rt = pop_exec::inprocess::InProcessRuntime::new();
    rt.register("step", move |ctx| {
        let log = log.clone();
        async move {
            let line = |what: &str| {
                format!("{what} {} {} {} {}\n", ctx.agenda_id(), ctx.operation_name(), std::process::id(), now_ms())
            };
            append(&log, &line("start"));
            let ms = ctx.payload().get("ms").and_then(|v| v.as_u64()).unwrap_or(100);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            append(&log, &line("end"));
            Ok(json!({"done": ctx.operation_name()}))
        }
    });
    rt
}

/// Agenda `i` of the kill tests: a -> (b, c) -> d of `step` operations (b sleeps `b_ms`), with
/// plenty of attempts so that kills land mid-run without failing it.
pub fn step_agenda(i: usize, link: &str, b_ms: u64) -> Agenda {
    serde_json::from_value(json!({
        "customerId": format!("c{}", i % 3),
        "linkId": link,
        "params": {"maximumAttempts": 20},
        "operations": [
            {"name": "a", "type": "step", "payload": {"ms": 150}},
            {"name": "b", "type": "step", "payload": {"ms": b_ms, "in": "@<a.out::/done>"}},
            {"name": "c", "type": "step", "payload": {"ms": 150, "in": "@<a.out::/done>"}},
            {"name": "d", "type": "step", "payload": {"ms": 100, "x": "@<b.out>", "y": "@<c.out>"}}
        ]
    }))
    .unwrap()
}
