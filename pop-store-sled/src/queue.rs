//! [`SledQueue`]: per-insight queues with leases on the same sled database as the store.
//!
//! An item is one entry in `q/entries` under `c(insight) agendaId` from push to ack (its sequence
//! number, lease state and the queued `ReadyAgenda`), and one key in `q/order` under
//! `c(insight) slot seq`: `slot` is [`VISIBLE`] while the item is visible (never leased, or
//! released), so the visible items come first and in push order, and the lease deadline while it is
//! leased. A lease whose deadline has passed is visible again without any write: `receive` reads
//! the first visible items plus the expired part of the order (`slot <= now`), never the unexpired
//! leases, and `expired` reads only the expired part. Every change is one transaction over the
//! three queue trees; the fencing check (receipt and epoch of the current delivery) happens inside
//! it. A push or an ack writes two keys (plus the queue's count, once per batch), a receive three.

use crate::error::sled_err;
use crate::format::{self, corrupt, show_key};
use crate::store::{Inner, IntegrityReport};
use async_trait::async_trait;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::queue::{Lease, LeaseToken, QueueBackend};
use pop_core::{Error, Result};
use pop_store_kv::queue::{self as kvq, QueueTree};
use pop_store_kv::{VISIBLE, entry_key, lease_deadline as ttl, order_key, parse_order_tail};
use sled::Transactional;
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::sync::Arc;

/// The queue's trees.
pub(crate) struct QueueTrees {
    pub(crate) entries: Tree,
    pub(crate) order: Tree,
    pub(crate) count: Tree,
    /// Held while a receive picks and leases its items (not while it waits for the disk): concurrent
    /// receives would otherwise pick the same first visible items and all but one skip them.
    pub(crate) receiving: std::sync::Mutex<()>,
}

/// A queue entry as stored in `q/entries` (see [`crate::format`]).
pub(crate) type Entry = pop_store_kv::QueueEntry;

/// Decodes the entry stored under `key` in `q/entries`.
fn decode_entry(key: &[u8], v: &[u8]) -> Result<Entry> {
    Entry::decode(format::Q_ENTRIES_TREE, key, v)
}

/// POP's [`QueueBackend`] on sled; get one with [`crate::SledStore::queue`]. Cheap to clone.
#[derive(Clone)]
pub struct SledQueue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SledQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledQueue").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

type Tx3 = (TransactionalTree, TransactionalTree, TransactionalTree);
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

fn abort<T>(e: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn decode_count(key: &[u8], v: &[u8]) -> Result<u64> {
    pop_store_kv::decode_count(format::Q_COUNT_TREE, key, v)
}

/// The queue's trees in a transaction, for `pop_store_kv::queue`.
struct QView<'a>(&'a Tx3);

impl kvq::QueueTx for QView<'_> {
    type Bytes = sled::IVec;
    type Error = ConflictableTransactionError<Error>;

    fn abort(e: Error) -> Self::Error {
        ConflictableTransactionError::Abort(e)
    }

    fn name(&self, tree: QueueTree) -> &'static str {
        match tree {
            QueueTree::Entries => format::Q_ENTRIES_TREE,
            QueueTree::Order => format::Q_ORDER_TREE,
            QueueTree::Count => format::Q_COUNT_TREE,
        }
    }

    fn get(&mut self, tree: QueueTree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        Ok(self.tree(tree).get(key)?)
    }

    fn insert(&mut self, tree: QueueTree, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn remove(&mut self, tree: QueueTree, key: &[u8]) -> TxResult<()> {
        self.tree(tree).remove(key)?;
        Ok(())
    }
}

impl QView<'_> {
    fn tree(&self, tree: QueueTree) -> &TransactionalTree {
        match tree {
            QueueTree::Entries => &self.0.0,
            QueueTree::Order => &self.0.1,
            QueueTree::Count => &self.0.2,
        }
    }
}

/// A candidate of a receive: its order key, sequence number, slot and agenda.
struct Candidate {
    key: sled::IVec,
    seq: u64,
    slot: Millis,
    agenda: String,
}

impl SledQueue {
    fn trees(&self) -> (&Tree, &Tree, &Tree) {
        let q = &self.inner.q;
        (&q.entries, &q.order, &q.count)
    }

