//! [`SledQueue`]: per-insight queues with leases on the same sled database as the store.
//!
//! An item lives in `q/items` under `c(insight) seq` from push to ack. While visible it has an entry
//! in `q/visible` (same key); while leased it has one in `q/deadline` under `c(insight) deadline seq`
//! instead. A lease whose deadline has passed is visible again without any write: `receive` reads
//! the first visible items (push order) plus the expired part of the deadline index, never the
//! unexpired leases, and `expired` reads only the expired part. Every change is one transaction over
//! the five queue trees; the fencing check (receipt and epoch of the current delivery) happens inside it.

use crate::error::sled_err;
use crate::format::{self, corrupt, show_key};
use crate::store::{Inner, IntegrityReport};
use async_trait::async_trait;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::queue::{Lease, LeaseToken, QueueBackend};
use pop_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::sync::Arc;

/// The queue's trees.
pub(crate) struct QueueTrees {
    pub(crate) items: Tree,
    pub(crate) visible: Tree,
    pub(crate) deadline: Tree,
    pub(crate) dedup: Tree,
    pub(crate) count: Tree,
    /// Held while a receive picks and leases its items (not while it waits for the disk): concurrent
    /// receives would otherwise pick the same first visible items and all but one skip them.
    pub(crate) receiving: std::sync::Mutex<()>,
}

/// A queue item as stored in `q/items` (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    item: ReadyAgenda,
    /// The epoch of the latest delivery (0 before the first).
    epoch: u64,
    /// The receipt of the current delivery, while leased.
    receipt: Option<String>,
    /// The lease deadline, while leased.
    deadline: Option<Millis>,
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

type Tx5 = (TransactionalTree, TransactionalTree, TransactionalTree, TransactionalTree, TransactionalTree);
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

