//! The fast and the general path of the accounts, side by side, and a generator for the tests.

use super::FairState;
use super::accounts::FORCE_GENERAL;
use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerKeys, CustomerReady, ReadyView, SchedulingAlgorithm};

/// A small deterministic generator for the scenario tests.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Changes every stored entry of a fair state: flips its flag, changes its weight or drops it, and
/// adds a backlogged customer that is not in any view.
fn stir(state: &mut AlgorithmState, algorithm: &str, insight: &Insight) {
    if state.get::<FairState>().is_none() {
        return;
    }
    let Ok(fair) = state.state_mut::<FairState>(algorithm, insight) else { return };
    let used = fair.entries_mut();
    let keys: Vec<String> = used.keys().cloned().collect();
    for (n, k) in keys.iter().enumerate() {
        match n % 3 {
            0 => {
                if let Some(e) = used.get_mut(k) {
                    e.backlogged = !e.backlogged;
                }
            }
            1 => {
                if let Some(e) = used.get_mut(k) {
                    e.weight += 1;
                }
            }
            _ => {
                used.remove(k);
            }
        }
    }
    used.insert("zz".into(), super::state::Entry { used: 5, weight: 1, backlogged: true, seq: 3 });
}

/// Runs the same calls through the fast, the keyed and the general path of the accounts and checks
/// that picks and stored states are identical, call after call: customers join, drain, leave, change
/// weight, have no entries, and stored entries change under them.
#[test]
fn fast_and_general_paths_agree() {
    use crate::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
    let algorithms: Vec<Box<dyn SchedulingAlgorithm>> = vec![
        Box::new(FirstInFirstOut),
        Box::new(RoundRobin::new()),
        Box::new(RoundRobin::cost_weighted()),
        Box::new(Priority::new()),
        Box::new(Priority::with_config(PriorityConfig { aging_step_ms: Some(7), cost_weighted: true })),
    ];
    let insight = Insight { id: Some("i-1".into()), ..Insight::default() };
    let costs: std::collections::BTreeMap<String, f64> =
        (0..12).map(|c| (format!("c{c:02}"), 1.0 + (c % 4) as f64)).collect();
    for seed in 1..=60u64 {
        for algo in &algorithms {
            let name = algo.name();
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            // customer → (weight, entries sorted (priority desc, added asc, agenda id))
            let mut set: std::collections::BTreeMap<String, (u32, Vec<ReadyAgenda>)> = Default::default();
            let (mut fast, mut general, mut keyed) =
                (AlgorithmState::new(), AlgorithmState::new(), AlgorithmState::new());
            let mut keys = CustomerKeys::new();
            let mut next = 0i64;
            for call in 0..25 {
                for _ in 0..rng.below(12) {
                    let c = format!("c{:02}", rng.below(12));
                    next += 1;
                    let e = ReadyAgenda {
                        agenda_id: format!("a{next:04}"),
                        customer_id: c.clone(),
                        added: next,
                        priority: rng.below(3) as i32,
                        ..ReadyAgenda::default()
                    };
                    let slot = set.entry(c).or_insert((1 + rng.below(3) as u32, Vec::new()));
                    let at = slot.1.partition_point(|x| x.order_key() < e.order_key());
                    slot.1.insert(at, e);
                }
                if rng.below(4) == 0 {
                    if let Some((_, slot)) = set.iter_mut().nth(rng.below(12) as usize) {
                        slot.0 = 1 + rng.below(4) as u32;
                    }
                }
                if rng.below(5) == 0 {
                    // A customer listed without entries.
                    set.entry(format!("c{:02}", rng.below(12))).or_insert((1, Vec::new()));
                }
                if call == 12 {
                    stir(&mut fast, name, &insight);
                    stir(&mut general, name, &insight);
                    stir(&mut keyed, name, &insight);
                }
                // Sometimes a customer with entries is left out (as an execution limit does).
                let hidden = if rng.below(3) == 0 { set.keys().nth(rng.below(12) as usize).cloned() } else { None };
                let view = ReadyView {
                    insight: &insight,
                    customers: set
                        .iter()
                        .filter(|(c, _)| Some(*c) != hidden.as_ref())
                        .map(|(c, (w, e))| CustomerReady { customer_id: c, weight: *w, entries: e, runs: &[], key: 0 })
                        .collect(),
                    costs: Some(&costs),
                    now: next + 3,
                    keys: None,
                };
                let keyed_view = ReadyView {
                    customers: view
                        .customers
                        .iter()
                        .map(|c| CustomerReady { key: keys.key(c.customer_id), ..c.clone() })
                        .collect(),
                    keys: Some(keys.space()),
                    ..view.clone()
                };
                let count = 1 + rng.below(8) as usize;
                let before = fast.clone();
                let a = algo.pick(&view, &mut fast, count).unwrap_or_default();
                // Starting from the `count` best keys picks what a heap over everyone would.
                let all = algo.pick(&view, &mut before.clone(), usize::MAX).unwrap_or_default();
                assert_eq!(a[..], all[..a.len()], "{name} seed {seed} call {call}: prefix");
                FORCE_GENERAL.with(|f| f.set(true));
                let b = algo.pick(&view, &mut general, count).unwrap_or_default();
                FORCE_GENERAL.with(|f| f.set(false));
                assert_eq!(a.len(), count.min(view.len()), "{name} seed {seed} call {call}: count");
                assert_eq!(a, b, "{name} seed {seed} call {call}: picks");
                let k = algo.pick(&keyed_view, &mut keyed, count).unwrap_or_default();
                let sk = keyed.to_json().unwrap_or_default();
                let (sf, sg) = (fast.to_json().unwrap_or_default(), general.to_json().unwrap_or_default());
                assert_eq!(
                    String::from_utf8_lossy(&sf),
                    String::from_utf8_lossy(&sg),
                    "{name} seed {seed} call {call}: state"
                );
                assert_eq!(a, k, "{name} seed {seed} call {call}: keyed picks");
                assert_eq!(
                    String::from_utf8_lossy(&sf),
                    String::from_utf8_lossy(&sk),
                    "{name} seed {seed} call {call}: keyed state"
                );
                for p in &a {
                    if let Some((_, list)) = set.get_mut(&p.customer_id) {
                        list.retain(|e| e.agenda_id != p.agenda_id);
                    }
                }
                // Drained customers leave the view, except sometimes (listed without entries).
                if rng.below(3) != 0 {
                    set.retain(|_, (_, e)| !e.is_empty());
                }
            }
        }
    }
}

