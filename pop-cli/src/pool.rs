//! `pop pool`: a resource pool on another machine. It pulls agendas from a central `pop serve` over
//! HTTP with its pool's token and runs them with local processes or Pods: leases, extension at
//! half-life, fenced progress writes, generated operations, the final write and the ack — the same
//! worker code as an in-process pool, through `pop_http::Client` instead of the engine's service.
//! It holds no store credentials and sees only what its token may. A lost connection is retried
//! with backoff; a lease lost meanwhile stops the executor (its handlers are killed).

use crate::error::{CliError, CliResult, Outcome};
use crate::setup::{CapacityArgs, RuntimeArgs};
use pop::core::model::Insight;
use pop::core::registry::HandlerRegistry;
use pop::core::store::{IndexField, PageRequest};
use pop::exec::executor::ExecutorOptions;
use pop::http::Client;
use pop::{Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Options of `pop pool`.
#[derive(Debug, clap::Args)]
pub struct PoolArgs {
    /// The central server (`pop serve`).
    #[arg(long, env = "POP_SERVER")]
    pub server: String,
    /// The pool's token (it must own the pool's insights).
    #[arg(long, env = "POP_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The resource pool: its insights are pulled (unless --insight names some).
    #[arg(long)]
    pub pool: Option<String>,
    /// An insight to pull from; repeat for several.
    #[arg(long = "insight")]
    pub insights: Vec<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Agendas this pool runs at once.
    #[arg(long, default_value_t = 16)]
    pub max_running: usize,
    #[command(flatten)]
    pub capacity: CapacityArgs,
    /// Agendas asked for per pull (1 to 100).
    #[arg(long, default_value_t = 4)]
    pub pull_count: usize,
    /// Pause after an empty pull, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub pull_wait_ms: u64,
    /// Operations of one agenda running at once.
    #[arg(long, default_value_t = 50)]
    pub parallelism: usize,
    /// How often a running agenda reports (and extends its lease), in milliseconds: well under the
    /// server's lease time.
    #[arg(long, default_value_t = 5_000)]
    pub heartbeat_ms: u64,
    /// How long a request to the server is retried through a network or server outage, in seconds
    /// (keep it under the server's lease time, 30 s by default).
    #[arg(long, default_value_t = 20)]
    pub retry_for: u64,
}

/// `pop pool`.
pub async fn run(args: PoolArgs) -> CliResult {
    crate::setup::init_logging("warn");
    if args.max_running == 0 {
        return Err("--max-running: must be at least 1".into());
    }
    if !(1..=100).contains(&args.pull_count) {
        return Err("--pull-count: must be 1 to 100".into());
    }
    let registry =
        HandlerRegistry::from_path(&args.runtime.registry).map_err(|e| CliError::context("--registry", e))?;
    let capacity = args.capacity.capacity(&registry)?;
    let client = Client::new(&args.server)
        .map_err(|e| CliError::context("--server", e))?
        .with_token(args.token.clone())
        .with_retry_for(Duration::from_secs(args.retry_for));
    let insights = insights(&client, &args).await?;
    let (runtime, description) = crate::setup::make_runtime(&args.runtime, registry).await?;
    let config = WorkerConfig {
        insights: insights.clone(),
        pull_count: args.pull_count,
        pull_wait: Duration::from_millis(args.pull_wait_ms),
        max_running: args.max_running,
        capacity,
    };
    let options = ExecutorOptions {
        parallelism: args.parallelism.max(1),
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(100)),
        ..ExecutorOptions::default()
    };
    let worker = Worker::new(Arc::new(client), runtime, config).with_executor_options(options);
    let signals = worker.signals().clone();
    let running = tokio::spawn(worker.run());
    crate::setup::announce(&format!(
        "pop pool ready: server {}, runtime {description}, insights {}",
        args.server,
        insights.join(",")
    ));
    let why = crate::setup::terminated().await?;
    eprintln!(
        "pop pool: {why}, stopping (running agendas are released: their leases expire and they resume elsewhere)"
    );
    signals.shutdown();
    if tokio::time::timeout(Duration::from_secs(10), running).await.is_err() {
        eprintln!("pop pool: the worker did not stop within 10 s");
    }
    println!("pop pool stopped");
    Ok(Outcome::Success)
}

/// The insights to pull: `--insight`s (checked to exist and be visible), else the pool's.
async fn insights(client: &Client, args: &PoolArgs) -> Result<Vec<String>, CliError> {
    let server = &args.server;
    if !args.insights.is_empty() {
        for id in &args.insights {
            client.get::<Insight>(id).await.map_err(|e| CliError::context(format!("--insight {id} on {server}"), e))?;
        }
        return Ok(args.insights.clone());
    }
    let pool =
        args.pool.as_deref().ok_or(CliError::from("give --pool ID (its insights are pulled) or --insight ID"))?;
    let mut out = Vec::new();
    let mut page = PageRequest::first(500);
    loop {
        let got = client
            .query::<Insight>(IndexField::ResourcePoolId, pool, page.clone())
            .await
            .map_err(|e| CliError::context(format!("listing the insights of pool {pool} on {server}"), e))?;
        out.extend(got.items.into_iter().filter_map(|i| i.id));
        match got.next {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    if out.is_empty() {
        return Err(CliError::new(format!(
            "pool {pool} has no insight this token may see on {server}: create one, or check the token's accounts"
        )));
    }
    Ok(out)
}
