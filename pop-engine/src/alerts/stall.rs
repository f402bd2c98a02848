//! The stall detector: a resource pool that has not pulled for `pool_idle` while agendas wait in its
//! queues is stalled (one alert), until it pulls again (one more).
//!
//! A pool is its insights grouped by `resourcePoolId` (an insight without one is a pool of its own);
//! its last pull is the latest pull the pool service recorded for any of them (in this process:
//! this engine's workers and the remote pools that call it). A pool busy with all its slots does not
//! pull either: an idle limit above the longest agenda avoids alerts for that.

use super::Alert;
use crate::context::Ctx;
use pop_core::model::Millis;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// What the detector sees of one pool at one check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolObservation {
    /// The pool's id (none: one insight without a pool).
    pub pool_id: Option<String>,
    /// Its insights.
    pub insight_ids: Vec<String>,
    /// Agendas waiting in those queues.
    pub waiting: usize,
    /// The latest pull of any of them, epoch ms.
    pub last_pull: Option<Millis>,
}

impl PoolObservation {
    fn key(&self) -> String {
        match &self.pool_id {
            Some(p) => format!("pool:{p}"),
            None => format!("insight:{}", self.insight_ids.join(",")),
        }
    }
}

/// The detector's state: which pools are stalled, and since which pull. Pure: it takes observations
/// and `now`, and says which alerts to raise.
#[derive(Debug)]
pub(crate) struct StallDetector {
    idle_ms: Millis,
    /// When watching began: the baseline of a pool never seen pulling.
    started: Millis,
    /// Stalled pools: key → the last pull before the stall.
    stalled: HashMap<String, Option<Millis>>,
}

impl StallDetector {
    pub fn new(idle: Duration, started: Millis) -> Self {
        Self { idle_ms: idle.as_millis().min(i64::MAX as u128) as Millis, started, stalled: HashMap::new() }
    }

    /// The alert this observation calls for, if any.
    pub fn observe(&mut self, obs: &PoolObservation, now: Millis) -> Option<Alert> {
        let key = obs.key();
        if let Some(before) = self.stalled.get(&key).copied() {
            let pulled_since = obs.last_pull.is_some_and(|p| before.is_none_or(|b| p > b));
            if !pulled_since {
                return None;
            }
            self.stalled.remove(&key);
            let baseline = before.unwrap_or(self.started);
            let resumed_at = obs.last_pull.unwrap_or(now);
            return Some(Alert::PoolResumed {
                resource_pool_id: obs.pool_id.clone(),
                insight_ids: obs.insight_ids.clone(),
                idle_ms: (resumed_at - baseline).max(0) as u64,
            });
        }
        let baseline = obs.last_pull.unwrap_or(self.started);
        let idle = now - baseline;
        if obs.waiting == 0 || idle < self.idle_ms {
            return None;
        }
        self.stalled.insert(key, obs.last_pull);
        Some(Alert::PoolStalled {
            resource_pool_id: obs.pool_id.clone(),
            insight_ids: obs.insight_ids.clone(),
            waiting: obs.waiting,
            idle_ms: idle.max(0) as u64,
        })
    }
}

/// One observation per pool: the insights grouped by pool, their waiting counts and last pulls.
async fn observe_pools(ctx: &Ctx) -> pop_core::Result<Vec<PoolObservation>> {
    let mut pools: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut lone = Vec::new();
    for insight in ctx.insights().await? {
        let Some(id) = insight.id else { continue };
        match insight.resource_pool_id {
            Some(pool) => pools.entry(Some(pool)).or_default().push(id),
            None => lone.push(id),
        }
    }
    let groups = pools.into_iter().chain(lone.into_iter().map(|i| (None, vec![i])));
    let now = ctx.now();
    let mut out = Vec::new();
    for (pool_id, insight_ids) in groups {
        let mut waiting = 0;
        for i in &insight_ids {
            waiting += ctx.queue.waiting(i, now).await?;
        }
        let last_pull = insight_ids.iter().filter_map(|i| ctx.signals.pulls.last(i)).max();
        out.push(PoolObservation { pool_id, insight_ids, waiting, last_pull });
    }
    Ok(out)
}

/// Checks every pool each quarter of the idle limit (between 50 ms and 10 s) until shutdown.
pub(crate) async fn stall_loop(ctx: Arc<Ctx>, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
    let mut detector = StallDetector::new(idle, ctx.now());
    loop {
        tokio::select! {
            _ = ctx.signals.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match observe_pools(&ctx).await {
            Ok(pools) => {
                let now = ctx.now();
                for obs in &pools {
                    if let Some(alert) = detector.observe(obs, now) {
                        ctx.alerts.raise(alert);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "stall detector: could not read the pools"),
        }
    }
}
