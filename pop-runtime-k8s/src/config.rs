//! Options of the Kubernetes runtime, with defaults taken from the original POP.

use pop_handler_protocol::OutputLimits;
use pop_handler_protocol::output::{DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_RESULT_BYTES};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::namespace::{NamespaceMode, NamespaceScope};

/// How the payload is handed to the handler (the shared protocol's modes).
pub use pop_handler_protocol::PayloadMode;

/// Payloads whose JSON is longer than this many bytes are compressed by default in a Pod's environment.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 32 * 1024;

/// Bounded exponential backoff for Kubernetes API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts for one call (create, get, delete, list), at least 1.
    pub attempts: u32,
    /// The first delay; doubled after each failure.
    pub initial_delay: Duration,
    /// The largest delay.
    pub max_delay: Duration,
    /// How long the watch of a running Pod may keep failing before the operation fails.
    pub watch_error_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // The original: 4 attempts with backoff for pod resource operations.
        Self {
            attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            watch_error_budget: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `n`th failure (0-based), capped at `max_delay`.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Makes the unique part of Pod names (default: a random UUID). Inject a deterministic one in tests.
pub type NameGenerator = Arc<dyn Fn() -> String + Send + Sync>;

/// A name generator counting up from 1, zero-padded (`00000001`, ...), for reproducible Pod specs.
pub fn sequential_names() -> NameGenerator {
    let next = Arc::new(AtomicU64::new(1));
    Arc::new(move || format!("{:08}", next.fetch_add(1, Ordering::Relaxed)))
}

/// A name generator of random UUIDs.
pub fn uuid_names() -> NameGenerator {
    Arc::new(|| uuid::Uuid::new_v4().to_string())
}

/// Options of [`KubeRuntime`](crate::KubeRuntime).
#[derive(Clone)]
pub struct KubeConfig {
    /// Where Pods go.
    pub namespace: NamespaceMode,
    /// The original's `pop.kubernetes.zone`: adds the node selector `{<zone>: "true"}`.
    pub zone: Option<String>,
    /// How the payload is passed (default: compressed above [`DEFAULT_COMPRESS_THRESHOLD`]).
    pub payload_mode: PayloadMode,
    /// The largest `POP_COMPRESSED_PAYLOAD_n` segment, in characters (original: 100 000).
    pub max_segment_size: usize,
    /// `LOG_LEVEL` given to handlers (original: `INFO`).
    pub log_level: String,
    /// How many of the last log lines become the diagnostic of a failed Pod (original: 10).
    pub log_tail_lines: usize,
    /// The longest log line accepted, in bytes; a longer one fails the operation (it is never held
    /// whole: the rest of the line is skipped).
    pub max_line_bytes: usize,
    /// The largest `POP_RESULT` JSON accepted, in bytes; a larger one fails the operation.
    pub max_result_bytes: usize,
    /// How long to wait for the rest of the log after the Pod has finished.
    pub log_drain_timeout: Duration,
    /// API retries.
    pub retry: RetryPolicy,
    /// Overrides the registry's `podScheduledTimeoutMs` for every type (tests, impatient pools).
    pub scheduling_timeout: Option<Duration>,
    /// Overrides the registry's `podStdoutTimeout` for every type.
    pub log_silence_timeout: Option<Duration>,
    /// Overrides the registry's `reapCompletedPods` for every type.
    pub reap_completed_pods: Option<bool>,
    /// The unique part of Pod names.
    pub name_generator: NameGenerator,
    /// The value of the `app.kubernetes.io/managed-by` label that marks POP's Pods (default `pop`);
    /// [`list`](pop_core::runtime::PodRuntime::list) and the reaper only see Pods with it.
    pub managed_by: String,
    /// Extra labels on every Pod (e.g. the pool's name).
    pub extra_labels: BTreeMap<String, String>,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            namespace: NamespaceMode::default(),
            zone: None,
            payload_mode: PayloadMode::Auto { threshold: DEFAULT_COMPRESS_THRESHOLD },
            max_segment_size: 100_000,
            log_level: "INFO".into(),
            log_tail_lines: 10,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            log_drain_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            scheduling_timeout: None,
            log_silence_timeout: None,
            reap_completed_pods: None,
            name_generator: uuid_names(),
            managed_by: "pop".into(),
            extra_labels: Default::default(),
        }
    }
}

impl std::fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConfig")
            .field("namespace", &self.namespace)
            .field("zone", &self.zone)
            .field("payload_mode", &self.payload_mode)
            .field("max_segment_size", &self.max_segment_size)
            .field("log_level", &self.log_level)
            .field("log_tail_lines", &self.log_tail_lines)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("log_drain_timeout", &self.log_drain_timeout)
            .field("retry", &self.retry)
            .field("scheduling_timeout", &self.scheduling_timeout)
            .field("log_silence_timeout", &self.log_silence_timeout)
            .field("reap_completed_pods", &self.reap_completed_pods)
            .field("managed_by", &self.managed_by)
            .field("extra_labels", &self.extra_labels)
            .finish_non_exhaustive()
    }
}

impl KubeConfig {
    /// Every Pod in one namespace.
    pub fn single_namespace(namespace: impl Into<String>) -> Self {
        Self { namespace: NamespaceMode::Single(namespace.into()), ..Self::default() }
    }

    /// One namespace per customer: `prefix + customer id`, `fallback` without a customer.
    pub fn namespace_per_customer(prefix: impl Into<String>, fallback: impl Into<String>) -> Self {
        Self {
            namespace: NamespaceMode::PerCustomer { prefix: prefix.into(), fallback: fallback.into() },
            ..Self::default()
        }
    }

    /// One namespace per insight: `prefix + insight id`, `fallback` without an insight.
    pub fn namespace_per_insight(prefix: impl Into<String>, fallback: impl Into<String>) -> Self {
        Self {
            namespace: NamespaceMode::PerInsight { prefix: prefix.into(), fallback: fallback.into() },
            ..Self::default()
        }
    }

    /// Explicit maps: the customer's namespace, else the insight's, else `default`.
    pub fn mapped_namespaces(
        by_customer: BTreeMap<String, String>,
        by_insight: BTreeMap<String, String>,
        default: impl Into<String>,
    ) -> Self {
        Self {
            namespace: NamespaceMode::Mapped { by_customer, by_insight, default: default.into() },
            ..Self::default()
        }
    }

    /// The bounds on what a handler may write to its log (each kept tail line is cut to the protocol's
    /// default of 2 048 bytes).
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_line_bytes: self.max_line_bytes,
            max_result_bytes: self.max_result_bytes,
            tail_lines: self.log_tail_lines,
            ..OutputLimits::default()
        }
    }

    /// The namespace of an operation of this customer and insight ([`NamespaceMode::namespace_for`]).
    pub fn namespace_for(&self, customer_id: Option<&str>, insight_id: Option<&str>) -> String {
        self.namespace.namespace_for(customer_id, insight_id)
    }

    /// Every problem of the options (today: the namespace names, [`NamespaceMode::validate`]) as
    /// `Error::Invalid` naming each entry, or `Ok`.
    pub fn validate(&self) -> pop_core::Result<()> {
        self.namespace.validate()
    }
}
