//! A straightforward reference of [`Priority`](crate::Priority) and its fairness accounts, written
//! from the documented rules with no shortcut (no fused state walk, no kept top `count`, no heap, no
//! reciprocal for aging, no reuse of the view's runs), and a property test that the algorithm picks
//! and stores exactly what it does, call after call, over random ready sets and views (sorted or not,
//! runs given or searched, entries of mixed priorities, weights, idle and rejoining customers).

use super::FairState;
use super::Ratio;
use super::state::Entry;
use crate::{Priority, PriorityConfig};
use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{Algorithm, CustomerKeys, CustomerReady, ReadyRuns, ReadyView};
use proptest::prelude::*;
use std::cmp::Ordering;
use std::collections::BTreeMap;

const UNIT: u64 = 1000;

fn eff(e: &ReadyAgenda, now: i64, step: Option<u64>) -> i64 {
    let base = i64::from(e.priority);
    match step {
        Some(s) if s > 0 => base.saturating_add(((now.saturating_sub(e.added).max(0) as u64) / s) as i64),
        _ => base,
    }
}

fn ceil_scaled(r: Ratio, w: u64) -> u64 {
    (u128::from(r.num) * u128::from(w)).div_ceil(u128::from(r.den)) as u64
}

fn greater(a: Ratio, b: Ratio) -> bool {
    a.cmp_to(&b) == Ordering::Greater
}

/// The best remaining head of a customer: its entries split into maximal runs of equal priority in
/// list order, each run's first entry not yet taken; the highest effective priority, the earliest run
/// on ties. (Entry index, effective priority.)
fn best_head(entries: &[ReadyAgenda], taken: &[bool], now: i64, step: Option<u64>) -> Option<(usize, i64)> {
    let mut best: Option<(usize, i64)> = None;
    let mut j = 0;
    while j < entries.len() {
        let mut end = j + 1; // lists are sorted (priority desc, added asc)
        while end < entries.len() && entries[end].priority == entries[j].priority {
            end += 1;
        }
        if let Some(k) = (j..end).find(|&k| !taken[k]) {
            let e = eff(&entries[k], now, step);
            if best.is_none_or(|(_, b)| e > b) {
                best = Some((k, e));
            }
        }
        j = end;
    }
    best
}

/// One pick call of the reference: picks, and `state` updated.
fn reference_pick(view: &ReadyView<'_>, state: &mut FairState, count: usize, step: Option<u64>) -> Vec<ReadyAgenda> {
    if count == 0 || view.is_empty() {
        return Vec::new();
    }
    let v = state.virtual_time;
    let round_end = state.round_end.max(v);
    let mut next_seq = state.seq;
    let n = view.customers.len();
    let (mut used, mut weight, mut seq) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    for (i, c) in view.customers.iter().enumerate() {
        let w = u64::from(c.weight.max(1));
        weight[i] = w;
        match state.used.get(c.customer_id) {
            Some(e) if e.backlogged => {
                used[i] = ceil_scaled(e.tag(), w).max(ceil_scaled(v, w));
                seq[i] = e.seq;
            }
            Some(e) => {
                used[i] = ceil_scaled(e.tag(), w).max(ceil_scaled(round_end, w));
                seq[i] = next_seq;
                next_seq += 1;
            }
            None => {
                used[i] = ceil_scaled(round_end, w);
                seq[i] = next_seq;
                next_seq += 1;
            }
        }
    }
    let mut taken: Vec<Vec<bool>> = view.customers.iter().map(|c| vec![false; c.entries.len()]).collect();
    let mut picks = Vec::new();
    while picks.len() < count {
        // Highest effective priority, then smallest finish tag, then smallest seq, then view order.
        let mut best: Option<(usize, usize, i64)> = None;
        for (i, c) in view.customers.iter().enumerate() {
            let Some((k, e)) = best_head(c.entries, &taken[i], view.now, step) else { continue };
            let better = match best {
                None => true,
                Some((b, _, be)) => {
                    let (ta, tb) =
                        (Ratio { num: used[i] + UNIT, den: weight[i] }, Ratio { num: used[b] + UNIT, den: weight[b] });
                    e > be
                        || (e == be
                            && (ta.cmp_to(&tb) == Ordering::Less
                                || (ta.cmp_to(&tb) == Ordering::Equal && seq[i] < seq[b])))
                }
            };
            if better {
                best = Some((i, k, e));
            }
        }
        let Some((i, k, _)) = best else { break };
        taken[i][k] = true;
        picks.push(view.customers[i].entries[k].clone());
        used[i] += UNIT;
        seq[i] = next_seq;
        next_seq += 1;
    }
    // Write back: every view customer's entry, stored customers not in the view marked idle, the
    // round from the backlogged customers' tags, and entries neither backlogged nor ahead dropped.
    let now: Vec<bool> = taken.iter().map(|t| t.iter().any(|x| !x)).collect();
    for (k, e) in state.used.iter_mut() {
        if !view.customers.iter().any(|c| c.customer_id == k) {
            e.backlogged = false;
        }
    }
    for (i, c) in view.customers.iter().enumerate() {
        state.used.insert(
            c.customer_id.to_owned(),
            Entry { used: used[i], weight: weight[i], backlogged: now[i], seq: seq[i] },
        );
    }
    let mut range: Option<(Ratio, Ratio)> = None;
    for i in (0..n).filter(|&i| now[i]) {
        let s = Ratio { num: used[i], den: weight[i] };
        range = Some(match range {
            None => (s, s),
            Some((lo, hi)) => (if greater(lo, s) { s } else { lo }, if greater(s, hi) { s } else { hi }),
        });
    }
    let (v_end, end) = match range {
        Some((lo, hi)) => {
            let v_end = if greater(lo, v) { lo } else { v };
            (v_end, if greater(v_end, hi) { v_end } else { hi })
        }
        None => {
            let mut x = if greater(round_end, v) { round_end } else { v };
            for e in state.used.values() {
                if greater(e.tag(), x) {
                    x = e.tag();
                }
            }
            (x, x)
        }
    };
    state.used.retain(|_, e| e.backlogged || greater(e.tag(), end));
    state.virtual_time = v_end;
    state.round_end = end;
    state.seq = next_seq;
    picks
}

