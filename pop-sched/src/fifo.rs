//! `FirstInFirstOut`: oldest `added` first across customers (ties by agenda id).
//!
//! A customer's list is ordered by priority first, so it is oldest-first only within a run of equal
//! priority; the algorithm merges those runs with a heap over the runs of the `count` oldest heads
//! (one run per customer when priorities are equal): one pass over the customers (a binary search
//! per run boundary), then O(log count) per pick. It keeps no state ([`NoState`]).

use crate::fair::{TopK, for_each_runs};
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::{Algorithm, Explanation, NoState, ReadyView, RunHead};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Oldest first (`FirstInFirstOut`, the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstInFirstOut;

impl FirstInFirstOut {
    /// The name insights use.
    pub const NAME: &'static str = "FirstInFirstOut";
}

/// The head of a run: ordered by (added, agenda id), then by run (customer, then position). The
/// agenda id is read only to break a tie on `added`, so a pass over runs given with the view reads
/// no entry.
#[derive(Debug)]
struct Head<'a> {
    added: Millis,
    entries: &'a [ReadyAgenda],
    customer: u32,
    cursor: u32,
    end: u32,
}

impl<'a> Head<'a> {
    fn at(entries: &'a [ReadyAgenda], customer: usize, cursor: usize, end: usize) -> Reverse<Self> {
        Reverse(Head {
            added: entries[cursor].added,
            entries,
            customer: customer as u32,
            cursor: cursor as u32,
            end: end as u32,
        })
    }

    fn of_run(entries: &'a [ReadyAgenda], customer: usize, run: &RunHead) -> Reverse<Self> {
        Reverse(Head { added: run.added, entries, customer: customer as u32, cursor: run.start, end: run.end })
    }

    fn agenda_id(&self) -> &'a str {
        &self.entries[self.cursor as usize].agenda_id
    }
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.added
            .cmp(&other.added)
            .then_with(|| self.agenda_id().cmp(other.agenda_id()))
            .then_with(|| (self.customer, self.cursor, self.end).cmp(&(other.customer, other.cursor, other.end)))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

fn older(a: &ReadyAgenda, added: Millis, agenda_id: &str) -> bool {
    (a.added, a.agenda_id.as_str()).cmp(&(added, agenda_id)) == Ordering::Less
}

impl Algorithm for FirstInFirstOut {
    type State = NoState;

    fn name(&self) -> &str {
        Self::NAME
    }

    /// Each run is oldest-first, so the first `count` picks come from the runs whose heads are
    /// among the `count` oldest heads: one pass over the customers keeps those, then a heap over
    /// them merges the runs.
    fn pick(&self, view: &ReadyView<'_>, _state: &mut NoState, count: usize) -> Vec<ReadyAgenda> {
        if count == 0 {
            return Vec::new();
        }
        let mut best = TopK::new(count);
        // Once `count` heads are kept, a run whose head is younger than the youngest kept cannot make
        // the cut: one comparison of `added`, no candidate built (most runs of a large view).
        let mut cut = Millis::MAX;
        for_each_runs(view.customers.iter().map(|c| (c.entries, c.runs)), |ci, entries, runs| {
            for run in runs {
                if run.added > cut {
                    continue;
                }
                best.offer(Head::of_run(entries, ci, run));
                if let Some(Reverse(least)) = best.cutoff() {
                    cut = least.added;
                }
            }
        });
        let mut heap = BinaryHeap::from(best.into_vec());
        let mut out = Vec::with_capacity(count.min(view.len()));
        while out.len() < count {
            let Some(Reverse(Head { customer, cursor, end, .. })) = heap.pop() else { break };
            let (ci, cursor, end) = (customer as usize, cursor as usize, end as usize);
            let entries = view.customers[ci].entries;
            out.push(entries[cursor].clone());
            if cursor + 1 < end {
                heap.push(Head::at(entries, ci, cursor + 1, end));
            }
        }
        out
    }

    /// Each customer's entries are taken in list order (priority runs oldest first).
    fn in_run_order(&self) -> bool {
        true
    }

    fn explain(&self, view: &ReadyView<'_>, _state: &NoState, agenda_id: &str) -> Option<Explanation> {
        let (c, j) = view.locate(agenda_id)?;
        let target = &view.customers[c].entries[j];
        let mut ahead = 0usize;
        let mut customers = 0usize;
        for_each_runs(view.customers.iter().map(|c| (c.entries, c.runs)), |_, entries, runs| {
            let n: usize = runs
                .iter()
                .map(|r| {
                    entries[r.start as usize..r.end as usize]
                        .partition_point(|x| older(x, target.added, &target.agenda_id))
                })
                .sum();
            if n > 0 {
                ahead += n;
                customers += 1;
            }
        });
        let reason = if ahead == 0 {
            "next: the oldest ready agenda (first in, first out)".to_string()
        } else {
            format!("behind {ahead} older agendas of {customers} customers (first in, first out)")
        };
        Some(Explanation { agenda_id: agenda_id.to_owned(), position: ahead, reason })
    }
}
