//! Settings of the HTTP API.

use crate::auth::AuthConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;

/// Settings of the HTTP API: authentication, limits, metrics.
#[derive(Clone)]
pub struct ApiConfig {
    /// How callers authenticate: which headers carry credentials, the gateway header, the anonymous
    /// policy. The principal itself comes from the engine's authorizer (build the engine with
    /// `AuthConfig::authorizer()`), so the library and the API share one authorization path.
    pub auth: AuthConfig,
    /// The largest request body accepted (default 10 MiB); a larger one is refused with 413.
    pub body_limit: usize,
    /// How long a request may take before it is answered with 408 (default 30 s). Event streams are
    /// exempt.
    pub request_timeout: Duration,
    /// Refuse every request that changes something (403), e.g. for a console on a read-only replica.
    pub read_only: bool,
    /// The Prometheus recorder whose metrics `/metrics` renders (install one with
    /// `metrics_exporter_prometheus::PrometheusBuilder::install_recorder`); without one `/metrics`
    /// answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// Closes the event streams (`GET /pop/progress/agenda/{id}/events`) when the server stops, so a
    /// graceful shutdown does not wait for them: call [`EventStreams::close`] with the shutdown signal.
    pub streams: EventStreams,
}

/// The handle that closes a server's open event streams (cloning shares it).
#[derive(Clone, Debug)]
pub struct EventStreams(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for EventStreams {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl EventStreams {
    /// Ends every open event stream (and those opened later): for a graceful shutdown.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.subscribe()
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("read_only", &self.read_only)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// Settings with `auth` and the default limits.
    pub fn new(auth: AuthConfig) -> Self {
        Self {
            auth,
            body_limit: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            read_only: false,
            metrics: None,
            streams: EventStreams::default(),
        }
    }
}
