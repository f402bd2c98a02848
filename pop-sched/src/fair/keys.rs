//! [`KeyIndex`]: a [`FairState`](super::FairState)'s stored entries by customer key, for views that
//! carry keys ([`ReadyView::keys`](pop_core::sched::ReadyView)). In memory only: a mirror of the
//! stored map, built from the ids the first time a view of a key space is met, then kept up to date
//! by the accounts' write-back. A call with such a view finds each customer's entry by its key,
//! reading no id; any other write of the map drops the mirror (it is rebuilt on the next keyed call).
//!
//! Invariant while the index is built for a space: the stored map's customers are exactly the ids of
//! the `Present` slots plus `unkeyed` (stored customers not met in a view of the space yet), each
//! once, and a `Present` slot holds the map's entry of its id; an `Absent` slot's id has no entry.

use super::Ratio;
use super::accounts::Acct;
use super::state::Entry;
use pop_core::sched::KeySpace;
use std::collections::{BTreeMap, BTreeSet};

/// What a slot knows of its key's stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// The key was not met since the index was built.
    Unknown,
    /// Its customer has no stored entry.
    Absent,
    /// Its customer's stored entry is `entry`.
    Present,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: Entry,
    known: Known,
    /// The call that last met the key (see [`KeyIndex::begin`]).
    seen: u32,
}

const UNKNOWN: Slot =
    Slot { entry: Entry { used: 0, weight: 1, backlogged: false, seq: 0 }, known: Known::Unknown, seen: 0 };

/// A view's keys do not fit the index: two customers with one key, or one customer under two keys.
#[derive(Debug)]
pub(crate) struct Misfit;

/// A stored customer that the current view does not list: (id, tag, backlogged, key if it has one).
pub(crate) type Other = (String, Ratio, bool, Option<u32>);

/// The stored entries by customer key (see the module docs).
#[derive(Default)]
pub(crate) struct KeyIndex {
    space: Option<KeySpace>,
    slots: Vec<Slot>,
    /// Per key, the id met with it.
    ids: Vec<Option<Box<str>>>,
    unkeyed: BTreeSet<String>,
    /// `Present` slots.
    present: usize,
    /// `Present` slots met by the current call.
    met: usize,
    stamp: u32,
    /// The accounts' per-call vector, kept between calls (emptied).
    buffer: Vec<Acct>,
    /// Keys from here on do not fit this call (see [`GROWTH`]).
    limit: usize,
    /// The most slots the index has had (kept when it is dropped).
    high: usize,
}

/// How far past the most keys it has held (plus four per customer in the view) the index grows in
/// one call.
/// Keys come from [`CustomerKeys`](pop_core::sched::CustomerKeys), dense from 0; a key far beyond
/// (a view built with a bad key, or keys from an interner shared by many insights) is a misfit, and
/// the call takes the general path, rather than the index growing to the key's size.
const GROWTH: usize = 65_536;

impl Clone for KeyIndex {
    /// A copy starts without an index (it is rebuilt when needed): a mirror is worth keeping only
    /// for the state that is picked from again and again.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for KeyIndex {
    /// Not part of the state: two states are equal whatever their indexes.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KeyIndex {}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").field("space", &self.space).field("keys", &self.slots.len()).finish_non_exhaustive()
    }
}

