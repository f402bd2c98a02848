//! Live cost accounting: what each customer's agendas cost an insight's pools, decayed over time,
//! for cost-weighted scheduling (`CostWeightedFairness`).
//!
//! * **Measured** by the pool worker: an agenda's cost is the wall time of the operations its last
//!   attempt ran (`AgendaProgress.costMs`, the sum over operations of completed − started). It is
//!   wall time, not CPU time: handlers are child processes or Pods reaped without resource usage,
//!   so their CPU seconds are not measurable here. An agenda that ran no operation (all restored
//!   from an earlier attempt) costs its attempt's wall time.
//! * **Recorded** by the resource-pool service when a pool finishes an agenda (the one path every
//!   pool takes, local or over HTTP), in this instance's cost ledger, per insight and customer.
//! * **Flushed** once per scheduler pass of every instance (whether or not it holds an insight's
//!   scheduler lease) into the store record `<insight id>#costs` (kind `InsightSchedule`), merged
//!   with a compare-and-set, so several instances add up. The record keeps, per customer, a
//!   decayed sum of costs and a decayed count of agendas: on every flush both are multiplied by
//!   `0.5^(elapsed / half-life)` ([`PopConfig::cost_half_life`](crate::PopConfig::cost_half_life),
//!   10 minutes by default), so recent agendas weigh most and a customer whose agendas got cheaper
//!   is soon charged less. Customers whose decayed count falls below 0.01 are dropped.
//! * **Handed to the algorithm** as `ReadyView::costs`: each customer's decayed mean cost per agenda
//!   (sum / count). `CostWeightedFairness` (round robin charged by cost) charges each pick of a
//!   customer its mean cost relative to the mean over the customers in the view, so over a run each
//!   backlogged customer gets a share of the pool's *time* in proportion to its weight, however
//!   long its agendas are. A customer not measured yet is charged the mean.

use crate::context::Ctx;
use pop_core::model::Millis;
use pop_core::store::{Kind, Record, WriteOp};
use pop_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// Costs recorded by this instance since its last flush: insight → customer → (sum ms, agendas).
#[derive(Debug, Default)]
pub(crate) struct CostLedger {
    pending: Mutex<HashMap<String, BTreeMap<String, CustomerCost>>>,
}

impl CostLedger {
    /// Charges one finished agenda of `customer` on `insight` `cost_ms` milliseconds.
    pub fn record(&self, insight: &str, customer: &str, cost_ms: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let c = pending.entry(insight.to_owned()).or_default().entry(customer.to_owned()).or_default();
        c.cost_ms += cost_ms as f64;
        c.agendas += 1.0;
    }

    fn take(&self) -> HashMap<String, BTreeMap<String, CustomerCost>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back what could not be flushed (added to anything recorded since).
    fn restore(&self, insight: String, costs: BTreeMap<String, CustomerCost>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let into = pending.entry(insight).or_default();
        for (customer, c) in costs {
            let e = into.entry(customer).or_default();
            e.cost_ms += c.cost_ms;
            e.agendas += c.agendas;
        }
    }
}

/// One customer's (decayed) costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCost {
    /// Decayed sum of agenda costs, ms.
    pub cost_ms: f64,
    /// Decayed count of agendas.
    pub agendas: f64,
}

impl CustomerCost {
    /// The mean cost of one agenda, ms (`None` without agendas).
    pub fn mean_ms(&self) -> Option<f64> {
        (self.agendas > 0.0 && self.cost_ms.is_finite()).then(|| self.cost_ms / self.agendas)
    }
}

/// The stored record `<insight id>#costs`: per customer, decayed costs as of `at`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightCosts {
    /// Format version (1).
    pub v: u32,
    /// When the sums were last decayed, epoch ms.
    pub at: Millis,
    /// The half-life they were decayed with, ms.
    pub half_life_ms: u64,
    /// Customer id → its decayed costs.
    pub customers: BTreeMap<String, CustomerCost>,
}

/// Decayed counts below this are dropped.
const MIN_AGENDAS: f64 = 0.01;

impl InsightCosts {
    /// Decays every sum to `now` with `half_life_ms`.
    pub fn decay_to(&mut self, now: Millis, half_life_ms: u64) {
        let elapsed = (now - self.at).max(0) as f64;
        if self.at > 0 && half_life_ms > 0 && elapsed > 0.0 {
            let f = 0.5f64.powf(elapsed / half_life_ms as f64);
            for c in self.customers.values_mut() {
                c.cost_ms *= f;
                c.agendas *= f;
            }
            self.customers.retain(|_, c| c.agendas >= MIN_AGENDAS);
        }
        self.at = now.max(self.at);
        self.half_life_ms = half_life_ms;
    }

    /// Each customer's mean cost per agenda, ms: what the algorithm gets as `ReadyView::costs`.
    pub fn means(&self) -> BTreeMap<String, f64> {
        self.customers.iter().filter_map(|(k, c)| Some((k.clone(), c.mean_ms()?))).collect()
    }
}

