//! Resource-aware admission in a pool worker: the pool's capacity, each agenda's demand, and the
//! [`pop_sched::capacity::Admitter`] that decides which pulled agenda starts.
//!
//! # An agenda's demand
//!
//! * **Explicit**: the agenda param `resources`, either a string `"cpu=2,memory=4Gi,gpu=1"` or an
//!   object `{"cpu": "2", "gpu": 1}` (the same quantities as `--capacity`). A malformed value fails
//!   the agenda with a message naming the param.
//! * **Derived** from the handler registry otherwise. Each operation requests what its type's Pod
//!   config asks for: `resources.requests` (an object of Kubernetes quantities, any resource name) or
//!   else the original's `cpuMinRequestCount` / `memoryRequestCount`; a type without them (or not in
//!   the registry) requests nothing. The operations that may run at the same time are estimated by the
//!   layers of the agenda's DAG ([`pop_core::dag::AgendaGraph::layers`]: an operation's layer is the
//!   longest dependency path to it). The demand of a resource is, over the layers, the largest sum of
//!   the requests of the operations of one layer, counting at most `parallelism` of them (the
//!   executor's operations at once per agenda, the largest requests first) and at most `maxConcurrent`
//!   of one type whose `process` section sets it. It is an estimate of the peak: operations of two
//!   layers can overlap when one branch runs ahead; set `resources` explicitly when it matters.
//!
//! An agenda demanding nothing always fits.

use pop_core::dag::AgendaGraph;
use pop_core::model::Agenda;
use pop_core::registry::HandlerRegistry;
use pop_core::{Error, Problem, Result};
use pop_sched::capacity::{Resources, quantity};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The agenda param that sets an agenda's demand explicitly.
pub const RESOURCES_PARAM: &str = "resources";

/// The start of the `processingStateMessage` of an agenda a worker released for want of capacity
/// (the rest says why); `explain` shows it.
pub const HELD_BACK: &str = "held back by pool admission: ";

/// A worker's capacity: the resources it may run at once and how far smaller agendas may pass a
/// reserved one (see `WorkerConfig::capacity`).
#[derive(Debug, Clone)]
pub struct Capacity {
    /// What the pool has: `cpu` in millicores, `memory` in bytes, other names as counts.
    pub resources: Resources,
    /// How many smaller agendas may start past a pulled agenda that does not fit before the worker
    /// waits for it (the reservation's bound).
    pub max_backfill: usize,
    /// Where demands without an explicit `resources` param are derived from (none: they demand
    /// nothing).
    pub registry: Option<Arc<HandlerRegistry>>,
}

impl Capacity {
    /// A capacity parsed from `cpu=4,memory=8Gi,gpu=1`, with a backfill bound of 4 and no registry.
    pub fn parse(spec: &str) -> Result<Self> {
        Ok(Self { resources: Resources::parse(spec)?, max_backfill: 4, registry: None })
    }
}

/// The demand of `agenda`: `params.resources` when given, else the largest sum over one layer of its
/// DAG of its operations' registry requests; `parallelism` is the executor's.
pub fn demand(agenda: &Agenda, registry: Option<&HandlerRegistry>, parallelism: usize) -> Result<Resources> {
    if let Some(v) = agenda.params.as_ref().and_then(|p| p.get(RESOURCES_PARAM)).filter(|v| !v.is_null()) {
        return explicit(v);
    }
    let Some(registry) = registry else { return Ok(Resources::new()) };
    let ops = &agenda.operations;
    let requests: Vec<Resources> = ops.iter().map(|o| requests(registry, &o.op_type)).collect();
    if requests.iter().all(|r| r.0.is_empty()) {
        return Ok(Resources::new());
    }
    // a cycle (refused by validation anyway): every operation in one layer, an upper bound
    let layers = AgendaGraph::new(agenda).layers().unwrap_or_else(|_| vec![0; ops.len()]);
    let mut by_layer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, l) in layers.iter().enumerate().take(ops.len()) {
        by_layer.entry(*l).or_default().push(i);
    }
    let names: std::collections::BTreeSet<&String> = requests.iter().flat_map(|r| r.0.keys()).collect();
    let mut out = Resources::new();
    for name in names {
        let mut peak = 0u64;
        for members in by_layer.values() {
            // per type, at most maxConcurrent operations run at once
            let mut per_type: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for &i in members {
                per_type.entry(ops[i].op_type.as_str()).or_default().push(requests[i].get(name));
            }
            let mut amounts = Vec::new();
            for (t, mut v) in per_type {
                v.sort_unstable_by(|a, b| b.cmp(a));
                let cap = registry
                    .handler(t)
                    .ok()
                    .and_then(|s| s.process.as_ref())
                    .and_then(|p| p.max_concurrent)
                    .unwrap_or(usize::MAX);
                v.truncate(cap);
                amounts.extend(v);
            }
            amounts.sort_unstable_by(|a, b| b.cmp(a));
            let sum = amounts.iter().take(parallelism.max(1)).fold(0u64, |s, a| s.saturating_add(*a));
            peak = peak.max(sum);
        }
        if peak > 0 {
            out.0.insert(name.clone(), peak);
        }
    }
    Ok(out)
}