/// Customers (weight, entries as (added, priority)) and the calls: (count, now advance, arrivals as
/// (customer, added offset, priority), view order shuffled, runs given, keys: 0 none, 1 from the
/// case's interner, 2 from a fresh one).
type Case = (Vec<(u32, Vec<(i64, i32)>)>, Vec<(usize, i64, Vec<(usize, i64, i32)>, bool, bool, u8)>);

fn arb_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((1u32..4, prop::collection::vec((0i64..50, -1i32..4), 0..10)), 1..9),
        prop::collection::vec(
            (
                0usize..12,
                0i64..20,
                prop::collection::vec((0usize..10, 0i64..30, 0i32..4), 0..4),
                any::<bool>(),
                any::<bool>(),
                0u8..3,
            ),
            1..10,
        ),
    )
}

fn agenda(c: usize, n: usize, added: i64, priority: i32) -> ReadyAgenda {
    ReadyAgenda {
        agenda_id: format!("a{n:04}"),
        customer_id: format!("c{c}"),
        added,
        priority,
        ..ReadyAgenda::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `Priority` picks, and stores, exactly what the reference does, call after call.
    #[test]
    fn priority_matches_the_reference(case in arb_case(), step in prop::option::of(1u64..12)) {
        let (customers, calls) = case;
        let insight = Insight::default();
        let algo = Priority::with_config(PriorityConfig { aging_step_ms: step, cost_weighted: false });
        // customer → (weight, entries sorted (priority desc, added asc, id))
        let mut set: BTreeMap<usize, (u32, Vec<ReadyAgenda>)> = BTreeMap::new();
        let mut n = 0;
        let insert = |set: &mut BTreeMap<usize, (u32, Vec<ReadyAgenda>)>, c: usize, w: u32, e: ReadyAgenda| {
            let slot = set.entry(c).or_insert((w, Vec::new()));
            let at = slot.1.partition_point(|x| x.order_key() < e.order_key());
            slot.1.insert(at, e);
        };
        for (c, (w, entries)) in customers.iter().enumerate() {
            set.entry(c).or_insert((*w, Vec::new()));
            for &(added, p) in entries {
                n += 1;
                insert(&mut set, c, *w, agenda(c, n, added, p));
            }
        }
        let (mut fast, mut reference) = (FairState::default(), FairState::default());
        let mut now = 50;
        let mut interner = CustomerKeys::new();
        for (call, (count, advance, arrivals, shuffled, given, keyed)) in calls.into_iter().enumerate() {
            now += advance;
            for (c, offset, p) in arrivals {
                n += 1;
                insert(&mut set, c, 1 + (c % 3) as u32, agenda(c, n, now - offset, p));
            }
            // Customers listed in id order as strings ("c10" < "c2"): the order the store gives.
            let mut listed: Vec<(String, u32, &Vec<ReadyAgenda>)> =
                set.iter().map(|(c, (w, l))| (format!("c{c}"), *w, l)).collect();
            listed.sort_by(|a, b| a.0.cmp(&b.0));
            if shuffled && listed.len() > 1 {
                let at = call % listed.len();
                listed.swap(0, at);
                listed.reverse();
            }
            let runs = ReadyRuns::new(listed.iter().map(|(_, _, l)| l.as_slice()));
            let mut fresh = CustomerKeys::new();
            let keys = match keyed {
                1 => Some(&mut interner),
                2 => Some(&mut fresh),
                _ => None,
            };
            let space = keys.as_ref().map(|k| k.space());
            let key_of: Vec<u32> = match keys {
                Some(k) => listed.iter().map(|(c, _, _)| k.key(c)).collect(),
                None => vec![0; listed.len()],
            };
            let view = ReadyView {
                insight: &insight,
                customers: listed
                    .iter()
                    .enumerate()
                    .map(|(i, (c, w, l))| CustomerReady {
                        customer_id: c,
                        weight: *w,
                        entries: l,
                        runs: if given { runs.get(i) } else { &[] },
                        key: key_of[i],
                    })
                    .collect(),
                costs: None,
                now,
                keys: space,
            };
            let a = algo.pick(&view, &mut fast, count);
            let b = reference_pick(&view, &mut reference, count, step);
            prop_assert_eq!(&a, &b, "call {}: picks", call);
            prop_assert_eq!(&fast, &reference, "call {}: state", call);
            for p in &a {
                let c: usize = p.customer_id[1..].parse().unwrap_or(usize::MAX);
                if let Some((_, l)) = set.get_mut(&c) {
                    l.retain(|e| e.agenda_id != p.agenda_id);
                }
            }
            // Drained customers leave the view, except every third call (listed without entries).
            if call % 3 != 2 {
                set.retain(|_, (_, l)| !l.is_empty());
            }
        }
    }
}
