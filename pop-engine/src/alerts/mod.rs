//! Alerts: what an operator is told when something needs a person — an agenda failed for good (no
//! attempts left), or a resource pool stopped pulling while agendas wait for it (and again when it
//! pulls again).
//!
//! The engine's own paths raise them, nothing polls for failures: the pool service's final write
//! (the one path by which every agenda, local or remote, finishes) and the reclaimer (an agenda that
//! ran out of attempts because its workers kept dying). The stall detector watches the pull times the
//! pool service records in the engine's [`Signals`](crate::Signals) and the queues' waiting counts.
//!
//! Raising an alert never waits for its delivery: it goes into a bounded channel that a background
//! loop drains, one alert at a time, into an [`AlertSink`] (the HTTP webhook is
//! `pop_http::alerts::WebhookSink`), retrying with bounded exponential backoff; an alert that could not
//! be delivered is appended, with the last error, to the dead-letter file (JSON lines). Metrics:
//! `pop_alerts_sent_total{kind}` and `pop_alerts_failed_total{kind}` (dead-lettered or dropped);
//! [`AlertStats`] has the same counts for this engine.

mod delivery;
mod stall;

pub(crate) use delivery::deliver_loop;
pub(crate) use stall::stall_loop;

use crate::context::Ctx;
use async_trait::async_trait;
use pop_core::clock::Clock;
use pop_core::model::{AgendaProgress, Conclusion, Millis};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Something an operator should know about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Alert {
    /// An agenda finished failed with no attempts left: nothing will run it again by itself.
    #[serde(rename_all = "camelCase")]
    AgendaFailed {
        /// The agenda.
        agenda_id: String,
        /// Its owner.
        customer_id: Option<String>,
        /// The insight (queue) it ran on.
        insight_id: Option<String>,
        /// The resource pool of that insight.
        resource_pool_id: Option<String>,
        /// Its correlation id.
        cid: Option<String>,
        /// Attempts made (the last one included).
        attempts: u32,
        /// The operation that failed (none when the attempts were lost to dead workers).
        operation: Option<String>,
        /// What it said (its last diagnostic), or the agenda's last diagnostic.
        message: Option<String>,
    },
    /// A resource pool has not pulled for longer than the idle limit while agendas wait in its queues.
    #[serde(rename_all = "camelCase")]
    PoolStalled {
        /// The resource pool (none for insights that name no pool).
        resource_pool_id: Option<String>,
        /// Its insights.
        insight_ids: Vec<String>,
        /// Agendas waiting in those queues.
        waiting: usize,
        /// Time since its last pull (or since the detector started, if it never pulled), ms.
        idle_ms: u64,
    },
    /// A pool reported stalled pulls again.
    #[serde(rename_all = "camelCase")]
    PoolResumed {
        /// The resource pool (none for insights that name no pool).
        resource_pool_id: Option<String>,
        /// Its insights.
        insight_ids: Vec<String>,
        /// How long it went without a pull, ms.
        idle_ms: u64,
    },
}

impl Alert {
    /// The kind, as in the payload and the metrics' `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::AgendaFailed { .. } => "agendaFailed",
            Alert::PoolStalled { .. } => "poolStalled",
            Alert::PoolResumed { .. } => "poolResumed",
        }
    }

    /// One line for a person (the payload's `text`, which Slack shows).
    pub fn text(&self) -> String {
        let or = |o: &Option<String>, d: &str| o.clone().unwrap_or_else(|| d.to_owned());
        let pool = |p: &Option<String>, insights: &[String]| match p {
            Some(p) => format!("resource pool {p} (insights {})", insights.join(", ")),
            None => format!("the pool of insights {}", insights.join(", ")),
        };
        match self {
            Alert::AgendaFailed { agenda_id, customer_id, insight_id, attempts, operation, message, .. } => {
                let what = match operation {
                    Some(op) => format!("operation {op} failed: {}", or(message, "no message")),
                    None => or(message, "no message"),
                };
                format!(
                    "POP: agenda {agenda_id} of customer {} failed for good on insight {} after {attempts} attempt(s): {what}",
                    or(customer_id, "?"),
                    or(insight_id, "?")
                )
            }
            Alert::PoolStalled { resource_pool_id, insight_ids, waiting, idle_ms } => format!(
                "POP: {} has not pulled for {} s while {waiting} agenda(s) wait",
                pool(resource_pool_id, insight_ids),
                idle_ms / 1000
            ),
            Alert::PoolResumed { resource_pool_id, insight_ids, idle_ms } => format!(
                "POP: {} pulls again after {} s without a pull",
                pool(resource_pool_id, insight_ids),
                idle_ms / 1000
            ),
        }
    }
}

/// An alert as delivered: Slack-compatible (`text`) with the alert's fields beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertMessage {
    /// One line for a person.
    pub text: String,
    /// The instance that raised it (`PopConfig::instance_id`).
    pub instance: String,
    /// When it was raised, epoch ms.
    pub time: Millis,
    /// The alert (`kind` and its fields).
    #[serde(flatten)]
    pub alert: Alert,
}

/// Where alerts go. One call is one delivery attempt; the engine retries and dead-letters.
#[async_trait]
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert; `Err` with a message naming what went wrong (the engine retries it).
    async fn deliver(&self, message: &AlertMessage) -> std::result::Result<(), String>;
}

