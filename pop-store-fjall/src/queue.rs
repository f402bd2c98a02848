//! [`FjallQueue`]: per-insight queues with leases on the same fjall keyspace as the store.
//!
//! The layout is the sled queue's (format 3): an item is one entry in `q#entries` under
//! `c(insight) agendaId` (sequence number, epoch, receipt and deadline in a binary header, then the
//! item's JSON) and one key in `q#order` under `c(insight) slot seq`, where `slot` is [`VISIBLE`]
//! for a visible item and the lease deadline for a leased one. Every change is one write
//! transaction; fjall's single-writer lock serializes them, so a receive picks and leases its items
//! in one transaction, and no two receives pick the same item.

use crate::error::fjall_err;
use crate::format::{self, corrupt};
use crate::store::{Inner, Mirrored, Tx};
use async_trait::async_trait;
use fjall::TxPartitionHandle;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::queue::{Lease, LeaseToken, QueueBackend};
use pop_core::{Error, Result};
use pop_store_kv::queue::{self as kvq, QueueTree};
use pop_store_kv::{VISIBLE, entry_key, lease_deadline as ttl, order_key, parse_order_tail};
use std::sync::Arc;

/// A queue entry as stored in `q#entries`.
type Entry = pop_store_kv::QueueEntry;

/// Decodes the entry stored under `key` in `q#entries`.
fn decode_entry(key: &[u8], v: &[u8]) -> Result<Entry> {
    Entry::decode(format::Q_ENTRIES_PARTITION, key, v)
}

/// POP's [`QueueBackend`] on fjall; get one with [`crate::FjallStore::queue`]. Cheap to clone.
#[derive(Clone)]
pub struct FjallQueue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for FjallQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallQueue").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn decode_count(key: &[u8], v: &[u8]) -> Result<u64> {
    pop_store_kv::decode_count(format::Q_COUNT_PARTITION, key, v)
}

/// An item of `q#order`: its key, sequence number, slot and agenda.
struct Candidate {
    key: Vec<u8>,
    seq: u64,
    slot: Millis,
    agenda: String,
}

fn candidate(prefix: &[u8], key: &[u8], v: &[u8]) -> Result<Candidate> {
    let Some((slot, seq)) = parse_order_tail(&key[prefix.len()..]) else {
        return Err(corrupt(format::Q_ORDER_PARTITION, key, "expected slot(8) seq(8) after the insight"));
    };
    let agenda = std::str::from_utf8(v)
        .map_err(|_| corrupt(format::Q_ORDER_PARTITION, key, "the agenda id is not UTF-8"))?
        .to_owned();
    Ok(Candidate { key: key.to_vec(), seq, slot, agenda })
}

/// The queue's partitions in a write transaction, for `pop_store_kv::queue` (the order is
/// mirrored: see [`crate::store::Mirror`]).
struct QTx<'q, 't> {
    queue: &'q FjallQueue,
    tx: &'q mut Tx<'t>,
}

impl QTx<'_, '_> {
    fn part(&self, tree: QueueTree) -> &TxPartitionHandle {
        match tree {
            QueueTree::Entries => &self.queue.inner.q_entries,
            QueueTree::Order => &self.queue.inner.q_order,
            QueueTree::Count => &self.queue.inner.q_count,
        }
    }
}

impl kvq::QueueTx for QTx<'_, '_> {
    type Bytes = fjall::Slice;
    type Error = Error;

    fn abort(e: Error) -> Error {
        e
    }

