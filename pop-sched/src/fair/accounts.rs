//! [`Accounts`]: the per-call accounts of a view's customers, read from the [`FairState`] and
//! written back (the state walk and merge).
//!
//! Cost per call: the view's customers and the stored map are both sorted by customer id, so they
//! are walked together, one id comparison per customer; only the entries that change (picked
//! customers, joiners, leavers, idle entries falling behind the round) are written back, each an
//! O(log customers) map operation. A view that is not sorted takes the general path, which looks
//! every customer up and rewrites every entry; both give the same state (`fair::tests` runs them
//! side by side).

use super::keys::Other;
use super::state::Entry;
use super::{FairState, Ratio};
use pop_core::sched::{CustomerReady, ReadyView};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Cost units charged for one pick of an average agenda.
pub(crate) const UNIT: u64 = 1000;
const MAX_CHARGE: f64 = 1.0e9;

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
    /// `others` (stored customers not in the view: key, tag, whether it is marked backlogged and so
    /// changes when marked idle).
    Fast { dirty: Vec<u32>, others: Vec<Other> },
    /// As `Fast`, the accounts read by key through the state's key index (the view carries keys,
    /// in any order); the write-back keeps the index up to date.
    Keyed { dirty: Vec<u32>, others: Vec<Other> },
    /// The view is not sorted by customer id: every entry is read and rewritten.
    General,
}

/// What [`Accounts::load_visiting`] calls for each customer as its account is read: `visit(i, finish
/// tag after one pick, seq)`. A trait rather than a closure so that an implementation can be inlined
/// into the walk (`#[inline(always)]` on its method).
pub(crate) trait Visit {
    fn visit(&mut self, i: usize, tag: Ratio, seq: u64);
}

/// A customer's account in a call: the units it has used, its weight (its tag is `used / weight`),
/// and when its tag was last set (ties between equal tags go to the earlier). One record per
/// customer, so that a customer's account is one cache line's read, not three.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Acct {
    used: u64,
    weight: u64,
    seq: u64,
}

