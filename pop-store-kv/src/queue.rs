//! The queue's per-lease changes (extend, ack, release, remove) inside one transaction of any
//! ordered key-value store with the layout of [`crate::codec`]: an item is one entry under
//! `c(insight) agendaId` ([`QueueEntry`]) and one order key under `c(insight) slot seq`, and each
//! queue's length is a counter. A backend implements [`QueueTx`] for its transaction over its three
//! queue trees; pushes and receives, which pick items by range, stay the backend's own.

use crate::codec::{self, QueueEntry, entry_key, not_current, order_key};
use pop_core::Error;
use pop_core::model::Millis;
use pop_core::queue::{Lease, LeaseToken};

/// A queue tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueTree {
    /// `c(insight) agendaId` → a [`QueueEntry`].
    Entries,
    /// `c(insight) slot(8) seq(8)` → the agenda id.
    Order,
    /// insight id → the queue's length, `u64` big-endian.
    Count,
}

/// Reads and writes of the queue's trees inside one transaction of a backend.
pub trait QueueTx {
    /// The backend's bytes.
    type Bytes: AsRef<[u8]>;
    /// The backend's error inside a transaction (a storage error, or an abort carrying an [`Error`]).
    type Error;

    /// Aborts the transaction with `e`.
    fn abort(e: Error) -> Self::Error;

    /// The tree's name, for messages.
    fn name(&self, tree: QueueTree) -> &'static str;

