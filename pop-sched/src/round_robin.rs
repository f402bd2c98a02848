//! `RoundRobin` (alias `Fairness`): weighted rotation across customers.
//!
//! The original's round robin kept a cursor of customers not yet served in the current rotation
//! (`pendingCustomerIds`), served each of them once, then started a fresh rotation over all customers
//! and filled leftover capacity with further rounds. This is the same rotation expressed as weighted
//! fair queueing over customers (see `fair`): with equal weights and no costs it yields exactly the
//! original's sequence (pending `[A, B, C]`, request 2 → `[A, B]`, then `[C, A]`), and in general, over
//! any window of picks, each continuously backlogged customer's count is within one pick of its
//! weight-proportional share. With cost weighting a customer is charged its observed mean cost per
//! agenda, so a customer of long agendas cannot take more than its share of the pool's time.
//!
//! A pick call costs O(customers) to read the state and build a heap over customers, then
//! O(log customers) per pick. Each customer's own entries are taken in their list order
//! (priority desc, added asc).

use crate::fair::{Accounts, Ratio};
use pop_core::model::ReadyAgenda;
use pop_core::sched::{AlgorithmState, Explanation, ReadyView, SchedulingAlgorithm};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Weighted round robin across customers (`RoundRobin`, alias `Fairness`).
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    cost_weighted: bool,
}

impl RoundRobin {
    /// The name insights use.
    pub const NAME: &'static str = "RoundRobin";

    /// Round robin by picks (each pick of a customer counts the same).
    pub fn new() -> Self {
        Self { cost_weighted: false }
    }

    /// Round robin by cost: each pick of a customer is charged its observed mean cost
    /// (`ReadyView::costs`) relative to the mean, so shares of the pool's time follow the weights.
    /// Without costs in the view it behaves like [`RoundRobin::new`].
    pub fn cost_weighted() -> Self {
        Self { cost_weighted: true }
    }

    /// Whether picks are charged by observed cost.
    pub fn is_cost_weighted(&self) -> bool {
        self.cost_weighted
    }
}

/// A customer in the per-call heap: smallest finish tag first, then the first to reach its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    tag: Ratio,
    seq: u64,
    idx: u32,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the "greatest" key is the smallest tag.
        other.tag.cmp_to(&self.tag).then_with(|| other.seq.cmp(&self.seq)).then_with(|| other.idx.cmp(&self.idx))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl RoundRobin {
    /// Runs the rotation over `view` from `state`, calling `visit(customer index, entry)` for each
    /// pick until it returns false or `count` picks are made; updates `state`.
    fn run(
        &self,
        view: &ReadyView<'_>,
        state: &mut AlgorithmState,
        count: usize,
        mut visit: impl FnMut(usize, &ReadyAgenda) -> bool,
    ) {
        if count == 0 || view.is_empty() {
            return;
        }
        let mut acc = Accounts::load(view, state, self.cost_weighted);
        let n = view.customers.len();
        let keys: Vec<Key> = (0..n)
            .filter(|&i| !view.customers[i].entries.is_empty())
            .map(|i| Key { tag: acc.finish(i, 1), seq: acc.seq[i], idx: i as u32 })
            .collect();
        let mut heap = BinaryHeap::from(keys);
        let mut cursor = vec![0usize; n];
        let mut made = 0;
        while made < count {
            let Some(Key { idx, .. }) = heap.pop() else { break };
            let i = idx as usize;
            let entries = view.customers[i].entries;
            let go_on = visit(i, &entries[cursor[i]]);
            made += 1;
            cursor[i] += 1;
            acc.charge_pick(i);
            if cursor[i] < entries.len() {
                heap.push(Key { tag: acc.finish(i, 1), seq: acc.seq[i], idx });
            }
            if !go_on {
                break;
            }
        }
        acc.store(view, state, |i| cursor[i] < view.customers[i].entries.len());
    }
}

impl SchedulingAlgorithm for RoundRobin {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, count: usize) -> Vec<ReadyAgenda> {
        let mut out = Vec::with_capacity(count.min(view.len()));
        self.run(view, state, count, |_, e| {
            out.push(e.clone());
            true
        });
        out
    }

    /// Exact when nothing arrives before it is picked: replays the rotation (on a copy of the state)
    /// up to the agenda, so its cost grows with the agenda's position.
    fn explain(&self, view: &ReadyView<'_>, state: &AlgorithmState, agenda_id: &str) -> Option<Explanation> {
        let (c, j) = view.locate(agenda_id)?;
        let mut ahead = vec![0usize; view.customers.len()];
        let mut position = 0usize;
        let mut found = false;
        self.run(view, &mut state.clone(), usize::MAX, |i, e| {
            if e.agenda_id == agenda_id {
                found = true;
                return false;
            }
            ahead[i] += 1;
            position += 1;
            true
        });
        if !found {
            return None;
        }
        let others = position - ahead[c];
        let customers_ahead = ahead.iter().enumerate().filter(|&(i, &n)| i != c && n > 0).count();
        let customer = view.customers[c].customer_id;
        let weight = view.customers[c].weight.max(1);
        let reason = if position == 0 {
            format!("next: customer {customer} is first in the rotation")
        } else {
            let mut parts = Vec::new();
            if customers_ahead > 0 {
                parts.push(format!(
                    "waiting for its customer's turn: {customers_ahead} customers ahead in the rotation \
                     ({others} of their agendas go first)"
                ));
            }
            if j > 0 {
                parts.push(format!("{j} earlier agendas of customer {customer} go first"));
            }
            format!("{} (round robin, customer weight {weight})", parts.join("; "))
        };
        Some(Explanation { agenda_id: agenda_id.to_owned(), position, reason })
    }
}
