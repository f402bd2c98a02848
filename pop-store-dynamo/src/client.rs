//! The shared connection: the SDK client, table names, the bounded retry loop and the request
//! counter.

use crate::config::DynamoConfig;
use crate::error::{DynamoError, is_transient};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many DynamoDB requests were sent, in total and per API action (`GetItem`, `Query`, …).
/// Every attempt counts, retries included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// Requests per DynamoDB action.
    pub by_action: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// The requests made between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        let by_action = self
            .by_action
            .iter()
            .map(|(k, v)| (k.clone(), v - earlier.by_action.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        RequestCounts { total: self.total - earlier.total, by_action }
    }
}

/// Counts requests as they go on the wire (an SDK interceptor, so SDK-internal requests count too).
#[derive(Debug, Default)]
pub(crate) struct RequestCounter {
    total: AtomicU64,
    by_action: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounter {
    pub(crate) fn snapshot(&self) -> RequestCounts {
        let by_action = self.by_action.lock().unwrap_or_else(|p| p.into_inner()).clone();
        RequestCounts { total: self.total.load(Ordering::Relaxed), by_action }
    }
}

#[derive(Debug)]
struct CountingInterceptor(Arc<RequestCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "pop-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.total.fetch_add(1, Ordering::Relaxed);
        // DynamoDB's JSON protocol names the action in `X-Amz-Target: DynamoDB_20120810.PutItem`.
        let action = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        *self.0.by_action.lock().unwrap_or_else(|p| p.into_inner()).entry(action).or_insert(0) += 1;
        Ok(())
    }
}

/// The names of POP's four tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Every stored object (`<prefix>objects`).
    pub objects: String,
    /// Ready entries, one per agenda (`<prefix>ready`).
    pub ready: String,
    /// Queue items (`<prefix>queue`).
    pub queue: String,
    /// Named leases (`<prefix>leases`).
    pub leases: String,
}

impl TableNames {
    /// The names for a configuration's prefix.
    pub fn new(cfg: &DynamoConfig) -> Self {
        Self {
            objects: cfg.table_name("objects"),
            ready: cfg.table_name("ready"),
            queue: cfg.table_name("queue"),
            leases: cfg.table_name("leases"),
        }
    }
}

/// What every handle shares.
#[derive(Debug)]
pub(crate) struct Db {
    pub(crate) client: Client,
    pub(crate) cfg: DynamoConfig,
    pub(crate) tables: TableNames,
    pub(crate) counter: Arc<RequestCounter>,
    /// The shard count, once checked against the tables ([`Db::shards`]).
    pub(crate) layout: tokio::sync::OnceCell<u32>,
}

impl Db {
    pub(crate) async fn connect(
        cfg: DynamoConfig,
        customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
    ) -> pop_core::Result<Self> {
        cfg.validate()?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        );
        if let Some(region) = &cfg.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some(c) = &cfg.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "pop-static",
            ));
        }
        let shared = loader.load().await;
        let counter = Arc::new(RequestCounter::default());
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared)
            // Retries are ours (`Db::call`): bounded, and they also cover cancelled transactions.
            .retry_config(RetryConfig::disabled())
            .interceptor(CountingInterceptor(counter.clone()));
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        let client = Client::from_conf(customize(builder).build());
        let tables = TableNames::new(&cfg);
        Ok(Self { client, cfg, tables, counter, layout: tokio::sync::OnceCell::new() })
    }

    /// The wait before attempt `attempt + 1` (attempt ≥ 1): full jitter on a doubling base.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self.cfg.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = base.min(self.cfg.max_backoff);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Jitter from a v4 uuid's random bits: no extra RNG dependency.
        let r = (uuid::Uuid::new_v4().as_u128() as u64) % nanos;
        Duration::from_nanos(r.max(nanos / 4))
    }

    /// Sends a request, retrying transient failures (throttling, transaction conflicts, timeouts)
    /// up to `max_attempts` with backoff. `retry_also` marks further errors as transient (a cancelled
    /// transaction whose reasons are all conflicts or throttling).
    pub(crate) async fn call<T, E, F, Fut>(
        &self,
        action: impl Fn() -> String,
        retry_also: impl Fn(&SdkError<E, HttpResponse>) -> bool,
        send: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 1;
        loop {
            match send().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.cfg.max_attempts && (is_transient(&e) || retry_also(&e)) => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(
                        action = %action(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %DynamoError::from_sdk(action(), &e),
                        "dynamodb: transient failure, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Db {
    /// [`Db::call`] retrying only transient failures, with the SDK error turned into a [`DynamoError`]
    /// that names `action`.
    pub(crate) async fn request<T, E, F, Fut>(&self, action: impl Fn() -> String, send: F) -> Result<T, DynamoError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.call(&action, no_extra, send).await.map_err(|e| DynamoError::from_sdk(action(), &e))
    }
}

/// Never retry beyond the transient codes.
pub(crate) fn no_extra<E, R>(_: &SdkError<E, R>) -> bool {
    false
}
