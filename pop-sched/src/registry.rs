//! The registry of scheduling algorithms by name.
//!
//! Names are compared case-insensitively. [`Registry::new`] holds the built-ins —
//! `FirstInFirstOut` (alias `FIFO`), `RoundRobin` (alias `Fairness`), `CostWeightedFairness` (round
//! robin charged by each customer's observed agenda cost) and `Priority` — and an
//! application adds its own with [`Registry::register`] (which also replaces a built-in, e.g. a
//! `Priority` with another aging step). An insight without `schedulingAlgorithm` uses
//! `FirstInFirstOut`; one naming an unknown algorithm gets an error naming it and the known ones.
//!
//! An algorithm implements [`Algorithm`](pop_core::sched::Algorithm) with its state as a serde type
//! (or [`NoState`](pop_core::sched::NoState)); the scheduler stores that state per insight, hands it
//! back decoded, and reports a stored state that does not decode as a corrupt state naming the
//! insight.
//!
//! ```
//! use pop_core::model::{Insight, ReadyAgenda};
//! use pop_core::sched::{Algorithm, AlgorithmState, CustomerReady, Explanation, ReadyView};
//! use pop_sched::Registry;
//! use serde::{Deserialize, Serialize};
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! /// Serves the customer served least so far, by lifetime picks kept in the insight's state.
//! struct LeastServed;
//!
//! /// The state: picks per customer. `v` lets a later version tell its own shape from this one.
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Served {
//!     #[serde(default)]
//!     v: u32,
//!     counts: BTreeMap<String, u64>,
//! }
//!
//! impl Algorithm for LeastServed {
//!     type State = Served;
//!
//!     fn name(&self) -> &str {
//!         "LeastServed"
//!     }
//!
//!     fn pick(&self, view: &ReadyView<'_>, state: &mut Served, count: usize) -> Vec<ReadyAgenda> {
//!         let mut next = vec![0; view.customers.len()];
//!         let mut out = Vec::new();
//!         while out.len() < count {
//!             // The customer with work left and the fewest picks (the first by id on ties).
//!             let served = |i: &usize| state.counts.get(view.customers[*i].customer_id).copied().unwrap_or(0);
//!             let left = (0..view.customers.len()).filter(|&i| next[i] < view.customers[i].entries.len());
//!             let Some(i) = left.min_by_key(served) else { break };
//!             let c = &view.customers[i];
//!             out.push(c.entries[next[i]].clone());
//!             next[i] += 1;
//!             *state.counts.entry(c.customer_id.to_owned()).or_default() += 1;
//!         }
//!         out
//!     }
//!
//!     fn explain(&self, view: &ReadyView<'_>, state: &Served, agenda_id: &str) -> Option<Explanation> {
//!         let order = self.pick(view, &mut state.clone(), view.len());
//!         let position = order.iter().position(|p| p.agenda_id == agenda_id)?;
//!         Some(Explanation { agenda_id: agenda_id.into(), position, reason: format!("{position} picks go first") })
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(Arc::new(LeastServed));
//! let insight = Insight { id: Some("i-1".into()), scheduling_algorithm: Some("leastserved".into()), ..Insight::default() };
//! let algorithm = registry.for_insight(&insight)?; // an Arc<dyn SchedulingAlgorithm>
//! assert_eq!(algorithm.name(), "LeastServed");
//!
//! let entry = |c: &str, n: i64| ReadyAgenda { agenda_id: format!("{c}-{n}"), customer_id: c.into(), added: n, ..ReadyAgenda::default() };
//! let (a, b) = (vec![entry("a", 1), entry("a", 2)], vec![entry("b", 3)]);
//! let view = ReadyView::new(&insight, vec![
//!     CustomerReady { customer_id: "a", weight: 1, entries: &a, runs: &[], key: 0 },
//!     CustomerReady { customer_id: "b", weight: 1, entries: &b, runs: &[], key: 0 },
//! ], 10);
//! // The scheduler loads the stored state, picks, and stores `state.to_json()` back.
//! let mut state = AlgorithmState::from_json(br#"{"algorithm":"LeastServed","state":{"counts":{"a":1}}}"#);
//! let picks = algorithm.pick(&view, &mut state, 3)?;
//! let ids: Vec<&str> = picks.iter().map(|p| p.agenda_id.as_str()).collect();
//! assert_eq!(ids, ["b-3", "a-1", "a-2"]);
//! assert_eq!(state.get::<Served>().map(|s| s.counts["a"]), Some(3));
//! assert_eq!(state.to_json()?, br#"{"algorithm":"LeastServed","state":{"v":0,"counts":{"a":3,"b":1}}}"#);
//!
//! // A stored state it cannot read is an error naming the insight and the bad value.
//! let mut bad = AlgorithmState::from_json(br#"{"algorithm":"LeastServed","state":{"counts":{"a":"x"}}}"#);
//! let err = algorithm.pick(&view, &mut bad, 1).unwrap_err().to_string();
//! assert!(err.starts_with("corrupt scheduler state i-1: algorithm LeastServed"), "{err}");
//! assert!(err.contains("state.counts.a: invalid type"), "{err}");
//!
//! let unknown = Insight { scheduling_algorithm: Some("Lottery".into()), ..Insight::default() };
//! assert!(registry.for_insight(&unknown).is_err());
//! # Ok::<(), pop_core::Error>(())
//! ```

use crate::{FirstInFirstOut, Priority, RoundRobin};
use pop_core::model::Insight;
use pop_core::sched::SchedulingAlgorithm;
use pop_core::{Error, Problem, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Scheduling algorithms by name (case-insensitive), with aliases.
#[derive(Clone)]
pub struct Registry {
    algorithms: BTreeMap<String, Arc<dyn SchedulingAlgorithm>>,
    /// lower-cased alias → (alias as spelled, lower-cased target)
    aliases: BTreeMap<String, (String, String)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("names", &self.names()).field("aliases", &self.aliases).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the built-in algorithms and their aliases.
    pub fn new() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(FirstInFirstOut));
        r.register(Arc::new(RoundRobin::new()));
        r.register(Arc::new(RoundRobin::cost_weighted_fairness()));
        r.register(Arc::new(Priority::new()));
        // Infallible: the targets were just registered.
        let _ = r.alias("FIFO", FirstInFirstOut::NAME);
        let _ = r.alias("Fairness", RoundRobin::NAME);
        r
    }

    /// A registry with nothing in it.
    pub fn empty() -> Self {
        Self { algorithms: BTreeMap::new(), aliases: BTreeMap::new() }
    }

    /// Registers `algorithm` under its [`name`](SchedulingAlgorithm::name), returning the one it
    /// replaces, if any.
    pub fn register(&mut self, algorithm: Arc<dyn SchedulingAlgorithm>) -> Option<Arc<dyn SchedulingAlgorithm>> {
        self.algorithms.insert(algorithm.name().trim().to_lowercase(), algorithm)
    }

    /// Makes `alias` another name of the registered algorithm `target`.
    pub fn alias(&mut self, alias: &str, target: &str) -> Result<()> {
        let key = target.trim().to_lowercase();
        if !self.algorithms.contains_key(&key) {
            return Err(self.unknown(target, "alias target"));
        }
        self.aliases.insert(alias.trim().to_lowercase(), (alias.trim().to_owned(), key));
        Ok(())
    }

    /// The algorithm called `name` (case-insensitive; registered names win over aliases).
    pub fn get(&self, name: &str) -> Result<Arc<dyn SchedulingAlgorithm>> {
        let key = name.trim().to_lowercase();
        let key = if self.algorithms.contains_key(&key) { Some(&key) } else { self.aliases.get(&key).map(|(_, t)| t) };
        key.and_then(|k| self.algorithms.get(k)).cloned().ok_or_else(|| self.unknown(name, "scheduling algorithm"))
    }

    /// The algorithm of an insight: its `schedulingAlgorithm`, or `FirstInFirstOut` when missing.
    pub fn for_insight(&self, insight: &Insight) -> Result<Arc<dyn SchedulingAlgorithm>> {
        self.get(insight.algorithm_name()).map_err(|_| {
            let who = crate::insight::insight_label(insight);
            Error::problems(vec![
                Problem::new(format!(
                    "{who}: unknown scheduling algorithm {:?}; known: {}",
                    insight.algorithm_name(),
                    self.known()
                ))
                .field("schedulingAlgorithm"),
            ])
        })
    }

    /// The registered names (as the algorithms spell them), sorted case-insensitively.
    pub fn names(&self) -> Vec<String> {
        self.algorithms.values().map(|a| a.name().to_owned()).collect()
    }

    fn known(&self) -> String {
        let mut out: Vec<String> = self.names();
        for (alias, target) in self.aliases.values() {
            if let Some(a) = self.algorithms.get(target) {
                out.push(format!("{alias} (alias of {})", a.name()));
            }
        }
        out.join(", ")
    }

    fn unknown(&self, name: &str, what: &str) -> Error {
        Error::problems(vec![
            Problem::new(format!("unknown {what} {name:?}; known: {}", self.known())).field("schedulingAlgorithm"),
        ])
    }
}
