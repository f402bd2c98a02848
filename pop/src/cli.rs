//! The instance commands of the `pop` command-line tool: run, progress, explain, rerun, worker.

use crate::embedded;
use crate::services::RerunOptions;
use clap::Subcommand;
use pop_core::authz::Principal;
use pop_core::model::{AgendaProgress, Conclusion, ProcessingState};
use pop_core::registry::HandlerRegistry;
use std::path::PathBuf;
use std::time::Duration;

/// Commands that work on an embedded instance's data directory.
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Run agendas to completion on an embedded instance; print each final AgendaProgress as JSON.
    Run {
        /// Agenda JSON files.
        #[arg(required = true)]
        agendas: Vec<PathBuf>,
        /// The handler registry (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// The data directory (default: a temporary one).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The customer to submit as when an agenda names none.
        #[arg(long, default_value = "cli")]
        customer: String,
    },
    /// Print an agenda's progress as JSON.
    Progress {
        /// The agenda id.
        agenda_id: String,
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Explain where an agenda is and why it waits.
    Explain {
        /// The agenda id.
        agenda_id: String,
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Rerun an agenda (`resetAll` by default) and run it to completion.
    Rerun {
        /// The agenda id.
        agenda_id: String,
        /// Rerun parameters: resetAll, continue, skipExecution, operationsToReset=a,b.
        #[arg(long = "param")]
        params: Vec<String>,
        /// The handler registry (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Run a long-lived worker: scheduler, reclaimer, a pool worker and the timed processes for the
    /// given insights, on a sled directory or DynamoDB, until SIGTERM or Ctrl-C.
    Worker(WorkerArgs),
}

/// Options of `pop worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// An insight (queue) to pull from; repeat for several. Default: every insight in the store at
    /// start.
    #[arg(long = "insight")]
    pub insights: Vec<String>,
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
    /// This instance's name in scheduler leases and logs (default: a random id).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Agendas this worker runs at once.
    #[arg(long, default_value_t = 16)]
    pub max_running: usize,
    /// Do not start the timed processes (automatic retry, data reaper, pod reaper).
    #[arg(long)]
    pub no_timed: bool,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn json(v: &impl serde::Serialize) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(v).map_err(err)?);
    Ok(())
}

/// Runs an instance command; `Ok(false)` means "ran, but something failed" (exit 1).
pub async fn run(cmd: InstanceCommand) -> Result<bool, String> {
    let su = Principal::superuser("pop-cli");
    match cmd {
        InstanceCommand::Run { agendas, registry, data, customer } => {
            let registry = HandlerRegistry::from_path(&registry).map_err(err)?;
            let tmp;
            let dir = match data {
                Some(d) => d,
                None => {
                    tmp = tempdir()?;
                    tmp.clone()
                }
            };
            let mut parsed = Vec::new();
            for path in &agendas {
                let mut a = embedded::read_agenda(path).map_err(err)?;
                if a.customer_id.as_deref().is_none_or(str::is_empty) {
                    a.customer_id = Some(customer.clone());
                }
                parsed.push((path.clone(), a));
            }
            let pop = embedded::open(&dir, registry, Default::default()).map_err(err)?;
            let all: Vec<_> = parsed.iter().map(|(_, a)| a.clone()).collect();
            embedded::prepare(&pop, &all).await.map_err(err)?;
            let mut ids = Vec::new();
            for (path, a) in parsed {
                let stored = pop.agendas().submit(&su, a).await.map_err(|e| format!("{}: {e}", path.display()))?;
                ids.push(stored.id.unwrap_or_default());
            }
            pop.start_all(embedded::worker());
            let finals = follow(&pop, &ids).await?;
            pop.shutdown().await;
            for p in &finals {
                json(p)?;
            }
            Ok(finals.iter().all(|p| p.conclusion() == Some(Conclusion::Succeeded)))
        }
        InstanceCommand::Progress { agenda_id, data } => {
            let pop = open_existing(&data)?;
            json(&pop.progress().agenda_progress(&su, &agenda_id).await.map_err(err)?)?;
            Ok(true)
        }
        InstanceCommand::Explain { agenda_id, data } => {
            let pop = open_existing(&data)?;
            json(&pop.progress().explain(&su, &agenda_id).await.map_err(err)?)?;
            Ok(true)
        }
        InstanceCommand::Rerun { agenda_id, params, registry, data } => {
            let registry = HandlerRegistry::from_path(&registry).map_err(err)?;
            let options = RerunOptions::parse(&params).map_err(err)?;
            let pop = embedded::open(&data, registry, Default::default()).map_err(err)?;
            pop.agendas().rerun(&su, &agenda_id, options.clone()).await.map_err(err)?;
            if options.skip_execution {
                json(&pop.progress().agenda_progress(&su, &agenda_id).await.map_err(err)?)?;
                return Ok(true);
            }
            pop.start_all(embedded::worker());
            let finals = follow(&pop, std::slice::from_ref(&agenda_id)).await?;
            pop.shutdown().await;
            json(&finals[0])?;
            Ok(finals[0].conclusion() == Some(Conclusion::Succeeded))
        }
        InstanceCommand::Worker(args) => worker(args).await,
    }
}