impl KeyIndex {
    /// Readies the index for a call whose view of `customers` customers has keys of `space`: built
    /// afresh (every key unknown, every stored customer unkeyed) when it was built for another space
    /// or dropped.
    pub(crate) fn begin(&mut self, space: KeySpace, map: &BTreeMap<String, Entry>, customers: usize) {
        // Rebuilt after a drop, the index may grow back at once to the size it had.
        self.high = self.high.max(self.slots.len());
        if self.space != Some(space) {
            self.slots.clear();
            self.ids.clear();
            self.present = 0;
            self.unkeyed = map.keys().cloned().collect();
            self.space = Some(space);
        }
        self.met = 0;
        self.limit = self.high.saturating_add(customers.saturating_mul(4)).saturating_add(GROWTH);
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.slots.iter_mut().for_each(|s| s.seen = 0);
            self.stamp = 1;
        }
    }

    /// An empty vector with room for `n`, the previous call's when kept.
    pub(crate) fn take_buffer(&mut self, n: usize) -> Vec<Acct> {
        let mut out = std::mem::take(&mut self.buffer);
        out.clear();
        out.reserve(n);
        out
    }

    /// Keeps the per-call vector for the next call.
    pub(crate) fn keep_buffer(&mut self, buffer: Vec<Acct>) {
        self.buffer = buffer;
    }

    /// Whether the index is built for some space.
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.space.is_some()
    }

    /// Drops the index (after a write of the map that did not go through it).
    pub(crate) fn drop_index(&mut self) {
        self.space = None;
    }

    /// The stored entry of the customer `id` listed with key `k`, marking the key met by this call.
    /// On a key's first meeting its entry is looked up by id.
    #[inline]
    pub(crate) fn meet(&mut self, k: u32, id: &str, map: &BTreeMap<String, Entry>) -> Result<Option<Entry>, Misfit> {
        let k = k as usize;
        if k >= self.slots.len() {
            if k >= self.limit {
                return Err(Misfit);
            }
            self.slots.resize(k + 1, UNKNOWN);
            self.ids.resize(k + 1, None);
        }
        let slot = &mut self.slots[k];
        if slot.seen == self.stamp {
            return Err(Misfit);
        }
        slot.seen = self.stamp;
        match slot.known {
            Known::Present => {
                self.met += 1;
                Ok(Some(slot.entry))
            }
            Known::Absent => Ok(None),
            Known::Unknown => self.learn(k, id, map),
        }
    }

    #[cold]
    fn learn(&mut self, k: usize, id: &str, map: &BTreeMap<String, Entry>) -> Result<Option<Entry>, Misfit> {
        let stored = map.get(id).copied();
        let slot = &mut self.slots[k];
        match stored {
            // Stored but not unkeyed: another key already holds this customer.
            Some(_) if !self.unkeyed.remove(id) => return Err(Misfit),
            Some(e) => {
                *slot = Slot { entry: e, known: Known::Present, seen: slot.seen };
                self.present += 1;
                self.met += 1;
            }
            None => slot.known = Known::Absent,
        }
        self.ids[k] = Some(id.into());
        Ok(stored)
    }

    /// The stored customers the current call did not meet, when there are any.
    pub(crate) fn others(&self, map: &BTreeMap<String, Entry>) -> Vec<Other> {
        if self.met == self.present && self.unkeyed.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (k, s) in self.slots.iter().enumerate() {
            if s.known == Known::Present && s.seen != self.stamp {
                let id = self.ids[k].as_deref().unwrap_or_default();
                out.push((id.to_owned(), s.entry.tag(), s.entry.backlogged, Some(k as u32)));
            }
        }
        for id in &self.unkeyed {
            if let Some(e) = map.get(id) {
                out.push((id.clone(), e.tag(), e.backlogged, None));
            }
        }
        out
    }

    /// Whether key `k` was met with `id`: the write-back checks it for each customer it writes, and
    /// drops the index when not (keys that break the contract).
    pub(crate) fn holds(&self, k: u32, id: &str) -> bool {
        self.ids.get(k as usize).and_then(|x| x.as_deref()) == Some(id)
    }

    /// Key `k`'s customer now has `entry` stored.
    pub(crate) fn put(&mut self, k: u32, entry: Entry) {
        if let Some(slot) = self.slots.get_mut(k as usize) {
            if slot.known != Known::Present {
                self.present += 1;
            }
            slot.known = Known::Present;
            slot.entry = entry;
        }
    }

    /// Key `k`'s customer (or the unkeyed customer `id`) no longer has an entry.
    pub(crate) fn remove(&mut self, k: Option<u32>, id: &str) {
        match k.and_then(|k| self.slots.get_mut(k as usize)) {
            Some(slot) => {
                if slot.known == Known::Present {
                    self.present -= 1;
                }
                slot.known = Known::Absent;
            }
            None => {
                self.unkeyed.remove(id);
            }
        }
    }

    /// Key `k`'s customer is marked idle.
    pub(crate) fn set_idle(&mut self, k: u32) {
        if let Some(slot) = self.slots.get_mut(k as usize) {
            slot.entry.backlogged = false;
        }
    }
}
