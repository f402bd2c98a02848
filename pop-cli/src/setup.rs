//! What `pop worker`, `pop serve` and `pop pool` share: choosing the store and the runtime from
//! flags, logging, and waiting for SIGTERM / Ctrl-C.

use crate::error::CliError;
use pop::PopBuilder;
use pop::core::registry::HandlerRegistry;
use pop::core::runtime::PodRuntime;
use pop::embedded;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the instance keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The store: `sled` (default; needs --data) or `dynamo` (implied by --dynamodb-endpoint or
    /// --table-prefix; needs the `dynamo` feature).
    #[arg(long)]
    pub store: Option<String>,
    /// The sled data directory (the embedded store), created if missing.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// DynamoDB endpoint override (a local server, a VPC endpoint); default: the region's AWS endpoint.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// Prefix of POP's DynamoDB table names (`pop_` gives pop_objects, pop_ready, pop_queue, pop_leases).
    #[arg(long)]
    pub table_prefix: Option<String>,
    /// The AWS region of the DynamoDB tables (default: from the environment, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
}

/// Where handlers run.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// The handler registry (JSON, the original's `registry.json` format).
    #[arg(long)]
    pub registry: PathBuf,
    /// Where handlers run: `process` (local child processes, default) or `k8s` (Kubernetes Pods; needs
    /// the `k8s` feature).
    #[arg(long, default_value = "process")]
    pub runtime: String,
    /// The Kubernetes namespace of handler Pods (default: $POP_K8S_NAMESPACE, else `pop`).
    #[arg(long)]
    pub namespace: Option<String>,
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // (a second init, e.g. in tests, keeps the first subscriber)
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Resolves on SIGTERM or Ctrl-C, with which one it was.
pub async fn terminated() -> Result<&'static str, CliError> {
    let mut term = signal_terminate()?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Ok("interrupt"),
            Err(e) => Err(CliError::context("cannot wait for Ctrl-C", e)),
        },
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// Prints a line on stdout and flushes it (tests and scripts wait for "ready" lines).
pub fn announce(line: &str) {
    use std::io::Write;
    println!("{line}");
    let _ = std::io::stdout().flush();
}

#[cfg(unix)]
fn signal_terminate() -> Result<tokio::signal::unix::Signal, CliError> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::context("cannot listen for SIGTERM", e))
}

/// Where SIGTERM does not exist, only Ctrl-C stops the worker.
#[cfg(not(unix))]
fn signal_terminate() -> Result<NoSignal, CliError> {
    Ok(NoSignal)
}

#[cfg(not(unix))]
struct NoSignal;

#[cfg(not(unix))]
impl NoSignal {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

/// The store chosen by `--store` / `--data` / the DynamoDB flags; returns a description for the ready line.
pub async fn store(builder: PopBuilder, args: &StoreArgs) -> Result<(PopBuilder, String), CliError> {
    let dynamo_flags = args.dynamodb_endpoint.is_some() || args.table_prefix.is_some() || args.region.is_some();
    let kind = match args.store.as_deref() {
        Some(k) => k,
        None if dynamo_flags => "dynamo",
        None => "sled",
    };
    match kind {
        "sled" => {
            if dynamo_flags {
                return Err("--dynamodb-endpoint, --table-prefix and --region need --store dynamo".into());
            }
            let data = args
                .data
                .as_ref()
                .ok_or(CliError::from("--data DIR is required with the sled store (or choose --store dynamo)"))?;
            let builder =
                builder.sled_path(data).map_err(|e| CliError::context(format!("--data {}", data.display()), e))?;
            Ok((builder, format!("sled {}", data.display())))
        }
        "dynamo" => {
            if args.data.is_some() {
                return Err("--data is for the sled store; with --store dynamo the state is in DynamoDB".into());
            }
            dynamo_store(builder, args).await
        }
        other => Err(CliError(format!("--store {other}: unknown store (sled or dynamo)"))),
    }
}

#[cfg(feature = "dynamo")]
async fn dynamo_store(builder: PopBuilder, args: &StoreArgs) -> Result<(PopBuilder, String), CliError> {
    use pop::dynamo::DynamoConfig;
    let mut cfg = match &args.dynamodb_endpoint {
        Some(e) if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() => DynamoConfig::local(e.clone()),
        Some(e) => DynamoConfig::aws().endpoint(e.clone()),
        None => DynamoConfig::aws(),
    };
    if let Some(r) = &args.region {
        cfg = cfg.region(r.clone());
    }
    if let Some(p) = &args.table_prefix {
        cfg = cfg.table_prefix(p.clone());
    }
    let desc = format!("dynamo {} prefix {}", cfg.endpoint.as_deref().unwrap_or("aws"), cfg.table_prefix);
    let builder = builder.dynamo(cfg).await.map_err(|e| CliError::context("DynamoDB", e))?;
    Ok((builder, desc))
}

#[cfg(not(feature = "dynamo"))]
async fn dynamo_store(_builder: PopBuilder, _args: &StoreArgs) -> Result<(PopBuilder, String), CliError> {
    Err("--store dynamo: this pop was built without the `dynamo` feature (build pop-cli with --features dynamo)".into())
}

/// The runtime chosen by `--runtime` on a builder; returns a description for the ready line.
pub async fn runtime(
    builder: PopBuilder,
    args: &RuntimeArgs,
    registry: HandlerRegistry,
) -> Result<(PopBuilder, String), CliError> {
    let (runtime, description) = make_runtime(args, registry).await?;
    Ok((builder.runtime(runtime), description))
}

/// The runtime chosen by `--runtime`: resident in-process handlers (`logMessages`, `updateAgenda`)
/// first, then local processes or Pods from the registry; with a description for the ready line.
pub async fn make_runtime(
    args: &RuntimeArgs,
    registry: HandlerRegistry,
) -> Result<(Arc<dyn PodRuntime>, String), CliError> {
    match args.runtime.as_str() {
        "process" => {
            if args.namespace.is_some() {
                return Err("--namespace is for --runtime k8s".into());
            }
            Ok((Arc::new(embedded::runtime(registry)), "process".into()))
        }
        "k8s" => k8s_runtime(args, registry).await,
        other => Err(CliError(format!("--runtime {other}: unknown runtime (process or k8s)"))),
    }
}

#[cfg(feature = "k8s")]
async fn k8s_runtime(args: &RuntimeArgs, registry: HandlerRegistry) -> Result<(Arc<dyn PodRuntime>, String), CliError> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POP_K8S_NAMESPACE").ok().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| "pop".into());
    let config = pop::k8s::KubeConfig::single_namespace(namespace.clone());
    let kube = pop::k8s::KubeRuntime::connect(Arc::new(registry), config)
        .await
        .map_err(|e| CliError::context("--runtime k8s", e))?;
    let router =
        pop::RuntimeRouter::new().with(Arc::new(pop::exec::inprocess::InProcessRuntime::new())).with(Arc::new(kube));
    Ok((Arc::new(router), format!("k8s namespace {namespace}")))
}

#[cfg(not(feature = "k8s"))]
async fn k8s_runtime(
    _args: &RuntimeArgs,
    _registry: HandlerRegistry,
) -> Result<(Arc<dyn PodRuntime>, String), CliError> {
    Err("--runtime k8s: this pop was built without the `k8s` feature (build pop-cli with --features k8s)".into())
}
