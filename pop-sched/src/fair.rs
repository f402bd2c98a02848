//! Weighted virtual-time accounting shared by `RoundRobin` and `Priority`, and run helpers.
//!
//! Each customer `c` has a start tag `S_c = used_c / w_c`: the cost units it has been charged divided
//! by its weight. A pick charges the customer `charge_c` units (1000 per pick, or its cost relative to
//! the mean with cost weighting); the next customer to serve is the one whose finish tag
//! `(used_c + charge_c) / w_c` is smallest. A customer that (re)joins the
//! backlog starts at the back of the current round — the largest tag of a backlogged customer — as
//! the original's rotation served newcomers after the customers already pending: idling banks no
//! credit, and a rejoining customer cannot overtake one that kept waiting. When nobody is backlogged
//! everyone restarts level.
//!
//! Tags are exact rationals (integers compared by cross-multiplication in `u128`), so ties behave
//! like the original's rotation and the fairness bounds hold exactly.
//!
//! Among equal finish tags, the customer that reached its tag first goes first (a sequence number
//! set at each pick and at each join, joiners numbered in id order): this is the original's cyclic
//! rotation, with a joining customer inserted just behind the rotation's cursor.
//!
//! Persisted state (JSON): `{"virtualTime": [num, den], "roundEnd": [num, den], "seq": n, "used":
//! {"<customer>": [used, weight, backlogged 0|1, seq]}}` — the smallest and largest tags of
//! backlogged customers, the sequence counter, and an entry per backlogged customer and per idle
//! customer still ahead of the round: at most one small entry per customer, independent of the
//! number of ready agendas. A missing or malformed state is a fresh start.

use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, ReadyView};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Cost units charged for one pick of an average agenda.
pub(crate) const UNIT: u64 = 1000;
const MAX_CHARGE: f64 = 1.0e9;

/// A non-negative rational `num / den` (`den ≥ 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ratio {
    pub(crate) num: u64,
    pub(crate) den: u64,
}

impl Ratio {
    pub(crate) const ZERO: Ratio = Ratio { num: 0, den: 1 };

    pub(crate) fn cmp_to(&self, other: &Ratio) -> Ordering {
        (u128::from(self.num) * u128::from(other.den)).cmp(&(u128::from(other.num) * u128::from(self.den)))
    }

    /// `ceil(self * w)`, saturating.
    pub(crate) fn scaled_ceil(&self, w: u64) -> u64 {
        let n = u128::from(self.num) * u128::from(w);
        let d = u128::from(self.den.max(1));
        n.div_ceil(d).min(u128::from(u64::MAX)) as u64
    }

    fn max(self, other: Ratio) -> Ratio {
        if other.cmp_to(&self) == Ordering::Greater { other } else { self }
    }
}

fn parse_pair(v: &Value) -> Option<Ratio> {
    let a = v.as_array()?;
    match a.as_slice() {
        [n, d] => {
            let (num, den) = (n.as_u64()?, d.as_u64()?);
            (den > 0).then_some(Ratio { num, den })
        }
        _ => None,
    }
}

/// A stored customer entry `[used, weight, backlogged, seq]`: its tag, whether it was backlogged at
/// the end of the previous call, and when its tag was last set.
fn parse_entry(v: &Value) -> Option<(Ratio, bool, u64)> {
    let a = v.as_array()?;
    let (num, den, flag, seq) = match a.as_slice() {
        [n, d, f, s] => (n.as_u64()?, d.as_u64()?, f.as_u64()?, s.as_u64()?),
        _ => return None,
    };
    (den > 0).then_some((Ratio { num, den }, flag == 1, seq))
}

fn entry_value(used: u64, weight: u64, backlogged: bool, seq: u64) -> Value {
    Value::from(vec![used, weight, u64::from(backlogged), seq])
}

/// Overwrites a stored entry in place (no allocation when it already is a 4-element array).
fn write_entry(slot: &mut Value, used: u64, weight: u64, backlogged: bool, seq: u64) {
    if let Some(a) = slot.as_array_mut().filter(|a| a.len() == 4) {
        a[0] = Value::from(used);
        a[1] = Value::from(weight);
        a[2] = Value::from(u64::from(backlogged));
        a[3] = Value::from(seq);
    } else {
        *slot = entry_value(used, weight, backlogged, seq);
    }
}

