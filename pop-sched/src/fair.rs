//! Weighted virtual-time accounting shared by `RoundRobin` and `Priority`, and run helpers.
//!
//! Each customer `c` has a start tag `S_c = used_c / w_c`: the cost units it has been charged divided
//! by its weight. A pick charges the customer `charge_c` units (1000 per pick, or its cost relative to
//! the mean with cost weighting); the next customer to serve is the one whose finish tag
//! `(used_c + charge_c) / w_c` is smallest, ties by customer id. The virtual time `V` is the smallest
//! start tag among backlogged customers; a customer that (re)joins starts at `V`, so idling banks no
//! credit. When nobody is backlogged `V` jumps to the largest tag: everyone restarts equal.
//!
//! Tags are exact rationals (integers compared by cross-multiplication in `u128`), so ties behave
//! like the original's rotation and the fairness bounds hold exactly.
//!
//! Persisted state (JSON): `{"virtualTime": [num, den], "used": {"<customer>": [used, weight]}}`,
//! holding only customers whose tag is ahead of `V` — at most one entry per customer, independent of
//! the number of ready agendas. A missing or malformed state is a fresh start.

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

/// Per-call accounts of the view's customers (indexed like `view.customers`).
pub(crate) struct Accounts {
    pub(crate) v: Ratio,
    pub(crate) used: Vec<u64>,
    pub(crate) weight: Vec<u64>,
    pub(crate) charge: Vec<u64>,
    picked: Vec<bool>,
}

impl Accounts {
    /// Reads the accounts of `view`'s customers from `state`. O(customers + stored entries).
    pub(crate) fn load(view: &ReadyView<'_>, state: &AlgorithmState, cost_weighted: bool) -> Self {
        let v = state.get("virtualTime").and_then(parse_pair).unwrap_or(Ratio::ZERO);
        let weight: Vec<u64> = view.customers.iter().map(|c| u64::from(c.weight.max(1))).collect();
        let mut used: Vec<u64> = weight.iter().map(|&w| v.scaled_ceil(w)).collect();
        if let Some(map) = state.get("used").and_then(Value::as_object) {
            let mut apply = |i: usize, val: &Value| {
                if let Some(r) = parse_pair(val) {
                    let u = r.scaled_ceil(weight[i]);
                    if u > used[i] {
                        used[i] = u;
                    }
                }
            };
            if !merge_join(&view.customers, map, &mut apply) {
                for (i, c) in view.customers.iter().enumerate() {
                    if let Some(val) = map.get(c.customer_id) {
                        apply(i, val);
                    }
                }
            }
        }
        let charge = charges(view, cost_weighted);
        let picked = vec![false; weight.len()];
        Self { v, used, weight, charge, picked }
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
        self.picked[i] = true;
    }

    /// How many of customer `d`'s picks number `base+1 ..= base+m` have a finish tag before `f`
    /// (`inclusive`: at or before, for customers that win ties).
    pub(crate) fn picks_before(&self, d: usize, base: u64, m: u64, f: Ratio, inclusive: bool) -> u64 {
        if m == 0 {
            return 0;
        }
        // (used + (base + k) * q) * f.den  (<= or <)  f.num * w
        let r = i128::from(f.num) * i128::from(self.weight[d]) - i128::from(self.used[d]) * i128::from(f.den);
        let step = i128::from(self.charge[d]) * i128::from(f.den);
        let total = if inclusive {
            if r < 0 { -1 } else { r / step }
        } else if r <= 0 {
            -1
        } else {
            (r - 1) / step
        };
        let k = total - i128::from(base);
        k.clamp(0, i128::from(m)) as u64
    }

    /// Writes the accounts back: the new virtual time, and the tags of customers ahead of it.
    pub(crate) fn store(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, backlogged: impl Fn(usize) -> bool) {
        let mut map = match state.get_mut("used").and_then(Value::as_object_mut) {
            Some(m) => std::mem::take(m),
            None => Map::new(),
        };
        for (i, c) in view.customers.iter().enumerate() {
            if self.picked[i] {
                map.insert(c.customer_id.to_owned(), Value::from(vec![self.used[i], self.weight[i]]));
            }
        }
        let min_backlogged =
            (0..self.used.len()).filter(|&i| backlogged(i)).map(|i| self.start(i)).min_by(|a, b| a.cmp_to(b));
        let v_end = match min_backlogged {
            Some(m) => self.v.max(m),
            None => {
                // Nobody waits: everyone restarts level with the furthest-ahead customer.
                let mut v = self.v;
                for val in map.values() {
                    if let Some(r) = parse_pair(val) {
                        v = v.max(r);
                    }
                }
                v
            }
        };
        map.retain(|_, val| parse_pair(val).is_some_and(|r| r.cmp_to(&v_end) == Ordering::Greater));
        let mut out = Map::new();
        out.insert("virtualTime".into(), Value::from(vec![v_end.num, v_end.den]));
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
        let end = start + entries[start..].partition_point(|e| e.priority >= p);
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
