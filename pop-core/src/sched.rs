//! The scheduling traits: pure choice of which ready agendas of an insight to queue next.
//!
//! An algorithm sees a read-only [`ReadyView`] (the insight's ready entries per customer, in
//! (priority desc, added asc) order, with customer weights and optional observed costs), its own
//! persisted state and how many to pick. It does no IO and reads no clock: `now` is in the view.
//! Implementations live in `pop-sched`.
//!
//! Two traits, one for each side:
//!
//! * [`Algorithm`] is what an algorithm implements: its state is a typed serde value
//!   ([`Algorithm::State`]; [`NoState`] for an algorithm that keeps none);
//! * [`SchedulingAlgorithm`] is the object-safe form the registry and the scheduler loop hold
//!   (`Arc<dyn SchedulingAlgorithm>`). Every [`Algorithm`] is one, through a blanket impl that
//!   decodes the stored state on first use and returns [`Error::Corrupt`](crate::Error::Corrupt),
//!   naming the insight, the algorithm and the path of the bad value, when it cannot.
//!
//! [`AlgorithmState`] carries the state between calls: the stored JSON document until an algorithm
//! decodes it, then the typed value (so a scheduler that keeps it in memory pays no encoding per
//! call), and [`AlgorithmState::to_json`] gives the document to store. Its format and the rules for
//! a state written by another algorithm are described there.

mod state;

pub use state::{AlgorithmState, NoState};

use crate::Result;
use crate::model::{Insight, Millis, ReadyAgenda};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// One customer's ready entries, in (priority desc, added asc, agenda id) order.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerReady<'a> {
    /// The customer.
    pub customer_id: &'a str,
    /// Its fair-share weight (≥ 1).
    pub weight: u32,
    /// Its ready entries, ordered.
    pub entries: &'a [ReadyAgenda],
    /// The runs of equal priority of `entries`, highest priority first, with each run's head, when
    /// the caller has them ([`RunHead::scan`] while it reads the ready set, which it walks anyway;
    /// [`ReadyRuns`] keeps those of many customers in one allocation). Empty: the algorithms find
    /// the runs themselves (a binary search per run boundary, and a read of each run's head), which
    /// is what dominates a small refill over many customers. When not empty, it must describe
    /// `entries` exactly.
    pub runs: &'a [RunHead],
    /// The customer's key in the view's [`ReadyView::keys`] space ([`CustomerKeys::key`]); ignored
    /// (0 by convention) when the view has no key space.
    pub key: u32,
}

/// A run of equal priority in a customer's ready entries: the half-open index range and what the
/// algorithms compare of its first entry, so that a pass over every customer reads no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunHead {
    /// Index of the run's first entry.
    pub start: u32,
    /// Index one past the run's last entry.
    pub end: u32,
    /// The run's priority.
    pub priority: i32,
    /// `added` of the run's first entry.
    pub added: Millis,
}

impl RunHead {
    /// Appends the runs of `entries` (sorted priority desc, added asc, as a view's lists are) to
    /// `out`, in one linear scan.
    pub fn scan(entries: &[ReadyAgenda], out: &mut Vec<RunHead>) {
        let mut start = 0usize;
        for i in 1..=entries.len() {
            if i == entries.len() || entries[i].priority != entries[start].priority {
                let head = &entries[start];
                out.push(RunHead { start: start as u32, end: i as u32, priority: head.priority, added: head.added });
                start = i;
            }
        }
    }
}

/// The priority runs of many customers' ready entries in one allocation (what a scheduler keeps next
/// to the ready set it read, to hand each [`CustomerReady`] its `runs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadyRuns {
    heads: Vec<RunHead>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl ReadyRuns {
    /// The runs of each list, in order.
    pub fn new<'e>(lists: impl IntoIterator<Item = &'e [ReadyAgenda]>) -> Self {
        let mut runs = Self::default();
        for entries in lists {
            let start = runs.heads.len();
            RunHead::scan(entries, &mut runs.heads);
            runs.ranges.push(start..runs.heads.len());
        }
        runs
    }

    /// The runs of the `i`-th list (empty when there is none).
    pub fn get(&self, i: usize) -> &[RunHead] {
        self.ranges.get(i).map_or(&[], |r| &self.heads[r.clone()])
    }
}

