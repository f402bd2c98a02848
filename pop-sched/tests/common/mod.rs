//! Helpers shared by the integration tests: an owned ready set that lends out views.
#![allow(dead_code, reason = "each test file uses a different subset")]

use pop_core::model::{Insight, Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, ReadyRuns, ReadyView, SchedulingAlgorithm};
use std::collections::BTreeMap;

/// An owned ready set: customer → (weight, entries sorted as the store returns them).
#[derive(Debug, Clone, Default)]
pub struct ReadySet {
    pub customers: BTreeMap<String, (u32, Vec<ReadyAgenda>)>,
    pub insight: Insight,
    pub costs: Option<BTreeMap<String, f64>>,
}

pub fn entry(customer: &str, agenda: &str, added: Millis, priority: i32) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("r-{agenda}"),
        insight_id: "i1".into(),
        agenda_id: agenda.into(),
        customer_id: customer.into(),
        added,
        priority,
    }
}

impl ReadySet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn weight(&mut self, customer: &str, weight: u32) -> &mut Self {
        self.customers.entry(customer.into()).or_default().0 = weight;
        self
    }

    pub fn add(&mut self, e: ReadyAgenda) -> &mut Self {
        let slot = self.customers.entry(e.customer_id.clone()).or_insert((1, Vec::new()));
        if slot.0 == 0 {
            slot.0 = 1;
        }
        let at = slot.1.partition_point(|x| x.order_key() < e.order_key());
        slot.1.insert(at, e);
        self
    }

    /// Adds `n` agendas `<customer>-<k>` of one customer, added at `added + k`.
    pub fn many(&mut self, customer: &str, n: usize, added: Millis, priority: i32) -> &mut Self {
        for k in 0..n {
            self.add(entry(customer, &format!("{customer}-{k:05}"), added + k as Millis, priority));
        }
        self
    }

    pub fn remove(&mut self, picked: &[ReadyAgenda]) {
        for p in picked {
            if let Some((_, list)) = self.customers.get_mut(&p.customer_id) {
                list.retain(|e| e.agenda_id != p.agenda_id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.customers.values().map(|(_, l)| l.len()).sum()
    }

    pub fn view(&self, now: Millis) -> ReadyView<'_> {
        ReadyView {
            insight: &self.insight,
            customers: self
                .customers
                .iter()
                .filter(|(_, (_, l))| !l.is_empty())
                .map(|(c, (w, l))| CustomerReady { customer_id: c, weight: (*w).max(1), entries: l, runs: &[], key: 0 })
                .collect(),
            costs: self.costs.as_ref(),
            now,
            keys: None,
        }
    }

    /// The priority runs of the lists [`Self::view`] shows, in its order (as the scheduler finds them
    /// while reading the ready set).
    pub fn runs(&self) -> ReadyRuns {
        ReadyRuns::new(self.customers.values().filter(|(_, l)| !l.is_empty()).map(|(_, l)| l.as_slice()))
    }

    /// [`Self::view`] with each customer's runs given (`runs` from [`Self::runs`]).
    pub fn view_with_runs<'a>(&'a self, now: Millis, runs: &'a ReadyRuns) -> ReadyView<'a> {
        let mut view = self.view(now);
        for (i, c) in view.customers.iter_mut().enumerate() {
            c.runs = runs.get(i);
        }
        view
    }

    /// Picks `count`, removes the picks from the set, round-tripping the state through its stored
    /// JSON form (as the scheduler loop stores and loads it).
    pub fn pick(
        &mut self,
        algo: &dyn SchedulingAlgorithm,
        state: &mut AlgorithmState,
        count: usize,
        now: Millis,
    ) -> Vec<ReadyAgenda> {
        let picks = algo.pick(&self.view(now), state, count).expect("the state reads");
        *state = AlgorithmState::from_json(state.to_json().expect("the state encodes"));
        self.remove(&picks);
        picks
    }
}

/// The fair state in `state` (decoded as `RoundRobin` would).
pub fn fair(state: &AlgorithmState) -> pop_sched::FairState {
    state.state::<pop_sched::FairState>("RoundRobin", &Insight::default()).expect("a fair state").into_owned()
}

pub fn ids(picks: &[ReadyAgenda]) -> Vec<&str> {
    picks.iter().map(|p| p.agenda_id.as_str()).collect()
}

pub fn customers(picks: &[ReadyAgenda]) -> Vec<&str> {
    picks.iter().map(|p| p.customer_id.as_str()).collect()
}
