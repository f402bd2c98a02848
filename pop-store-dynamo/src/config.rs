//! Connection and behaviour options.

use std::time::Duration;

/// Static credentials, for local servers (moto, dynalite, DynamoDB Local) or tests.
///
/// Leave [`DynamoConfig::credentials`] `None` against AWS: the default provider chain (environment,
/// profile, web identity, ECS, IMDS) is used then.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token, if any.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &self.session_token.as_ref().map(|_| "** redacted **"))
            .finish()
    }
}

/// Options of a [`crate::DynamoBackend`].
///
/// ```
/// use pop_store_dynamo::DynamoConfig;
/// use std::time::Duration;
/// let cfg = DynamoConfig::local("http://127.0.0.1:8000")
///     .table_prefix("staging_pop_")
///     .max_attempts(6)
///     .backoff(Duration::from_millis(20), Duration::from_secs(1));
/// assert_eq!(cfg.table_prefix, "staging_pop_");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// Send requests here instead of the region's AWS endpoint (a local server, a VPC endpoint).
    pub endpoint: Option<String>,
    /// The AWS region; `None` takes it from the environment / profile, and `us-east-1` if neither
    /// says.
    pub region: Option<String>,
    /// Prepended to every table name (`pop_` gives `pop_objects`, `pop_ready`, `pop_queue`,
    /// `pop_leases`). Lets several POP deployments share one account.
    pub table_prefix: String,
    /// Fixed credentials (local servers, tests); `None` uses the default AWS provider chain.
    pub credentials: Option<StaticCredentials>,
    /// The most attempts of one request when DynamoDB throttles (`ProvisionedThroughputExceeded`,
    /// `ThrottlingException`, `RequestLimitExceeded`), a transaction is cancelled by a concurrent one
    /// (`TransactionConflict`), or the server has a transient fault. At least 1.
    pub max_attempts: u32,
    /// The first retry waits up to this long (full jitter, doubling per attempt).
    pub initial_backoff: Duration,
    /// No retry waits longer than this.
    pub max_backoff: Duration,
    /// How long [`crate::DynamoBackend::ensure_tables`] waits for tables and indexes to become ACTIVE.
    pub table_wait: Duration,
    /// How many partition key values (shards) each insight's queue and ready index are spread over,
    /// by a hash of the agenda id (default [`DEFAULT_SHARDS`], at most [`MAX_SHARDS`]).
    ///
    /// DynamoDB serves about 1,000 writes/s per partition key value; one insight writes its queue
    /// partition 3 times and its ready index 2 times per agenda, so one shard caps an insight near
    /// 330 agendas/s and `S` shards near `S` × 330. Choose `S` ≈ (the hot-key writes per second
    /// one insight must sustain) ÷ 800 (a margin under 1,000), i.e. ≈ agendas/s × 3 ÷ 800, rounded
    /// up: 1 up to ≈ 250 agendas/s, 8 up to ≈ 2,100. Reads that see a whole insight (receive, queue
    /// counts, the ready listing) send one `Query` per shard, in parallel, so more shards cost reads.
    ///
    /// **Fixed for the tables' life**: the count is recorded in the objects table (item
    /// `_pop#format`) when the tables are first used, and a process configured with another count is
    /// refused with [`pop_core::Error::Unsupported`] naming both.
    pub shards: u32,
}

/// The default of [`DynamoConfig::shards`].
pub const DEFAULT_SHARDS: u32 = 8;

/// The most [`DynamoConfig::shards`]: every whole-insight read sends one `Query` per shard.
pub const MAX_SHARDS: u32 = 64;

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            table_prefix: "pop_".to_owned(),
            credentials: None,
            max_attempts: 8,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(2),
            table_wait: Duration::from_secs(300),
            shards: DEFAULT_SHARDS,
        }
    }
}

impl DynamoConfig {
    /// AWS, with the region and credentials of the environment.
    pub fn aws() -> Self {
        Self::default()
    }

    /// A local DynamoDB-compatible server at `endpoint` (e.g. `http://127.0.0.1:8000`), region
    /// `us-east-1` and dummy credentials.
    pub fn local(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            region: Some("us-east-1".to_owned()),
            credentials: Some(StaticCredentials {
                access_key_id: "pop-local".to_owned(),
                secret_access_key: "pop-local".to_owned(),
                session_token: None,
            }),
            ..Self::default()
        }
    }

    /// From the environment: `POP_DYNAMODB_ENDPOINT` (a local server; `None` when unset or empty),
    /// `POP_DYNAMODB_REGION`, `POP_DYNAMODB_TABLE_PREFIX`. With an endpoint and no AWS credentials in
    /// the environment, dummy credentials are used (local servers accept anything).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut cfg = match var("POP_DYNAMODB_ENDPOINT") {
            Some(endpoint) if var("AWS_ACCESS_KEY_ID").is_none() => Self::local(endpoint),
            Some(endpoint) => Self { endpoint: Some(endpoint), ..Self::default() },
            None => Self::default(),
        };
        if let Some(region) = var("POP_DYNAMODB_REGION") {
            cfg.region = Some(region);
        }
        if let Some(prefix) = var("POP_DYNAMODB_TABLE_PREFIX") {
            cfg.table_prefix = prefix;
        }
        cfg
    }

    /// Sets the endpoint override.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the table-name prefix.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Sets fixed credentials.
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        });
        self
    }

    /// Sets the attempt bound for throttled and conflicting requests.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the first and the longest retry wait.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Sets how many shards each insight's queue and ready index are spread over (see
    /// [`DynamoConfig::shards`]; fixed for the tables' life).
    pub fn shards(mut self, shards: u32) -> Self {
        self.shards = shards;
        self
    }

    /// The full name of one of POP's tables (`objects`, `ready`, `queue`, `leases`).
    pub fn table_name(&self, table: &str) -> String {
        format!("{}{}", self.table_prefix, table)
    }

    /// Checks the options, naming the one that is wrong.
    pub fn validate(&self) -> pop_core::Result<()> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push(pop_core::Problem::new("max_attempts must be at least 1").field("max_attempts"));
        }
        if self.initial_backoff > self.max_backoff {
            problems.push(
                pop_core::Problem::new(format!(
                    "initial_backoff ({:?}) is longer than max_backoff ({:?})",
                    self.initial_backoff, self.max_backoff
                ))
                .field("initial_backoff"),
            );
        }
        // DynamoDB table names: 3-255 characters of [a-zA-Z0-9_.-]; the longest suffix is 7.
        if !self.table_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            problems.push(
                pop_core::Problem::new(format!(
                    "table_prefix {:?} may only hold letters, digits, '_', '-' and '.' (DynamoDB table names)",
                    self.table_prefix
                ))
                .field("table_prefix"),
            );
        }
        if self.table_prefix.len() > 240 {
            problems.push(
                pop_core::Problem::new("table_prefix is longer than 240 characters (table names end at 255)")
                    .field("table_prefix"),
            );
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            problems.push(
                pop_core::Problem::new(format!(
                    "shards is {}; it must be between 1 and {MAX_SHARDS} (about the hot-key writes per second of \
                     one insight ÷ 800)",
                    self.shards
                ))
                .field("shards"),
            );
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(
                pop_core::Problem::new(format!("endpoint {endpoint:?} must start with http:// or https://"))
                    .field("endpoint"),
            );
        }
        if problems.is_empty() { Ok(()) } else { Err(pop_core::Error::problems(problems)) }
    }
}
