//! Table tests: the original's FIFO and round-robin cases (§5.4), weights, priority and aging, the
//! registry, refill planning and explain.

mod common;

use common::{ReadySet, customers, entry, fair, ids};
use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, Explanation, ReadyView, SchedulingAlgorithm};
use pop_sched::refill::pick_checked;
use pop_sched::{FirstInFirstOut, Priority, PriorityConfig, Registry, RoundRobin, plan_refill, refill_count};
use std::sync::Arc;

#[test]
fn fifo_oldest_first_across_customers() {
    let mut set = ReadySet::new();
    set.add(entry("b", "b1", 20, 0)).add(entry("a", "a1", 10, 0)).add(entry("c", "c1", 15, 0));
    set.add(entry("a", "a2", 30, 0)).add(entry("b", "b0", 5, 0));
    let mut state = AlgorithmState::new();
    let cases: Vec<(usize, Vec<&str>)> = vec![(0, vec![]), (2, vec!["b0", "a1"]), (10, vec!["c1", "b1", "a2"])];
    for (count, want) in cases {
        let got = set.pick(&FirstInFirstOut, &mut state, count, 100);
        assert_eq!(ids(&got), want, "request {count}");
    }
    assert_eq!(state.to_json().ok(), Some(br#"{"algorithm":"FirstInFirstOut","state":null}"#.to_vec()), "no state");
}

#[test]
fn fifo_ignores_priority_and_breaks_ties_by_agenda_id() {
    let mut set = ReadySet::new();
    set.add(entry("a", "a-new-high", 50, 9)).add(entry("a", "a-old-low", 1, 0));
    set.add(entry("b", "b-z", 10, 0)).add(entry("b", "b-a", 10, 0));
    let got = set.pick(&FirstInFirstOut, &mut AlgorithmState::new(), 4, 100);
    assert_eq!(ids(&got), ["a-old-low", "b-a", "b-z", "a-new-high"]);
}

/// The original's `testScheduleMultipleCalls`: rotation [A, B, C], request 2 → [A, B]; the next
/// request serves C, then a second pass over all customers fills the rest.
#[test]
fn round_robin_multiple_calls_as_the_original() {
    let mut set = ReadySet::new();
    set.many("A", 5, 0, 0).many("B", 5, 100, 0).many("C", 5, 200, 0);
    let rr = RoundRobin::new();
    let mut state = AlgorithmState::new();
    let rounds: Vec<Vec<&str>> =
        vec![vec!["A", "B"], vec!["C", "A"], vec!["B", "C"], vec!["A", "B", "C", "A", "B", "C"]];
    for want in rounds {
        let got = set.pick(&rr, &mut state, want.len(), 1000);
        assert_eq!(customers(&got), want);
    }
    assert_eq!(ids(&set.pick(&rr, &mut state, 1, 1000)), ["A-00004"], "each customer's own order is kept");
}

#[test]
fn round_robin_table() {
    type Case = (&'static str, Vec<(&'static str, u32, usize)>, usize, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "customers without work do not block",
            vec![("A", 1, 3), ("B", 1, 0), ("C", 1, 1)],
            4,
            vec!["A", "C", "A", "A"],
        ),
        ("second pass fills capacity", vec![("A", 1, 3), ("B", 1, 1)], 5, vec!["A", "B", "A", "A"]),
        ("request zero", vec![("A", 1, 3)], 0, vec![]),
        ("weights 2:1", vec![("A", 2, 10), ("B", 1, 10)], 6, vec!["A", "B", "A", "A", "B", "A"]),
        ("weights 1:3", vec![("A", 1, 10), ("B", 3, 10)], 8, vec!["B", "B", "A", "B", "B", "B", "A", "B"]),
    ];
    for (name, spec, count, want) in cases {
        let mut set = ReadySet::new();
        for (c, w, n) in spec {
            set.weight(c, w).many(c, n, 0, 0);
        }
        let got = set.pick(&RoundRobin::new(), &mut AlgorithmState::new(), count, 10);
        assert_eq!(customers(&got), want, "{name}");
    }
}