    /// Candidates for a receive: the first `want` visible items and every expired lease, by push order.
    fn candidates(&self, insight: &str, want: usize, now: Millis) -> Result<Vec<Candidate>> {
        let prefix = format::component(insight);
        let op = || format!("receive from queue {insight}");
        let mut out = Vec::new();
        let visible = self.inner.q.order.range(order_key(insight, VISIBLE, 0)..order_key(insight, VISIBLE + 1, 0));
        for kv in visible.take(want) {
            let (k, v) = kv.map_err(|e| sled_err(op(), e))?;
            out.push(candidate(&prefix, k, &v)?);
        }
        out.extend(self.expired_keys(insight, now, usize::MAX)?);
        out.sort_by_key(|c| c.seq);
        out.truncate(want);
        Ok(out)
    }

    /// Order entries of leases whose deadline is `<= now`, earliest first.
    fn expired_keys(&self, insight: &str, now: Millis, limit: usize) -> Result<Vec<Candidate>> {
        let prefix = format::component(insight);
        let mut out = Vec::new();
        if now == VISIBLE {
            return Ok(out);
        }
        let range = order_key(insight, VISIBLE + 1, 0)..order_key(insight, now.saturating_add(1), 0);
        for kv in self.inner.q.order.range(range) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(|e| sled_err(format!("scan expired leases of queue {insight}"), e))?;
            out.push(candidate(&prefix, k, &v)?);
        }
        if now == i64::MAX {
            // `now + 1` saturated: the leases due at i64::MAX itself
            for kv in self.inner.q.order.range(order_key(insight, i64::MAX, 0)..) {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = kv.map_err(|e| sled_err(format!("scan expired leases of queue {insight}"), e))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                out.push(candidate(&prefix, k, &v)?);
            }
        }
        Ok(out)
    }
}

fn candidate(prefix: &[u8], key: sled::IVec, v: &[u8]) -> Result<Candidate> {
    let Some((slot, seq)) = parse_order_tail(&key[prefix.len()..]) else {
        return Err(corrupt(format::Q_ORDER_TREE, &key, "expected slot(8) seq(8) after the insight"));
    };
    let agenda = std::str::from_utf8(v)
        .map_err(|_| corrupt(format::Q_ORDER_TREE, &key, "the agenda id is not UTF-8"))?
        .to_owned();
    Ok(Candidate { key, seq, slot, agenda })
}

