use super::{Millis, is_false, is_zero_u64, null_default, owned_object};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn one() -> u32 {
    1
}

fn weight_or_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or(1).max(1))
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

/// A customer (`Customer`): the tenant on whose behalf agendas run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// Id (for submissions to work, `id == customerId`: a customer owns itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// Billing code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_code: Option<String>,
    /// The resource pool that processes this customer's work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool_id: Option<String>,
    /// Extension: fair-share weight (default 1).
    #[serde(default = "one", deserialize_with = "weight_or_one", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// Extension: the most agendas of this customer queued or running at once in any one insight
    /// (its queue's items, waiting or leased), across every instance and pool. At the limit the
    /// scheduler skips the customer (others go on) until one of its agendas finishes. Unset: no
    /// limit. (Named after the original puller's `insight.execution.limit`.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_limit: Option<u32>,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(Customer);

impl Default for Customer {
    fn default() -> Self {
        Self {
            id: None,
            cid: None,
            customer_id: None,
            title: None,
            updated_time: None,
            added_time: None,
            billing_code: None,
            resource_pool_id: None,
            weight: 1,
            execution_limit: None,
            version: 0,
        }
    }
}

/// A resource pool (`ResourcePool`): a set of workers that pull agendas from its insights.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourcePool {
    /// Id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// Derived on read from the insights whose `resourcePoolId` is this pool; not authoritative.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub insight_ids: Vec<String>,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(ResourcePool);

/// The default `queueSize` when an insight does not set one (the original's 0 meant "never scheduled").
pub const DEFAULT_QUEUE_SIZE: u32 = 100;

/// A queue of work for a resource pool (`Insight`), with routing mappers and a scheduling algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Insight {
    /// Id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// Customers that may route work to / read this insight; compared lower-cased.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub allowed_customer_ids: Vec<String>,
    /// Readable and usable by every customer.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub is_global: bool,
    /// The pool whose workers consume this queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_pool_id: Option<String>,
    /// Queue name (informational for the embedded queue; an SQS name or URL for an SQS backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// Target number of agendas kept in the queue; missing means [`DEFAULT_QUEUE_SIZE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
    /// `FirstInFirstOut` (default), `RoundRobin`/`Fairness`, `Priority`, or a registered custom name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling_algorithm: Option<String>,
    /// Extension: the most agendas of this insight queued or running at once (its queue's items,
    /// waiting or leased), across every instance and pool; the scheduler queues no more until one
    /// finishes. Unset: no limit. (The original's puller property `insight.execution.limit`.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_limit: Option<u32>,
    /// Extension: `Priority`'s aging step for this insight, in ms of waiting per level of effective
    /// priority (`0` disables aging). Unset: the algorithm's configured step (60 s by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aging_step_ms: Option<u64>,
    /// Routing rules: `operationName`, `operationType`, `paramMap` (`key=value`) → values.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub mappers: BTreeMap<String, Vec<String>>,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(Insight);

impl Insight {
    /// The effective queue size: `queueSize`, or [`DEFAULT_QUEUE_SIZE`] when unset.
    pub fn effective_queue_size(&self) -> u32 {
        self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE)
    }

    /// The scheduling algorithm's name; `FirstInFirstOut` when unset or blank.
    pub fn algorithm_name(&self) -> &str {
        match self.scheduling_algorithm.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => "FirstInFirstOut",
        }
    }
}
