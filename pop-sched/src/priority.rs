//! `Priority`: higher effective priority first, fair across customers among equals, with aging.
//!
//! An agenda's effective priority is `priority + floor(wait_ms / aging_step_ms)`: one level per step
//! waited. Picks go in effective-priority order (never a lower one while a higher one waits, within a
//! pick call, whose `now` is fixed); among equal effective priority, customers share by weight as in
//! [`RoundRobin`](crate::RoundRobin) (same state, [`FairState`]). Within a customer, ties go to its
//! higher-priority run, then its list order.
//!
//! **No starvation.** An agenda of priority `p` waiting since `t0`, facing arrivals of priority at
//! most `p + gap`, outranks every agenda that arrives at or after
//! `t0 + (gap + 1) * aging_step_ms` ([`Priority::outranks_arrivals_after_ms`]), so it is picked after
//! at most (the agendas ready at `t0`) + (the arrivals before that time) other picks, however much
//! higher-priority work keeps arriving.

use crate::fair::{Accounts, Aging, FairState, Ratio, TopK, Visit, effective, for_each_runs, runs};
use pop_core::model::ReadyAgenda;
use pop_core::sched::{Algorithm, CustomerReady, Explanation, ReadyView, RunHead};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Configuration of [`Priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityConfig {
    /// Milliseconds of waiting per level of effective priority gained; `None` disables aging (then
    /// low-priority work can starve under a steady stream of higher-priority work).
    pub aging_step_ms: Option<u64>,
    /// Charge customers by observed cost among equals (as [`RoundRobin::cost_weighted`](crate::RoundRobin::cost_weighted)).
    pub cost_weighted: bool,
}

impl Default for PriorityConfig {
    /// One level per minute waited; picks counted equally.
    fn default() -> Self {
        Self { aging_step_ms: Some(60_000), cost_weighted: false }
    }
}

/// Highest effective priority first, with aging and per-customer fairness among equals.
#[derive(Debug, Clone, Default)]
pub struct Priority {
    config: PriorityConfig,
}

impl Priority {
    /// The name insights use.
    pub const NAME: &'static str = "Priority";

    /// With the default configuration (aging one level per minute).
    pub fn new() -> Self {
        Self::default()
    }

    /// With this configuration.
    pub fn with_config(config: PriorityConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &PriorityConfig {
        &self.config
    }

    /// How long after it became ready an agenda outranks every agenda arriving from then on whose
    /// priority is at most `gap` above its own: `(gap + 1) * aging_step_ms`. `None` without aging.
    pub fn outranks_arrivals_after_ms(&self, gap: u32) -> Option<u64> {
        let step = self.config.aging_step_ms.filter(|s| *s > 0)?;
        Some((u64::from(gap) + 1).saturating_mul(step))
    }

    /// An upper bound on the picks made before an agenda is picked, when `backlog` other agendas
    /// were ready as it arrived and at most `arrivals_per_ms` (per millisecond, averaged over any
    /// interval) arrive afterwards with priority at most `gap` above its own. `None` without aging.
    pub fn max_picks_before(&self, backlog: u64, arrivals_per_ms: f64, gap: u32) -> Option<u64> {
        let window = self.outranks_arrivals_after_ms(gap)?;
        Some(backlog.saturating_add((arrivals_per_ms.max(0.0) * window as f64).ceil() as u64))
    }
}

/// A customer in the per-call heap. `run` is the run of its best head (its index among the
/// customer's runs); `slot` its runs in [`Runs`], `u32::MAX` until its first pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    eff: i64,
    tag: Ratio,
    seq: u64,
    idx: u32,
    run: u32,
    slot: u32,
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: highest effective priority, then smallest finish tag, then first to reach it.
        self.eff
            .cmp(&other.eff)
            .then_with(|| other.tag.cmp_to(&self.tag))
            .then_with(|| other.seq.cmp(&self.seq))
            .then_with(|| other.idx.cmp(&self.idx))
            .then_with(|| other.run.cmp(&self.run))
            .then_with(|| other.slot.cmp(&self.slot))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The runs of the customers picked in a call, each customer's `(cursor, end, effective priority of
/// the entry at cursor)` spans added at its first pick.
#[derive(Default)]
struct Runs {
    spans: Vec<Span>,
    /// Per slot: (customer, its spans in `spans`).
    slots: Vec<(usize, std::ops::Range<usize>)>,
    scratch: Vec<(usize, usize)>,
}

/// A run being served: its next entry, its end, and the effective priority of its next entry.
#[derive(Clone, Copy)]
struct Span {
    cursor: usize,
    end: usize,
    eff: i64,
}

impl Runs {
    /// Adds customer `customer`'s runs: those given with the view (their heads' effective priorities
    /// from the heads, reading no entry), else as [`runs`] finds them.
    fn add(&mut self, customer: usize, entries: &[ReadyAgenda], given: &[RunHead], aging: &Aging) -> usize {
        let first = self.spans.len();
        if given.is_empty() {
            self.scratch.clear();
            runs(entries, &mut self.scratch);
            self.spans.extend(self.scratch.iter().map(|&(cursor, end)| Span {
                cursor,
                end,
                eff: aging.effective(entries[cursor].priority, entries[cursor].added),
            }));
        } else {
            self.spans.extend(given.iter().map(|h| Span {
                cursor: h.start as usize,
                end: h.end as usize,
                eff: aging.effective(h.priority, h.added),
            }));
        }
        self.slots.push((customer, first..self.spans.len()));
        self.slots.len() - 1
    }
}

/// The first pass, riding on the state walk: each customer's best head and key, the `count` best
/// kept.
struct Candidates<'v, 'a> {
    customers: &'v [CustomerReady<'a>],
    aging: &'v Aging,
    best: TopK<Key>,
    /// Some customer came without its runs (the pass is made again, searching them).
    searching: bool,
}

impl Visit for Candidates<'_, '_> {
    #[inline(always)]
    fn visit(&mut self, i: usize, tag: Ratio, seq: u64) {
        let c = &self.customers[i];
        if c.runs.is_empty() {
            self.searching |= !c.entries.is_empty();
        } else if self.best.cutoff().is_some_and(|least| !may_enter(self.aging, c.runs, tag, seq, least)) {
            // Certainly short of the least kept key, decided without an effective priority.
        } else if let Some((eff, run)) = best_run(self.aging, c.runs) {
            // Most customers fall short of the least kept key: compared here, not offered.
            let key = Key { eff, tag, seq, idx: i as u32, run: run as u32, slot: u32::MAX };
            if self.best.cutoff().is_none_or(|least: &Key| key > *least) {
                self.best.offer(key);
            }
        }
    }
}

/// Whether a customer with finish tag `tag` and sequence `seq`, visited after every kept customer,
/// may have a key above `least` (false only when it certainly has not): with a worse (tag, seq)
/// than `least`'s it needs a head of effective priority above `least`'s, otherwise one at least
/// equal; each run is checked with one comparison of its `added` against the aging table.
#[inline(always)]
fn may_enter(aging: &Aging, runs: &[RunHead], tag: Ratio, seq: u64, least: &Key) -> bool {
    let worse = match tag.cmp_to(&least.tag) {
        Ordering::Greater => true,
        Ordering::Less => false,
        // Equal sequences: the later index (this customer's) is the lesser key.
        Ordering::Equal => seq >= least.seq,
    };
    let bar = if worse { least.eff } else { least.eff.saturating_sub(1) };
    runs.iter().any(|r| r.start < r.end && aging.may_exceed(r.priority, r.added, bar))
}

/// The best head among runs as found by the first pass (reads no entry): (effective priority, run),
/// the earliest run on ties.
#[inline(always)]
fn best_run(aging: &Aging, runs: &[RunHead]) -> Option<(i64, usize)> {
    let first = runs.iter().position(|r| r.start < r.end)?;
    let (mut best, mut at) = (aging.effective(runs[first].priority, runs[first].added), first);
    for (r, run) in runs.iter().enumerate().skip(first + 1) {
        // One comparison with the aging table rules out most runs without an effective priority.
        if run.start < run.end && aging.may_exceed(run.priority, run.added, best) {
            let eff = aging.effective(run.priority, run.added);
            if eff > best {
                (best, at) = (eff, r);
            }
        }
    }
    Some((best, at))
}

/// The best remaining head among a customer's spans: (effective priority, run), earliest run on
/// ties.
fn best_head(spans: &[Span]) -> Option<(i64, usize)> {
    let mut best: Option<(i64, usize)> = None;
    for (r, s) in spans.iter().enumerate() {
        if s.cursor < s.end && best.is_none_or(|(b, _)| s.eff > b) {
            best = Some((s.eff, r));
        }
    }
    best
}

impl Priority {
    /// The aging step: the insight's own (`agingStepMs`), else the configuration's.
    fn step(&self, view: &ReadyView<'_>) -> Option<u64> {
        view.insight.aging_step_ms.or(self.config.aging_step_ms)
    }

    fn eff(&self, e: &ReadyAgenda, view: &ReadyView<'_>) -> i64 {
        effective(e, view.now, self.step(view))
    }
}

impl Priority {
    /// Runs the algorithm over `view` from `state`, calling `visit(customer index, entry, effective
    /// priority)` for each pick until it returns false or `count` picks are made; updates `state`.
    ///
    /// A customer's key only gets worse as it is served (its best head's effective priority cannot
    /// rise, its tag rises), so the first `count` picks are among the `count` customers of best
    /// initial key: one pass over the customers keeps those, and only they get their runs stored.
    /// The pass rides on the walk that reads the accounts from the state (one loop over the
    /// customers, not two) when the view is sorted by customer id and carries its runs; otherwise it
    /// is a second pass, searching the runs of customers that came without them.
    fn run(
        &self,
        view: &ReadyView<'_>,
        state: &mut FairState,
        count: usize,
        mut visit: impl FnMut(usize, &ReadyAgenda, i64) -> bool,
    ) {
        if count == 0 || view.is_empty() {
            return;
        }
        let aging = Aging::new(view.now, self.step(view));
        let customers = &view.customers;
        let mut pass = Candidates { customers, aging: &aging, best: TopK::new(count), searching: false };
        let (mut acc, fused) = Accounts::load_visiting(view, state, self.config.cost_weighted, &mut pass);
        let Candidates { mut best, searching, .. } = pass;
        if !fused || searching {
            best = TopK::new(count);
            for_each_runs(customers.iter().map(|c| (c.entries, c.runs)), |i, _, runs| {
                if let Some((eff, run)) = best_run(&aging, runs) {
                    let (tag, seq) = (acc.finish(i, 1), acc.seq(i));
                    best.offer(Key { eff, tag, seq, idx: i as u32, run: run as u32, slot: u32::MAX });
                }
            });
        }
        let mut heap = BinaryHeap::from(best.into_vec());
        let mut runs = Runs::default();
        let mut made = 0;
        while made < count {
            let Some(Key { idx, run, eff, slot, .. }) = heap.pop() else { break };
            let i = idx as usize;
            let c = &customers[i];
            let entries = c.entries;
            let slot = if slot == u32::MAX { runs.add(i, entries, c.runs, &aging) } else { slot as usize };
            let spans = &mut runs.spans[runs.slots[slot].1.clone()];
            let span = &mut spans[run as usize];
            let go_on = visit(i, &entries[span.cursor], eff);
            made += 1;
            span.cursor += 1;
            if span.cursor < span.end {
                let next = &entries[span.cursor];
                span.eff = aging.effective(next.priority, next.added);
            }
            acc.charge_pick(i);
            if let Some((eff, run)) = best_head(spans) {
                let (tag, seq) = (acc.finish(i, 1), acc.seq(i));
                heap.push(Key { eff, tag, seq, idx, run: run as u32, slot: slot as u32 });
            }
            if !go_on {
                break;
            }
        }
        let picked: Vec<(usize, bool)> =
            runs.slots.iter().map(|(i, r)| (*i, runs.spans[r.clone()].iter().any(|s| s.cursor < s.end))).collect();
        acc.store(view, state, &picked);
    }
}

impl Algorithm for Priority {
    type State = FairState;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut FairState, count: usize) -> Vec<ReadyAgenda> {
        let mut out = Vec::with_capacity(count.min(view.len()));
        self.run(view, state, count, |_, e, _| {
            out.push(e.clone());
            true
        });
        out
    }

    /// Each customer's entries are taken in list order (priority runs oldest first).
    fn in_run_order(&self) -> bool {
        true
    }

    /// Exact when nothing arrives before it is picked: replays the algorithm (on a copy of the
    /// state) up to the agenda, so its cost grows with the agenda's position.
    fn explain(&self, view: &ReadyView<'_>, state: &FairState, agenda_id: &str) -> Option<Explanation> {
        let (c, j) = view.locate(agenda_id)?;
        let target = &view.customers[c].entries[j];
        let e = self.eff(target, view);
        let mut equal_ahead = vec![0usize; view.customers.len()];
        let (mut higher, mut position, mut found) = (0usize, 0usize, false);
        self.run(view, &mut state.clone(), usize::MAX, |i, x, eff| {
            if x.agenda_id == agenda_id {
                found = true;
                return false;
            }
            position += 1;
            if eff > e {
                higher += 1;
            } else {
                equal_ahead[i] += 1;
            }
            true
        });
        if !found {
            return None;
        }
        let own_equal = equal_ahead[c];
        let equal_others = position - higher - own_equal;
        let customers_ahead = equal_ahead.iter().enumerate().filter(|&(i, &n)| i != c && n > 0).count();
        let aged = e - i64::from(target.priority);
        let wait = view.now.saturating_sub(target.added).max(0);
        let eff_text = if aged > 0 {
            format!("effective priority {e} = priority {} + {aged} for waiting {wait} ms", target.priority)
        } else {
            format!("effective priority {e}")
        };
        let reason = if position == 0 {
            format!("next: highest effective priority and first in the rotation ({eff_text})")
        } else {
            let mut parts = Vec::new();
            if higher > 0 {
                parts.push(format!("behind {higher} agendas of higher priority"));
            }
            if customers_ahead > 0 {
                parts.push(format!(
                    "waiting for its customer's turn among equal priority: {customers_ahead} customers ahead in the \
                     rotation ({equal_others} agendas)"
                ));
            }
            if own_equal > 0 {
                parts.push(format!("{own_equal} earlier agendas of equal priority from the same customer"));
            }
            format!("{} ({eff_text})", parts.join("; "))
        };
        Some(Explanation { agenda_id: agenda_id.to_owned(), position, reason })
    }
}