fn explicit(v: &Value) -> Result<Resources> {
    let bad = |why: String| {
        Error::problems(vec![Problem::new(format!("agenda param {RESOURCES_PARAM}: {why}")).field("params.resources")])
    };
    match v {
        Value::String(s) => Resources::parse(s).map_err(|e| bad(e.to_string())),
        Value::Object(m) => {
            let mut out = Resources::new();
            for (k, v) in m {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err(bad(format!("{k}: {other} is not a quantity"))),
                };
                out.0.insert(k.clone(), quantity(k, text.trim()).map_err(|e| bad(e.to_string()))?);
            }
            Ok(out)
        }
        other => Err(bad(format!("{other} is neither \"cpu=2,gpu=1\" nor an object of quantities"))),
    }
}

/// What one operation of `op_type` requests, from its Pod config; unreadable quantities are ignored
/// (the Kubernetes runtime reports them when it builds the Pod).
fn requests(registry: &HandlerRegistry, op_type: &str) -> Resources {
    let mut out = Resources::new();
    let Ok(spec) = registry.handler(op_type) else { return out };
    let pc = &spec.pod_config;
    if let Some(reqs) = pc.pointer("/resources/requests").and_then(Value::as_object) {
        for (k, v) in reqs {
            if let Some(q) = k8s_quantity(k, v) {
                out.0.insert(k.clone(), q);
            }
        }
        return out;
    }
    for (field, name) in [("cpuMinRequestCount", "cpu"), ("memoryRequestCount", "memory")] {
        if let Some(q) = pc.get(field).and_then(|v| k8s_quantity(name, v)) {
            out.0.insert(name.to_owned(), q);
        }
    }
    out
}

/// A Kubernetes quantity in base units; `memory` may carry `m` (thousandths of a byte, rounded up).
fn k8s_quantity(name: &str, v: &Value) -> Option<u64> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if name == "memory" {
        if let Some(milli) = text.strip_suffix('m') {
            return milli
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| (n / 1000.0).ceil() as u64);
        }
    }
    quantity(name, &text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agenda(v: Value) -> Agenda {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn explicit_demands_and_bad_ones() {
        let a = agenda(json!({"params": {"resources": "cpu=2,gpu=1"}, "operations": [{"name": "a", "type": "t"}]}));
        assert_eq!(demand(&a, None, 50).unwrap().to_string(), "cpu=2,gpu=1");
        let a = agenda(json!({"params": {"resources": {"cpu": "500m", "gpu": 1}}, "operations": []}));
        assert_eq!(demand(&a, None, 50).unwrap().to_string(), "cpu=500m,gpu=1");
        let a = agenda(json!({"params": {"resources": "cpu=lots"}, "operations": []}));
        let e = demand(&a, None, 50).unwrap_err().to_string();
        assert!(e.contains("agenda param resources") && e.contains("cpu"), "{e}");
    }

    #[test]
    fn derived_from_the_widest_layer_of_pod_requests() {
        let registry = HandlerRegistry::from_json_str(
            r#"{"basePodConfig": {"cpuMinRequestCount": "1000m", "memoryRequestCount": "1000m"},
                "probe": {"podConfig": {"cpuMinRequestCount": "500m"}},
                "encode": {"podConfig": {"resources": {"requests": {"cpu": "2", "nvidia.com/gpu": "1"}}},
                           "process": {"command": "x", "maxConcurrent": 2}},
                "mail": {}}"#,
        )
        .unwrap();
        // probe, then 3 encodes in parallel (at most 2 at once), then mail
        let a = agenda(json!({"operations": [
            {"name": "probe", "type": "probe"},
            {"name": "e1", "type": "encode", "params": {"dependsOn": "probe"}},
            {"name": "e2", "type": "encode", "params": {"dependsOn": "probe"}},
            {"name": "e3", "type": "encode", "params": {"dependsOn": "probe"}},
            {"name": "m", "type": "mail", "params": {"dependsOn": "e1,e2,e3"}}
        ]}));
        let d = demand(&a, Some(&registry), 50).unwrap();
        assert_eq!((d.get("cpu"), d.get("nvidia.com/gpu"), d.get("memory")), (4000, 2, 1), "{d}");
        // parallelism 1: one operation at a time
        let d = demand(&a, Some(&registry), 1).unwrap();
        assert_eq!((d.get("cpu"), d.get("nvidia.com/gpu")), (2000, 1), "{d}");
        // no registry: nothing
        assert_eq!(demand(&a, None, 50).unwrap(), Resources::new());
    }
}