#[test]
fn round_robin_state_is_small_and_idle_customers_bank_no_credit() {
    let mut set = ReadySet::new();
    set.many("A", 3, 0, 0);
    let rr = RoundRobin::new();
    let mut state = AlgorithmState::new();
    // A alone takes 3 picks, then drains: everyone restarts level.
    assert_eq!(set.pick(&rr, &mut state, 3, 10).len(), 3);
    assert_eq!(fair(&state).customers().len(), 0, "drained: no customer is ahead: {:?}", fair(&state));
    set.many("A", 2, 100, 0).many("B", 2, 100, 0);
    assert_eq!(customers(&set.pick(&rr, &mut state, 4, 200)), ["A", "B", "A", "B"]);

    // B waits while A is served; B, arriving later, gets the next turn but no burst of "saved" turns.
    let mut set = ReadySet::new();
    set.many("A", 10, 0, 0);
    let mut state = AlgorithmState::new();
    assert_eq!(set.pick(&rr, &mut state, 4, 10).len(), 4);
    assert_eq!(fair(&state).customers().collect::<Vec<_>>(), ["A"], "one entry for A");
    set.many("B", 10, 50, 0);
    assert_eq!(customers(&set.pick(&rr, &mut state, 4, 60)), ["A", "B", "A", "B"]);
    let stored = fair(&state).customers().len();
    assert!(stored <= 2, "state holds at most one entry per customer: {:?}", fair(&state));
}

#[test]
fn round_robin_by_cost_balances_time_not_picks() {
    let mut set = ReadySet::new();
    set.many("long", 20, 0, 0).many("short", 20, 0, 0);
    set.costs = Some([("long".to_string(), 30.0), ("short".to_string(), 10.0)].into_iter().collect());
    let got = set.pick(&RoundRobin::cost_weighted(), &mut AlgorithmState::new(), 8, 10);
    let long = got.iter().filter(|p| p.customer_id == "long").count();
    assert_eq!(long, 2, "a 3x costlier customer gets a third of the picks: {:?}", customers(&got));
    let plain =
        ReadySet { costs: None, ..set.clone() }.pick(&RoundRobin::cost_weighted(), &mut AlgorithmState::new(), 8, 10);
    assert_eq!(plain.iter().filter(|p| p.customer_id == "long").count(), 4, "without costs: by picks");
}

#[test]
fn priority_highest_first_and_fair_among_equals() {
    let mut set = ReadySet::new();
    set.many("A", 3, 0, 1).many("B", 3, 0, 1).add(entry("C", "c-urgent", 50, 5));
    let algo = Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false });
    let got = set.pick(&algo, &mut AlgorithmState::new(), 7, 100);
    assert_eq!(customers(&got), ["C", "A", "B", "A", "B", "A", "B"]);
}

#[test]
fn priority_aging_lifts_old_work() {
    let algo = Priority::with_config(PriorityConfig { aging_step_ms: Some(1000), cost_weighted: false });
    let mut set = ReadySet::new();
    set.add(entry("A", "old-low", 0, 0)).add(entry("B", "new-high", 4_000, 3));
    // At 4000 ms: old-low has effective priority 4 > 3.
    assert_eq!(ids(&set.clone().pick(&algo, &mut AlgorithmState::new(), 1, 4_000)), ["old-low"]);
    // At 2500 ms: 2 < 3.
    assert_eq!(ids(&set.clone().pick(&algo, &mut AlgorithmState::new(), 1, 2_500)), ["new-high"]);
    // Within one customer, an aged low-priority run outranks a fresh high one.
    let mut set = ReadySet::new();
    set.add(entry("A", "a-high", 9_000, 2)).add(entry("A", "a-low", 0, 0));
    assert_eq!(ids(&set.pick(&algo, &mut AlgorithmState::new(), 2, 9_000)), ["a-low", "a-high"]);
    assert_eq!(algo.outranks_arrivals_after_ms(3), Some(4_000));
    assert_eq!(
        Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false })
            .outranks_arrivals_after_ms(3),
        None
    );
}

