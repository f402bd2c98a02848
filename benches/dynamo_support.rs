//! What the DynamoDB bench (`dynamo.rs`) and the hot-key test (`tests/dynamo_hot_keys.rs`) share:
//! a table prefix no other run uses, and the embedded engine on a backend with in-process no-op
//! handlers (type `noop`).

use pop::{Pop, PopConfig, RuntimeRouter};
use pop_store_dynamo::DynamoBackend;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A string no other call, nor another process, returns: for table prefixes on a shared emulator.
pub fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}{:x}{}", std::process::id(), t, N.fetch_add(1, Ordering::Relaxed))
}

/// The engine on `backend`'s store and queue, with a `noop` in-process handler, a 250 ms
/// scheduler interval and a 5 s heartbeat.
pub fn noop_engine(backend: &DynamoBackend) -> Pop {
    let rt = pop_exec::inprocess::InProcessRuntime::new();
    rt.register("noop", |_ctx| async move { Ok(json!({"ok": true})) });
    let config = PopConfig {
        scheduler_interval: Duration::from_millis(250),
        heartbeat: Duration::from_secs(5),
        ..PopConfig::default()
    };
    Pop::builder()
        .store(Arc::new(backend.store()))
        .queue(Arc::new(backend.queue()))
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(rt))))
        .config(config)
        .build()
        .expect("the engine on DynamoDB")
}
