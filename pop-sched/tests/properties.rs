//! Properties (proptest): FIFO order, round-robin window fairness (equal and weighted), priority
//! order, the aging bound, no duplicates, never more than requested, exact explain positions.

mod common;

use common::{ReadySet, entry};
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, SchedulingAlgorithm};
use pop_sched::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// Customers (weight, entries as (added, priority)).
fn arb_set(max_customers: usize, max_entries: usize) -> impl Strategy<Value = ReadySet> {
    prop::collection::vec((1u32..5, prop::collection::vec((0i64..60, -1i32..4), 0..max_entries)), 1..max_customers)
        .prop_map(|customers| {
            let mut set = ReadySet::new();
            for (ci, (w, entries)) in customers.into_iter().enumerate() {
                let c = format!("c{ci}");
                set.weight(&c, w);
                for (k, (added, prio)) in entries.into_iter().enumerate() {
                    set.add(entry(&c, &format!("{c}-{k:03}"), added, prio));
                }
            }
            set
        })
}

fn algorithms(step: Option<u64>) -> Vec<Box<dyn SchedulingAlgorithm>> {
    vec![
        Box::new(FirstInFirstOut),
        Box::new(RoundRobin::new()),
        Box::new(RoundRobin::cost_weighted()),
        Box::new(Priority::with_config(PriorityConfig { aging_step_ms: step, cost_weighted: false })),
    ]
}

fn eff(e: &ReadyAgenda, now: Millis, step: Option<u64>) -> i64 {
    i64::from(e.priority) + step.map_or(0, |s| (now - e.added).max(0) / s as i64)
}

/// A pick's customer and the customers backlogged just before it.
type Picked = (String, HashSet<String>);

/// A run of pick calls with arrivals between them; returns each pick's customer with the set of
/// customers backlogged just before it.
fn run_rotation(
    mut set: ReadySet,
    algo: &dyn SchedulingAlgorithm,
    calls: &[(usize, Vec<(usize, usize)>)],
) -> (Vec<Picked>, BTreeMap<String, u32>) {
    let weights: BTreeMap<String, u32> = set.customers.iter().map(|(c, (w, _))| (c.clone(), (*w).max(1))).collect();
    let names: Vec<String> = weights.keys().cloned().collect();
    let mut state = AlgorithmState::new();
    let mut log = Vec::new();
    let mut next_id = 1000;
    for (t, (count, arrivals)) in calls.iter().enumerate() {
        for &(ci, n) in arrivals {
            let c = &names[ci % names.len()];
            for _ in 0..n {
                next_id += 1;
                set.add(entry(c, &format!("{c}-{next_id}"), t as Millis, 0));
            }
        }
        let mut remaining: BTreeMap<String, usize> =
            set.customers.iter().map(|(c, (_, l))| (c.clone(), l.len())).collect();
        let picks = set.pick(algo, &mut state, *count, t as Millis);
        for p in picks {
            let backlogged: HashSet<String> =
                remaining.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c.clone()).collect();
            if let Some(n) = remaining.get_mut(&p.customer_id) {
                *n -= 1;
            }
            log.push((p.customer_id.clone(), backlogged));
        }
    }
    (log, weights)
}

/// Checks every window: for customers backlogged at every pick of it, `check(counts)`.
fn check_windows(log: &[(String, HashSet<String>)], weights: &BTreeMap<String, u32>) -> Result<(), TestCaseError> {
    for i in 0..log.len() {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut always: HashSet<String> = log[i].1.clone();
        for (j, (customer, backlogged)) in log.iter().enumerate().skip(i) {
            always.retain(|c| backlogged.contains(c));
            *counts.entry(customer.as_str()).or_default() += 1;
            let members: Vec<&String> = always.iter().collect();
            for a in &members {
                for b in &members {
                    let (na, nb) =
                        (counts.get(a.as_str()).copied().unwrap_or(0), counts.get(b.as_str()).copied().unwrap_or(0));
                    let (wa, wb) = (u64::from(weights[*a]), u64::from(weights[*b]));
                    if wa == wb {
                        prop_assert!(na.abs_diff(nb) <= 1, "window {i}..={j}: {a}={na} {b}={nb}");
                    }
                    // Each within one pick of its weight-proportional share.
                    prop_assert!(
                        (na * wb).abs_diff(nb * wa) <= wa + wb,
                        "window {i}..={j}: {a}={na} (w {wa}) {b}={nb} (w {wb})"
                    );
                }
            }
        }
    }
    Ok(())
}

type Calls = Vec<(usize, Vec<(usize, usize)>)>;

