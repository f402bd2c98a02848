//! `pop worker`: a long-lived instance (scheduler, reclaimer, a pool worker, the timed processes) on a
//! sled directory or DynamoDB, with handlers as local processes or Kubernetes Pods.

use crate::error::{CliError, CliResult, Outcome};
use crate::setup::{AlertArgs, CapacityArgs, RuntimeArgs, StoreArgs};
use pop::core::authz::Principal;
use pop::core::registry::HandlerRegistry;
use pop::{PopConfig, WorkerConfig};

/// Options of `pop worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// An insight (queue) to pull from; repeat for several. Default: every insight in the store at
    /// start.
    #[arg(long = "insight")]
    pub insights: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// This instance's name in scheduler leases and logs (default: a random id).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Agendas this worker runs at once.
    #[arg(long, default_value_t = 16)]
    pub max_running: usize,
    #[command(flatten)]
    pub capacity: CapacityArgs,
    /// Do not start the timed processes (automatic retry, data reaper, pod reaper).
    #[arg(long)]
    pub no_timed: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// `pop worker`: builds the instance from the flags, starts every loop, waits for SIGTERM / Ctrl-C.
pub async fn run(args: WorkerArgs) -> CliResult {
    crate::setup::init_logging("warn");
    let registry =
        HandlerRegistry::from_path(&args.runtime.registry).map_err(|e| CliError::context("--registry", e))?;
    let mut config = PopConfig::default();
    if let Some(id) = args.instance_id.clone() {
        if id.trim().is_empty() {
            return Err("--instance-id: must not be empty".into());
        }
        config.instance_id = id;
    }
    if args.max_running == 0 {
        return Err("--max-running: must be at least 1".into());
    }
    let capacity = args.capacity.capacity(&registry)?;
    let builder = pop::Pop::builder().config(config);
    let (builder, alerts) = args.alerts.apply(builder)?;
    let (builder, store) = crate::setup::store(builder, &args.store).await?;
    let (builder, runtime) = crate::setup::runtime(builder, &args.runtime, registry).await?;
    let pop = builder.build()?;
    if let Some(line) = alerts {
        eprintln!("pop worker: {line}");
    }
    let operator = Principal::superuser("pop-worker");
    let known: Vec<String> = pop
        .objects()
        .list_all::<pop::core::model::Insight>(&operator)
        .await
        .map_err(|e| CliError::context("listing insights", e))?
        .into_iter()
        .filter_map(|i| i.id)
        .collect();
    if let Some(missing) = args.insights.iter().find(|i| !known.contains(i)) {
        return Err(CliError::new(format!(
            "--insight {missing}: no such insight in the store (known: {}); create it first",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )));
    }
    let insights = if args.insights.is_empty() { known } else { args.insights.clone() };
    if insights.is_empty() {
        return Err("no insight to work on: the store has none; pass --insight ID or create insights first".into());
    }
    pop.start_all(WorkerConfig {
        max_running: args.max_running,
        capacity,
        ..WorkerConfig::for_insights(insights.clone())
    });
    if !args.no_timed {
        pop.start_timed(pop::timed::TimedConfig::default());
    }
    crate::setup::announce(&format!(
        "pop worker ready: instance {}, store {store}, runtime {runtime}, insights {}",
        pop.config().instance_id,
        insights.join(",")
    ));
    let why = crate::setup::terminated_or_store_failed("pop worker", pop.store().clone()).await?;
    eprintln!("pop worker: {why}, stopping (running agendas are released to other workers)");
    pop.shutdown().await;
    println!("pop worker stopped");
    Ok(Outcome::Success)
}