struct Custom;

impl SchedulingAlgorithm for Custom {
    fn name(&self) -> &str {
        "NewestFirst"
    }
    fn pick(&self, view: &ReadyView<'_>, _: &mut AlgorithmState, count: usize) -> pop_core::Result<Vec<ReadyAgenda>> {
        let mut all: Vec<ReadyAgenda> = view.customers.iter().flat_map(|c| c.entries.iter().cloned()).collect();
        all.sort_by_key(|b| std::cmp::Reverse(b.added));
        all.truncate(count);
        Ok(all)
    }
    fn explain(&self, _: &ReadyView<'_>, _: &AlgorithmState, _: &str) -> pop_core::Result<Option<Explanation>> {
        Ok(None)
    }
}

#[test]
fn registry_by_name_alias_default_and_custom() {
    let mut registry = Registry::new();
    for (name, want) in [
        ("FirstInFirstOut", "FirstInFirstOut"),
        ("fifo", "FirstInFirstOut"),
        ("roundrobin", "RoundRobin"),
        ("Fairness", "RoundRobin"),
        (" FAIRNESS ", "RoundRobin"),
        ("priority", "Priority"),
    ] {
        assert_eq!(registry.get(name).map(|a| a.name().to_owned()).ok().as_deref(), Some(want), "{name}");
    }
    let missing = Insight::default();
    assert_eq!(registry.for_insight(&missing).map(|a| a.name().to_owned()).ok().as_deref(), Some("FirstInFirstOut"));

    let unknown =
        Insight { id: Some("i-9".into()), scheduling_algorithm: Some("NewestFirst".into()), ..Insight::default() };
    let err = registry.for_insight(&unknown).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("insight i-9") && err.contains("\"NewestFirst\""), "{err}");
    assert!(err.contains("FirstInFirstOut") && err.contains("Fairness (alias of RoundRobin)"), "{err}");

    assert!(registry.register(Arc::new(Custom)).is_none());
    let algo = registry.for_insight(&unknown).expect("registered");
    assert_eq!(algo.name(), "NewestFirst");
    assert!(registry.names().contains(&"NewestFirst".to_string()));
    assert!(registry.alias("Lifo", "nope").is_err());
}

#[test]
fn refill_count_table() {
    for (len, size, want) in [(0, 100, 100), (40, 100, 60), (100, 100, 0), (150, 100, 0), (0, 0, 0)] {
        assert_eq!(refill_count(len, size), want, "queue {len} of {size}");
    }
}

/// An algorithm that breaks the contract in every way.
struct Misbehaving;

impl SchedulingAlgorithm for Misbehaving {
    fn name(&self) -> &str {
        "Misbehaving"
    }
    fn pick(&self, view: &ReadyView<'_>, _: &mut AlgorithmState, _count: usize) -> pop_core::Result<Vec<ReadyAgenda>> {
        let first = view.customers[0].entries[0].clone();
        let foreign = entry("zz", "not-ready", 0, 0);
        let mut out = vec![first.clone(), first, foreign];
        out.extend(view.customers.iter().flat_map(|c| c.entries.iter().cloned()));
        Ok(out)
    }
    fn explain(&self, _: &ReadyView<'_>, _: &AlgorithmState, _: &str) -> pop_core::Result<Option<Explanation>> {
        Ok(None)
    }
}

#[test]
fn plan_refill_enforces_the_contract() {
    let mut set = ReadySet::new();
    set.many("A", 5, 0, 0).many("B", 5, 0, 0);
    set.insight.queue_size = Some(10);
    let mut state = AlgorithmState::new();
    let plan = plan_refill(&Misbehaving, &set.view(0), &mut state, 7).expect("picks");
    assert_eq!(plan.requested, 3);
    assert_eq!(ids(&plan.picks), ["A-00000", "A-00001", "A-00002"]);
    assert!(plan.rejected.iter().any(|r| r.contains("twice")), "{:?}", plan.rejected);
    assert!(plan.rejected.iter().any(|r| r.contains("not-ready") && r.contains("not in the ready set")));
    assert!(plan.rejected.iter().any(|r| r.contains("more than the 3 requested")));
    assert_eq!(plan_refill(&Misbehaving, &set.view(0), &mut state, 10).map(|p| p.picks.len()).ok(), Some(0), "full");
    let plan = plan_refill(&RoundRobin::new(), &set.view(0), &mut state, 0).expect("picks");
    assert_eq!(plan.picks.len(), 10);
    assert!(plan.rejected.is_empty());
}

