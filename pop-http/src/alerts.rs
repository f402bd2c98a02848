//! [`WebhookSink`]: alerts as JSON POSTs to a webhook (a Slack incoming webhook, or any receiver).
//!
//! The body is the engine's [`AlertMessage`]: a `text` line (what Slack shows) with the alert's
//! fields beside it (`kind`, `instance`, `time`, and per kind `agendaId`, `customerId`, `insightId`,
//! `operation`, `message`, … or `resourcePoolId`, `insightIds`, `waiting`, `idleMs`). Any 2xx
//! answer is a delivery; anything else is an error the engine retries (with backoff) and finally
//! dead-letters. Webhook URLs often carry a secret: errors name the scheme and host only.
//!
//! ```no_run
//! # fn demo() -> pop_core::Result<()> {
//! use pop_engine::{AlertConfig, EngineParts};
//! use std::sync::Arc;
//! # let (store, queue, runtime): (Arc<dyn pop_core::store::Store>, Arc<dyn pop_core::queue::QueueBackend>, Arc<dyn pop_core::runtime::PodRuntime>) = todo!();
//! let mut parts = EngineParts::new(store, queue, runtime);
//! parts.alert_sink = Some(Arc::new(pop_http::alerts::WebhookSink::new("https://hooks.slack.com/services/T0/B0/XYZ")?));
//! parts.alert_config = AlertConfig { dead_letter: Some("alerts.dead.jsonl".into()), ..AlertConfig::default() };
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use pop_core::{Error, Problem, Result};
use pop_engine::alerts::{AlertMessage, AlertSink};
use std::time::Duration;

/// Posts alerts to a webhook URL.
#[derive(Clone)]
pub struct WebhookSink {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `scheme://host[:port]`: how errors and logs name the webhook (the path may be a secret).
    shown: String,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink").field("url", &self.shown).finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink posting to `url` (http or https), each attempt bounded by 10 s.
    ///
    /// # Errors
    /// `Invalid` when the URL does not parse or is not http(s); `Backend` when the HTTP client cannot
    /// be built.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_timeout(url, Duration::from_secs(10))
    }

    /// A sink posting to `url` with each attempt bounded by `timeout`.
    ///
    /// # Errors
    /// As [`WebhookSink::new`].
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let invalid = |why: String| Error::problems(vec![Problem::new(why).field("alertWebhook")]);
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| invalid(format!("the alert webhook must be an http(s) URL: `{url}` does not parse: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(format!(
                "the alert webhook must be an http:// or https:// URL with a host, got `{url}`"
            )));
        }
        let shown = match parsed.port() {
            Some(p) => format!("{}://{}:{p}", parsed.scheme(), parsed.host_str().unwrap_or_default()),
            None => format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default()),
        };
        // reqwest is built without a default TLS provider; ring is the one the workspace uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()
            .map_err(|e| Error::backend("http", format!("building the alert webhook's HTTP client: {e}")))?;
        Ok(Self { http, url: parsed, shown })
    }
}

/// A reqwest error without its URL, with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait]
impl AlertSink for WebhookSink {
    async fn deliver(&self, message: &AlertMessage) -> std::result::Result<(), String> {
        let response = self
            .http
            .post(self.url.clone())
            .json(message)
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.shown, describe(e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(format!("POST {}: answered {status}: {}", self.shown, body.trim()))
    }
}