/// The record id of an insight's costs.
pub(crate) fn record_id(insight_id: &str) -> String {
    format!("{insight_id}#costs")
}

/// Reads an insight's stored costs (`None` when nothing was recorded yet). A record that does not
/// decode is `Corrupt`.
pub(crate) async fn read(ctx: &Ctx, insight_id: &str) -> Result<Option<(InsightCosts, u64)>> {
    let Some(r) = ctx.store.get(Kind::InsightSchedule, &record_id(insight_id)).await? else { return Ok(None) };
    let costs = serde_json::from_slice::<InsightCosts>(&r.body).map_err(|e| Error::Corrupt {
        kind: "insight costs".into(),
        id: record_id(insight_id),
        reason: e.to_string(),
    })?;
    Ok(Some((costs, r.version)))
}

/// The view's costs for `insight_id`: each customer's decayed mean cost per agenda (ms). An
/// unreadable record is logged and treated as none (the next flush replaces it).
pub(crate) async fn means(ctx: &Ctx, insight_id: &str) -> Result<Option<BTreeMap<String, f64>>> {
    match read(ctx, insight_id).await {
        Ok(Some((c, _))) => Ok(Some(c.means()).filter(|m| !m.is_empty())),
        Ok(None) => Ok(None),
        Err(e @ Error::Corrupt { .. }) => {
            tracing::warn!(insight_id, error = %e, "insight costs unreadable: scheduling without costs");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Merges this instance's recorded costs into the stored records (see the module docs). What cannot
/// be written is kept for the next flush.
pub(crate) async fn flush(ctx: &Ctx) -> Result<()> {
    let pending = ctx.costs.take();
    let mut first_error = None;
    for (insight_id, costs) in pending {
        if let Err(e) = merge(ctx, &insight_id, &costs).await {
            tracing::warn!(insight_id, error = %e, "insight costs not flushed; kept for the next pass");
            ctx.costs.restore(insight_id, costs);
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn merge(ctx: &Ctx, insight_id: &str, add: &BTreeMap<String, CustomerCost>) -> Result<()> {
    let half_life_ms = ctx.config.cost_half_life.as_millis() as u64;
    for _ in 0..8 {
        let now = ctx.now();
        let stored = match read(ctx, insight_id).await {
            Ok(s) => s,
            // Replace an unreadable record rather than never recording again.
            Err(Error::Corrupt { .. }) => {
                let version = ctx.store.get(Kind::InsightSchedule, &record_id(insight_id)).await?.map(|r| r.version);
                version.map(|v| (InsightCosts::default(), v))
            }
            Err(e) => return Err(e),
        };
        let (mut costs, version) = match stored {
            Some((c, v)) => (c, Some(v)),
            None => (InsightCosts { v: 1, ..InsightCosts::default() }, None),
        };
        costs.decay_to(now, half_life_ms);
        for (customer, c) in add {
            let e = costs.customers.entry(customer.clone()).or_default();
            e.cost_ms += c.cost_ms;
            e.agendas += c.agendas;
        }
        costs.v = 1;
        let body = serde_json::to_vec(&costs).map_err(|e| Error::backend("json", e.to_string()))?;
        let record = Record {
            kind: Kind::InsightSchedule,
            id: record_id(insight_id),
            version: 1,
            indexes: vec![],
            phase: None,
            body,
        };
        let op = match version {
            Some(v) => WriteOp::Update { record, expected_version: v },
            None => WriteOp::Create(record),
        };
        match ctx.store.write(vec![op]).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!("insight {insight_id}: costs changed under 8 attempts to merge them")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_per_half_life_and_keeps_the_mean() {
        let mut c = InsightCosts { v: 1, at: 1_000, half_life_ms: 0, customers: BTreeMap::new() };
        c.customers.insert("a".into(), CustomerCost { cost_ms: 8_000.0, agendas: 4.0 });
        c.customers.insert("b".into(), CustomerCost { cost_ms: 10.0, agendas: 0.015 });
        c.decay_to(3_000, 2_000);
        let a = c.customers["a"];
        assert!((a.cost_ms - 4_000.0).abs() < 1e-6 && (a.agendas - 2.0).abs() < 1e-9, "{a:?}");
        assert_eq!(c.means()["a"], 2_000.0);
        assert!(!c.customers.contains_key("b"), "a customer decayed below 0.01 agendas is dropped");
        assert_eq!(c.at, 3_000);
    }

    #[test]
    fn the_ledger_adds_up_and_restores() {
        let l = CostLedger::default();
        l.record("i", "a", 100);
        l.record("i", "a", 300);
        let taken = l.take();
        assert_eq!(taken["i"]["a"], CustomerCost { cost_ms: 400.0, agendas: 2.0 });
        assert!(l.take().is_empty());
        l.record("i", "a", 1);
        l.restore("i".into(), taken["i"].clone());
        assert_eq!(l.take()["i"]["a"], CustomerCost { cost_ms: 401.0, agendas: 3.0 });
    }
}
