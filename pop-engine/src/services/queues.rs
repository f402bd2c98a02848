//! Queue statistics of the insights a caller may read: queue depth, ready agendas per customer, the
//! scheduling algorithm and its stored state.

use super::ProgressService;
use pop_core::authz::Principal;
use pop_core::model::{Insight, Millis};
use pop_core::store::{Kind, PageRequest, StoreExt};
use pop_core::visibility::{can_read, owns};
use pop_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most ready entries a statistics call reads per insight (the rest is counted as `truncated`).
const READY_READ_LIMIT: usize = 20_000;
/// The most waiting agendas listed per insight.
const LISTED: usize = 100;

/// One insight's queue as a caller may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// The insight.
    pub insight_id: String,
    /// Its title, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The scheduling algorithm's name.
    pub algorithm: String,
    /// The queue's capacity (`queueSize`, the cap on waiting agendas).
    pub queue_size: u64,
    /// Agendas in the queue waiting for a pool (the whole insight's count: a number, no ids).
    pub queued: usize,
    /// Agendas a pool has leased (running; the whole insight's count).
    pub leased: usize,
    /// Ready agendas (not yet queued) of the customers the caller acts for.
    pub ready: usize,
    /// Ready agendas per visible customer, with the scheduler's weight.
    pub ready_by_customer: Vec<CustomerReadyCount>,
    /// The first ready agendas (of visible customers) in the order the ready set keeps them.
    pub waiting: Vec<WaitingAgenda>,
    /// Whether the ready set was larger than one statistics call reads.
    pub truncated: bool,
    /// The algorithm's stored state (per customer, so only for the insight's owner or a superuser;
    /// `null` when nothing was scheduled yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// Ready agendas of one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerReadyCount {
    /// The customer.
    pub customer_id: String,
    /// Its ready agendas.
    pub ready: usize,
}

/// A ready agenda waiting to be queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingAgenda {
    /// The agenda.
    pub agenda_id: String,
    /// Its customer.
    pub customer_id: String,
    /// Its priority.
    pub priority: i32,
    /// When it became ready (epoch ms).
    pub added: Millis,
}

impl ProgressService {
    /// The queue statistics of every insight the caller may read.
    pub async fn queue_stats_all(&self, principal: &Principal) -> Result<Vec<QueueStats>> {
        let mut out = Vec::new();
        for insight in self.ctx.insights().await? {
            if can_read(principal, &insight) {
                out.push(self.stats_of(principal, &insight).await?);
            }
        }
        Ok(out)
    }

    /// The queue statistics of one insight (404 when absent or not readable by the caller).
    pub async fn queue_stats(&self, principal: &Principal, insight_id: &str) -> Result<QueueStats> {
        let insight = self
            .ctx
            .store
            .get_obj::<Insight>(insight_id)
            .await?
            .filter(|i| can_read(principal, i))
            .ok_or_else(|| Error::not_found("insight", insight_id))?;
        self.stats_of(principal, &insight).await
    }

    async fn stats_of(&self, principal: &Principal, insight: &Insight) -> Result<QueueStats> {
        let ctx = &self.ctx;
        let insight_id = insight.id.clone().unwrap_or_default();
        let now = ctx.now();
        let queued = ctx.queue.waiting(&insight_id, now).await?;
        let leased = ctx.queue.leased(&insight_id, now).await?;
        let mut by_customer: BTreeMap<String, usize> = BTreeMap::new();
        let mut waiting = Vec::new();
        let mut ready = 0;
        let mut read = 0;
        let mut truncated = false;
        let mut cursor = None;
        loop {
            let page = ctx.store.ready_list(&insight_id, PageRequest { limit: 1000, cursor }).await?;
            read += page.items.len();
            for entry in page.items {
                if !principal.acts_for(&entry.customer_id) {
                    continue;
                }
                ready += 1;
                *by_customer.entry(entry.customer_id.clone()).or_default() += 1;
                if waiting.len() < LISTED {
                    waiting.push(WaitingAgenda {
                        agenda_id: entry.agenda_id,
                        customer_id: entry.customer_id,
                        priority: entry.priority,
                        added: entry.added,
                    });
                }
            }
            match page.next {
                Some(_) if read >= READY_READ_LIMIT => {
                    truncated = true;
                    break;
                }
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let state = if owns(principal, insight) {
            match ctx.store.get(Kind::InsightSchedule, &insight_id).await? {
                Some(r) => Some(serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)),
                None => Some(serde_json::Value::Null),
            }
        } else {
            None
        };
        Ok(QueueStats {
            insight_id,
            title: insight.title.clone(),
            algorithm: insight.algorithm_name().to_owned(),
            queue_size: u64::from(insight.effective_queue_size()),
            queued,
            leased,
            ready,
            ready_by_customer: by_customer
                .into_iter()
                .map(|(customer_id, ready)| CustomerReadyCount { customer_id, ready })
                .collect(),
            waiting,
            truncated,
            state,
        })
    }
}
