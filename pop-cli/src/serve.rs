//! `pop serve`: the central server — POP's HTTP API (and the web console) over an instance that runs
//! the scheduler, the reclaimer and the timed processes; pools pull its agendas over HTTP
//! (`pop pool`), or with `--worker` it runs them here too.

use crate::error::{CliError, CliResult, Outcome};
use crate::setup::{AlertArgs, RuntimeArgs, StoreArgs};
use pop::core::registry::HandlerRegistry;
use pop::http::ApiConfig;
use pop::http::auth::AuthConfig;
use pop::{PopConfig, WorkerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Options of `pop serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The authentication config (TOML or JSON: static tokens, JWT, gateway context); see
    /// `pop_http::auth`.
    #[arg(long)]
    pub auth: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also run a pool worker here for these insights (repeatable); needs --registry.
    #[arg(long = "worker-insight")]
    pub worker_insights: Vec<String>,
    /// The handler registry of the local worker (with --worker-insight).
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Where the local worker's handlers run: `process` or `k8s`.
    #[arg(long, default_value = "process")]
    pub runtime: String,
    /// The Kubernetes namespace of the local worker's Pods.
    #[arg(long)]
    pub namespace: Option<String>,
    /// This instance's name in scheduler leases and logs (default: a random id).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub body_limit: usize,
    /// How long a request may take, in seconds.
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// How long a client may take to send a request head, in milliseconds; a slower connection
    /// (slowloris, or one that sends nothing) is closed.
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// The largest request head (request line and headers), in bytes; a larger one is answered 431.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// The most connections served at once; past it new clients wait until one closes.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Refuse every change (a read-only API and console).
    #[arg(long)]
    pub read_only: bool,
    /// The web console at `/ui`: `on`, `read-only` (it hides every change and talks to a read-only
    /// copy of the API mounted at `/ui/api`, so changes are refused there whatever the token may do)
    /// or `off`.
    #[arg(long, value_enum, default_value_t = ConsoleMode::On)]
    pub console: ConsoleMode,
    /// Do not start the timed processes (automatic retry, data reaper, pod reaper).
    #[arg(long)]
    pub no_timed: bool,
    /// How long a pulled agenda is leased (pools extend it at half-life), in milliseconds; an agenda
    /// whose pool died runs again elsewhere after this long.
    #[arg(long, default_value_t = 30_000)]
    pub lease_ttl_ms: u64,
    /// How often expired leases are reclaimed, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub reclaim_interval_ms: u64,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// Whether and how `pop serve` serves the web console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsoleMode {
    /// The console at `/ui`, with the actions the caller's token allows.
    On,
    /// The console at `/ui` without actions, over a read-only API at `/ui/api`.
    ReadOnly,
    /// No console.
    Off,
}

/// `pop serve`.
pub async fn run(args: ServeArgs) -> CliResult {
    crate::setup::init_logging("warn");
    let auth = AuthConfig::from_path(&args.auth).map_err(|e| CliError::context("--auth", e))?;
    let authorizer = auth.authorizer().map_err(|e| CliError::context("--auth", e))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| CliError::context("installing the metrics recorder", e))?;
    if args.lease_ttl_ms < 1_000 {
        return Err("--lease-ttl-ms: must be at least 1000".into());
    }
    let mut config = PopConfig {
        lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        reclaim_interval: Duration::from_millis(args.reclaim_interval_ms.max(100)),
        ..PopConfig::default()
    };
    if let Some(id) = args.instance_id.clone().filter(|i| !i.trim().is_empty()) {
        config.instance_id = id;
    }
    let builder = pop::Pop::builder().config(config).authorizer(Arc::new(authorizer));
    let (builder, alerts) = args.alerts.apply(builder)?;
    let (builder, store) = crate::setup::store(builder, &args.store).await?;
    let registry = match &args.registry {
        Some(path) => HandlerRegistry::from_path(path).map_err(|e| CliError::context("--registry", e))?,
        None if args.worker_insights.is_empty() => HandlerRegistry::from_json_str("{}")?,
        None => return Err("--worker-insight needs --registry (the local worker's handlers)".into()),
    };
    let runtime_args = RuntimeArgs {
        registry: args.registry.clone().unwrap_or_default(),
        runtime: args.runtime.clone(),
        namespace: args.namespace.clone(),
        ..RuntimeArgs::default()
    };
    let (builder, runtime) = crate::setup::runtime(builder, &runtime_args, registry).await?;
    let pop = builder.build()?;
    if let Some(line) = alerts {
        eprintln!("pop serve: {line}");
    }
    pop.start_scheduler();
    pop.start_reclaimer();
    if !args.no_timed {
        pop.start_timed(pop::timed::TimedConfig::default());
    }
    if !args.worker_insights.is_empty() {
        pop.start_worker(WorkerConfig::for_insights(args.worker_insights.clone()));
    }
    let api = ApiConfig {
        body_limit: args.body_limit,
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        read_only: args.read_only,
        metrics: Some(metrics),
        ..ApiConfig::new(auth)
    };
    let streams = api.streams.clone();
    let router = mount_console(pop.engine().clone(), api, args.console);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::context(format!("--listen {}", args.listen), e))?;
    let bound = listener.local_addr().map_err(|e| CliError::context("--listen", e))?;
    let console = match args.console {
        ConsoleMode::Off => "off".to_owned(),
        ConsoleMode::On if !args.read_only => format!("http://{bound}/ui"),
        _ => format!("http://{bound}/ui (read-only)"),
    };
    crate::setup::announce(&format!(
        "pop serve ready: http://{bound} instance {}, store {store}, console {console}, local worker {}",
        pop.config().instance_id,
        if args.worker_insights.is_empty() {
            "none".to_owned()
        } else {
            format!("{runtime} for {}", args.worker_insights.join(","))
        }
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let limits = pop::http::ServeConfig {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms.max(100)),
        max_header_bytes: args.max_header_bytes,
        max_connections: args.max_connections.max(1),
        ..pop::http::ServeConfig::default()
    };
    let server = tokio::spawn(pop::http::serve_with(
        listener,
        router,
        async move {
            let _ = stop_rx.await;
        },
        limits,
    ));
    let why = crate::setup::terminated_or_store_failed("pop serve", pop.store().clone()).await?;
    eprintln!("pop serve: {why}, stopping: no new requests; requests in flight finish");
    streams.close();
    let _ = stop_tx.send(why);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(CliError::context("serving", e)),
        Err(e) => return Err(CliError::context("the server task", e)),
    }
    pop.shutdown().await;
    println!("pop serve stopped");
    Ok(Outcome::Success)
}

/// The API's router with the web console mounted at `/ui` as `mode` says.
fn mount_console(engine: pop::engine::Engine, api: ApiConfig, mode: ConsoleMode) -> axum::Router {
    use pop::http::console::{self, ConsoleConfig};
    let read_only_api = api.read_only;
    match mode {
        ConsoleMode::Off => pop::http::router(engine, api),
        ConsoleMode::On => console::nest(
            pop::http::router(engine, api),
            "/ui",
            ConsoleConfig { read_only: read_only_api, api_base: String::new() },
        ),
        ConsoleMode::ReadOnly => {
            let read_only = pop::http::router(engine.clone(), ApiConfig { read_only: true, ..api.clone() });
            let app = pop::http::router(engine, api).nest("/ui/api", read_only);
            console::nest(app, "/ui", ConsoleConfig { read_only: true, api_base: "/ui/api".into() })
        }
    }
}