    /// The value under `key`, as this transaction sees it.
    fn get(&mut self, tree: QueueTree, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error>;

    /// Writes `value` under `key`.
    fn insert(&mut self, tree: QueueTree, key: &[u8], value: &[u8]) -> Result<(), Self::Error>;

    /// Removes `key`.
    fn remove(&mut self, tree: QueueTree, key: &[u8]) -> Result<(), Self::Error>;
}

/// Adds `delta` to the length of queue `insight`.
pub fn bump<T: QueueTx>(tx: &mut T, insight: &str, delta: i64) -> Result<(), T::Error> {
    let cur = match tx.get(QueueTree::Count, insight.as_bytes())? {
        Some(v) => codec::decode_count(tx.name(QueueTree::Count), insight.as_bytes(), v.as_ref()).map_err(T::abort)?,
        None => 0,
    };
    let next = (cur as i64 + delta).max(0) as u64;
    if next == 0 {
        tx.remove(QueueTree::Count, insight.as_bytes())
    } else {
        tx.insert(QueueTree::Count, insight.as_bytes(), &next.to_be_bytes())
    }
}

/// An item's entry key and its entry, or the `Conflict` saying why a token is not current.
pub type Found = Result<(Vec<u8>, QueueEntry), Error>;

/// The entry of `token` (its key and the entry) if the token is its item's current delivery;
/// otherwise the inner `Err` is the `Conflict` saying why not (a corrupt entry aborts).
pub fn lookup<T: QueueTx>(tx: &mut T, token: &LeaseToken) -> Result<Found, T::Error> {
    let ek = entry_key(&token.insight_id, &token.agenda_id);
    let Some(v) = tx.get(QueueTree::Entries, &ek)? else {
        return Ok(Err(not_current(token, "the agenda is no longer in the queue")));
    };
    let entry = QueueEntry::decode(tx.name(QueueTree::Entries), &ek, v.as_ref()).map_err(T::abort)?;
    let receipt = entry.lease.as_ref().map(|(r, _)| r.as_str());
    if receipt != Some(token.receipt.as_str()) || entry.epoch != token.epoch {
        return Ok(Err(not_current(
            token,
            &format!(
                "the item's current delivery is epoch {}{}",
                entry.epoch,
                if entry.lease.is_none() { " (not leased)" } else { "" }
            ),
        )));
    }
    Ok(Ok((ek, entry)))
}

/// [`lookup`], aborting the transaction when the token is not current.
fn current<T: QueueTx>(tx: &mut T, token: &LeaseToken) -> Result<(Vec<u8>, QueueEntry), T::Error> {
    lookup(tx, token)?.map_err(T::abort)
}

/// Moves the item of `token` to `slot` in the order (its lease deadline, or [`VISIBLE`]) and writes
/// its entry.
fn move_to<T: QueueTx>(
    tx: &mut T,
    token: &LeaseToken,
    ek: &[u8],
    entry: &QueueEntry,
    from: Millis,
) -> Result<(), T::Error> {
    tx.remove(QueueTree::Order, &order_key(&token.insight_id, from, entry.seq))?;
    tx.insert(QueueTree::Order, &order_key(&token.insight_id, entry.slot(), entry.seq), token.agenda_id.as_bytes())?;
    tx.insert(QueueTree::Entries, ek, &entry.encode())
}

/// Extends the lease of `token` to `deadline` (aborts with `Conflict` if it is not current).
pub fn extend<T: QueueTx>(tx: &mut T, token: &LeaseToken, deadline: Millis) -> Result<(), T::Error> {
    let (ek, mut entry) = current(tx, token)?;
    let from = entry.slot();
    if let Some((_, d)) = entry.lease.as_mut() {
        *d = deadline;
    }
    move_to(tx, token, &ek, &entry, from)
}

/// Makes the item of `token` visible again (aborts with `Conflict` if it is not current).
pub fn release<T: QueueTx>(tx: &mut T, token: &LeaseToken) -> Result<(), T::Error> {
    let (ek, mut entry) = current(tx, token)?;
    let from = entry.slot();
    entry.lease = None;
    move_to(tx, token, &ek, &entry, from)
}

/// Removes the item of `token` (aborts with `Conflict` if it is not current).
pub fn ack<T: QueueTx>(tx: &mut T, token: &LeaseToken) -> Result<(), T::Error> {
    let (ek, entry) = current(tx, token)?;
    tx.remove(QueueTree::Order, &order_key(&token.insight_id, entry.slot(), entry.seq))?;
    tx.remove(QueueTree::Entries, &ek)?;
    bump(tx, &token.insight_id, -1)
}

/// Removes the items of `tokens` that are current; a token that is not fails alone (its
/// `Conflict` is its result, the transaction goes on).
pub fn ack_many<T: QueueTx>(tx: &mut T, tokens: &[LeaseToken]) -> Result<Vec<Result<(), Error>>, T::Error> {
    let mut results = Vec::with_capacity(tokens.len());
    let mut removed: Vec<(&str, i64)> = Vec::new();
    for token in tokens {
        let (ek, entry) = match lookup(tx, token)? {
            Ok(found) => found,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        tx.remove(QueueTree::Order, &order_key(&token.insight_id, entry.slot(), entry.seq))?;
        tx.remove(QueueTree::Entries, &ek)?;
        match removed.iter_mut().find(|(q, _)| *q == token.insight_id) {
            Some((_, n)) => *n += 1,
            None => removed.push((token.insight_id.as_str(), 1)),
        }
        results.push(Ok(()));
    }
    for (insight, n) in removed {
        bump(tx, insight, -n)?;
    }
    Ok(results)
}

/// Removes agenda `agenda_id` from queue `insight_id`, leased or not; whether it was there.
pub fn remove<T: QueueTx>(tx: &mut T, insight_id: &str, agenda_id: &str) -> Result<bool, T::Error> {
    let ek = entry_key(insight_id, agenda_id);
    let Some(v) = tx.get(QueueTree::Entries, &ek)? else { return Ok(false) };
    let entry = QueueEntry::decode(tx.name(QueueTree::Entries), &ek, v.as_ref()).map_err(T::abort)?;
    tx.remove(QueueTree::Entries, &ek)?;
    tx.remove(QueueTree::Order, &order_key(insight_id, entry.slot(), entry.seq))?;
    bump(tx, insight_id, -1)?;
    Ok(true)
}

/// The lease that an `expired` scan found at `slot seq` of queue `insight_id` for `agenda`, read
/// again from its entry (stored under `ek` in `entries`): `None` if the item was acked, extended,
/// released or delivered again since the scan.
pub fn expired_lease(
    entries: &str,
    insight_id: &str,
    agenda: String,
    slot: Millis,
    seq: u64,
    ek: &[u8],
    stored: Option<&[u8]>,
) -> Result<Option<Lease>, Error> {
    let Some(v) = stored else { return Ok(None) };
    let entry = QueueEntry::decode(entries, ek, v)?;
    let Some((receipt, deadline)) = entry.lease.clone() else { return Ok(None) };
    if deadline != slot || entry.seq != seq {
        return Ok(None);
    }
    Ok(Some(Lease {
        token: LeaseToken { insight_id: insight_id.to_owned(), agenda_id: agenda, receipt, epoch: entry.epoch },
        item: entry.item(entries, ek)?,
        deadline,
    }))
}