fn mark_idle(slot: &mut Value) {
    if let Some(a) = slot.as_array_mut().filter(|a| a.len() == 4) {
        a[2] = Value::from(0u64);
    }
}

/// Per-call accounts of the view's customers (indexed like `view.customers`).
pub(crate) struct Accounts {
    /// Smallest tag of a backlogged customer at the end of the previous call.
    v: Ratio,
    /// Largest tag of a backlogged customer at the end of the previous call: the back of the round.
    round_end: Ratio,
    /// Next value of the sequence that orders equal tags (first to reach a tag, first served).
    next_seq: u64,
    pub(crate) used: Vec<u64>,
    pub(crate) weight: Vec<u64>,
    pub(crate) charge: Vec<u64>,
    /// When each customer's tag was last set (ties between equal tags go to the earlier).
    pub(crate) seq: Vec<u64>,
}

impl Accounts {
    /// Reads the accounts of `view`'s customers from `state`. O(customers + stored entries).
    ///
    /// A customer backlogged at the end of the previous call keeps its tag; one that (re)joins since
    /// starts at the back of the current round (the largest tag of a backlogged customer), or at its
    /// own stored tag if that is later, as the original's rotation served newcomers after the customers
    /// already pending.
    pub(crate) fn load(view: &ReadyView<'_>, state: &AlgorithmState, cost_weighted: bool) -> Self {
        let v = state.get("virtualTime").and_then(parse_pair).unwrap_or(Ratio::ZERO);
        let round_end = state.get("roundEnd").and_then(parse_pair).unwrap_or(v).max(v);
        let weight: Vec<u64> = view.customers.iter().map(|c| u64::from(c.weight.max(1))).collect();
        let mut next_seq = state.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let mut known: Vec<Option<(Ratio, bool, u64)>> = vec![None; weight.len()];
        if let Some(map) = state.get("used").and_then(Value::as_object) {
            let mut apply = |i: usize, val: &Value| known[i] = parse_entry(val);
            if !merge_join(&view.customers, map, &mut apply) {
                for (i, c) in view.customers.iter().enumerate() {
                    if let Some(val) = map.get(c.customer_id) {
                        apply(i, val);
                    }
                }
            }
        }
        let mut seq = Vec::with_capacity(weight.len());
        let used = known
            .iter()
            .zip(&weight)
            .map(|(k, &w)| match *k {
                Some((r, true, s)) => {
                    seq.push(s);
                    r.scaled_ceil(w).max(v.scaled_ceil(w))
                }
                Some((r, false, _)) => {
                    // (Re)joining: at the back of the round, after everyone already there.
                    seq.push(next_seq);
                    next_seq += 1;
                    r.scaled_ceil(w).max(round_end.scaled_ceil(w))
                }
                None => {
                    seq.push(next_seq);
                    next_seq += 1;
                    round_end.scaled_ceil(w)
                }
            })
            .collect();
        let charge = charges(view, cost_weighted);
        Self { v, round_end, next_seq, used, weight, charge, seq }
    }

    /// The start tag of customer `i`.
    pub(crate) fn start(&self, i: usize) -> Ratio {
        Ratio { num: self.used[i], den: self.weight[i] }
    }

    /// The finish tag of customer `i` after `k` more picks.
    pub(crate) fn finish(&self, i: usize, k: u64) -> Ratio {
        Ratio { num: self.used[i].saturating_add(k.saturating_mul(self.charge[i])), den: self.weight[i] }
    }

    /// Charges customer `i` for one pick.
    pub(crate) fn charge_pick(&mut self, i: usize) {
        self.used[i] = self.used[i].saturating_add(self.charge[i]);
        self.seq[i] = self.next_seq;
        self.next_seq += 1;
    }

