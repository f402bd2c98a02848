//! The `QueueBackend` trait: per-insight queues of agendas handed out as leases.
//!
//! Semantics are SQS-like and implementable on sled, DynamoDB and SQS:
//!
//! * `push` is idempotent by agenda id: pushing an agenda already queued (visible or leased) is a no-op.
//! * `receive` hands out up to `n` visible items as [`Lease`]s. A leased item stays in the queue,
//!   invisible, until its deadline; then it is visible again and the next delivery has a higher `epoch`
//!   and a new `receipt`. Nothing is deleted at receive time.
//! * `ack` (delete), `extend` (postpone the deadline) and `release` (visible at once) succeed only with
//!   the receipt of the item's *current* delivery: once an item was delivered again, the old lease is
//!   dead (`Conflict`), which is what fences a zombie worker.
//! * Epochs are only required to grow across the deliveries of one queue item; after an ack or a
//!   remove, pushing the same agenda again may start over.
//! * `len` counts visible and leased items; `expired` lists leases past their deadline that were not
//!   delivered again yet (for the reclaimer).

use crate::error::Result;
use crate::model::{Millis, ReadyAgenda};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What identifies one delivery of a queue item; serializable so a lease can cross a network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseToken {
    /// The insight (queue).
    pub insight_id: String,
    /// The agenda.
    pub agenda_id: String,
    /// Unique per delivery.
    pub receipt: String,
    /// Grows with every delivery of the item: the fencing token.
    pub epoch: u64,
}

/// A delivered queue item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// Identifies this delivery.
    pub token: LeaseToken,
    /// The item as pushed.
    pub item: ReadyAgenda,
    /// Invisible until then, epoch ms.
    pub deadline: Millis,
}

/// Per-insight queues with leases.
#[async_trait]
pub trait QueueBackend: Send + Sync + 'static {
    /// The backend's name, for messages.
    fn backend_name(&self) -> &'static str;

    /// Enqueues `item` in `insight_id`'s queue; `false` if the agenda is already queued there.
    async fn push(&self, insight_id: &str, item: ReadyAgenda, now: Millis) -> Result<bool>;

    /// Enqueues several items in order, each as [`Self::push`] would (a second item for an agenda
    /// already queued is a no-op `false`). The default pushes them one after the other; a backend may
    /// do better (the sled queue writes them in one transaction, DynamoDB sends them concurrently). On
    /// an error, some items may have been pushed: pushing them again is a no-op.
    async fn push_many(&self, insight_id: &str, items: Vec<ReadyAgenda>, now: Millis) -> Result<Vec<bool>> {
        let mut pushed = Vec::with_capacity(items.len());
        for item in items {
            pushed.push(self.push(insight_id, item, now).await?);
        }
        Ok(pushed)
    }

    /// Leases up to `max` visible items, oldest push first, until `now + ttl_ms`.
    async fn receive(&self, insight_id: &str, max: usize, ttl_ms: u64, now: Millis) -> Result<Vec<Lease>>;

    /// Moves the lease's deadline to `now + ttl_ms`; returns it. `Conflict` if the lease is not current.
    async fn extend(&self, token: &LeaseToken, ttl_ms: u64, now: Millis) -> Result<Millis>;

    /// Removes the item for good. `Conflict` if the lease is not current.
    async fn ack(&self, token: &LeaseToken) -> Result<()>;

    /// Removes several items for good, each as [`Self::ack`] would, each with its own outcome (a
    /// lease that is not current is a `Conflict` for that item alone; the others are acked). The
    /// default acks them one after the other; a backend may do better (the sled queue acks them in
    /// one transaction with one durable wait).
    async fn ack_many(&self, tokens: &[LeaseToken]) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            out.push(self.ack(token).await);
        }
        out
    }

    /// Makes the item visible at once. `Conflict` if the lease is not current.
    async fn release(&self, token: &LeaseToken, now: Millis) -> Result<()>;

    /// Items in the queue, visible or leased.
    async fn len(&self, insight_id: &str) -> Result<usize>;

    /// Items in the queue (visible or leased) per customer: what per-customer execution limits
    /// count. Customers without items are absent. Reads every item of the queue (bounded by the
    /// insight's `queueSize` plus what its pools run).
    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>>;

    /// Items under a lease that has not expired at `now` (agendas a pool is running).
    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize>;

    /// Items waiting for a pool at `now`: never delivered, released, or whose lease expired. This is
    /// what an insight's `queueSize` caps (the original's SQS "approximate number of messages": its
    /// queue held only waiting work, deleted at receive).
    async fn waiting(&self, insight_id: &str, now: Millis) -> Result<usize> {
        Ok(self.len(insight_id).await?.saturating_sub(self.leased(insight_id, now).await?))
    }

    /// Up to `limit` leases whose deadline is `<= now` and that were not delivered again.
    async fn expired(&self, insight_id: &str, now: Millis, limit: usize) -> Result<Vec<Lease>>;

    /// Whether the agenda is in the queue (visible or leased).
    async fn contains(&self, insight_id: &str, agenda_id: &str) -> Result<bool>;

    /// Removes the agenda from the queue whatever its lease (cancel); `false` if it was not there.
    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool>;
}
