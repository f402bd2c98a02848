//! Refill planning: how many ready agendas to move into an insight's queue, and a pick that is
//! guaranteed to respect that count and never to name the same agenda twice.

use pop_core::Result;
use pop_core::model::ReadyAgenda;
use pop_core::sched::{AlgorithmState, ReadyView, SchedulingAlgorithm};
use std::collections::HashSet;

/// How many agendas to pick to top the queue up to `queue_size`: `queue_size - queue_len`, or 0 when
/// the queue is already at or above its size.
pub fn refill_count(queue_len: usize, queue_size: u32) -> usize {
    (queue_size as usize).saturating_sub(queue_len)
}

/// The outcome of [`plan_refill`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefillPlan {
    /// How many were asked of the algorithm.
    pub requested: usize,
    /// The picks to queue, in order: at most `requested`, distinct agendas, all from the view.
    pub picks: Vec<ReadyAgenda>,
    /// What was dropped from the algorithm's answer and why (a correct algorithm leaves this empty).
    pub rejected: Vec<String>,
}

/// Asks `algorithm` for `refill_count(queue_len, queue size of the view's insight)` agendas (capped
/// at the number ready) and enforces the contract on its answer: no more than requested, no agenda
/// twice, only entries of the view. Anything dropped is described in [`RefillPlan::rejected`].
///
/// Errors as the algorithm's [`pick`](SchedulingAlgorithm::pick): a stored state it cannot read.
pub fn plan_refill(
    algorithm: &dyn SchedulingAlgorithm,
    view: &ReadyView<'_>,
    state: &mut AlgorithmState,
    queue_len: usize,
) -> Result<RefillPlan> {
    let requested = refill_count(queue_len, view.insight.effective_queue_size()).min(view.len());
    pick_checked(algorithm, view, state, requested)
}

/// Asks `algorithm` for `count` picks and enforces the contract (see [`plan_refill`]).
pub fn pick_checked(
    algorithm: &dyn SchedulingAlgorithm,
    view: &ReadyView<'_>,
    state: &mut AlgorithmState,
    count: usize,
) -> Result<RefillPlan> {
    let mut plan = RefillPlan { requested: count, ..RefillPlan::default() };
    if count == 0 {
        return Ok(plan);
    }
    let raw = algorithm.pick(view, state, count)?;
    let mut seen: HashSet<String> = HashSet::with_capacity(raw.len());
    let name = algorithm.name();
    for entry in raw {
        if plan.picks.len() == count {
            plan.rejected.push(format!(
                "algorithm {name} picked more than the {count} requested; agenda {} was dropped",
                entry.agenda_id
            ));
        } else if seen.contains(&entry.agenda_id) {
            plan.rejected
                .push(format!("algorithm {name} picked agenda {} twice; the duplicate was dropped", entry.agenda_id));
        } else if !view.contains(&entry) {
            plan.rejected.push(format!(
                "algorithm {name} picked agenda {} of customer {}, which is not in the ready set; it was dropped",
                entry.agenda_id, entry.customer_id
            ));
        } else {
            seen.insert(entry.agenda_id.clone());
            plan.picks.push(entry);
        }
    }
    Ok(plan)
}