/// Per-call accounts of the view's customers (indexed like `view.customers`).
pub(crate) struct Accounts {
    /// Smallest tag of a backlogged customer at the end of the previous call.
    v: Ratio,
    /// Largest tag of a backlogged customer at the end of the previous call: the back of the round.
    round_end: Ratio,
    /// Next value of the sequence that orders equal tags (first to reach a tag, first served).
    next_seq: u64,
    /// Per customer: its account, read from the state and charged for the picks of this call.
    accts: Vec<Acct>,
    charge: Charges,
    /// The weight of every customer, when they all have the same (then tags compare as `used`).
    uniform_weight: Option<u64>,
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

/// Byte equality of two ids, inlined (ids are short: a call to `memcmp` per customer costs more
/// than the comparison). Ids of 8 to 16 bytes (uuids are 36, the bench's 14) take two overlapping
/// 8-byte comparisons.
#[inline]
fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// The 8 bytes of `x` from `at`, as a word.
#[inline(always)]
fn word(x: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&x[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// Customers matched per chunk of the state walk (see [`Accounts::load_sorted`]).
const CHUNK: usize = 64;

/// `max(r.scaled_ceil(w), floor.scaled_ceil(w))`, without dividing when `r` is at least `floor`.
fn ceil_max(r: Ratio, floor: Ratio, w: u64) -> u64 {
    if floor.cmp_to(&r) == Ordering::Greater { r.scaled_ceil(w).max(floor.scaled_ceil(w)) } else { r.scaled_ceil(w) }
}

/// What the fast loads gather customer by customer, in view order: the accounts, the customers whose
/// stored entry changes, whether they all have one weight.
struct Walk {
    v: Ratio,
    round_end: Ratio,
    next_seq: u64,
    accts: Vec<Acct>,
    dirty: Vec<u32>,
    uniform_weight: Option<u64>,
}

impl Walk {
    /// Starts from the state's virtual time, back of the round and sequence.
    fn new(view: &ReadyView<'_>, accts: Vec<Acct>, state: &FairState) -> Self {
        let (v, next_seq) = (state.virtual_time, state.seq);
        let uniform_weight = view.customers.first().map(|c| u64::from(c.weight.max(1)));
        Self { v, round_end: state.round_end.max(v), next_seq, accts, dirty: Vec::new(), uniform_weight }
    }

    /// Customer `i`'s account from its stored entry, visited.
    #[inline(always)]
    fn add(
        &mut self,
        i: usize,
        c: &CustomerReady<'_>,
        stored: Option<Entry>,
        charge: &Charges,
        visit: &mut impl Visit,
    ) {
        let w = u64::from(c.weight.max(1));
        let (u, s, clean) = account(stored, w, self.v, self.round_end, &mut self.next_seq);
        if !clean || c.entries.is_empty() {
            self.dirty.push(i as u32);
        }
        if self.uniform_weight != Some(w) {
            self.uniform_weight = None;
        }
        let k = match charge {
            Charges::Uniform => UNIT,
            Charges::PerCustomer(c) => c[i],
        };
        visit.visit(i, Ratio { num: u.saturating_add(k), den: w }, s);
        self.accts.push(Acct { used: u, weight: w, seq: s });
    }

    /// The accounts (charges set by the caller), read through the key index or by the sorted walk.
    fn into_accounts(self, keyed: bool, others: Vec<Other>) -> Accounts {
        let Walk { v, round_end, next_seq, accts, dirty, uniform_weight } = self;
        let link = if keyed { Link::Keyed { dirty, others } } else { Link::Fast { dirty, others } };
        Accounts { v, round_end, next_seq, accts, charge: Charges::Uniform, uniform_weight, link }
    }
}

/// A customer's account for this call from its stored entry: (used, seq, whether the stored entry
/// stays as it is). A customer backlogged at the end of the previous call keeps its tag (raised to
/// the virtual time); one that (re)joins starts at the back of the round, after everyone already
/// there, and takes the next sequence number.
#[inline(always)]
fn account(stored: Option<Entry>, w: u64, v: Ratio, round_end: Ratio, next_seq: &mut u64) -> (u64, u64, bool) {
    match stored {
        Some(e) if e.backlogged => {
            let r = e.tag();
            let u = ceil_max(r, v, w);
            (u, e.seq, r.num == u && r.den == w)
        }
        Some(e) => {
            *next_seq += 1;
            (ceil_max(e.tag(), round_end, w), *next_seq - 1, false)
        }
        None => {
            *next_seq += 1;
            (round_end.scaled_ceil(w), *next_seq - 1, false)
        }
    }
}

/// Writes customer `id`'s entry, in place when it has one.
fn upsert(map: &mut BTreeMap<String, Entry>, id: &str, entry: Entry) {
    match map.get_mut(id) {
        Some(slot) => *slot = entry,
        None => {
            map.insert(id.to_owned(), entry);
        }
    }
}

impl Accounts {
    /// Reads the accounts of `view`'s customers from `state`: O(customers + stored entries), one
    /// comparison of customer ids per customer when the view and the state list the same customers.
    ///
    /// A customer backlogged at the end of the previous call keeps its tag; one that (re)joins since
    /// starts at the back of the current round (the largest tag of a backlogged customer), or at its
    /// own stored tag if that is later, as the original's rotation served newcomers after the customers
    /// already pending.
    ///
    /// Calls `visit(i, finish tag after one pick, seq)` for each customer as its account is read, in
    /// view order, so that a caller's pass over the customers rides on the state
    /// walk instead of a second pass. Returns whether every customer was visited exactly once; when
    /// not (the view is neither keyed nor sorted, or its keys do not fit, and the accounts were read
    /// by the general path), the visits made must be discarded and the caller makes its own pass
    /// over the accounts.
    ///
    /// A view with keys ([`ReadyView::keys`]) is read through the state's key index: by key, in any
    /// order, reading no id.
    pub(crate) fn load_visiting(
        view: &ReadyView<'_>,
        state: &mut FairState,
        cost_weighted: bool,
        visit: &mut impl Visit,
    ) -> (Self, bool) {
        let v = state.virtual_time;
        let round_end = state.round_end.max(v);
        let next_seq = state.seq;
        let charge = charges(view, cost_weighted);
        let fast = if force_general() {
            None
        } else if view.keys.is_some() {
            // `None` when the keys do not fit: the general path, the visits discarded.
            Self::load_keyed(view, state, &charge, visit)
        } else {
            Self::load_sorted(view, state, &charge, visit)
        };
        if let Some(acc) = fast {
            return (Self { charge, ..acc }, true);
        }
        state.keyed.drop_index();
        (Self { charge, ..Self::load_general(view, state, v, round_end, next_seq) }, false)
    }

    /// The keyed path of [`Accounts::load_visiting`]: each customer's entry from the state's key index, by
    /// its key. `None` when the keys do not fit (two customers with one key, one with two).
    fn load_keyed(
        view: &ReadyView<'_>,
        state: &mut FairState,
        charge: &Charges,
        visit: &mut impl Visit,
    ) -> Option<Self> {
        let space = view.keys?;
        let buffer = state.keyed.take_buffer(view.customers.len());
        let mut walk = Walk::new(view, buffer, state);
        let FairState { used: map, keyed: index, .. } = state;
        index.begin(space, map, view.customers.len());
        for (i, c) in view.customers.iter().enumerate() {
            let stored = index.meet(c.key, c.customer_id, map).ok()?;
            walk.add(i, c, stored, charge, visit);
        }
        let others = index.others(map);
        Some(walk.into_accounts(true, others))
    }

    /// The fast path of [`Accounts::load_visiting`]: walks the view and the (sorted) stored map together.
    /// `None` when the view turns out not to be sorted by customer id.
    fn load_sorted(view: &ReadyView<'_>, state: &FairState, charge: &Charges, visit: &mut impl Visit) -> Option<Self> {
        let n = view.customers.len();
        // By chunks of customers, first the matching alone, a short loop: each customer's id is a
        // memory read that likely misses the cache (ids live wherever the caller's ready set put
        // them), and a short loop body keeps many of those reads in flight at once. Then the
        // chunk's accounts, from what matched (a chunk on the stack: no allocation per call).
        let mut others = Vec::new();
        let mut it = state.used.iter();
        let mut pending = it.next();
        let mut prev: Option<&str> = None;
        let mut prev_matched = true;
        let mut walk = Walk::new(view, Vec::with_capacity(n), state);
        let mut stored = [None; CHUNK];
        for (chunk, customers) in view.customers.chunks(CHUNK).enumerate() {
            for (c, found) in customers.iter().zip(stored.iter_mut()) {
                let id = c.customer_id;
                *found = None;
                while let Some((k, e)) = pending {
                    if same_id(k, id) {
                        *found = Some(*e);
                        pending = it.next();
                        break;
                    }
                    if k.as_str() > id {
                        break;
                    }
                    others.push((k.clone(), e.tag(), e.backlogged, None));
                    pending = it.next();
                }
                let matched = found.is_some();
                // Two matched neighbours are in order because the map is; any other pair is checked.
                if !(matched && prev_matched) && prev.is_some_and(|p| p >= id) {
                    return None;
                }
                prev = Some(id);
                prev_matched = matched;
            }
            for (j, (c, stored)) in customers.iter().zip(stored).enumerate() {
                walk.add(chunk * CHUNK + j, c, stored, charge, visit);
            }
        }
        while let Some((k, e)) = pending {
            others.push((k.clone(), e.tag(), e.backlogged, None));
            pending = it.next();
        }
        Some(walk.into_accounts(false, others))
    }

    /// The general path of [`Accounts::load_visiting`]: any order of the view.
    fn load_general(view: &ReadyView<'_>, state: &FairState, v: Ratio, round_end: Ratio, mut next_seq: u64) -> Self {
        let accts = view
            .customers
            .iter()
            .map(|c| {
                let weight = u64::from(c.weight.max(1));
                let (used, seq) = match state.used.get(c.customer_id) {
                    Some(e) if e.backlogged => (e.tag().scaled_ceil(weight).max(v.scaled_ceil(weight)), e.seq),
                    Some(e) => {
                        next_seq += 1;
                        (e.tag().scaled_ceil(weight).max(round_end.scaled_ceil(weight)), next_seq - 1)
                    }
                    None => {
                        next_seq += 1;
                        (round_end.scaled_ceil(weight), next_seq - 1)
                    }
                };
                Acct { used, weight, seq }
            })
            .collect();
        Self { v, round_end, next_seq, accts, charge: Charges::Uniform, uniform_weight: None, link: Link::General }
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
        let a = &self.accts[i];
        Ratio { num: a.used, den: a.weight }
    }

    /// The finish tag of customer `i` after `k` more picks.
    pub(crate) fn finish(&self, i: usize, k: u64) -> Ratio {
        let a = &self.accts[i];
        Ratio { num: a.used.saturating_add(k.saturating_mul(self.charge(i))), den: a.weight }
    }

    /// When customer `i`'s tag was last set (ties between equal tags go to the earlier).
    pub(crate) fn seq(&self, i: usize) -> u64 {
        self.accts[i].seq
    }

    /// Charges customer `i` for one pick.
    pub(crate) fn charge_pick(&mut self, i: usize) {
        let charge = self.charge(i);
        let a = &mut self.accts[i];
        a.used = a.used.saturating_add(charge);
        a.seq = self.next_seq;
        self.next_seq += 1;
    }

    /// The entry of view customer `i`.
    fn entry(&self, i: usize, backlogged: bool) -> Entry {
        let a = &self.accts[i];
        Entry { used: a.used, weight: a.weight, backlogged, seq: a.seq }
    }

    /// Writes the accounts back: the virtual time, the back of the round, and an entry per
    /// backlogged customer and per idle customer still ahead of the round.
    ///
    /// `picked` lists each customer picked in this call (by index, each once) and whether it still
    /// has entries left; every other customer is backlogged exactly when it has entries in the view.
    /// On the fast path this is O(customers) comparisons of tags plus O(log customers) per entry
    /// that changes (the picked customers, joiners and leavers).
    pub(crate) fn store(self, view: &ReadyView<'_>, state: &mut FairState, picked: &[(usize, bool)]) {
        let mut picked = picked.to_vec();
        picked.sort_unstable_by_key(|&(i, _)| i);
        match &self.link {
            Link::Fast { dirty, others } => {
                self.store_sorted(view, state, &picked, dirty, others, false);
                state.keyed.drop_index();
            }
            Link::Keyed { dirty, others } => {
                self.store_sorted(view, state, &picked, dirty, others, true);
                // The per-call accounts' vector goes back to the index, for the next call.
                state.keyed.keep_buffer(self.accts);
            }
            Link::General => {
                state.keyed.drop_index();
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
        if let Some(w) = self.uniform_weight {
            // One weight: tags compare as their numerators, and equal tags are equal ratios.
            let mut range: Option<(u64, u64)> = None;
            for (i, a) in self.accts.iter().enumerate() {
                let u = a.used;
                if now(i) {
                    range = Some(match range {
                        None => (u, u),
                        Some((lo, hi)) => (lo.min(u), hi.max(u)),
                    });
                }
            }
            return range.map(|(lo, hi)| (Ratio { num: lo, den: w }, Ratio { num: hi, den: w }));
        }
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

    fn header(&self, v_end: Ratio, round_end: Ratio, state: &mut FairState) {
        state.virtual_time = v_end;
        state.round_end = round_end;
        state.seq = self.next_seq;
    }

    /// The fast path of [`Accounts::store`]: same result as the general path, touching only the
    /// entries that change. `keyed`: the accounts were read through the key index (the view may be
    /// in any order), which is kept up to date.
    fn store_sorted(
        &self,
        view: &ReadyView<'_>,
        state: &mut FairState,
        picked: &[(usize, bool)],
        dirty: &[u32],
        others: &[Other],
        keyed: bool,
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
            None if keyed => {
                // As below, the view's order being any: the tags in id order.
                let mut tags: Vec<(&str, Ratio)> =
                    view.customers.iter().map(|c| c.customer_id).zip(0..).map(|(id, i)| (id, self.start(i))).collect();
                tags.extend(others.iter().map(|o| (o.0.as_str(), o.1)));
                tags.sort_by(|a, b| a.0.cmp(b.0));
                let v = tags.iter().fold(self.v.max(self.round_end), |v, (_, r)| v.max(*r));
                (v, v)
            }
            None => {
                // Nobody waits: everyone restarts level with the furthest-ahead customer (stored
                // entries taken in key order, as the general path does).
                let mut v = self.v.max(self.round_end);
                let mut j = 0;
                for (i, c) in view.customers.iter().enumerate() {
                    while j < others.len() && others[j].0.as_str() < c.customer_id {
                        v = v.max(others[j].1);
                        j += 1;
                    }
                    v = v.max(self.start(i));
                }
                for o in &others[j..] {
                    v = v.max(o.1);
                }
                (v, v)
            }
        };
        let FairState { used: map, keyed: index, .. } = state;
        let mut fits = true;
        let mut write = |i: usize, now: bool| {
            let c = &view.customers[i];
            let id = c.customer_id;
            if keyed && !index.holds(c.key, id) {
                fits = false;
            }
            if now || self.start(i).cmp_to(&round_end) == Ordering::Greater {
                let entry = self.entry(i, now);
                upsert(map, id, entry);
                if keyed {
                    index.put(c.key, entry);
                }
            } else {
                map.remove(id);
                if keyed {
                    index.remove(Some(c.key), id);
                }
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
        for (id, r, backlogged, key) in others {
            if r.cmp_to(&round_end) == Ordering::Greater {
                if *backlogged {
                    if let Some(e) = map.get_mut(id.as_str()) {
                        e.backlogged = false;
                    }
                    if let (true, Some(k)) = (keyed, key) {
                        index.set_idle(*k);
                    }
                }
            } else {
                map.remove(id.as_str());
                if keyed {
                    index.remove(*key, id);
                }
            }
        }
        if !fits {
            // A key met with another id than the one written: keys that break the contract.
            index.drop_index();
        }
        self.header(v_end, round_end, state);
    }

    /// The general path of [`Accounts::store`]: rewrites every entry. O(customers + entries).
    fn store_general(&self, view: &ReadyView<'_>, state: &mut FairState, now: &[bool]) {
        let map = &mut state.used;
        let ids: std::collections::HashSet<&str> = view.customers.iter().map(|c| c.customer_id).collect();
        for (k, e) in map.iter_mut() {
            if !ids.contains(k.as_str()) {
                e.backlogged = false;
            }
        }
        for (i, c) in view.customers.iter().enumerate() {
            upsert(map, c.customer_id, self.entry(i, now[i]));
        }
        let (v_end, round_end) = match self.tag_range(view, |i| now[i]) {
            Some((lo, hi)) => (self.v.max(lo), hi.max(self.v.max(lo))),
            None => {
                // Nobody waits: everyone restarts level with the furthest-ahead customer.
                let v = map.values().fold(self.v.max(self.round_end), |v, e| v.max(e.tag()));
                (v, v)
            }
        };
        map.retain(|_, e| e.backlogged || e.tag().cmp_to(&round_end) == Ordering::Greater);
        self.header(v_end, round_end, state);
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
