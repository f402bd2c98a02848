//! The `SchedulingAlgorithm` trait: pure choice of which ready agendas of an insight to queue next.
//!
//! An algorithm sees a read-only [`ReadyView`] (the insight's ready entries per customer, in
//! (priority desc, added asc) order, with customer weights and optional observed costs), its own
//! persisted state (any JSON; the scheduler loop stores it per insight) and how many to pick. It does
//! no IO and reads no clock: `now` is in the view. Implementations live in `pop-sched`.

use crate::model::{Insight, Millis, ReadyAgenda};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One customer's ready entries, in (priority desc, added asc, agenda id) order.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerReady<'a> {
    /// The customer.
    pub customer_id: &'a str,
    /// Its fair-share weight (≥ 1).
    pub weight: u32,
    /// Its ready entries, ordered.
    pub entries: &'a [ReadyAgenda],
}

/// What an algorithm sees of an insight's ready set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyView<'a> {
    /// The insight being scheduled.
    pub insight: &'a Insight,
    /// Customers with ready work, by customer id ascending.
    pub customers: Vec<CustomerReady<'a>>,
    /// Observed cost per customer (e.g. operation-seconds), when the caller tracks it.
    pub costs: Option<&'a BTreeMap<String, f64>>,
    /// The current time, epoch ms.
    pub now: Millis,
}

/// The persisted per-insight state of an algorithm (any JSON; `Null` at first).
pub type AlgorithmState = serde_json::Value;

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

/// A scheduling algorithm. Pure: no IO, no clock reads.
pub trait SchedulingAlgorithm: Send + Sync {
    /// The name insights use in `schedulingAlgorithm`.
    fn name(&self) -> &str;

    /// Picks at most `count` distinct entries from `view`, updating `state`.
    fn pick(&self, view: &ReadyView<'_>, state: &mut AlgorithmState, count: usize) -> Vec<ReadyAgenda>;

    /// Explains the position of `agenda_id` in `view`, if it is there.
    fn explain(&self, view: &ReadyView<'_>, state: &AlgorithmState, agenda_id: &str) -> Option<Explanation>;
}
