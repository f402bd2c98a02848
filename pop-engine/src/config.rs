//! Configuration of a POP instance and of its pool workers.

use pop_core::validate::ValidationOptions;
use std::time::Duration;

/// Settings of one POP instance. `Default` gives values that suit an embedded instance.
#[derive(Debug, Clone)]
pub struct PopConfig {
    /// This instance's name in scheduler leases and logs (default: a random id).
    pub instance_id: String,
    /// How often each insight's queue is refilled (submissions also wake the scheduler).
    pub scheduler_interval: Duration,
    /// How long the per-insight scheduler lease lasts (renewed every run).
    pub scheduler_lease: Duration,
    /// How long a pulled agenda is leased before another worker may take it.
    pub lease_ttl: Duration,
    /// How often a running agenda's lease is extended and its progress re-sent.
    pub heartbeat: Duration,
    /// Operations of one agenda running at once.
    pub parallelism: usize,
    /// Whether a failed operation cancels the agenda's running ones.
    pub fail_fast: bool,
    /// How often expired leases are reclaimed.
    pub reclaim_interval: Duration,
    /// How often WAITING agendas found in neither the ready set nor a queue are re-queued.
    pub repair_interval: Duration,
    /// Limits checked at submission.
    pub validation: ValidationOptions,
    /// The most ready entries the scheduler hands an algorithm for one insight per pass: the whole
    /// ready set's first entries, or, for an algorithm in run order, the heads of the runs
    /// ([`pop_core::store::Store::ready_heads`]; how much a store reads to find them is its own:
    /// sled, fjall and the memory store seek from run to run, DynamoDB lists its keys-only index).
    pub ready_read_limit: usize,
    /// The half-life of the agenda costs kept per insight and customer for cost-weighted
    /// scheduling (see [`crate::costs`]): a cost recorded this long ago weighs half as much.
    pub cost_half_life: Duration,
}

impl Default for PopConfig {
    fn default() -> Self {
        Self {
            instance_id: format!("pop-{}", uuid::Uuid::new_v4().simple()),
            scheduler_interval: Duration::from_millis(250),
            scheduler_lease: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            parallelism: 50,
            fail_fast: false,
            reclaim_interval: Duration::from_secs(5),
            repair_interval: Duration::from_secs(60),
            validation: ValidationOptions::default(),
            ready_read_limit: 100_000,
            cost_half_life: Duration::from_secs(600),
        }
    }
}

/// Settings of one pool worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The insights (queues) it pulls from.
    pub insights: Vec<String>,
    /// Agendas asked for per pull.
    pub pull_count: usize,
    /// Pause after an empty pull.
    pub pull_wait: Duration,
    /// Agendas running at once in this worker.
    pub max_running: usize,
    /// Resource-aware admission: the pool's capacity, the agendas' demands and the backfill bound
    /// (see [`crate::worker::Capacity`]). `None`: every pulled agenda starts (up to `max_running`).
    pub capacity: Option<crate::worker::Capacity>,
}

impl WorkerConfig {
    /// A worker for these insights with default limits.
    pub fn for_insights<I, S>(insights: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            insights: insights.into_iter().map(Into::into).collect(),
            pull_count: 4,
            pull_wait: Duration::from_millis(100),
            max_running: 16,
            capacity: None,
        }
    }
}
