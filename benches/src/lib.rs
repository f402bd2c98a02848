//! Criterion benchmarks for POP for Rust: see the `benches` targets of this package.

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