/// Identifies one [`CustomerKeys`]: two interners never share a space in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpace(NonZeroU64);

/// Stable small keys for customer ids, for a caller that schedules one insight many times from
/// memory (a simulator, an embedding that keeps its ready set and the algorithm's state in memory).
///
/// An algorithm that keeps state per customer must find each view customer's entry on every call;
/// by id that is a read of every customer's id, wherever the caller's ready set put it (at 10,000
/// customers, mostly cache misses). A view that carries keys ([`ReadyView::keys`] and
/// [`CustomerReady::key`]) lets it index its entries by key instead. Keys are given in order from 0,
/// the same id always gets the same key from the same `CustomerKeys`, and distinct ids distinct
/// keys; the space ([`CustomerKeys::space`]) is unique in the process, so an algorithm state that
/// meets a view of another space (a state loaded elsewhere, a second interner) starts its key index
/// afresh from the ids. The interner only grows: one entry per customer ever seen. An algorithm's
/// index is an array by key, sized by the largest key it meets: give one insight's views keys from
/// an interner of the customers that insight sees, not from one shared by many insights (`pop-sched`
/// takes a key far past those its index holds for a misfit, and reads that call by ids).
///
/// A view whose keys break these rules (a key given by another space, or two customers with one
/// key) may give unfair picks; it never panics and never writes a state that does not decode.
///
/// ```
/// use pop_core::model::{Insight, ReadyAgenda};
/// use pop_core::sched::{CustomerKeys, CustomerReady, ReadyView};
///
/// let mut keys = CustomerKeys::new();
/// let (a, b) = (vec![ReadyAgenda::default()], vec![ReadyAgenda::default()]);
/// let insight = Insight::default();
/// let customers = vec![
///     CustomerReady { customer_id: "acme", weight: 1, entries: &a, runs: &[], key: keys.key("acme") },
///     CustomerReady { customer_id: "bolt", weight: 1, entries: &b, runs: &[], key: keys.key("bolt") },
/// ];
/// let view = ReadyView { keys: Some(keys.space()), ..ReadyView::new(&insight, customers, 0) };
/// assert_eq!((view.customers[0].key, view.customers[1].key, keys.key("acme")), (0, 1, 0));
/// ```
#[derive(Debug)]
pub struct CustomerKeys {
    space: KeySpace,
    keys: HashMap<String, u32>,
}

impl Default for CustomerKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl CustomerKeys {
    /// An empty interner with a space of its own.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, AtomicOrdering::Relaxed);
        Self { space: KeySpace(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)), keys: HashMap::new() }
    }

    /// The space the keys belong to (what a view carries in [`ReadyView::keys`]).
    pub fn space(&self) -> KeySpace {
        self.space
    }

    /// The key of `customer_id`, given on its first call (the number of ids seen before it).
    pub fn key(&mut self, customer_id: &str) -> u32 {
        if let Some(&k) = self.keys.get(customer_id) {
            return k;
        }
        // 2^32 customers would need hundreds of GiB of ids: the count fits.
        let k = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.keys.insert(customer_id.to_owned(), k);
        k
    }

    /// The key of `customer_id`, if it has one.
    pub fn get(&self, customer_id: &str) -> Option<u32> {
        self.keys.get(customer_id).copied()
    }

    /// The number of keys given.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was given yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What an algorithm sees of an insight's ready set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyView<'a> {
    /// The insight being scheduled.
    pub insight: &'a Insight,
    /// Customers with ready work, by customer id ascending.
    pub customers: Vec<CustomerReady<'a>>,
    /// Observed mean cost of one agenda per customer (e.g. operation-seconds per agenda), when the
    /// caller tracks it. Cost-aware algorithms charge a customer this much per pick, relative to the
    /// mean over the view's customers; customers missing from the map are charged the mean.
    pub costs: Option<&'a BTreeMap<String, f64>>,
    /// The current time, epoch ms.
    pub now: Millis,
    /// The key space of the customers' [`CustomerReady::key`]s, when the caller gives them: every
    /// customer's `key` is then what [`CustomerKeys::key`] of that space returned for its id. An
    /// algorithm that keeps per-customer state across calls (`RoundRobin`, `Priority`) then finds a
    /// customer's entry by its key, without reading its id: see [`CustomerKeys`].
    pub keys: Option<KeySpace>,
}

