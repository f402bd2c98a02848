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
//!
//! Cost per call: the view's customers and the stored map are both sorted by customer id, so they
//! are walked together, one id comparison per customer; only the entries that change (picked
//! customers, joiners, leavers, idle entries falling behind the round) are written back, each an
//! O(log customers) map operation. A view or map that is not sorted takes the general path, which
//! looks every customer up and rewrites every entry; both give the same state (a unit test runs them
//! side by side). The format is the one earlier versions wrote, so stored states load unchanged.

use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, ReadyView};
use serde_json::{Map, Value};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

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
        if self.den == w {
            return self.num;
        }
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

/// What a pick costs each customer: [`UNIT`] for everyone, or per customer with cost weighting.
enum Charges {
    Uniform,
    PerCustomer(Vec<u64>),
}

/// How the accounts were read from the state, and so how they are written back.
enum Link {
    /// The view and the stored map were walked together, both sorted: a customer in neither
    /// `dirty` nor the picked list keeps its stored entry as it is, so the write-back touches only
    /// `dirty` (joiners, weight or tag changes, customers without entries), the picked customers and
    /// `others` (stored customers not in the view: key, tag once marked idle, whether marking it
    /// idle changes the stored entry).
    Fast { dirty: Vec<u32>, others: Vec<(String, Option<Ratio>, bool)> },
    /// The view or the map is not sorted by customer id: every entry is read and rewritten.
    General,
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
    charge: Charges,
    /// When each customer's tag was last set (ties between equal tags go to the earlier).
    pub(crate) seq: Vec<u64>,
    link: Link,
}

#[cfg(test)]
thread_local! {
    /// Test hook: read and write the state through the general path only.
    pub(crate) static FORCE_GENERAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn force_general() -> bool {
    #[cfg(test)]
    {
        FORCE_GENERAL.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// Whether serde_json's `Map` iterates in key order (a `BTreeMap`; not with its `preserve_order`
/// feature, which a dependency could switch on). Checked once.
fn map_is_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().is_some_and(|k| k == "a")
    })
}

/// Byte equality of two ids, inlined (ids are short: a call to `memcmp` per customer costs more
/// than the comparison).
#[inline]
fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (mut p, mut q) = ([0u8; 8], [0u8; 8]);
        p.copy_from_slice(x);
        q.copy_from_slice(y);
        if u64::from_ne_bytes(p) != u64::from_ne_bytes(q) {
            return false;
        }
    }
    ca.remainder().iter().zip(cb.remainder()).all(|(x, y)| x == y)
}

/// `max(r.scaled_ceil(w), floor.scaled_ceil(w))`, without dividing when `r` is at least `floor`.
fn ceil_max(r: Ratio, floor: Ratio, w: u64) -> u64 {
    if floor.cmp_to(&r) == Ordering::Greater { r.scaled_ceil(w).max(floor.scaled_ceil(w)) } else { r.scaled_ceil(w) }
}

/// A stored entry of a customer that is not in the view, as it reads once marked idle: its tag
/// (`None` when malformed, then it is dropped) and whether marking it idle changes it.
fn parse_other(v: &Value) -> (Option<Ratio>, bool) {
    let Some(a) = v.as_array().filter(|a| a.len() == 4) else { return (None, false) };
    let needs_mark = a[2].as_u64() != Some(0);
    let r = match (a[0].as_u64(), a[1].as_u64(), a[3].as_u64()) {
        (Some(num), Some(den), Some(_)) if den > 0 => Some(Ratio { num, den }),
        _ => None,
    };
    (r, needs_mark)
}

impl Accounts {
    /// Reads the accounts of `view`'s customers from `state`: O(customers + stored entries), one
    /// comparison of customer ids per customer when the view and the state list the same customers.
    ///
    /// A customer backlogged at the end of the previous call keeps its tag; one that (re)joins since
    /// starts at the back of the current round (the largest tag of a backlogged customer), or at its
    /// own stored tag if that is later, as the original's rotation served newcomers after the customers
    /// already pending.
    pub(crate) fn load(view: &ReadyView<'_>, state: &AlgorithmState, cost_weighted: bool) -> Self {
        let v = state.get("virtualTime").and_then(parse_pair).unwrap_or(Ratio::ZERO);
        let round_end = state.get("roundEnd").and_then(parse_pair).unwrap_or(v).max(v);
        let next_seq = state.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let charge = charges(view, cost_weighted);
        if map_is_sorted() && !force_general() {
            if let Some(acc) = Self::load_sorted(view, state, v, round_end, next_seq) {
                return Self { charge, ..acc };
            }
        }
        Self { charge, ..Self::load_general(view, state, v, round_end, next_seq) }
    }