/// Explain's position is exact when nothing arrives: it is the index at which draining picks it.
#[test]
fn explain_positions_match_the_pick_order() {
    let mut set = ReadySet::new();
    set.weight("A", 2).many("A", 6, 0, 0).many("B", 4, 3, 1).many("C", 5, 1, 0).add(entry("C", "c-high", 9, 3));
    set.add(entry("B", "b-low", 2, -1));
    set.costs = Some([("A".to_string(), 2.0), ("C".to_string(), 1.0)].into_iter().collect());
    let algos: Vec<Box<dyn SchedulingAlgorithm>> = vec![
        Box::new(FirstInFirstOut),
        Box::new(RoundRobin::new()),
        Box::new(RoundRobin::cost_weighted()),
        Box::new(Priority::new()),
        Box::new(Priority::with_config(PriorityConfig { aging_step_ms: Some(2), cost_weighted: true })),
    ];
    for algo in &algos {
        // A state with history, so that tags differ.
        let mut state = AlgorithmState::new();
        let mut working = set.clone();
        working.pick(algo.as_ref(), &mut state, 3, 10);
        let view = working.view(12);
        let order = algo.pick(&view, &mut state.clone(), usize::MAX).expect("picks");
        assert_eq!(order.len(), working.len());
        for (i, p) in order.iter().enumerate() {
            let e = algo.explain(&view, &state, &p.agenda_id).expect("explains").expect("in view");
            assert_eq!(e.position, i, "{} {}: {}", algo.name(), p.agenda_id, e.reason);
        }
        assert!(algo.explain(&view, &state, "nope").expect("explains").is_none());
    }
}

#[test]
fn explain_reasons_name_the_cause() {
    let mut set = ReadySet::new();
    set.many("A", 3, 0, 0).many("B", 3, 10, 0).add(entry("C", "c-high", 20, 5));
    let view = set.view(30);
    let prio = Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false });
    let e = prio.explain(&view, &AlgorithmState::new(), "B-00001").ok().flatten().expect("explained");
    assert_eq!(e.position, 4);
    assert!(e.reason.contains("behind 1 agendas of higher priority"), "{}", e.reason);
    assert!(e.reason.contains("1 customers ahead in the rotation"), "{}", e.reason);
    assert!(e.reason.contains("1 earlier agendas of equal priority from the same customer"), "{}", e.reason);
    let e = RoundRobin::new().explain(&view, &AlgorithmState::new(), "B-00001").ok().flatten().expect("explained");
    assert_eq!(e.position, 4, "A0 B0 C A1 B1: {}", e.reason);
    assert!(e.reason.contains("2 customers ahead in the rotation"), "{}", e.reason);
    let e = FirstInFirstOut.explain(&view, &AlgorithmState::new(), "B-00001").ok().flatten().expect("explained");
    assert_eq!(e.position, 4);
    assert!(e.reason.contains("behind 4 older agendas"), "{}", e.reason);
    let e = FirstInFirstOut.explain(&view, &AlgorithmState::new(), "A-00000").ok().flatten().expect("explained");
    assert_eq!((e.position, e.reason.starts_with("next")), (0, true));
}

#[test]
fn pick_checked_passes_a_correct_algorithm_through() {
    let mut set = ReadySet::new();
    set.many("A", 3, 0, 0);
    let plan = pick_checked(&FirstInFirstOut, &set.view(0), &mut AlgorithmState::new(), 2).expect("picks");
    assert_eq!((plan.picks.len(), plan.rejected.len()), (2, 0));
}