    /// Writes the accounts back: the virtual time, the back of the round, and an entry per
    /// backlogged customer and per idle customer still ahead of the round. O(customers + entries),
    /// allocating only for customers new to the state.
    pub(crate) fn store(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, backlogged: impl Fn(usize) -> bool) {
        let n = self.used.len();
        let now: Vec<bool> = (0..n).map(&backlogged).collect();
        let mut map = match state.get_mut("used").and_then(Value::as_object_mut) {
            Some(m) => std::mem::take(m),
            None => Map::new(),
        };
        let mut unmatched = Vec::new();
        let ok = merge_join_mut(&view.customers, &mut map, &mut unmatched, |i, slot| {
            write_entry(slot, self.used[i], self.weight[i], now[i], self.seq[i])
        });
        if !ok {
            let ids: std::collections::HashSet<&str> = view.customers.iter().map(|c| c.customer_id).collect();
            for (k, slot) in map.iter_mut() {
                if !ids.contains(k.as_str()) {
                    mark_idle(slot);
                }
            }
            unmatched.clear();
            for (i, c) in view.customers.iter().enumerate() {
                match map.get_mut(c.customer_id) {
                    Some(slot) => write_entry(slot, self.used[i], self.weight[i], now[i], self.seq[i]),
                    None => unmatched.push(i),
                }
            }
        }
        for i in unmatched {
            map.insert(
                view.customers[i].customer_id.to_owned(),
                entry_value(self.used[i], self.weight[i], now[i], self.seq[i]),
            );
        }
        let mut lo: Option<Ratio> = None;
        let mut hi: Option<Ratio> = None;
        for i in (0..n).filter(|&i| now[i]) {
            let s = self.start(i);
            lo = Some(lo.map_or(s, |l| if s.cmp_to(&l) == Ordering::Less { s } else { l }));
            hi = Some(hi.map_or(s, |h| h.max(s)));
        }
        let (v_end, round_end) = match (lo, hi) {
            (Some(lo), Some(hi)) => (self.v.max(lo), hi.max(self.v.max(lo))),
            _ => {
                // Nobody waits: everyone restarts level with the furthest-ahead customer.
                let mut v = self.v.max(self.round_end);
                for val in map.values() {
                    if let Some((r, _, _)) = parse_entry(val) {
                        v = v.max(r);
                    }
                }
                (v, v)
            }
        };
        map.retain(|_, val| {
            parse_entry(val).is_some_and(|(r, backlogged, _)| backlogged || r.cmp_to(&round_end) == Ordering::Greater)
        });
        let mut out = Map::new();
        out.insert("virtualTime".into(), Value::from(vec![v_end.num, v_end.den]));
        out.insert("roundEnd".into(), Value::from(vec![round_end.num, round_end.den]));
        out.insert("seq".into(), Value::from(self.next_seq));
        out.insert("used".into(), Value::Object(map));
        *state = Value::Object(out);
    }
}