impl<'a> ReadyView<'a> {
    /// A view without costs or keys.
    pub fn new(insight: &'a Insight, customers: Vec<CustomerReady<'a>>, now: Millis) -> Self {
        Self { insight, customers, costs: None, now, keys: None }
    }

    /// The number of ready entries in the view.
    pub fn len(&self) -> usize {
        self.customers.iter().map(|c| c.entries.len()).sum()
    }

    /// Whether the view has no ready entry.
    pub fn is_empty(&self) -> bool {
        self.customers.iter().all(|c| c.entries.is_empty())
    }

    /// The index of a customer in `customers` (binary search when sorted by id, as documented; a
    /// linear scan otherwise).
    pub fn customer_index(&self, customer_id: &str) -> Option<usize> {
        match self.customers.binary_search_by(|c| c.customer_id.cmp(customer_id)) {
            Ok(i) => Some(i),
            Err(_) => self.customers.iter().position(|c| c.customer_id == customer_id),
        }
    }

    /// Where an agenda is in the view: (customer index, entry index). Linear in the view's size.
    pub fn locate(&self, agenda_id: &str) -> Option<(usize, usize)> {
        self.customers
            .iter()
            .enumerate()
            .find_map(|(ci, c)| c.entries.iter().position(|e| e.agenda_id == agenda_id).map(|ei| (ci, ei)))
    }

    /// Whether `entry` is one of the view's entries (same agenda id in the same customer's list):
    /// O(log customers + log entries) when the view is ordered as documented.
    pub fn contains(&self, entry: &ReadyAgenda) -> bool {
        let Some(ci) = self.customer_index(&entry.customer_id) else {
            return false;
        };
        let entries = self.customers[ci].entries;
        match entries.binary_search_by(|e| e.order_key().cmp(&entry.order_key())) {
            Ok(i) => entries[i].agenda_id == entry.agenda_id,
            Err(_) => entries.iter().any(|e| e.agenda_id == entry.agenda_id),
        }
    }
}

/// Why an agenda waits, and roughly how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The agenda.
    pub agenda_id: String,
    /// Estimated number of picks before it (0 = next).
    pub position: usize,
    /// The reason, for a person ("behind 3 agendas of higher priority", ...).
    pub reason: String,
}

/// A scheduling algorithm with typed state: what an algorithm implements. Pure: no IO, no clock
/// reads.
///
/// Every `Algorithm` is a [`SchedulingAlgorithm`] (a blanket impl), so it registers as
/// `Arc::new(MyAlgorithm)`. The blanket impl hands `pick` and `explain` the insight's state decoded
/// as [`Self::State`](Algorithm::State) — its `Default` when nothing is stored yet — and turns a
/// stored document that does not decode into an [`Error::Corrupt`](crate::Error::Corrupt).
///
/// Version the state when its shape may change: e.g. a `v` field that `Deserialize` checks, with
/// older shapes still accepted (as `pop_sched::FairState` does).
pub trait Algorithm: Send + Sync {
    /// The persisted per-insight state ([`NoState`] for none). Stored as JSON by the scheduler.
    type State: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static;

    /// The name insights use in `schedulingAlgorithm`.
    fn name(&self) -> &str;

