//! `FirstInFirstOut`: oldest `added` first across customers (ties by agenda id).
//!
//! A customer's list is ordered by priority first, so it is oldest-first only within a run of equal
//! priority; the algorithm merges those runs with a heap over runs (one per customer when priorities
//! are equal): O(customers) to build, O(log runs) per pick. It keeps no state.

use crate::fair::runs;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, Explanation, ReadyView, SchedulingAlgorithm};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Oldest first (`FirstInFirstOut`, the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstInFirstOut;

impl FirstInFirstOut {
    /// The name insights use.
    pub const NAME: &'static str = "FirstInFirstOut";
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head<'a> {
    added: Millis,
    agenda_id: &'a str,
    run: usize,
}

fn older(a: &ReadyAgenda, added: Millis, agenda_id: &str) -> bool {
    (a.added, a.agenda_id.as_str()).cmp(&(added, agenda_id)) == Ordering::Less
}

impl SchedulingAlgorithm for FirstInFirstOut {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn pick(&self, view: &ReadyView<'_>, _state: &mut AlgorithmState, count: usize) -> Vec<ReadyAgenda> {
        if count == 0 {
            return Vec::new();
        }
        // runs[r] = (customer, cursor, end)
        let mut spans = Vec::new();
        let mut all: Vec<(usize, usize, usize)> = Vec::with_capacity(view.customers.len());
        for (ci, c) in view.customers.iter().enumerate() {
            spans.clear();
            runs(c.entries, &mut spans);
            all.extend(spans.iter().map(|&(s, e)| (ci, s, e)));
        }
        let heads: Vec<Reverse<Head<'_>>> = all
            .iter()
            .enumerate()
            .map(|(r, &(ci, s, _))| {
                let e = &view.customers[ci].entries[s];
                Reverse(Head { added: e.added, agenda_id: &e.agenda_id, run: r })
            })
            .collect();
        let mut heap = BinaryHeap::from(heads);
        let mut out = Vec::with_capacity(count.min(view.len()));
        while out.len() < count {
            let Some(Reverse(Head { run, .. })) = heap.pop() else { break };
            let (ci, cursor, end) = &mut all[run];
            let entries = view.customers[*ci].entries;
            out.push(entries[*cursor].clone());
            *cursor += 1;
            if *cursor < *end {
                let e = &entries[*cursor];
                heap.push(Reverse(Head { added: e.added, agenda_id: &e.agenda_id, run }));
            }
        }
        out
    }

    fn explain(&self, view: &ReadyView<'_>, _state: &AlgorithmState, agenda_id: &str) -> Option<Explanation> {
        let (c, j) = view.locate(agenda_id)?;
        let target = &view.customers[c].entries[j];
        let mut spans = Vec::new();
        let mut ahead = 0usize;
        let mut customers = 0usize;
        for cust in &view.customers {
            spans.clear();
            runs(cust.entries, &mut spans);
            let n: usize = spans
                .iter()
                .map(|&(s, e)| cust.entries[s..e].partition_point(|x| older(x, target.added, &target.agenda_id)))
                .sum();
            if n > 0 {
                ahead += n;
                customers += 1;
            }
        }
        let reason = if ahead == 0 {
            "next: the oldest ready agenda (first in, first out)".to_string()
        } else {
            format!("behind {ahead} older agendas of {customers} customers (first in, first out)")
        };
        Some(Explanation { agenda_id: agenda_id.to_owned(), position: ahead, reason })
    }
}
