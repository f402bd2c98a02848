//! The registry of scheduling algorithms by name.
//!
//! Names are compared case-insensitively. [`Registry::new`] holds the built-ins —
//! `FirstInFirstOut` (alias `FIFO`), `RoundRobin` (alias `Fairness`) and `Priority` — and an
//! application adds its own with [`Registry::register`] (which also replaces a built-in, e.g. a
//! `Priority` with another aging step). An insight without `schedulingAlgorithm` uses
//! `FirstInFirstOut`; one naming an unknown algorithm gets an error naming it and the known ones.
//!
//! ```
//! use pop_core::model::{Insight, ReadyAgenda};
//! use pop_core::sched::{AlgorithmState, Explanation, ReadyView, SchedulingAlgorithm};
//! use pop_sched::Registry;
//! use std::sync::Arc;
//!
//! /// Newest first: a pure function of the view (it keeps no state).
//! struct NewestFirst;
//!
//! impl SchedulingAlgorithm for NewestFirst {
//!     fn name(&self) -> &str {
//!         "NewestFirst"
//!     }
//!     fn pick(&self, view: &ReadyView<'_>, _state: &mut AlgorithmState, count: usize) -> Vec<ReadyAgenda> {
//!         let mut all: Vec<&ReadyAgenda> = view.customers.iter().flat_map(|c| c.entries.iter()).collect();
//!         all.sort_by_key(|e| std::cmp::Reverse(e.added));
//!         all.into_iter().take(count).cloned().collect()
//!     }
//!     fn explain(&self, view: &ReadyView<'_>, _state: &AlgorithmState, agenda_id: &str) -> Option<Explanation> {
//!         let (c, j) = view.locate(agenda_id)?;
//!         let added = view.customers[c].entries[j].added;
//!         let position = view.customers.iter().flat_map(|c| c.entries.iter()).filter(|e| e.added > added).count();
//!         Some(Explanation { agenda_id: agenda_id.into(), position, reason: format!("behind {position} newer agendas") })
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(Arc::new(NewestFirst));
//! let insight = Insight { scheduling_algorithm: Some("newestfirst".into()), ..Insight::default() };
//! assert_eq!(registry.for_insight(&insight)?.name(), "NewestFirst");
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