    /// Picks at most `count` distinct entries from `view`, updating `state`.
    fn pick(&self, view: &ReadyView<'_>, state: &mut Self::State, count: usize) -> Vec<ReadyAgenda>;

    /// Explains the position of `agenda_id` in `view`, if it is there.
    fn explain(&self, view: &ReadyView<'_>, state: &Self::State, agenda_id: &str) -> Option<Explanation>;

    /// Whether `pick` takes each *priority run* (a customer's entries of one priority, oldest
    /// first) in order: it never picks an entry while an entry ahead of it in its run stays
    /// unpicked. Then a pick of `count` can only take a run's first `count` entries, and the
    /// scheduler hands the algorithm only the first `count + 1` of each run
    /// ([`crate::store::Store::ready_heads`]; the one more shows that a customer is still
    /// backlogged after the pick): on the stores that seek from run to run (sled, fjall, memory), a
    /// refill costs the same with a backlog of a thousand agendas or a million. The algorithm must then pick the same and leave the same state from those heads
    /// as from the whole set (the built-ins are tested for it).
    ///
    /// `false` by default (the view then holds the whole ready set, up to the engine's
    /// `ready_read_limit`); the built-in algorithms say `true`.
    fn in_run_order(&self) -> bool {
        false
    }
}

/// A scheduling algorithm in object-safe form, as the registry and the scheduler loop hold it.
///
/// Implement [`Algorithm`] instead (every `Algorithm` is a `SchedulingAlgorithm`); implement this
/// directly only to handle the [`AlgorithmState`] yourself (a decorator, say), with
/// [`AlgorithmState::state_mut`] and [`AlgorithmState::state`].
pub trait SchedulingAlgorithm: Send + Sync {
    /// The name insights use in `schedulingAlgorithm`.
    fn name(&self) -> &str;

    /// Picks at most `count` distinct entries from `view`, updating `state`.
    ///
    /// Errors with [`Error::Corrupt`](crate::Error::Corrupt) (kind `scheduler state`, id the
    /// insight's) when the stored state cannot be read; `state` is then left as it was, so the
    /// caller can keep the document before it starts afresh.
    fn pick(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, count: usize) -> Result<Vec<ReadyAgenda>>;

    /// Explains the position of `agenda_id` in `view`, if it is there. Errors as [`pick`](Self::pick).
    fn explain(&self, view: &ReadyView<'_>, state: &AlgorithmState, agenda_id: &str) -> Result<Option<Explanation>>;

    /// See [`Algorithm::in_run_order`]; `false` by default.
    fn in_run_order(&self) -> bool {
        false
    }
}

impl<A: Algorithm> SchedulingAlgorithm for A {
    fn name(&self) -> &str {
        Algorithm::name(self)
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, count: usize) -> Result<Vec<ReadyAgenda>> {
        let typed = state.state_mut::<A::State>(Algorithm::name(self), view.insight)?;
        Ok(Algorithm::pick(self, view, typed, count))
    }

    fn explain(&self, view: &ReadyView<'_>, state: &AlgorithmState, agenda_id: &str) -> Result<Option<Explanation>> {
        let typed = state.state::<A::State>(Algorithm::name(self), view.insight)?;
        Ok(Algorithm::explain(self, view, &typed, agenda_id))
    }

    fn in_run_order(&self) -> bool {
        Algorithm::in_run_order(self)
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    fn entry(priority: i32, added: Millis) -> ReadyAgenda {
        ReadyAgenda { priority, added, ..ReadyAgenda::default() }
    }

    #[test]
    fn runs_are_found_per_list_with_their_heads() {
        let a = vec![entry(3, 5), entry(3, 7), entry(1, 2), entry(0, 1), entry(0, 4)];
        let b: Vec<ReadyAgenda> = Vec::new();
        let c = vec![entry(2, 9)];
        let runs = ReadyRuns::new([a.as_slice(), b.as_slice(), c.as_slice()]);
        let head = |start, end, priority, added| RunHead { start, end, priority, added };
        assert_eq!(runs.get(0), &[head(0, 2, 3, 5), head(2, 3, 1, 2), head(3, 5, 0, 1)]);
        assert!(runs.get(1).is_empty());
        assert_eq!(runs.get(2), &[head(0, 1, 2, 9)]);
        assert!(runs.get(3).is_empty(), "a list that was not given has no runs");
    }
}