    fn name(&self, tree: QueueTree) -> &'static str {
        match tree {
            QueueTree::Entries => format::Q_ENTRIES_PARTITION,
            QueueTree::Order => format::Q_ORDER_PARTITION,
            QueueTree::Count => format::Q_COUNT_PARTITION,
        }
    }

    fn get(&mut self, tree: QueueTree, key: &[u8]) -> Result<Option<fjall::Slice>> {
        let part = self.part(tree).clone();
        let name = self.name(tree);
        self.tx.get(&part, key).map_err(|e| fjall_err(format!("get {} in partition {name}", format::show_key(key)), e))
    }

    fn insert(&mut self, tree: QueueTree, key: &[u8], value: &[u8]) -> Result<()> {
        let part = self.part(tree).clone();
        match tree {
            QueueTree::Order => self.tx.put_mirrored(Mirrored::Order, &part, key.to_vec(), value.to_vec()),
            _ => self.tx.insert(&part, key, value),
        }
        Ok(())
    }

    fn remove(&mut self, tree: QueueTree, key: &[u8]) -> Result<()> {
        let part = self.part(tree).clone();
        match tree {
            QueueTree::Order => self.tx.remove_mirrored(Mirrored::Order, &part, key.to_vec()),
            _ => self.tx.remove(&part, key),
        }
        Ok(())
    }
}

impl FjallQueue {
    fn entries(&self) -> &TxPartitionHandle {
        &self.inner.q_entries
    }

    fn order(&self) -> &TxPartitionHandle {
        &self.inner.q_order
    }

    /// Items of `q#order` in `range` (all of the same insight), at most `limit`, from the mirror.
    fn order_range(
        &self,
        insight: &str,
        range: std::ops::Range<Vec<u8>>,
        limit: usize,
        out: &mut Vec<Candidate>,
    ) -> Result<()> {
        let prefix = format::component(insight);
        for (k, v) in self.inner.mirror().order.range(range).take(limit) {
            out.push(candidate(&prefix, k, v)?);
        }
        Ok(())
    }

    /// The end (exclusive) of the order keys of leases due at `now` or before.
    fn due_end(insight: &str, now: Millis) -> Vec<u8> {
        if now == i64::MAX {
            // every lease, those due at i64::MAX included (an order key has 16 bytes after the insight)
            let mut e = format::component(insight);
            e.extend_from_slice(&[0xFF; 17]);
            e
        } else {
            order_key(insight, now + 1, 0)
        }
    }

    /// Order entries of leases whose deadline is `<= now`, earliest first.
    fn expired_keys(&self, insight: &str, now: Millis, limit: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        if now != VISIBLE {
            self.order_range(
                insight,
                order_key(insight, VISIBLE + 1, 0)..Self::due_end(insight, now),
                limit,
                &mut out,
            )?;
        }
        Ok(out)
    }
}