/// `pop worker`: builds the instance from the flags, starts every loop, waits for SIGTERM / Ctrl-C.
async fn worker(args: WorkerArgs) -> Result<bool, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let registry = HandlerRegistry::from_path(&args.registry).map_err(|e| format!("--registry: {e}"))?;
    let mut config = crate::PopConfig::default();
    if let Some(id) = args.instance_id.clone() {
        if id.trim().is_empty() {
            return Err("--instance-id: must not be empty".into());
        }
        config.instance_id = id;
    }
    if args.max_running == 0 {
        return Err("--max-running: must be at least 1".into());
    }
    let builder = crate::Pop::builder().config(config);
    let (builder, store) = worker_store(builder, &args).await?;
    let (builder, runtime) = worker_runtime(builder, &args, registry).await?;
    let pop = builder.build().map_err(err)?;
    let known: Vec<String> = crate::scheduler::all_insights(&pop.inner)
        .await
        .map_err(|e| format!("listing insights: {e}"))?
        .into_iter()
        .filter_map(|i| i.id)
        .collect();
    if let Some(missing) = args.insights.iter().find(|i| !known.contains(i)) {
        return Err(format!(
            "--insight {missing}: no such insight in the store (known: {}); create it first",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ));
    }
    let insights = if args.insights.is_empty() { known } else { args.insights.clone() };
    if insights.is_empty() {
        return Err("no insight to work on: the store has none; pass --insight ID or create insights first".into());
    }
    let mut term = signal_terminate()?;
    pop.start_all(crate::WorkerConfig {
        max_running: args.max_running,
        ..crate::WorkerConfig::for_insights(insights.clone())
    });
    if !args.no_timed {
        pop.start_timed(crate::timed::TimedConfig::default());
    }
    println!(
        "pop worker ready: instance {}, store {store}, runtime {runtime}, insights {}",
        pop.config().instance_id,
        insights.join(",")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let why = tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => "interrupt",
            Err(e) => return Err(format!("cannot wait for Ctrl-C: {e}")),
        },
        _ = term.recv() => "SIGTERM",
    };
    eprintln!("pop worker: {why}, stopping (running agendas are released to other workers)");
    pop.shutdown().await;
    println!("pop worker stopped");
    Ok(true)
}

#[cfg(unix)]
fn signal_terminate() -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))
}

/// Where SIGTERM does not exist, only Ctrl-C stops the worker.
#[cfg(not(unix))]
fn signal_terminate() -> Result<NoSignal, String> {
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
async fn worker_store(builder: crate::PopBuilder, args: &WorkerArgs) -> Result<(crate::PopBuilder, String), String> {
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
            let data =
                args.data.as_ref().ok_or("--data DIR is required with the sled store (or choose --store dynamo)")?;
            let builder = builder.sled_path(data).map_err(|e| format!("--data {}: {e}", data.display()))?;
            Ok((builder, format!("sled {}", data.display())))
        }
        "dynamo" => {
            if args.data.is_some() {
                return Err("--data is for the sled store; with --store dynamo the state is in DynamoDB".into());
            }
            dynamo_store(builder, args).await
        }
        other => Err(format!("--store {other}: unknown store (sled or dynamo)")),
    }
}