/// Keys that break the contract of `CustomerKeys`: two customers listed with one key, or one
/// customer met under two keys, are noticed and the call takes the general path (exact picks);
/// customers whose keys are swapped between calls get unfair picks, never a panic or a stored state
/// that does not decode, and the index is dropped once a write meets the swap.
#[test]
fn keys_that_break_the_contract_are_survived() {
    use crate::{Priority, RoundRobin};
    let insight = Insight { id: Some("i-1".into()), ..Insight::default() };
    let lists: Vec<(String, Vec<ReadyAgenda>)> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(c, id)| {
            let entries = (0..20)
                .map(|n| ReadyAgenda {
                    agenda_id: format!("{id}{n:02}"),
                    customer_id: (*id).to_owned(),
                    added: (n * 3 + c) as i64,
                    priority: (n % 2) as i32,
                    ..ReadyAgenda::default()
                })
                .collect();
            ((*id).to_owned(), entries)
        })
        .collect();
    let space = CustomerKeys::new().space();
    let view = |keys: Option<[u32; 3]>| ReadyView {
        insight: &insight,
        customers: lists
            .iter()
            .enumerate()
            .map(|(i, (c, e))| CustomerReady {
                customer_id: c,
                weight: 1 + i as u32,
                entries: e,
                runs: &[],
                key: keys.map_or(0, |k| k[i]),
            })
            .collect(),
        costs: None,
        now: 100,
        keys: keys.map(|_| space),
    };
    let built = |s: &AlgorithmState| s.get::<FairState>().is_some_and(|f| f.keyed.is_built());
    let algorithms: Vec<Box<dyn SchedulingAlgorithm>> = vec![Box::new(RoundRobin::new()), Box::new(Priority::new())];
    for algo in &algorithms {
        let (mut plain, mut keyed) = (AlgorithmState::new(), AlgorithmState::new());
        let call = |keys: Option<[u32; 3]>, plain: &mut AlgorithmState, keyed: &mut AlgorithmState| {
            let a = algo.pick(&view(None), plain, 2).unwrap_or_default();
            let b = algo.pick(&view(keys), keyed, 2).unwrap_or_default();
            (a, b)
        };
        let (a, b) = call(Some([0, 1, 2]), &mut plain, &mut keyed);
        assert_eq!(a, b);
        assert!(built(&keyed), "{}: a keyed call builds the index", algo.name());
        // Two customers with one key: noticed, the general path.
        let (a, b) = call(Some([0, 0, 2]), &mut plain, &mut keyed);
        assert_eq!(a, b);
        assert!(!built(&keyed), "{}: keys that do not fit drop the index", algo.name());
        let (a, b) = call(Some([0, 1, 2]), &mut plain, &mut keyed);
        assert_eq!((a, built(&keyed)), (b, true));
        // One customer under a second key: noticed when the new key meets its stored entry.
        let (a, b) = call(Some([5, 1, 2]), &mut plain, &mut keyed);
        assert_eq!((a, built(&keyed)), (b, false));
        let _ = call(Some([0, 1, 2]), &mut plain, &mut keyed);
        // A key far past any given (a bad key): a misfit, not an index grown to its size.
        let (a, b) = call(Some([0, u32::MAX, 2]), &mut plain, &mut keyed);
        assert_eq!((a, built(&keyed)), (b, false));
        let _ = call(Some([0, 1, 2]), &mut plain, &mut keyed);
        // Keys swapped: unfair, but no panic, a state that decodes, and the index dropped.
        for _ in 0..4 {
            let _ = call(Some([1, 0, 2]), &mut plain, &mut keyed);
            let json = keyed.to_json().unwrap_or_default();
            let decoded: Result<FairState, _> = serde_json::from_slice(&json);
            assert!(decoded.is_ok(), "{}: {}", algo.name(), String::from_utf8_lossy(&json));
            let _ = call(Some([0, 1, 2]), &mut plain, &mut keyed);
        }
    }
}