fn abort<T>(e: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn item_key(insight: &str, seq: u64) -> Vec<u8> {
    let mut k = format::component(insight);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn deadline_key(insight: &str, deadline: Millis, seq: u64) -> Vec<u8> {
    let mut k = format::component(insight);
    k.extend_from_slice(&format::i64_key(deadline));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn dedup_key(insight: &str, agenda: &str) -> Vec<u8> {
    let mut k = format::component(insight);
    k.extend_from_slice(agenda.as_bytes());
    k
}

fn decode_entry(key: &[u8], v: &[u8]) -> Result<Entry> {
    serde_json::from_slice(v).map_err(|e| corrupt(format::Q_ITEMS_TREE, key, e.to_string()))
}

fn encode_entry(e: &Entry) -> TxResult<Vec<u8>> {
    serde_json::to_vec(e).or_else(|err| abort(Error::backend("codec", err)))
}

fn decode_seq(tree: &str, key: &[u8], v: &[u8]) -> Result<u64> {
    format::u64_from(v)
        .filter(|_| v.len() == 8)
        .ok_or_else(|| corrupt(tree, key, format!("expected an 8-byte sequence number, found {} bytes", v.len())))
}

fn ttl(now: Millis, ttl_ms: u64) -> Millis {
    now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

fn not_current(token: &LeaseToken, why: &str) -> Error {
    Error::Conflict(format!(
        "lease of agenda {} in queue {} (epoch {}, receipt {}) is not current: {why}",
        token.agenda_id, token.insight_id, token.epoch, token.receipt
    ))
}

/// Adds `delta` to the queue's count inside a transaction.
fn bump(count: &TransactionalTree, insight: &str, delta: i64) -> TxResult<()> {
    let cur = match count.get(insight.as_bytes())? {
        Some(v) => match decode_seq(format::Q_COUNT_TREE, insight.as_bytes(), &v) {
            Ok(n) => n,
            Err(e) => return abort(e),
        },
        None => 0,
    };
    let next = (cur as i64 + delta).max(0) as u64;
    if next == 0 {
        count.remove(insight.as_bytes())?;
    } else {
        count.insert(insight.as_bytes(), &next.to_be_bytes())?;
    }
    Ok(())
}

/// Looks up the item of `token` and checks that the token is its current delivery.
fn current(tx: &Tx5, token: &LeaseToken) -> TxResult<(u64, Vec<u8>, Entry)> {
    match lookup(tx, token)? {
        Ok(found) => Ok(found),
        Err(e) => abort(e),
    }
}

/// [`current`] without aborting the transaction when the token is not current: that is the inner
/// `Conflict` (a corrupt value still aborts).
fn lookup(tx: &Tx5, token: &LeaseToken) -> TxResult<Result<(u64, Vec<u8>, Entry)>> {
    let (items, _, _, dedup, _) = tx;
    let dk = dedup_key(&token.insight_id, &token.agenda_id);
    let Some(seq) = dedup.get(&dk)? else {
        return Ok(Err(not_current(token, "the agenda is no longer in the queue")));
    };
    let seq = match decode_seq(format::Q_DEDUP_TREE, &dk, &seq) {
        Ok(s) => s,
        Err(e) => return abort(e),
    };
    let ik = item_key(&token.insight_id, seq);
    let Some(v) = items.get(&ik)? else {
        return abort(corrupt(format::Q_DEDUP_TREE, &dk, "points at a queue item that does not exist"));
    };
    let entry = match decode_entry(&ik, &v) {
        Ok(e) => e,
        Err(e) => return abort(e),
    };
    if entry.receipt.as_deref() != Some(token.receipt.as_str()) || entry.epoch != token.epoch {
        return Ok(Err(not_current(
            token,
            &format!(
                "the item's current delivery is epoch {}{}",
                entry.epoch,
                if entry.receipt.is_none() { " (not leased)" } else { "" }
            ),
        )));
    }
    Ok(Ok((seq, ik, entry)))
}

impl SledQueue {
    fn trees(&self) -> (&Tree, &Tree, &Tree, &Tree, &Tree) {
        let q = &self.inner.q;
        (&q.items, &q.visible, &q.deadline, &q.dedup, &q.count)
    }

    /// Candidate sequence numbers for a receive: the first `want` visible items and every expired
    /// lease, by push order.
    fn candidates(&self, insight: &str, want: usize, now: Millis) -> Result<Vec<(u64, Option<Millis>)>> {
        let prefix = format::component(insight);
        let op = || format!("receive from queue {insight}");
        let mut out = Vec::new();
        for kv in self.inner.q.visible.scan_prefix(&prefix).keys().take(want) {
            let k = kv.map_err(|e| sled_err(op(), e))?;
            let seq = decode_seq(format::Q_VISIBLE_TREE, &k, &k[prefix.len()..])?;
            out.push((seq, None));
        }
        for (deadline, seq) in self.expired_keys(insight, now, usize::MAX)? {
            out.push((seq, Some(deadline)));
        }
        out.sort();
        out.truncate(want);
        Ok(out)
    }

    /// (deadline, seq) of leases whose deadline is `<= now`, earliest first.
    fn expired_keys(&self, insight: &str, now: Millis, limit: usize) -> Result<Vec<(Millis, u64)>> {
        let prefix = format::component(insight);
        let mut out = Vec::new();
        for kv in self.inner.q.deadline.scan_prefix(&prefix).keys() {
            if out.len() >= limit {
                break;
            }
            let k = kv.map_err(|e| sled_err(format!("scan expired leases of queue {insight}"), e))?;
            let rest = &k[prefix.len()..];
            let (Some(deadline), Some(seq), 16) =
                (format::i64_from_key(rest), rest.get(8..).and_then(format::u64_from), rest.len())
            else {
                return Err(corrupt(format::Q_DEADLINE_TREE, &k, "expected deadline(8) seq(8) after the insight"));
            };
            if deadline > now {
                break;
            }
            out.push((deadline, seq));
        }
        Ok(out)
    }
}

#[async_trait]
impl QueueBackend for SledQueue {
    fn backend_name(&self) -> &'static str {
        "sled"
    }

    async fn push(&self, insight_id: &str, item: ReadyAgenda, _now: Millis) -> Result<bool> {
        self.inner.writable()?;
        if item.agenda_id.is_empty() {
            return Err(Error::invalid(format!("push to queue {insight_id}: the item has no agendaId")));
        }
        let seq = self.inner.db.generate_id().map_err(|e| sled_err(format!("push to queue {insight_id}"), e))?;
        let dk = dedup_key(insight_id, &item.agenda_id);
        let ik = item_key(insight_id, seq);
        let entry = Entry { item, epoch: 0, receipt: None, deadline: None };
        let pushed = self
            .trees()
            .transaction(|tx: &Tx5| {
                let (items, visible, _, dedup, count) = tx;
                if dedup.get(&dk)?.is_some() {
                    return Ok(false);
                }
                items.insert(ik.as_slice(), encode_entry(&entry)?)?;
                visible.insert(ik.as_slice(), &[])?;
                dedup.insert(dk.as_slice(), &seq.to_be_bytes())?;
                bump(count, insight_id, 1)?;
                Ok(true)
            })
            .map_err(|e| self.inner.tx_err(e, format!("push agenda {} to queue {insight_id}", entry.item.agenda_id)))?;
        if pushed {
            self.inner.durable().await?;
        }
        Ok(pushed)
    }

    async fn push_many(&self, insight_id: &str, items: Vec<ReadyAgenda>, _now: Millis) -> Result<Vec<bool>> {
        self.inner.writable()?;
        if let Some(bad) = items.iter().position(|i| i.agenda_id.is_empty()) {
            return Err(Error::invalid(format!("push to queue {insight_id}: item {bad} of the batch has no agendaId")));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let seq = self.inner.db.generate_id().map_err(|e| sled_err(format!("push to queue {insight_id}"), e))?;
            let dk = dedup_key(insight_id, &item.agenda_id);
            let ik = item_key(insight_id, seq);
            let entry = serde_json::to_vec(&Entry { item, epoch: 0, receipt: None, deadline: None })
                .map_err(|e| Error::backend("codec", e))?;
            rows.push((seq, dk, ik, entry));
        }
        // One transaction for the batch: one durable write instead of one per item.
        let pushed = self
            .trees()
            .transaction(|tx: &Tx5| {
                let (items, visible, _, dedup, count) = tx;
                let mut pushed = Vec::with_capacity(rows.len());
                let mut added = 0;
                for (seq, dk, ik, entry) in &rows {
                    if dedup.get(dk)?.is_some() {
                        pushed.push(false);
                        continue;
                    }
                    items.insert(ik.as_slice(), entry.as_slice())?;
                    visible.insert(ik.as_slice(), &[])?;
                    dedup.insert(dk.as_slice(), &seq.to_be_bytes())?;
                    added += 1;
                    pushed.push(true);
                }
                if added > 0 {
                    bump(count, insight_id, added)?;
                }
                Ok(pushed)
            })
            .map_err(|e| self.inner.tx_err(e, format!("push {} agendas to queue {insight_id}", rows.len())))?;
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
                .transaction(|tx: &Tx5| {
                    let (items, visible, dl, _, _) = tx;
                    let mut got = Vec::new();
                    let mut skipped = 0;
                    for (seq, expired_at) in &cands {
                        let ik = item_key(insight_id, *seq);
                        let Some(v) = items.get(&ik)? else {
                            skipped += 1;
                            continue;
                        };
                        let mut entry = match decode_entry(&ik, &v) {
                            Ok(e) => e,
                            Err(e) => return abort(e),
                        };
                        match expired_at {
                            None => {
                                if entry.receipt.is_some() || visible.remove(ik.as_slice())?.is_none() {
                                    skipped += 1;
                                    continue;
                                }
                            }
                            Some(d) => {
                                if entry.deadline != Some(*d)
                                    || dl.remove(deadline_key(insight_id, *d, *seq))?.is_none()
                                {
                                    skipped += 1;
                                    continue;
                                }
                            }
                        }
                        // Epochs come from sled's persistent monotonic id generator: they grow with every
                        // delivery, across acks and re-pushes and across restarts.
                        entry.epoch = items.generate_id()? + 1;
                        let receipt = uuid::Uuid::new_v4().to_string();
                        entry.receipt = Some(receipt.clone());
                        entry.deadline = Some(deadline);
                        dl.insert(deadline_key(insight_id, deadline, *seq), &[])?;
                        items.insert(ik.as_slice(), encode_entry(&entry)?)?;
                        got.push(Lease {
                            token: LeaseToken {
                                insight_id: insight_id.to_owned(),
                                agenda_id: entry.item.agenda_id.clone(),
                                receipt,
                                epoch: entry.epoch,
                            },
                            item: entry.item,
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
            .transaction(|tx: &Tx5| {
                let (seq, ik, mut entry) = current(tx, token)?;
                let (items, _, dl, _, _) = tx;
                if let Some(old) = entry.deadline {
                    dl.remove(deadline_key(&token.insight_id, old, seq))?;
                }
                entry.deadline = Some(deadline);
                dl.insert(deadline_key(&token.insight_id, deadline, seq), &[])?;
                items.insert(ik.as_slice(), encode_entry(&entry)?)?;
                Ok(())
            })
            .map_err(|e| self.inner.tx_err(e, format!("extend the lease of agenda {}", token.agenda_id)))?;
        self.inner.durable().await?;
        Ok(deadline)
    }

    async fn ack(&self, token: &LeaseToken) -> Result<()> {
        self.inner.writable()?;
        self.trees()
            .transaction(|tx: &Tx5| {
                let (seq, ik, entry) = current(tx, token)?;
                let (items, _, dl, dedup, count) = tx;
                if let Some(old) = entry.deadline {
                    dl.remove(deadline_key(&token.insight_id, old, seq))?;
                }
                items.remove(ik.as_slice())?;
                dedup.remove(dedup_key(&token.insight_id, &token.agenda_id))?;
                bump(count, &token.insight_id, -1)?;
                Ok(())
            })
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
        let outcome = self.trees().transaction(|tx: &Tx5| {
            let (items, _, dl, dedup, count) = tx;
            let mut results = Vec::with_capacity(tokens.len());
            let mut removed: Vec<(&str, i64)> = Vec::new();
            for token in tokens {
                let (seq, ik, entry) = match lookup(tx, token)? {
                    Ok(found) => found,
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                };
                if let Some(old) = entry.deadline {
                    dl.remove(deadline_key(&token.insight_id, old, seq))?;
                }
                items.remove(ik.as_slice())?;
                dedup.remove(dedup_key(&token.insight_id, &token.agenda_id))?;
                match removed.iter_mut().find(|(q, _)| *q == token.insight_id) {
                    Some((_, n)) => *n += 1,
                    None => removed.push((token.insight_id.as_str(), 1)),
                }
                results.push(Ok(()));
            }
            for (insight, n) in removed {
                bump(count, insight, -n)?;
            }
            Ok(results)
        });
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
            .transaction(|tx: &Tx5| {
                let (seq, ik, mut entry) = current(tx, token)?;
                let (items, visible, dl, _, _) = tx;
                if let Some(old) = entry.deadline {
                    dl.remove(deadline_key(&token.insight_id, old, seq))?;
                }
                entry.deadline = None;
                entry.receipt = None;
                items.insert(ik.as_slice(), encode_entry(&entry)?)?;
                visible.insert(ik.as_slice(), &[])?;
                Ok(())
            })
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
            Some(v) => Ok(decode_seq(format::Q_COUNT_TREE, insight_id.as_bytes(), &v)? as usize),
        }
    }

    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.inner.q.items.scan_prefix(format::component(insight_id)) {
            let (k, v) = kv.map_err(|e| sled_err(format!("count the items of queue {insight_id} by customer"), e))?;
            let entry = decode_entry(&k, &v)?;
            *out.entry(entry.item.customer_id).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize> {
        // The live part of the deadline index: keys after (insight, now).
        let prefix = format::component(insight_id);
        let mut start = prefix.clone();
        start.extend_from_slice(&format::i64_key(now.saturating_add(1)));
        let mut n = 0;
        for kv in self.inner.q.deadline.range(start..).keys() {
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
        for (deadline, seq) in self.expired_keys(insight_id, now, limit)? {
            let ik = item_key(insight_id, seq);
            let Some(v) =
                self.inner.q.items.get(&ik).map_err(|e| sled_err(format!("expired leases of {insight_id}"), e))?
            else {
                continue; // acked since the scan
            };
            let entry = decode_entry(&ik, &v)?;
            let (Some(receipt), Some(d)) = (entry.receipt, entry.deadline) else { continue };
            if d != deadline {
                continue; // extended or delivered again since the scan
            }
            out.push(Lease {
                token: LeaseToken {
                    insight_id: insight_id.to_owned(),
                    agenda_id: entry.item.agenda_id.clone(),
                    receipt,
                    epoch: entry.epoch,
                },
                item: entry.item,
                deadline,
            });
        }
        Ok(out)
    }

    async fn contains(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        self.inner
            .q
            .dedup
            .contains_key(dedup_key(insight_id, agenda_id))
            .map_err(|e| sled_err(format!("look up agenda {agenda_id} in queue {insight_id}"), e))
    }

    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        self.inner.writable()?;
        let dk = dedup_key(insight_id, agenda_id);
        let removed = self
            .trees()
            .transaction(|tx: &Tx5| {
                let (items, visible, dl, dedup, count) = tx;
                let Some(seq) = dedup.remove(dk.as_slice())? else { return Ok(false) };
                let seq = match decode_seq(format::Q_DEDUP_TREE, &dk, &seq) {
                    Ok(s) => s,
                    Err(e) => return abort(e),
                };
                let ik = item_key(insight_id, seq);
                if let Some(v) = items.remove(ik.as_slice())? {
                    let entry = match decode_entry(&ik, &v) {
                        Ok(e) => e,
                        Err(e) => return abort(e),
                    };
                    if let Some(d) = entry.deadline {
                        dl.remove(deadline_key(insight_id, d, seq))?;
                    }
                }
                visible.remove(ik.as_slice())?;
                bump(count, insight_id, -1)?;
                Ok(true)
            })
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
    for kv in q.items.iter() {
        let (k, v) = kv.map_err(e)?;
        r.queue_items += 1;
        let Some((insight, rest)) = format::split_component(&k) else {
            r.problems.push(format!("q/items: unparsable key {}", show_key(&k)));
            continue;
        };
        let Some(seq) = format::u64_from(rest) else {
            r.problems.push(format!("q/items: key {} has no sequence number", show_key(&k)));
            continue;
        };
        *counts.entry(insight.clone()).or_default() += 1;
        let entry = match decode_entry(&k, &v) {
            Ok(x) => x,
            Err(err) => {
                r.problems.push(err.to_string());
                continue;
            }
        };
        let agenda = &entry.item.agenda_id;
        match q.dedup.get(dedup_key(&insight, agenda)).map_err(e)? {
            Some(s) if s.as_ref() == seq.to_be_bytes() => {}
            _ => r.problems.push(format!("queue {insight}: item {seq} (agenda {agenda}) has no matching dedup entry")),
        }
        let in_visible = q.visible.contains_key(&k).map_err(e)?;
        match (&entry.receipt, entry.deadline) {
            (None, None) if in_visible => {}
            (Some(_), Some(d)) if !in_visible && q.deadline.contains_key(deadline_key(&insight, d, seq)).map_err(e)? => {}
            _ => r.problems.push(format!(
                "queue {insight}: item {seq} (agenda {agenda}) is in the wrong visibility index (leased: {}, visible entry: {in_visible})",
                entry.receipt.is_some()
            )),
        }
    }
    for kv in q.visible.iter() {
        let (k, _) = kv.map_err(e)?;
        if !q.items.contains_key(&k).map_err(e)? {
            r.problems.push(format!("q/visible {} points at a missing item", show_key(&k)));
        }
    }
    for kv in q.deadline.iter() {
        let (k, _) = kv.map_err(e)?;
        let ok = format::split_component(&k)
            .filter(|(_, rest)| rest.len() == 16)
            .map(|(insight, rest)| (insight, format::u64_from(&rest[8..]).unwrap_or(0)));
        match ok {
            Some((insight, seq)) if q.items.contains_key(item_key(&insight, seq)).map_err(e)? => {}
            _ => r.problems.push(format!("q/deadline {} points at a missing item", show_key(&k))),
        }
    }
    for kv in q.dedup.iter() {
        let (k, v) = kv.map_err(e)?;
        match (format::split_component(&k), format::u64_from(&v)) {
            (Some((insight, _)), Some(seq)) if q.items.contains_key(item_key(&insight, seq)).map_err(e)? => {}
            _ => r.problems.push(format!("q/dedup {} points at a missing item", show_key(&k))),
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