#[cfg(feature = "dynamo")]
async fn dynamo_store(builder: crate::PopBuilder, args: &WorkerArgs) -> Result<(crate::PopBuilder, String), String> {
    use pop_store_dynamo::DynamoConfig;
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
    let builder = builder.dynamo(cfg).await.map_err(|e| format!("DynamoDB: {e}"))?;
    Ok((builder, desc))
}

#[cfg(not(feature = "dynamo"))]
async fn dynamo_store(_builder: crate::PopBuilder, _args: &WorkerArgs) -> Result<(crate::PopBuilder, String), String> {
    Err("--store dynamo: this pop was built without the `dynamo` feature (build with --features cli,dynamo)".into())
}

/// The runtime chosen by `--runtime`; returns a description for the ready line.
async fn worker_runtime(
    builder: crate::PopBuilder,
    args: &WorkerArgs,
    registry: HandlerRegistry,
) -> Result<(crate::PopBuilder, String), String> {
    match args.runtime.as_str() {
        "process" => {
            if args.namespace.is_some() {
                return Err("--namespace is for --runtime k8s".into());
            }
            Ok((builder.runtime(std::sync::Arc::new(embedded::runtime(registry))), "process".into()))
        }
        "k8s" => k8s_runtime(builder, args, registry).await,
        other => Err(format!("--runtime {other}: unknown runtime (process or k8s)")),
    }
}

#[cfg(feature = "k8s")]
async fn k8s_runtime(
    builder: crate::PopBuilder,
    args: &WorkerArgs,
    registry: HandlerRegistry,
) -> Result<(crate::PopBuilder, String), String> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POP_K8S_NAMESPACE").ok().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| "pop".into());
    let config = pop_runtime_k8s::KubeConfig::single_namespace(namespace.clone());
    let builder = builder.k8s_runtime(registry, config, None).await.map_err(|e| format!("--runtime k8s: {e}"))?;
    Ok((builder, format!("k8s namespace {namespace}")))
}

#[cfg(not(feature = "k8s"))]
async fn k8s_runtime(
    _builder: crate::PopBuilder,
    _args: &WorkerArgs,
    _registry: HandlerRegistry,
) -> Result<(crate::PopBuilder, String), String> {
    Err("--runtime k8s: this pop was built without the `k8s` feature (build with --features cli,k8s)".into())
}

fn open_existing(data: &std::path::Path) -> Result<crate::Pop, String> {
    if !data.is_dir() {
        return Err(format!("{}: no such data directory", data.display()));
    }
    let registry = HandlerRegistry::from_json_str("{}").map_err(err)?;
    embedded::open(data, registry, Default::default()).map_err(err)
}

fn tempdir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("pop-run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

async fn follow(pop: &crate::Pop, ids: &[String]) -> Result<Vec<AgendaProgress>, String> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let multi = indicatif::MultiProgress::new();
    let bars: Vec<indicatif::ProgressBar> = ids
        .iter()
        .map(|id| {
            let b = multi.add(indicatif::ProgressBar::new(100));
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos:>3}% {msg}") {
                b.set_style(style);
            }
            b.set_message(id.clone());
            b
        })
        .collect();
    let mut last: Vec<(ProcessingState, i64)> = vec![(ProcessingState::Waiting, -1); ids.len()];
    let finals = embedded::wait_all(pop, ids, Duration::from_millis(200), |all| {
        for (i, p) in all.iter().enumerate() {
            let pct = p.percent_complete.round() as i64;
            if tty {
                bars[i].set_position(pct.clamp(0, 100) as u64);
                bars[i].set_message(format!(
                    "{} {} {}",
                    ids[i],
                    p.processing_state,
                    p.processing_state_message.as_deref().unwrap_or("")
                ));
            } else if last[i] != (p.processing_state, pct) {
                eprintln!(
                    "{} {} {}% {}",
                    ids[i],
                    p.processing_state,
                    pct,
                    p.processing_state_message.as_deref().unwrap_or("")
                );
            }
            last[i] = (p.processing_state, pct);
        }
    })
    .await
    .map_err(err)?;
    for b in bars {
        b.finish();
    }
    Ok(finals)
}
