//! Criterion benchmarks for POP for Rust: see the `benches` targets of this package.

pub mod exec;
pub mod sched;
pub mod store;

use pop_core::model::Agenda;
use serde_json::json;

/// An agenda of `ops` no-op operations (type `noop`) in a chain, each referring to the previous one's
/// output, for `customer`, with link id `bench`.
pub fn chain_agenda(customer: &str, ops: usize) -> Agenda {
    let ops: Vec<_> = (0..ops)
        .map(|i| {
            if i == 0 {
                json!({"name": "op0", "type": "noop", "payload": {}})
            } else {
                json!({"name": format!("op{i}"), "type": "noop", "payload": {"prev": format!("@<op{}.out>", i - 1)}})
            }
        })
        .collect();
    serde_json::from_value(json!({"customerId": customer, "linkId": "bench", "operations": ops}))
        .expect("a chain agenda is valid JSON for Agenda")
}

/// This process's CPU time (user + system, all threads) in seconds, from `/proc/self/stat` (Linux,
/// 100 Hz ticks); `None` elsewhere. On a shared machine wall time also counts the time other processes
/// hold the cores; CPU time does not.
pub fn process_cpu_secs() -> Option<f64> {
    stat_cpu_secs("/proc/self/stat")
}

/// This thread's CPU time (user + system) in seconds, from `/proc/thread-self/stat` (Linux, 100 Hz
/// ticks); `None` elsewhere.
pub fn thread_cpu_secs() -> Option<f64> {
    stat_cpu_secs("/proc/thread-self/stat")
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn stat_cpu_secs(path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}