fn arb_calls() -> impl Strategy<Value = Calls> {
    prop::collection::vec((0usize..7, prop::collection::vec((0usize..6, 0usize..4), 0..2)), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn fifo_picks_in_added_order(set in arb_set(6, 12), counts in prop::collection::vec(0usize..8, 1..6)) {
        let mut all: Vec<ReadyAgenda> = set.customers.values().flat_map(|(_, l)| l.iter().cloned()).collect();
        all.sort_by(|a, b| (a.added, &a.agenda_id).cmp(&(b.added, &b.agenda_id)));
        let mut set = set;
        let mut state = AlgorithmState::new();
        let mut got = Vec::new();
        for c in counts {
            got.extend(set.pick(&FirstInFirstOut, &mut state, c, 100));
        }
        prop_assert_eq!(&all[..got.len()], &got[..]);
    }

    #[test]
    fn round_robin_equal_weights_window_counts_differ_by_at_most_one(
        set in arb_set(6, 12).prop_map(|mut s| { for (w, _) in s.customers.values_mut() { *w = 1; } s }),
        calls in arb_calls(),
    ) {
        let (log, weights) = run_rotation(set, &RoundRobin::new(), &calls);
        check_windows(&log, &weights)?;
    }

    #[test]
    fn round_robin_weighted_windows_are_proportional_within_one_pick(set in arb_set(5, 16), calls in arb_calls()) {
        let (log, weights) = run_rotation(set, &RoundRobin::new(), &calls);
        check_windows(&log, &weights)?;
    }

    #[test]
    fn priority_never_picks_lower_while_higher_waits(
        set in arb_set(6, 12),
        step in prop::option::of(1u64..20),
        count in 0usize..40,
        now in 0i64..200,
    ) {
        let algo = Priority::with_config(PriorityConfig { aging_step_ms: step, cost_weighted: false });
        let view = set.view(now);
        let picks = algo.pick(&view, &mut AlgorithmState::new(), count).expect("picks");
        let picked: HashSet<&str> = picks.iter().map(|p| p.agenda_id.as_str()).collect();
        let best_left = set.customers.values().flat_map(|(_, l)| l.iter())
            .filter(|e| !picked.contains(e.agenda_id.as_str()))
            .map(|e| eff(e, now, step)).max();
        for w in picks.windows(2) {
            prop_assert!(eff(&w[0], now, step) >= eff(&w[1], now, step));
        }
        if let (Some(last), Some(left)) = (picks.last(), best_left) {
            prop_assert!(eff(last, now, step) >= left, "picked {} while {} waits", eff(last, now, step), left);
        }
    }

    /// An agenda of the lowest priority is picked within a bound computed from the configuration,
    /// while higher-priority work arrives without end.
    #[test]
    fn aging_bounds_the_wait_under_unending_higher_priority_arrivals(
        step in 1u64..50,
        gap in 1u32..5,
        dt in 1i64..20,
        per_tick in 1usize..4,
        backlog in 0usize..10,
        customers in 1usize..4,
    ) {
        let algo = Priority::with_config(PriorityConfig { aging_step_ms: Some(step), cost_weighted: false });
        let mut set = ReadySet::new();
        set.add(entry("victim", "victim", 0, 0));
        for k in 0..backlog {
            set.add(entry(&format!("h{}", k % customers), &format!("b{k}"), 0, (k as u32 % (gap + 1)) as i32));
        }
        let window = algo.outranks_arrivals_after_ms(gap).expect("aging on");
        // Ticks at dt, 2dt, ... strictly before the window may bring agendas that precede the victim.
        let ticks_before = (window as i64 + dt - 1) / dt - 1;
        let bound = backlog as u64 + per_tick as u64 * ticks_before.max(0) as u64;
        let mut state = AlgorithmState::new();
        let mut picks_before = 0u64;
        let mut t = 0i64;
        let mut n = 0usize;
        loop {
            t += dt;
            for _ in 0..per_tick {
                n += 1;
                let p = 1 + (n as u32 % gap) as i32;
                set.add(entry(&format!("h{}", n % customers), &format!("a{n}"), t, p));
            }
            let picked = set.pick(&algo, &mut state, 1, t);
            prop_assert_eq!(picked.len(), 1);
            if picked[0].agenda_id == "victim" {
                break;
            }
            picks_before += 1;
            prop_assert!(picks_before <= bound, "victim not picked after {} picks (bound {})", picks_before, bound);
        }
    }

    #[test]
    fn no_duplicates_never_more_than_requested_and_work_conserving(
        set in arb_set(8, 10),
        count in 0usize..80,
        now in 0i64..100,
        step in prop::option::of(1u64..10),
        history in 0usize..10,
    ) {
        for algo in algorithms(step) {
            let mut working = set.clone();
            let mut state = AlgorithmState::new();
            working.pick(algo.as_ref(), &mut state, history, now);
            let view = working.view(now);
            let picks = algo.pick(&view, &mut state, count).expect("picks");
            prop_assert_eq!(picks.len(), count.min(working.len()), "{}", algo.name());
            let distinct: HashSet<&str> = picks.iter().map(|p| p.agenda_id.as_str()).collect();
            prop_assert_eq!(distinct.len(), picks.len(), "{} picked a duplicate", algo.name());
            for p in &picks {
                prop_assert!(view.contains(p), "{} picked {} which is not ready", algo.name(), p.agenda_id);
            }
        }
    }

    #[test]
    fn explain_position_is_the_drain_index(
        set in arb_set(5, 8),
        history in 0usize..6,
        now in 0i64..100,
        step in prop::option::of(1u64..10),
        costs in prop::collection::vec(0.5f64..5.0, 5),
    ) {
        let mut set = set;
        set.costs = Some(costs.iter().enumerate().map(|(i, c)| (format!("c{i}"), *c)).collect());
        for algo in algorithms(step) {
            let mut working = set.clone();
            let mut state = AlgorithmState::new();
            working.pick(algo.as_ref(), &mut state, history, now);
            let view = working.view(now);
            let order = algo.pick(&view, &mut state.clone(), usize::MAX).expect("picks");
            for (i, p) in order.iter().enumerate() {
                let e = algo.explain(&view, &state, &p.agenda_id).expect("explains");
                prop_assert_eq!(e.map(|e| e.position), Some(i), "{} {}", algo.name(), p.agenda_id);
            }
        }
    }

    /// A view that carries each customer's priority runs (as the scheduler hands them) gives the same
    /// picks, the same state and the same explanations as one whose runs the algorithms search.
    #[test]
    fn runs_given_with_the_view_change_nothing(
        set in arb_set(8, 12),
        count in 0usize..40,
        now in 0i64..100,
        step in prop::option::of(1u64..10),
        history in 0usize..10,
    ) {
        for algo in algorithms(step) {
            let mut working = set.clone();
            let mut state = AlgorithmState::new();
            working.pick(algo.as_ref(), &mut state, history, now);
            let runs = working.runs();
            let (searched, given) = (working.view(now), working.view_with_runs(now, &runs));
            let (mut s1, mut s2) = (state.clone(), state.clone());
            let a = algo.pick(&searched, &mut s1, count).expect("picks");
            let b = algo.pick(&given, &mut s2, count).expect("picks");
            prop_assert_eq!(&a, &b, "{}: picks", algo.name());
            prop_assert_eq!(s1.to_json().ok(), s2.to_json().ok(), "{}: state", algo.name());
            for e in working.view(now).customers.iter().flat_map(|c| c.entries.iter()) {
                let x = algo.explain(&searched, &state, &e.agenda_id).expect("explains").map(|x| x.position);
                let y = algo.explain(&given, &state, &e.agenda_id).expect("explains").map(|x| x.position);
                prop_assert_eq!(x, y, "{}: explain {}", algo.name(), &e.agenda_id);
            }
        }
    }

    /// Every built-in algorithm says it takes priority runs in order, and does: a view holding only
    /// the first `count + 1` entries of each run (what the scheduler reads with
    /// `Store::ready_heads`; the one more keeps a customer whose run is longer than the pick from
    /// looking drained) gives the same picks and the same state as the whole ready set, call after
    /// call.
    #[test]
    fn the_heads_of_each_run_pick_as_the_whole_set(
        set in arb_set(6, 40),
        counts in prop::collection::vec(0usize..12, 1..6),
        step in prop::option::of(1u64..10),
    ) {
        for algo in algorithms(step) {
            prop_assert!(algo.in_run_order(), "{} takes runs in order", algo.name());
            let mut working = set.clone();
            let (mut whole_state, mut heads_state) = (AlgorithmState::new(), AlgorithmState::new());
            for (call, count) in counts.iter().enumerate() {
                let now = 60 + 7 * call as Millis;
                let mut heads = working.clone();
                for (_, list) in heads.customers.values_mut() {
                    let mut in_run = 0;
                    let mut prev: Option<i32> = None;
                    list.retain(|e| {
                        in_run = if prev == Some(e.priority) { in_run + 1 } else { 1 };
                        prev = Some(e.priority);
                        in_run <= count + 1
                    });
                }
                let a = working.pick(algo.as_ref(), &mut whole_state, *count, now);
                let b = heads.pick(algo.as_ref(), &mut heads_state, *count, now);
                prop_assert_eq!(&a, &b, "{}: picks of call {}", algo.name(), call);
                prop_assert_eq!(whole_state.to_json().ok(), heads_state.to_json().ok(), "{}: state", algo.name());
            }
        }
    }

    /// Without aging and with one priority, Priority is the weighted rotation: same picks as
    /// RoundRobin, call after call (they share the state format).
    #[test]
    fn priority_among_equals_is_the_round_robin_rotation(set in arb_set(6, 12), calls in arb_calls()) {
        let flat = |mut s: ReadySet| {
            for (_, l) in s.customers.values_mut() {
                for e in l.iter_mut() {
                    e.priority = 0;
                }
                l.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
            }
            s
        };
        let prio = Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false });
        let (a, _) = run_rotation(flat(set.clone()), &prio, &calls);
        let (b, _) = run_rotation(flat(set), &RoundRobin::new(), &calls);
        prop_assert_eq!(a, b);
    }
}