/// How alerts are delivered and when pools count as stalled. `Default` suits a production instance.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Delivery attempts per alert (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// The JSON-lines file undeliverable alerts are appended to (none: they are logged only).
    pub dead_letter: Option<PathBuf>,
    /// How long a pool may go without a pull while agendas wait before it counts as stalled (none:
    /// no stall detection).
    pub pool_idle: Option<Duration>,
    /// Alerts waiting for delivery at most; beyond it new ones are dropped (and counted failed).
    pub capacity: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            dead_letter: None,
            pool_idle: Some(Duration::from_secs(300)),
            capacity: 1000,
        }
    }
}

impl AlertConfig {
    /// The wait after failed attempt `n` (1-based): `backoff * 2^(n-1)`, at most `max_backoff`.
    pub fn wait_after(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Counts of this engine's alerts.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Raised (queued for delivery).
    pub raised: AtomicU64,
    /// Delivered.
    pub sent: AtomicU64,
    /// Failed delivery attempts that were retried.
    pub retried: AtomicU64,
    /// Given up: written to the dead-letter file (or logged when there is none).
    pub dead_lettered: AtomicU64,
    /// Dropped because the delivery channel was full.
    pub dropped: AtomicU64,
}

/// A snapshot of [`AlertStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatsSnapshot {
    /// Raised.
    pub raised: u64,
    /// Delivered.
    pub sent: u64,
    /// Attempts retried.
    pub retried: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Dropped.
    pub dropped: u64,
}

impl AlertStats {
    /// The counts now.
    pub fn snapshot(&self) -> AlertStatsSnapshot {
        AlertStatsSnapshot {
            raised: self.raised.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The raising side, held by the engine's context: a no-op when no sink is configured.
pub(crate) struct Alerts {
    tx: Option<mpsc::Sender<AlertMessage>>,
    instance: String,
    clock: Arc<dyn Clock>,
    pub stats: Arc<AlertStats>,
}

/// The delivering side, taken by the delivery loop when the engine starts its loops.
pub(crate) struct AlertRunner {
    pub rx: mpsc::Receiver<AlertMessage>,
    pub sink: Arc<dyn AlertSink>,
    pub config: AlertConfig,
    pub stats: Arc<AlertStats>,
}

impl Alerts {
    /// Both sides for `sink` (the runner is none without a sink).
    pub fn new(
        sink: Option<Arc<dyn AlertSink>>,
        config: &AlertConfig,
        instance: String,
        clock: Arc<dyn Clock>,
    ) -> (Self, Option<AlertRunner>) {
        let stats = Arc::new(AlertStats::default());
        let Some(sink) = sink else { return (Self { tx: None, instance, clock, stats }, None) };
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let runner = AlertRunner { rx, sink, config: config.clone(), stats: stats.clone() };
        (Self { tx: Some(tx), instance, clock, stats }, Some(runner))
    }

    /// Whether alerts go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an alert for delivery; never waits.
    pub fn raise(&self, alert: Alert) {
        let Some(tx) = &self.tx else { return };
        let kind = alert.kind();
        let message =
            AlertMessage { text: alert.text(), instance: self.instance.clone(), time: self.clock.now(), alert };
        tracing::warn!(kind, text = %message.text, "alert");
        match tx.try_send(message) {
            Ok(()) => {
                self.stats.raised.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("pop_alerts_failed_total", "kind" => kind).increment(1);
                tracing::error!(kind, error = %e, "alert dropped: the delivery queue is full or stopped");
            }
        }
    }
}

/// Raises [`Alert::AgendaFailed`] when `stored` (a progress just written) is failed with no attempts
/// left. Reads the operation rows to name the failing operation.
pub(crate) async fn agenda_finished(ctx: &Ctx, stored: &AgendaProgress) {
    if !ctx.alerts.enabled() || stored.conclusion() != Some(Conclusion::Failed) || stored.retryable() {
        return;
    }
    let Some(agenda_id) = stored.agenda_id.clone() else { return };
    let rows = match stored.id.as_deref() {
        Some(id) => ctx.operation_progress(id).await.unwrap_or_else(|e| {
            tracing::warn!(agenda_id, error = %e, "alert: could not read the operation rows; sent without them");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let failed = rows
        .iter()
        .filter(|r| r.conclusion() == Some(Conclusion::Failed))
        .min_by_key(|r| r.completed_time.unwrap_or(Millis::MAX));
    let last_message =
        |events: &[pop_core::model::DiagnosticEvent]| events.iter().rev().find_map(|d| d.message.clone());
    let message =
        failed.and_then(|r| last_message(&r.diagnostic_events)).or_else(|| last_message(&stored.diagnostic_events));
    let insight = stored.agenda_insight.as_ref();
    ctx.alerts.raise(Alert::AgendaFailed {
        agenda_id,
        customer_id: stored.customer_id.clone(),
        insight_id: insight.and_then(|i| i.insight_id.clone()),
        resource_pool_id: insight.and_then(|i| i.resource_pool_id.clone()),
        cid: stored.cid.clone(),
        attempts: stored.attempts_completed,
        operation: failed.and_then(|r| r.operation.clone()),
        message,
    });
}

#[cfg(test)]
mod tests;