#[async_trait]
impl QueueBackend for FjallQueue {
    fn backend_name(&self) -> &'static str {
        "fjall"
    }

    async fn push(&self, insight_id: &str, item: ReadyAgenda, now: Millis) -> Result<bool> {
        Ok(self.push_many(insight_id, vec![item], now).await?.first().copied().unwrap_or(false))
    }

    async fn push_many(&self, insight_id: &str, items: Vec<ReadyAgenda>, _now: Millis) -> Result<Vec<bool>> {
        if let Some(bad) = items.iter().position(|i| i.agenda_id.is_empty()) {
            return Err(Error::invalid(if items.len() == 1 {
                format!("push to queue {insight_id}: the item has no agendaId")
            } else {
                format!("push to queue {insight_id}: item {bad} of the batch has no agendaId")
            }));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let jsons = items
            .iter()
            .map(|item| serde_json::to_vec(item).map_err(|e| Error::backend("codec", e)))
            .collect::<Result<Vec<_>>>()?;
        let what = || match items.as_slice() {
            [one] => format!("push agenda {} to queue {insight_id}", one.agenda_id),
            _ => format!("push {} agendas to queue {insight_id}", items.len()),
        };
        // One transaction for the batch: one durable write instead of one per item.
        let pushed = self.inner.transaction(what, |tx| {
            let mut seq = self.inner.take_ids(tx, items.len() as u64)?;
            let mut pushed = Vec::with_capacity(items.len());
            let mut added = 0;
            for (item, json) in items.iter().zip(jsons) {
                let ek = entry_key(insight_id, &item.agenda_id);
                let present = tx
                    .contains_key(self.entries(), &ek)
                    .map_err(|e| fjall_err(format!("push to queue {insight_id}"), e))?;
                if present {
                    pushed.push(false);
                    continue;
                }
                let entry = Entry { seq, epoch: 0, lease: None, item: json };
                tx.insert(self.entries(), ek, entry.encode());
                tx.put_mirrored(
                    Mirrored::Order,
                    self.order(),
                    order_key(insight_id, VISIBLE, seq),
                    item.agenda_id.as_bytes().to_vec(),
                );
                seq += 1;
                added += 1;
                pushed.push(true);
            }
            if added > 0 {
                kvq::bump(&mut QTx { queue: self, tx }, insight_id, added)?;
            }
            Ok(pushed)
        })?;
        if pushed.contains(&true) {
            self.inner.durable().await?;
        }
        Ok(pushed)
    }

    async fn receive(&self, insight_id: &str, max: usize, ttl_ms: u64, now: Millis) -> Result<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = ttl(now, ttl_ms);
        let out = self.inner.transaction(
            || format!("receive from queue {insight_id}"),
            |tx| {
                // The first `max` visible items and every expired lease, by push order.
                // (The mirror is current: this transaction holds the writer lock.)
                let mut cands = Vec::new();
                let visible = order_key(insight_id, VISIBLE, 0)..order_key(insight_id, VISIBLE + 1, 0);
                self.order_range(insight_id, visible, max, &mut cands)?;
                cands.extend(self.expired_keys(insight_id, now, usize::MAX)?);
                cands.sort_by_key(|c| c.seq);
                cands.truncate(max);
                if cands.is_empty() {
                    return Ok(Vec::new());
                }
                // Epochs come from the persistent id counter: they grow with every delivery, across
                // acks, re-pushes and restarts.
                let first = self.inner.take_ids(tx, cands.len() as u64)?;
                let mut got = Vec::with_capacity(cands.len());
                for (epoch, c) in (first..).zip(cands) {
                    let ek = entry_key(insight_id, &c.agenda);
                    let stored = tx
                        .get(self.entries(), &ek)
                        .map_err(|e| fjall_err(format!("receive from queue {insight_id}"), e))?;
                    let Some(v) = stored else {
                        return Err(corrupt(
                            format::Q_ORDER_PARTITION,
                            &c.key,
                            "points at a queue entry that does not exist",
                        ));
                    };
                    let mut entry = decode_entry(&ek, &v)?;
                    if entry.seq != c.seq || entry.slot() != c.slot {
                        return Err(corrupt(
                            format::Q_ORDER_PARTITION,
                            &c.key,
                            format!("its entry has sequence {} and slot {}", entry.seq, entry.slot()),
                        ));
                    }
                    let item = entry.item(format::Q_ENTRIES_PARTITION, &ek)?;
                    entry.epoch = epoch;
                    let receipt = uuid::Uuid::new_v4().to_string();
                    entry.lease = Some((receipt.clone(), deadline));
                    tx.remove_mirrored(Mirrored::Order, self.order(), c.key.clone());
                    tx.put_mirrored(
                        Mirrored::Order,
                        self.order(),
                        order_key(insight_id, deadline, c.seq),
                        c.agenda.as_bytes().to_vec(),
                    );
                    tx.insert(self.entries(), ek, entry.encode());
                    got.push(Lease {
                        token: LeaseToken {
                            insight_id: insight_id.to_owned(),
                            agenda_id: c.agenda,
                            receipt,
                            epoch: entry.epoch,
                        },
                        item,
                        deadline,
                    });
                }
                Ok(got)
            },
        )?;
        if !out.is_empty() {
            self.inner.durable().await?;
        }
        Ok(out)
    }

    async fn extend(&self, token: &LeaseToken, ttl_ms: u64, now: Millis) -> Result<Millis> {
        let deadline = ttl(now, ttl_ms);
        self.inner.transaction(
            || format!("extend the lease of agenda {}", token.agenda_id),
            |tx| kvq::extend(&mut QTx { queue: self, tx }, token, deadline),
        )?;
        self.inner.durable().await?;
        Ok(deadline)
    }

    async fn ack(&self, token: &LeaseToken) -> Result<()> {
        self.inner.transaction(
            || format!("ack the lease of agenda {}", token.agenda_id),
            |tx| kvq::ack(&mut QTx { queue: self, tx }, token),
        )?;
        self.inner.durable().await
    }

    async fn ack_many(&self, tokens: &[LeaseToken]) -> Vec<Result<()>> {
        if tokens.len() <= 1 {
            let mut out = Vec::with_capacity(1);
            for token in tokens {
                out.push(self.ack(token).await);
            }
            return out;
        }
        // One transaction and one durable wait for the batch; a token that is not current fails
        // alone (its `Conflict` is its result, the transaction goes on).
        let outcome = self.inner.transaction(
            || format!("ack {} leases", tokens.len()),
            |tx| kvq::ack_many(&mut QTx { queue: self, tx }, tokens),
        );
        let results = match outcome {
            Ok(results) => results,
            Err(e) => return tokens.iter().map(|_| Err(e.copied())).collect(),
        };
        if results.iter().any(Result::is_ok) {
            if let Err(e) = self.inner.durable().await {
                return results.into_iter().map(|r| r.and_then(|()| Err(e.copied()))).collect();
            }
        }
        results
    }

    async fn release(&self, token: &LeaseToken, _now: Millis) -> Result<()> {
        self.inner.transaction(
            || format!("release the lease of agenda {}", token.agenda_id),
            |tx| kvq::release(&mut QTx { queue: self, tx }, token),
        )?;
        self.inner.durable().await
    }

    async fn len(&self, insight_id: &str) -> Result<usize> {
        let v = self
            .inner
            .q_count
            .get(insight_id.as_bytes())
            .map_err(|e| fjall_err(format!("length of queue {insight_id}"), e))?;
        match v {
            None => Ok(0),
            Some(v) => Ok(decode_count(insight_id.as_bytes(), &v)? as usize),
        }
    }

    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.entries().inner().prefix(format::component(insight_id)) {
            let (k, v) = kv.map_err(|e| fjall_err(format!("count the items of queue {insight_id} by customer"), e))?;
            let item = decode_entry(&k, &v)?.item(format::Q_ENTRIES_PARTITION, &k)?;
            *out.entry(item.customer_id).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize> {
        // The live part of the order: keys after (insight, now).
        if now == i64::MAX {
            return Ok(0);
        }
        let (from, to) = (order_key(insight_id, now + 1, 0), Self::due_end(insight_id, i64::MAX));
        Ok(self.inner.mirror().order.range(from..to).count())
    }

    async fn expired(&self, insight_id: &str, now: Millis, limit: usize) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for c in self.expired_keys(insight_id, now, limit)? {
            let ek = entry_key(insight_id, &c.agenda);
            let stored =
                self.entries().get(&ek).map_err(|e| fjall_err(format!("expired leases of {insight_id}"), e))?;
            out.extend(kvq::expired_lease(
                format::Q_ENTRIES_PARTITION,
                insight_id,
                c.agenda,
                c.slot,
                c.seq,
                &ek,
                stored.as_deref(),
            )?);
        }
        Ok(out)
    }

    async fn contains(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        self.entries()
            .contains_key(entry_key(insight_id, agenda_id))
            .map_err(|e| fjall_err(format!("look up agenda {agenda_id} in queue {insight_id}"), e))
    }

    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        let removed = self.inner.transaction(
            || format!("remove agenda {agenda_id} from queue {insight_id}"),
            |tx| kvq::remove(&mut QTx { queue: self, tx }, insight_id, agenda_id),
        )?;
        if removed {
            self.inner.durable().await?;
        }
        Ok(removed)
    }
}
