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
//! A pick call costs one pass over the customers (matching the view to the stored state, one id
//! comparison or one key lookup each, and keeping the `count` best keys in the same loop) plus
//! O(log customers) per pick and per stored entry that changes. Each customer's own entries are taken
//! in their list order (priority desc, added asc).

use crate::fair::{Accounts, FairState, Ratio, TopK, Visit};
use pop_core::model::ReadyAgenda;
use pop_core::sched::{Algorithm, CustomerReady, Explanation, ReadyView};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Weighted round robin across customers (`RoundRobin`, alias `Fairness`).
#[derive(Debug, Clone)]
pub struct RoundRobin {
    cost_weighted: bool,
    name: &'static str,
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

impl RoundRobin {
    /// The name insights use.
    pub const NAME: &'static str = "RoundRobin";

    /// The name of the built-in cost-weighted round robin ([`RoundRobin::cost_weighted_fairness`]).
    pub const COST_WEIGHTED_NAME: &'static str = "CostWeightedFairness";

    /// Round robin by picks (each pick of a customer counts the same).
    pub fn new() -> Self {
        Self { cost_weighted: false, name: Self::NAME }
    }

    /// Round robin by cost: each pick of a customer is charged its observed mean cost
    /// (`ReadyView::costs`) relative to the mean, so shares of the pool's time follow the weights.
    /// Without costs in the view it behaves like [`RoundRobin::new`].
    pub fn cost_weighted() -> Self {
        Self { cost_weighted: true, name: Self::NAME }
    }

    /// [`RoundRobin::cost_weighted`] under its own name, `CostWeightedFairness`: the built-in an
    /// insight names to be scheduled by cost (the engine hands it each customer's decayed mean
    /// agenda cost; see `pop_engine::costs`). Its state is `RoundRobin`'s, so an insight switching
    /// between the two keeps its rotation.
    pub fn cost_weighted_fairness() -> Self {
        Self { cost_weighted: true, name: Self::COST_WEIGHTED_NAME }
    }

    /// Whether picks are charged by observed cost.
    pub fn is_cost_weighted(&self) -> bool {
        self.cost_weighted
    }
}

/// A customer in the per-call heap: smallest finish tag first, then the first to reach its tag.
/// `cursor` is the customer's next entry (not part of the order: a customer is in the heap once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    tag: Ratio,
    seq: u64,
    idx: u32,
    cursor: u32,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the "greatest" key is the smallest tag.
        other
            .tag
            .cmp_to(&self.tag)
            .then_with(|| other.seq.cmp(&self.seq))
            .then_with(|| other.idx.cmp(&self.idx))
            .then_with(|| other.cursor.cmp(&self.cursor))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The candidate pass, riding on the walk that reads the accounts (one loop over the customers, not
/// two): each customer with entries offered with its finish tag after one pick, the `count` best kept.
struct Heads<'v, 'a> {
    customers: &'v [CustomerReady<'a>],
    best: TopK<Key>,
}

impl Visit for Heads<'_, '_> {
    #[inline(always)]
    fn visit(&mut self, i: usize, tag: Ratio, seq: u64) {
        if !self.customers[i].entries.is_empty() {
            self.best.offer(Key { tag, seq, idx: i as u32, cursor: 0 });
        }
    }
}

impl RoundRobin {
    /// Runs the rotation over `view` from `state`, calling `visit(customer index, entry)` for each
    /// pick until it returns false or `count` picks are made; updates `state`.
    ///
    /// A customer's key only grows as it is served, so the first `count` picks are among the
    /// `count` customers of smallest initial key: the heap starts with those alone.
    fn run(
        &self,
        view: &ReadyView<'_>,
        state: &mut FairState,
        count: usize,
        mut visit: impl FnMut(usize, &ReadyAgenda) -> bool,
    ) {
        if count == 0 || view.is_empty() {
            return;
        }
        let mut pass = Heads { customers: &view.customers, best: TopK::new(count) };
        let (mut acc, fused) = Accounts::load_visiting(view, state, self.cost_weighted, &mut pass);
        let mut best = pass.best;
        if !fused {
            // The accounts were read by the general path: the visits are discarded, the pass made here.
            best = TopK::new(count);
            for (i, c) in view.customers.iter().enumerate() {
                if !c.entries.is_empty() {
                    best.offer(Key { tag: acc.finish(i, 1), seq: acc.seq(i), idx: i as u32, cursor: 0 });
                }
            }
        }
        let mut heap = BinaryHeap::from(best.into_vec());
        let mut drained = Vec::new();
        let mut made = 0;
        while made < count {
            let Some(Key { idx, cursor, .. }) = heap.pop() else { break };
            let i = idx as usize;
            let entries = view.customers[i].entries;
            let go_on = visit(i, &entries[cursor as usize]);
            made += 1;
            acc.charge_pick(i);
            if cursor as usize + 1 < entries.len() {
                heap.push(Key { tag: acc.finish(i, 1), seq: acc.seq(i), idx, cursor: cursor + 1 });
            } else {
                drained.push((i, false));
            }
            if !go_on {
                break;
            }
        }
        let mut picked = drained;
        picked.extend(heap.into_iter().filter(|k| k.cursor > 0).map(|k| (k.idx as usize, true)));
        acc.store(view, state, &picked);
    }
}

impl Algorithm for RoundRobin {
    type State = FairState;

    fn name(&self) -> &str {
        self.name
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut FairState, count: usize) -> Vec<ReadyAgenda> {
        let mut out = Vec::with_capacity(count.min(view.len()));
        self.run(view, state, count, |_, e| {
            out.push(e.clone());
            true
        });
        out
    }

    /// Each customer's entries are taken in list order (priority runs oldest first).
    fn in_run_order(&self) -> bool {
        true
    }

    /// Exact when nothing arrives before it is picked: replays the rotation (on a copy of the state)
    /// up to the agenda, so its cost grows with the agenda's position.
    fn explain(&self, view: &ReadyView<'_>, state: &FairState, agenda_id: &str) -> Option<Explanation> {
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