/// Walks the view's customers (sorted by id) and the stored map (sorted when serde_json keeps keys
/// ordered) together. Returns false, having possibly applied some entries, when either is unsorted.
fn merge_join(
    customers: &[CustomerReady<'_>],
    map: &Map<String, Value>,
    apply: &mut impl FnMut(usize, &Value),
) -> bool {
    let mut it = map.iter().peekable();
    let mut last_key: Option<&str> = None;
    let mut last_customer: Option<&str> = None;
    for (i, c) in customers.iter().enumerate() {
        if last_customer.is_some_and(|l| l >= c.customer_id) {
            return false;
        }
        last_customer = Some(c.customer_id);
        while let Some((k, val)) = it.peek() {
            if last_key.is_some_and(|l| l >= k.as_str()) {
                return false;
            }
            match k.as_str().cmp(c.customer_id) {
                Ordering::Less => {
                    last_key = Some(k.as_str());
                    it.next();
                }
                Ordering::Equal => {
                    apply(i, val);
                    last_key = Some(k.as_str());
                    it.next();
                    break;
                }
                Ordering::Greater => break,
            }
        }
    }
    true
}

/// Like [`merge_join`], mutably: `write` for stored entries of view customers, idle marks for the
/// others, view customers without an entry pushed to `unmatched`. Returns false when unsorted.
fn merge_join_mut(
    customers: &[CustomerReady<'_>],
    map: &mut Map<String, Value>,
    unmatched: &mut Vec<usize>,
    mut write: impl FnMut(usize, &mut Value),
) -> bool {
    let mut it = map.iter_mut().peekable();
    let mut last_key: Option<&String> = None;
    let mut last_customer: Option<&str> = None;
    for (i, c) in customers.iter().enumerate() {
        if last_customer.is_some_and(|l| l >= c.customer_id) {
            return false;
        }
        last_customer = Some(c.customer_id);
        let mut matched = false;
        while let Some((k, _)) = it.peek() {
            match k.as_str().cmp(c.customer_id) {
                Ordering::Less => {
                    if let Some((k, slot)) = it.next() {
                        if last_key.is_some_and(|l| l >= k) {
                            return false;
                        }
                        last_key = Some(k);
                        mark_idle(slot);
                    }
                }
                Ordering::Equal => {
                    if let Some((k, slot)) = it.next() {
                        if last_key.is_some_and(|l| l >= k) {
                            return false;
                        }
                        last_key = Some(k);
                        write(i, slot);
                        matched = true;
                    }
                    break;
                }
                Ordering::Greater => break,
            }
        }
        if !matched {
            unmatched.push(i);
        }
    }
    for (_, slot) in it {
        mark_idle(slot);
    }
    true
}

fn charges(view: &ReadyView<'_>, cost_weighted: bool) -> Vec<u64> {
    let n = view.customers.len();
    let Some(costs) = view.costs.filter(|_| cost_weighted) else {
        return vec![UNIT; n];
    };
    let known: Vec<Option<f64>> = view
        .customers
        .iter()
        .map(|c| costs.get(c.customer_id).copied().filter(|x| x.is_finite() && *x > 0.0))
        .collect();
    let (sum, cnt) = known.iter().flatten().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if cnt == 0 {
        return vec![UNIT; n];
    }
    let mean = sum / cnt as f64;
    known.iter().map(|k| (k.unwrap_or(mean) / mean * UNIT as f64).round().clamp(1.0, MAX_CHARGE) as u64).collect()
}

/// The runs of equal priority of one customer's entries (sorted priority desc, added asc), as
/// half-open index ranges, highest priority first.
pub(crate) fn runs(entries: &[ReadyAgenda], out: &mut Vec<(usize, usize)>) {
    let len = entries.len();
    if len == 0 {
        return;
    }
    if entries[0].priority == entries[len - 1].priority {
        out.push((0, len));
        return;
    }
    let mut start = 0;
    while start < len {
        let p = entries[start].priority;
        // Galloping search from the run's start: probes stay near memory already touched.
        // Invariant: entries[start..=start + good] are in the run.
        let (mut good, mut bound) = (0usize, 1usize);
        while start + bound < len && entries[start + bound].priority >= p {
            good = bound;
            bound *= 2;
        }
        let (lo, hi) = (start + good + 1, (start + bound).min(len));
        let end = lo + entries[lo..hi].partition_point(|e| e.priority >= p);
        // Guard against an unsorted list: always make progress.
        let end = end.max(start + 1);
        out.push((start, end));
        start = end;
    }
}

/// Effective priority: priority plus one level per `step_ms` waited (none without aging).
pub(crate) fn effective(entry: &ReadyAgenda, now: Millis, step_ms: Option<u64>) -> i64 {
    let base = i64::from(entry.priority);
    match step_ms {
        Some(step) if step > 0 => {
            let wait = now.saturating_sub(entry.added).max(0) as u64;
            base.saturating_add((wait / step).min(i64::MAX as u64) as i64)
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(priorities: &[i32]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (i, p) in priorities.iter().enumerate() {
            match out.last_mut() {
                Some((s, e)) if priorities[*s] == *p => *e = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
        out
    }

    #[test]
    fn runs_match_a_linear_scan() {
        let cases: Vec<Vec<i32>> = vec![
            vec![],
            vec![0],
            vec![3, 3, 3],
            vec![3, 2, 1, 0],
            vec![5, 5, 5, 5, 5, 5, 5, 5, 5, 4],
            vec![9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            (0..100).map(|i| 3 - i / 25).collect(),
            (0..37).map(|i| 10 - i / 3).collect(),
        ];
        for priorities in cases {
            let entries: Vec<ReadyAgenda> =
                priorities.iter().map(|&priority| ReadyAgenda { priority, ..ReadyAgenda::default() }).collect();
            let mut got = Vec::new();
            runs(&entries, &mut got);
            assert_eq!(got, naive(&priorities), "{priorities:?}");
        }
    }

    #[test]
    fn ratios_compare_exactly_and_round_up() {
        let third = Ratio { num: 1, den: 3 };
        let two_sixths = Ratio { num: 2, den: 6 };
        assert_eq!(third.cmp_to(&two_sixths), Ordering::Equal);
        assert_eq!(third.scaled_ceil(3), 1);
        assert_eq!(third.scaled_ceil(4), 2);
        assert_eq!(Ratio { num: u64::MAX, den: 1 }.scaled_ceil(u64::MAX), u64::MAX);
    }
}