    /// The fast path of [`Accounts::load`]: walks the view and the (sorted) stored map together.
    /// `None` when the view turns out not to be sorted by customer id.
    fn load_sorted(
        view: &ReadyView<'_>,
        state: &AlgorithmState,
        v: Ratio,
        round_end: Ratio,
        mut next_seq: u64,
    ) -> Option<Self> {
        let empty = Map::new();
        let map = state.get("used").and_then(Value::as_object).unwrap_or(&empty);
        let n = view.customers.len();
        let (mut used, mut weight, mut seq) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut dirty, mut others) = (Vec::new(), Vec::new());
        let mut it = map.iter();
        let mut pending = it.next();
        let mut prev: Option<&str> = None;
        let mut prev_matched = true;
        for (i, c) in view.customers.iter().enumerate() {
            let id = c.customer_id;
            let w = u64::from(c.weight.max(1));
            let mut stored = None;
            let mut matched = false;
            while let Some((k, val)) = pending {
                if same_id(k, id) {
                    stored = parse_entry(val);
                    matched = true;
                    pending = it.next();
                    break;
                }
                if k.as_str() > id {
                    break;
                }
                let (r, mark) = parse_other(val);
                others.push((k.clone(), r, mark));
                pending = it.next();
            }
            // Two matched neighbours are in order because the map is; any other pair is checked.
            if !(matched && prev_matched) && prev.is_some_and(|p| p >= id) {
                return None;
            }
            prev = Some(id);
            prev_matched = matched;
            let (u, s, clean) = match stored {
                Some((r, true, s)) => {
                    let u = ceil_max(r, v, w);
                    (u, s, r.num == u && r.den == w)
                }
                Some((r, false, _)) => {
                    // (Re)joining: at the back of the round, after everyone already there.
                    next_seq += 1;
                    (ceil_max(r, round_end, w), next_seq - 1, false)
                }
                None => {
                    next_seq += 1;
                    (round_end.scaled_ceil(w), next_seq - 1, false)
                }
            };
            if !clean || c.entries.is_empty() {
                dirty.push(i as u32);
            }
            used.push(u);
            weight.push(w);
            seq.push(s);
        }
        while let Some((k, val)) = pending {
            let (r, mark) = parse_other(val);
            others.push((k.clone(), r, mark));
            pending = it.next();
        }
        Some(Self {
            v,
            round_end,
            next_seq,
            used,
            weight,
            charge: Charges::Uniform,
            seq,
            link: Link::Fast { dirty, others },
        })
    }

    /// The general path of [`Accounts::load`]: any order of the view and of the map.
    fn load_general(
        view: &ReadyView<'_>,
        state: &AlgorithmState,
        v: Ratio,
        round_end: Ratio,
        mut next_seq: u64,
    ) -> Self {
        let weight: Vec<u64> = view.customers.iter().map(|c| u64::from(c.weight.max(1))).collect();
        let mut known: Vec<Option<(Ratio, bool, u64)>> = vec![None; weight.len()];
        if let Some(map) = state.get("used").and_then(Value::as_object) {
            for (i, c) in view.customers.iter().enumerate() {
                if let Some(val) = map.get(c.customer_id) {
                    known[i] = parse_entry(val);
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
        Self { v, round_end, next_seq, used, weight, charge: Charges::Uniform, seq, link: Link::General }
    }

    /// What customer `i` pays per pick.
    pub(crate) fn charge(&self, i: usize) -> u64 {
        match &self.charge {
            Charges::Uniform => UNIT,
            Charges::PerCustomer(c) => c[i],
        }
    }

    /// The start tag of customer `i`.
    pub(crate) fn start(&self, i: usize) -> Ratio {
        Ratio { num: self.used[i], den: self.weight[i] }
    }

    /// The finish tag of customer `i` after `k` more picks.
    pub(crate) fn finish(&self, i: usize, k: u64) -> Ratio {
        Ratio { num: self.used[i].saturating_add(k.saturating_mul(self.charge(i))), den: self.weight[i] }
    }

    /// Charges customer `i` for one pick.
    pub(crate) fn charge_pick(&mut self, i: usize) {
        self.used[i] = self.used[i].saturating_add(self.charge(i));
        self.seq[i] = self.next_seq;
        self.next_seq += 1;
    }

    /// Writes the accounts back: the virtual time, the back of the round, and an entry per
    /// backlogged customer and per idle customer still ahead of the round.
    ///
    /// `picked` lists each customer picked in this call (by index, each once) and whether it still
    /// has entries left; every other customer is backlogged exactly when it has entries in the view.
    /// On the fast path this is O(customers) comparisons of tags plus O(log customers) per entry
    /// that changes (the picked customers, joiners and leavers).
    pub(crate) fn store(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, picked: &[(usize, bool)]) {
        let mut picked = picked.to_vec();
        picked.sort_unstable_by_key(|&(i, _)| i);
        match &self.link {
            Link::Fast { dirty, others } => self.store_sorted(view, state, &picked, dirty, others),
            Link::General => {
                let mut now: Vec<bool> = view.customers.iter().map(|c| !c.entries.is_empty()).collect();
                for &(i, b) in &picked {
                    now[i] = b;
                }
                self.store_general(view, state, &now);
            }
        }
    }

    /// The smallest and largest start tags of backlogged customers, the first in view order on ties.
    fn tag_range(&self, view: &ReadyView<'_>, mut now: impl FnMut(usize) -> bool) -> Option<(Ratio, Ratio)> {
        let mut range: Option<(Ratio, Ratio)> = None;
        for i in (0..view.customers.len()).filter(|&i| now(i)) {
            let s = self.start(i);
            range = Some(match range {
                None => (s, s),
                Some((lo, hi)) => (if s.cmp_to(&lo) == Ordering::Less { s } else { lo }, hi.max(s)),
            });
        }
        range
    }

    fn header(&self, v_end: Ratio, round_end: Ratio, map: Map<String, Value>, state: &mut AlgorithmState) {
        let mut out = Map::new();
        out.insert("virtualTime".into(), Value::from(vec![v_end.num, v_end.den]));
        out.insert("roundEnd".into(), Value::from(vec![round_end.num, round_end.den]));
        out.insert("seq".into(), Value::from(self.next_seq));
        out.insert("used".into(), Value::Object(map));
        *state = Value::Object(out);
    }

    /// The fast path of [`Accounts::store`]: same result as the general path, touching only the
    /// entries that change.
    fn store_sorted(
        &self,
        view: &ReadyView<'_>,
        state: &mut AlgorithmState,
        picked: &[(usize, bool)],
        dirty: &[u32],
        others: &[(String, Option<Ratio>, bool)],
    ) {
        // Backlogged now: has entries, unless picked and drained (`drained` sorted by index).
        let drained: Vec<usize> = picked.iter().filter(|&&(_, b)| !b).map(|&(i, _)| i).collect();
        let mut d = 0;
        let range = self.tag_range(view, |i| {
            while d < drained.len() && drained[d] < i {
                d += 1;
            }
            !view.customers[i].entries.is_empty() && drained.get(d) != Some(&i)
        });
        let (v_end, round_end) = match range {
            Some((lo, hi)) => (self.v.max(lo), hi.max(self.v.max(lo))),
            None => {
                // Nobody waits: everyone restarts level with the furthest-ahead customer (stored
                // entries taken in key order, as the general path does).
                let mut v = self.v.max(self.round_end);
                let mut j = 0;
                for (i, c) in view.customers.iter().enumerate() {
                    while j < others.len() && others[j].0.as_str() < c.customer_id {
                        if let Some(r) = others[j].1 {
                            v = v.max(r);
                        }
                        j += 1;
                    }
                    v = v.max(self.start(i));
                }
                for (_, r, _) in &others[j..] {
                    if let Some(r) = r {
                        v = v.max(*r);
                    }
                }
                (v, v)
            }
        };
        let mut map = match state.get_mut("used").and_then(Value::as_object_mut) {
            Some(m) => std::mem::take(m),
            None => Map::new(),
        };
        let mut write = |i: usize, now: bool| {
            let id = view.customers[i].customer_id;
            if now || self.start(i).cmp_to(&round_end) == Ordering::Greater {
                match map.get_mut(id) {
                    Some(slot) => write_entry(slot, self.used[i], self.weight[i], now, self.seq[i]),
                    None => {
                        map.insert(id.to_owned(), entry_value(self.used[i], self.weight[i], now, self.seq[i]));
                    }
                }
            } else {
                map.remove(id);
            }
        };
        for &(i, now) in picked {
            write(i, now);
        }
        for &i in dirty {
            let i = i as usize;
            if picked.binary_search_by_key(&i, |&(j, _)| j).is_err() {
                write(i, !view.customers[i].entries.is_empty());
            }
        }
        for (k, r, mark) in others {
            match r {
                Some(r) if r.cmp_to(&round_end) == Ordering::Greater => {
                    if *mark {
                        if let Some(slot) = map.get_mut(k.as_str()) {
                            mark_idle(slot);
                        }
                    }
                }
                _ => {
                    map.remove(k.as_str());
                }
            }
        }
        self.header(v_end, round_end, map, state);
    }

    /// The general path of [`Accounts::store`]: rewrites every entry. O(customers + entries).
    fn store_general(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, now: &[bool]) {
        let mut map = match state.get_mut("used").and_then(Value::as_object_mut) {
            Some(m) => std::mem::take(m),
            None => Map::new(),
        };
        let ids: std::collections::HashSet<&str> = view.customers.iter().map(|c| c.customer_id).collect();
        for (k, slot) in map.iter_mut() {
            if !ids.contains(k.as_str()) {
                mark_idle(slot);
            }
        }
        for (i, c) in view.customers.iter().enumerate() {
            match map.get_mut(c.customer_id) {
                Some(slot) => write_entry(slot, self.used[i], self.weight[i], now[i], self.seq[i]),
                None => {
                    map.insert(
                        c.customer_id.to_owned(),
                        entry_value(self.used[i], self.weight[i], now[i], self.seq[i]),
                    );
                }
            }
        }
        let (v_end, round_end) = match self.tag_range(view, |i| now[i]) {
            Some((lo, hi)) => (self.v.max(lo), hi.max(self.v.max(lo))),
            None => {
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
        self.header(v_end, round_end, map, state);
    }
}

fn charges(view: &ReadyView<'_>, cost_weighted: bool) -> Charges {
    let Some(costs) = view.costs.filter(|_| cost_weighted) else {
        return Charges::Uniform;
    };
    let known: Vec<Option<f64>> = view
        .customers
        .iter()
        .map(|c| costs.get(c.customer_id).copied().filter(|x| x.is_finite() && *x > 0.0))
        .collect();
    let (sum, cnt) = known.iter().flatten().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if cnt == 0 {
        return Charges::Uniform;
    }
    let mean = sum / cnt as f64;
    Charges::PerCustomer(
        known.iter().map(|k| (k.unwrap_or(mean) / mean * UNIT as f64).round().clamp(1.0, MAX_CHARGE) as u64).collect(),
    )
}

/// Keeps the `k` greatest of the items offered: O(1) per item that does not make the cut (one
/// comparison with the least kept), O(log k) per item that does. Memory O(min(k, items)).
///
/// A pick loop whose keys only get worse as a candidate is served (every algorithm here) makes its
/// first `k` picks among the `k` best initial keys, so it can start from these instead of a heap
/// over every customer.
pub(crate) struct TopK<T: Ord> {
    k: usize,
    kept: Vec<T>,
    heap: Option<BinaryHeap<Reverse<T>>>,
}

impl<T: Ord> TopK<T> {
    pub(crate) fn new(k: usize) -> Self {
        Self { k, kept: Vec::new(), heap: None }
    }

    pub(crate) fn offer(&mut self, x: T) {
        if let Some(heap) = &mut self.heap {
            if let Some(mut least) = heap.peek_mut() {
                if x > least.0 {
                    *least = Reverse(x);
                }
            }
        } else if self.kept.len() < self.k {
            self.kept.push(x);
        } else {
            let mut heap: BinaryHeap<Reverse<T>> = std::mem::take(&mut self.kept).into_iter().map(Reverse).collect();
            if let Some(mut least) = heap.peek_mut() {
                if x > least.0 {
                    *least = Reverse(x);
                }
            }
            self.heap = Some(heap);
        }
    }

    /// The kept items, in no particular order.
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self.heap {
            Some(heap) => heap.into_iter().map(|Reverse(x)| x).collect(),
            None => self.kept,
        }
    }
}

/// The runs of equal priority of one customer's entries (sorted priority desc, added asc), as
/// half-open index ranges, highest priority first.
pub(crate) fn runs(entries: &[ReadyAgenda], out: &mut Vec<(usize, usize)>) {
    let Some(last) = entries.last().map(|e| e.priority) else { return };
    let len = entries.len();
    let mut start = 0;
    loop {
        let p = entries[start].priority;
        if p <= last {
            // The last run (or, in an unsorted list, the rest as one run).
            out.push((start, len));
            return;
        }
        // Binary search between the run's start and the last entry, which is of lower priority
        // (the same probes as `for_each_runs`).
        let (mut lo, mut hi) = (start + 1, len - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if entries[mid].priority >= p {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        out.push((start, lo));
        start = lo;
    }
}

/// How many lists [`for_each_runs`] searches in lockstep.
const LANES: usize = 16;

/// A run search in progress (see [`for_each_runs`]).
#[derive(Clone, Copy, Default)]
struct Search {
    len: usize,
    last: i32,
    /// Start and priority of the run whose end is searched in `lo..hi`.
    start: usize,
    p: i32,
    lo: usize,
    hi: usize,
    done: bool,
}

/// Calls `f(i, runs)` with the runs of every list (as [`runs`] finds them), in list order.
///
/// The lists are searched sixteen at a time in lockstep, one probe of each per round, so that the
/// memory reads of different customers overlap instead of waiting for each other: the probes of a
/// binary search in a large ready set mostly miss the cache.
pub(crate) fn for_each_runs<'a>(
    lists: impl Iterator<Item = &'a [ReadyAgenda]>,
    mut f: impl FnMut(usize, &'a [ReadyAgenda], &[(usize, usize)]),
) {
    let mut lists = lists.enumerate();
    let empty: &[ReadyAgenda] = &[];
    let mut lanes = [(0usize, empty); LANES];
    let mut out: [Vec<(usize, usize)>; LANES] = Default::default();
    let mut st = [Search::default(); LANES];
    loop {
        let mut used = 0;
        for (slot, list) in lanes.iter_mut().zip(lists.by_ref()) {
            *slot = list;
            used += 1;
        }
        if used == 0 {
            return;
        }
        let batch = &lanes[..used];
        for (g, &(_, entries)) in batch.iter().enumerate() {
            out[g].clear();
            let s = &mut st[g];
            let Some(last) = entries.last().map(|e| e.priority) else {
                s.done = true;
                continue;
            };
            let p = entries[0].priority;
            *s = Search { len: entries.len(), last, start: 0, p, lo: 1, hi: entries.len() - 1, done: false };
            if p <= last {
                out[g].push((0, s.len));
                s.done = true;
            }
        }
        loop {
            let mut active = false;
            for (g, &(_, entries)) in batch.iter().enumerate() {
                let s = &mut st[g];
                if s.done {
                    continue;
                }
                active = true;
                if s.lo < s.hi {
                    let mid = s.lo + (s.hi - s.lo) / 2;
                    let ge = entries[mid].priority >= s.p;
                    s.lo = if ge { mid + 1 } else { s.lo };
                    s.hi = if ge { s.hi } else { mid };
                } else {
                    // The run ends at `lo`; the next starts there.
                    out[g].push((s.start, s.lo));
                    s.start = s.lo;
                    s.p = entries[s.start].priority;
                    if s.p <= s.last {
                        out[g].push((s.start, s.len));
                        s.done = true;
                    } else {
                        s.lo = s.start + 1;
                        s.hi = s.len - 1;
                    }
                }
            }
            if !active {
                break;
            }
        }
        for (g, &(i, entries)) in batch.iter().enumerate() {
            f(i, entries, &out[g]);
        }
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
    fn runs_in_lockstep_match_runs_one_by_one() {
        let mut rng = Rng(7);
        let lists: Vec<Vec<ReadyAgenda>> = (0..53)
            .map(|n| {
                let len = rng.below(40) as usize;
                let mut p: Vec<i32> = (0..len).map(|_| rng.below(1 + n % 5) as i32).collect();
                if n % 7 != 3 {
                    p.sort_unstable_by(|a, b| b.cmp(a));
                }
                p.into_iter().map(|priority| ReadyAgenda { priority, ..ReadyAgenda::default() }).collect()
            })
            .collect();
        let mut seen = 0;
        for_each_runs(lists.iter().map(Vec::as_slice), |i, entries, got| {
            assert_eq!(i, seen);
            seen += 1;
            assert_eq!(entries.len(), lists[i].len());
            let priorities: Vec<i32> = entries.iter().map(|e| e.priority).collect();
            let mut one = Vec::new();
            runs(entries, &mut one);
            assert_eq!(got, one, "list {i}: lockstep and one by one");
            if priorities.is_sorted_by(|a, b| a >= b) {
                assert_eq!(got, naive(&priorities), "list {i}");
            }
            // Sorted or not, the runs cover the list in order, each non-empty.
            let mut at = 0;
            for &(s, e) in got {
                assert!(s == at && e > s, "list {i}: {got:?}");
                at = e;
            }
            assert_eq!(at, entries.len(), "list {i}: {got:?}");
        });
        assert_eq!(seen, lists.len());
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

    /// A small deterministic generator for the scenario test.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// Runs the same calls through the fast and the general path of the accounts and checks that
    /// picks and stored states are identical, call after call: customers join, drain, leave, change
    /// weight, have no entries, and stored entries are malformed.
    #[test]
    fn fast_and_general_paths_agree() {
        use crate::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
        use pop_core::model::Insight;
        use pop_core::sched::{CustomerReady, SchedulingAlgorithm};
        let algorithms: Vec<Box<dyn SchedulingAlgorithm>> = vec![
            Box::new(FirstInFirstOut),
            Box::new(RoundRobin::new()),
            Box::new(RoundRobin::cost_weighted()),
            Box::new(Priority::new()),
            Box::new(Priority::with_config(PriorityConfig { aging_step_ms: Some(7), cost_weighted: true })),
        ];
        let insight = Insight::default();
        let costs: std::collections::BTreeMap<String, f64> =
            (0..12).map(|c| (format!("c{c:02}"), 1.0 + (c % 4) as f64)).collect();
        for seed in 1..=60u64 {
            for algo in &algorithms {
                let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                // customer → (weight, entries sorted (priority desc, added asc, agenda id))
                let mut set: std::collections::BTreeMap<String, (u32, Vec<ReadyAgenda>)> = Default::default();
                let (mut fast, mut general) = (Value::Null, Value::Null);
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
                        for st in [&mut fast, &mut general] {
                            if let Some(m) = st.get_mut("used").and_then(Value::as_object_mut) {
                                let keys: Vec<String> = m.keys().cloned().collect();
                                for (n, k) in keys.iter().enumerate() {
                                    match n % 3 {
                                        0 => m[k.as_str()][2] = Value::from("x"),
                                        1 => m[k.as_str()][2] = Value::from(7u64),
                                        _ => m[k.as_str()] = Value::from("junk"),
                                    }
                                }
                                m.insert("zz".into(), serde_json::json!([5, 1, 1, 3]));
                            }
                        }
                    }
                    let view = ReadyView {
                        insight: &insight,
                        customers: set
                            .iter()
                            .map(|(c, (w, e))| CustomerReady { customer_id: c, weight: *w, entries: e })
                            .collect(),
                        costs: Some(&costs),
                        now: next + 3,
                    };
                    let count = 1 + rng.below(8) as usize;
                    let before = fast.clone();
                    let a = algo.pick(&view, &mut fast, count);
                    // Starting from the `count` best keys picks what a heap over everyone would.
                    let all = algo.pick(&view, &mut before.clone(), usize::MAX);
                    assert_eq!(a[..], all[..a.len()], "{} seed {seed} call {call}: prefix", algo.name());
                    FORCE_GENERAL.with(|f| f.set(true));
                    let b = algo.pick(&view, &mut general, count);
                    FORCE_GENERAL.with(|f| f.set(false));
                    assert_eq!(a, b, "{} seed {seed} call {call}: picks", algo.name());
                    assert_eq!(fast, general, "{} seed {seed} call {call}: state", algo.name());
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
}
