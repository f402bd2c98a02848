//! [`MemoryQueue`]: the in-memory [`QueueBackend`].

use super::{deadline, lock};
use crate::error::{Error, Result};
use crate::model::{Millis, ReadyAgenda};
use crate::queue::{Lease, LeaseToken, QueueBackend};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

const BACKEND: &str = "memory";

/// A thread-safe in-memory [`QueueBackend`]: one FIFO per insight, items leased SQS-style.
///
/// Every delivery gets a fresh UUID receipt and an epoch taken from one counter shared by all queues
/// of this backend, so epochs grow with every delivery of an item, and also across an ack and a new
/// push of the same agenda (a fencing token never goes backwards).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Queue>,
    /// The last epoch handed out.
    epoch: u64,
}

#[derive(Debug, Default)]
struct Queue {
    /// The last push sequence number.
    seq: u64,
    /// push sequence → agenda id: the receive order.
    order: BTreeMap<u64, String>,
    /// agenda id → item.
    items: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    item: ReadyAgenda,
    /// The current delivery, if the item was delivered and not released since.
    lease: Option<Delivery>,
}

#[derive(Debug, Clone)]
struct Delivery {
    receipt: String,
    epoch: u64,
    deadline: Millis,
}

impl Entry {
    fn visible(&self, now: Millis) -> bool {
        self.lease.as_ref().is_none_or(|d| d.deadline <= now)
    }

    fn lease(&self, insight_id: &str, d: &Delivery) -> Lease {
        Lease {
            token: LeaseToken {
                insight_id: insight_id.to_owned(),
                agenda_id: self.item.agenda_id.clone(),
                receipt: d.receipt.clone(),
                epoch: d.epoch,
            },
            item: self.item.clone(),
            deadline: d.deadline,
        }
    }
}

impl MemoryQueue {
    /// An empty set of queues.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lost(token: &LeaseToken, action: &str) -> Error {
    Error::Conflict(format!(
        "{action} agenda {} in the queue of insight {}: lease epoch {} is no longer held (the item was acked, \
         released, removed or delivered again)",
        token.agenda_id, token.insight_id, token.epoch
    ))
}

impl State {
    /// The entry whose current delivery `token` is, or `Conflict`.
    fn current(&mut self, token: &LeaseToken, action: &str) -> Result<(&mut Queue, u64)> {
        let queue = self.queues.get_mut(&token.insight_id).ok_or_else(|| lost(token, action))?;
        let entry = queue.items.get(&token.agenda_id).ok_or_else(|| lost(token, action))?;
        match &entry.lease {
            Some(d) if d.receipt == token.receipt && d.epoch == token.epoch => {
                let seq = entry.seq;
                Ok((queue, seq))
            }
            _ => Err(lost(token, action)),
        }
    }
}

#[async_trait]
impl QueueBackend for MemoryQueue {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn push(&self, insight_id: &str, item: ReadyAgenda, _now: Millis) -> Result<bool> {
        if item.agenda_id.is_empty() {
            return Err(Error::invalid(format!(
                "push to the queue of insight {insight_id}: the item has an empty agendaId"
            )));
        }
        let mut state = lock(&self.state);
        let queue = state.queues.entry(insight_id.to_owned()).or_default();
        if queue.items.contains_key(&item.agenda_id) {
            return Ok(false);
        }
        queue.seq += 1;
        let seq = queue.seq;
        queue.order.insert(seq, item.agenda_id.clone());
        queue.items.insert(item.agenda_id.clone(), Entry { seq, item, lease: None });
        Ok(true)
    }

    async fn receive(&self, insight_id: &str, max: usize, ttl_ms: u64, now: Millis) -> Result<Vec<Lease>> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let Some(queue) = state.queues.get_mut(insight_id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for agenda_id in queue.order.values() {
            if out.len() >= max {
                break;
            }
            let Some(entry) = queue.items.get_mut(agenda_id) else { continue };
            if !entry.visible(now) {
                continue;
            }
            state.epoch += 1;
            let d = Delivery {
                receipt: uuid::Uuid::new_v4().to_string(),
                epoch: state.epoch,
                deadline: deadline(now, ttl_ms),
            };
            out.push(entry.lease(insight_id, &d));
            entry.lease = Some(d);
        }
        Ok(out)
    }

    async fn extend(&self, token: &LeaseToken, ttl_ms: u64, now: Millis) -> Result<Millis> {
        let mut state = lock(&self.state);
        let (queue, _) = state.current(token, "extend the lease of")?;
        let until = deadline(now, ttl_ms);
        if let Some(d) = queue.items.get_mut(&token.agenda_id).and_then(|e| e.lease.as_mut()) {
            d.deadline = until;
        }
        Ok(until)
    }

    async fn ack(&self, token: &LeaseToken) -> Result<()> {
        let mut state = lock(&self.state);
        let (queue, seq) = state.current(token, "ack")?;
        queue.items.remove(&token.agenda_id);
        queue.order.remove(&seq);
        Ok(())
    }

    async fn release(&self, token: &LeaseToken, _now: Millis) -> Result<()> {
        let mut state = lock(&self.state);
        let (queue, _) = state.current(token, "release")?;
        if let Some(entry) = queue.items.get_mut(&token.agenda_id) {
            entry.lease = None;
        }
        Ok(())
    }

    async fn len(&self, insight_id: &str) -> Result<usize> {
        Ok(lock(&self.state).queues.get(insight_id).map_or(0, |q| q.items.len()))
    }

    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>> {
        let state = lock(&self.state);
        let mut out = std::collections::BTreeMap::new();
        for e in state.queues.get(insight_id).into_iter().flat_map(|q| q.items.values()) {
            *out.entry(e.item.customer_id.clone()).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize> {
        let state = lock(&self.state);
        Ok(state
            .queues
            .get(insight_id)
            .map_or(0, |q| q.items.values().filter(|e| e.lease.as_ref().is_some_and(|d| d.deadline > now)).count()))
    }

    async fn expired(&self, insight_id: &str, now: Millis, limit: usize) -> Result<Vec<Lease>> {
        let state = lock(&self.state);
        let Some(queue) = state.queues.get(insight_id) else {
            return Ok(Vec::new());
        };
        Ok(queue
            .order
            .values()
            .filter_map(|id| queue.items.get(id))
            .filter_map(|e| e.lease.as_ref().filter(|d| d.deadline <= now).map(|d| e.lease(insight_id, d)))
            .take(limit)
            .collect())
    }

    async fn contains(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        Ok(lock(&self.state).queues.get(insight_id).is_some_and(|q| q.items.contains_key(agenda_id)))
    }

    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        let mut state = lock(&self.state);
        let Some(queue) = state.queues.get_mut(insight_id) else {
            return Ok(false);
        };
        match queue.items.remove(agenda_id) {
            Some(entry) => {
                queue.order.remove(&entry.seq);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