#[async_trait]
impl QueueBackend for SledQueue {
    fn backend_name(&self) -> &'static str {
        "sled"
    }

    async fn push(&self, insight_id: &str, item: ReadyAgenda, now: Millis) -> Result<bool> {
        Ok(self.push_many(insight_id, vec![item], now).await?.first().copied().unwrap_or(false))
    }

    async fn push_many(&self, insight_id: &str, items: Vec<ReadyAgenda>, _now: Millis) -> Result<Vec<bool>> {
        self.inner.writable()?;
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
        let mut rows = Vec::with_capacity(items.len());
        for item in &items {
            let seq = self.inner.db.generate_id().map_err(|e| sled_err(format!("push to queue {insight_id}"), e))?;
            let json = serde_json::to_vec(item).map_err(|e| Error::backend("codec", e))?;
            let entry = Entry { seq, epoch: 0, lease: None, item: json };
            rows.push((
                entry_key(insight_id, &item.agenda_id),
                order_key(insight_id, VISIBLE, seq),
                entry.encode(),
                item.agenda_id.as_bytes(),
            ));
        }
        // One transaction for the batch: one durable write instead of one per item.
        let pushed = self
            .trees()
            .transaction(|tx: &Tx3| {
                let (entries, order, _) = tx;
                let mut pushed = Vec::with_capacity(rows.len());
                let mut added = 0;
                for (ek, ok, entry, agenda) in &rows {
                    if entries.get(ek)?.is_some() {
                        pushed.push(false);
                        continue;
                    }
                    entries.insert(ek.as_slice(), entry.as_slice())?;
                    order.insert(ok.as_slice(), *agenda)?;
                    added += 1;
                    pushed.push(true);
                }
                if added > 0 {
                    kvq::bump(&mut QView(tx), insight_id, added)?;
                }
                Ok(pushed)
            })
            .map_err(|e| {
                let what = match items.as_slice() {
                    [one] => format!("push agenda {} to queue {insight_id}", one.agenda_id),
                    _ => format!("push {} agendas to queue {insight_id}", items.len()),
                };
                self.inner.tx_err(e, what)
            })?;
        if pushed.contains(&true) {
            self.inner.durable().await?;
        }
        Ok(pushed)
    }

    async fn receive(&self, insight_id: &str, max: usize, ttl_ms: u64, now: Millis) -> Result<Vec<Lease>> {
        self.inner.writable()?;
        let mut out: Vec<Lease> = Vec::new();
        let deadline = ttl(now, ttl_ms);
        // Candidates are read outside the transaction; the transaction re-checks each one and
        // skips those another receiver took first. Try again while that happens.
        for _ in 0..16 {
            if out.len() >= max {
                break;
            }
            let picking = self.inner.q.receiving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cands = self.candidates(insight_id, max - out.len(), now)?;
            if cands.is_empty() {
                break;
            }
            let (got, skipped) = self
                .trees()
                .transaction(|tx: &Tx3| {
                    let (entries, order, _) = tx;
                    let mut got = Vec::new();
                    let mut skipped = 0;
                    for c in &cands {
                        // Gone or moved since the scan: another receiver, an ack, an extension.
                        if order.remove(&c.key)?.is_none() {
                            skipped += 1;
                            continue;
                        }
                        let ek = entry_key(insight_id, &c.agenda);
                        let Some(v) = entries.get(&ek)? else {
                            return abort(corrupt(
                                format::Q_ORDER_TREE,
                                &c.key,
                                "points at a queue entry that does not exist",
                            ));
                        };
                        let mut entry = match decode_entry(&ek, &v) {
                            Ok(e) => e,
                            Err(e) => return abort(e),
                        };
                        if entry.seq != c.seq || entry.slot() != c.slot {
                            return abort(corrupt(
                                format::Q_ORDER_TREE,
                                &c.key,
                                format!("its entry has sequence {} and slot {}", entry.seq, entry.slot()),
                            ));
                        }
                        let item = match entry.item(format::Q_ENTRIES_TREE, &ek) {
                            Ok(i) => i,
                            Err(e) => return abort(e),
                        };
                        // Epochs come from sled's persistent monotonic id generator: they grow with every
                        // delivery, across acks and re-pushes and across restarts.
                        entry.epoch = entries.generate_id()? + 1;
                        let receipt = uuid::Uuid::new_v4().to_string();
                        entry.lease = Some((receipt.clone(), deadline));
                        order.insert(order_key(insight_id, deadline, c.seq), c.agenda.as_bytes())?;
                        entries.insert(ek.as_slice(), entry.encode())?;
                        got.push(Lease {
                            token: LeaseToken {
                                insight_id: insight_id.to_owned(),
                                agenda_id: c.agenda.clone(),
                                receipt,
                                epoch: entry.epoch,
                            },
                            item,
                            deadline,
                        });
                    }
                    Ok((got, skipped))
                })
                .map_err(|e| self.inner.tx_err(e, format!("receive from queue {insight_id}")))?;
            drop(picking);
            out.extend(got);
            if skipped == 0 {
                break;
            }
        }
        if !out.is_empty() {
            self.inner.durable().await?;
        }
        Ok(out)
    }

    async fn extend(&self, token: &LeaseToken, ttl_ms: u64, now: Millis) -> Result<Millis> {
        self.inner.writable()?;
        let deadline = ttl(now, ttl_ms);
        self.trees()
            .transaction(|tx: &Tx3| kvq::extend(&mut QView(tx), token, deadline))
            .map_err(|e| self.inner.tx_err(e, format!("extend the lease of agenda {}", token.agenda_id)))?;
        self.inner.durable().await?;
        Ok(deadline)
    }

    async fn ack(&self, token: &LeaseToken) -> Result<()> {
        self.inner.writable()?;
        self.trees()
            .transaction(|tx: &Tx3| kvq::ack(&mut QView(tx), token))
            .map_err(|e| self.inner.tx_err(e, format!("ack the lease of agenda {}", token.agenda_id)))?;
        self.inner.durable().await
    }

    async fn ack_many(&self, tokens: &[LeaseToken]) -> Vec<Result<()>> {
        if let Err(e) = self.inner.writable() {
            return tokens.iter().map(|_| Err(e.copied())).collect();
        }
        if tokens.len() <= 1 {
            let mut out = Vec::with_capacity(1);
            for token in tokens {
                out.push(self.ack(token).await);
            }
            return out;
        }
        // One transaction and one durable wait for the batch; a token that is not current fails
        // alone (its `Conflict` is its result, the transaction goes on).
        let outcome = self.trees().transaction(|tx: &Tx3| kvq::ack_many(&mut QView(tx), tokens));
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                let e = self.inner.tx_err(e, format!("ack {} leases", tokens.len()));
                return tokens.iter().map(|_| Err(e.copied())).collect();
            }
        };
        if results.iter().any(Result::is_ok) {
            if let Err(e) = self.inner.durable().await {
                return results.into_iter().map(|r| r.and_then(|()| Err(e.copied()))).collect();
            }
        }
        results
    }

    async fn release(&self, token: &LeaseToken, _now: Millis) -> Result<()> {
        self.inner.writable()?;
        self.trees()
            .transaction(|tx: &Tx3| kvq::release(&mut QView(tx), token))
            .map_err(|e| self.inner.tx_err(e, format!("release the lease of agenda {}", token.agenda_id)))?;
        self.inner.durable().await
    }

    async fn len(&self, insight_id: &str) -> Result<usize> {
        let v = self
            .inner
            .q
            .count
            .get(insight_id.as_bytes())
            .map_err(|e| sled_err(format!("length of queue {insight_id}"), e))?;
        match v {
            None => Ok(0),
            Some(v) => Ok(decode_count(insight_id.as_bytes(), &v)? as usize),
        }
    }

    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.inner.q.entries.scan_prefix(format::component(insight_id)) {
            let (k, v) = kv.map_err(|e| sled_err(format!("count the items of queue {insight_id} by customer"), e))?;
            let item = decode_entry(&k, &v)?.item(format::Q_ENTRIES_TREE, &k)?;
            *out.entry(item.customer_id).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize> {
        // The live part of the order: keys after (insight, now).
        let prefix = format::component(insight_id);
        if now == i64::MAX {
            return Ok(0);
        }
        let mut n = 0;
        for kv in self.inner.q.order.range(order_key(insight_id, now + 1, 0)..).keys() {
            let k = kv.map_err(|e| sled_err(format!("count the leases of queue {insight_id}"), e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    async fn expired(&self, insight_id: &str, now: Millis, limit: usize) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for c in self.expired_keys(insight_id, now, limit)? {
            let ek = entry_key(insight_id, &c.agenda);
            let stored =
                self.inner.q.entries.get(&ek).map_err(|e| sled_err(format!("expired leases of {insight_id}"), e))?;
            out.extend(kvq::expired_lease(
                format::Q_ENTRIES_TREE,
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
        self.inner
            .q
            .entries
            .contains_key(entry_key(insight_id, agenda_id))
            .map_err(|e| sled_err(format!("look up agenda {agenda_id} in queue {insight_id}"), e))
    }

    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        self.inner.writable()?;
        let removed = self
            .trees()
            .transaction(|tx: &Tx3| kvq::remove(&mut QView(tx), insight_id, agenda_id))
            .map_err(|e| self.inner.tx_err(e, format!("remove agenda {agenda_id} from queue {insight_id}")))?;
        if removed {
            self.inner.durable().await?;
        }
        Ok(removed)
    }
}

/// The queue part of [`crate::SledStore::check_integrity`].
pub(crate) fn check_queue_integrity(q: &QueueTrees, r: &mut IntegrityReport) -> Result<()> {
    let e = |err| sled_err("queue integrity scan", err);
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for kv in q.entries.iter() {
        let (k, v) = kv.map_err(e)?;
        r.queue_items += 1;
        let Some((insight, agenda)) = format::split_component(&k) else {
            r.problems.push(format!("q/entries: unparsable key {}", show_key(&k)));
            continue;
        };
        let agenda = String::from_utf8_lossy(agenda).into_owned();
        *counts.entry(insight.clone()).or_default() += 1;
        let entry = match decode_entry(&k, &v) {
            Ok(x) => x,
            Err(err) => {
                r.problems.push(err.to_string());
                continue;
            }
        };
        match entry.item(format::Q_ENTRIES_TREE, &k) {
            Ok(item) if item.agenda_id == agenda => {}
            Ok(item) => r.problems.push(format!(
                "queue {insight}: the entry of agenda {agenda} holds the item of agenda {}",
                item.agenda_id
            )),
            Err(err) => r.problems.push(err.to_string()),
        }
        match q.order.get(order_key(&insight, entry.slot(), entry.seq)).map_err(e)? {
            Some(a) if a.as_ref() == agenda.as_bytes() => {}
            _ => r.problems.push(format!(
                "queue {insight}: item {} (agenda {agenda}) is not in q/order where its state puts it (leased: {})",
                entry.seq,
                entry.lease.is_some()
            )),
        }
    }
    for kv in q.order.iter() {
        let (k, v) = kv.map_err(e)?;
        let parsed = format::split_component(&k).and_then(|(insight, rest)| Some((insight, parse_order_tail(rest)?)));
        let Some((insight, (slot, seq))) = parsed else {
            r.problems.push(format!("q/order: unparsable key {}", show_key(&k)));
            continue;
        };
        let ok = match q.entries.get(entry_key(&insight, &String::from_utf8_lossy(&v))).map_err(e)? {
            Some(ev) => decode_entry(&k, &ev).is_ok_and(|en| en.seq == seq && en.slot() == slot),
            None => false,
        };
        if !ok {
            r.problems.push(format!("q/order {} points at a missing or different entry", show_key(&k)));
        }
    }
    let mut stored: std::collections::BTreeMap<String, u64> = Default::default();
    for kv in q.count.iter() {
        let (k, v) = kv.map_err(e)?;
        let insight = String::from_utf8_lossy(&k).into_owned();
        stored.insert(insight, format::u64_from(&v).unwrap_or(u64::MAX));
    }
    if stored != counts {
        r.problems.push(format!("q/count {stored:?} differs from the items counted {counts:?}"));
    }
    Ok(())
}

/// Rewrites a format-2 queue (`q/items`, `q/visible`, `q/deadline`, `q/dedup` with JSON entries)
/// into `q/entries` and `q/order` (see [`crate::format`]); the caller records the format and drops
/// the old trees. The new trees are cleared first, so an upgrade cut short starts over; the counts
/// do not change.
pub(crate) fn upgrade_queue(db: &sled::Db, q: &QueueTrees) -> Result<usize> {
    /// A format-2 queue entry.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OldEntry {
        item: ReadyAgenda,
        epoch: u64,
        receipt: Option<String>,
        deadline: Option<Millis>,
    }
    let open = |name: &str| db.open_tree(name).map_err(|e| sled_err(format!("upgrade the queue: open tree {name}"), e));
    let op = || "upgrade the queue to format 3".to_owned();
    q.entries.clear().map_err(|e| sled_err(op(), e))?;
    q.order.clear().map_err(|e| sled_err(op(), e))?;
    let items = open(format::Q_ITEMS_TREE)?;
    let mut moved = 0;
    for kv in items.iter() {
        let (k, v) = kv.map_err(|e| sled_err(op(), e))?;
        let Some((insight, rest)) = format::split_component(&k) else {
            return Err(corrupt(format::Q_ITEMS_TREE, &k, "unparsable key"));
        };
        let seq = format::u64_from(rest)
            .filter(|_| rest.len() == 8)
            .ok_or_else(|| corrupt(format::Q_ITEMS_TREE, &k, "the key has no sequence number"))?;
        let old: OldEntry = serde_json::from_slice(&v).map_err(|e| corrupt(format::Q_ITEMS_TREE, &k, e.to_string()))?;
        let lease = match (old.receipt, old.deadline) {
            (Some(r), Some(d)) => Some((r, d.max(VISIBLE + 1))),
            _ => None,
        };
        let item = serde_json::to_vec(&old.item).map_err(|e| Error::backend("codec", e))?;
        let entry = Entry { seq, epoch: old.epoch, lease, item };
        let agenda = old.item.agenda_id.as_bytes();
        q.order.insert(order_key(&insight, entry.slot(), seq), agenda).map_err(|e| sled_err(op(), e))?;
        q.entries.insert(entry_key(&insight, &old.item.agenda_id), entry.encode()).map_err(|e| sled_err(op(), e))?;
        moved += 1;
    }
    db.flush().map_err(|e| sled_err(op(), e))?;
    Ok(moved)
}
