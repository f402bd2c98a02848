//! What `pop worker`, `pop serve` and `pop pool` share: choosing the store and the runtime from
//! flags, logging, and waiting for SIGTERM / Ctrl-C.

use crate::error::CliError;
use pop::PopBuilder;
use pop::core::registry::HandlerRegistry;
use pop::core::runtime::PodRuntime;
use pop::embedded;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the instance keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The store: `sled` (default; needs --data), `fjall` (the faster embedded store; needs --data)
    /// or `dynamo` (implied by --dynamodb-endpoint or --table-prefix; needs the `dynamo` feature).
    #[arg(long)]
    pub store: Option<String>,
    /// The data directory of the embedded store (sled or fjall), created if missing.
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
    /// How many partition keys each insight's queue and ready index (and each customer's, link's and
    /// title's index entries) are spread over on DynamoDB (default 8; about one insight's agendas/s ×
    /// 3 ÷ 800). Fixed for the tables' life: every process must give the same.
    #[arg(long)]
    pub dynamodb_shards: Option<u32>,
    /// sled: how long a flush of the store may run before the store counts as failed (sled can
    /// leave one waiting for ever after the disk filled up), in seconds; then the process exits
    /// with status 75 for a supervisor to restart it (default 30).
    #[arg(long, value_name = "SECS")]
    pub sled_stall_timeout: Option<u64>,
}

/// Alerts (an agenda failed for good, a pool that stopped pulling) to a webhook.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AlertArgs {
    /// Send alerts as JSON POSTs to this http(s) URL (Slack-compatible: a `text` field plus the
    /// alert's fields). Without it, no alerts.
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// Append alerts that could not be delivered (after 5 attempts with backoff) to this JSON-lines
    /// file, with the last error. Without it they are logged only.
    #[arg(long, value_name = "FILE")]
    pub alert_dead_letter: Option<PathBuf>,
    /// A resource pool that has not pulled for this long while agendas wait in its queues is reported
    /// stalled (and again when it pulls), in milliseconds; 0 turns stall alerts off.
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    pub alert_pool_idle_ms: u64,
}

impl AlertArgs {
    /// Adds the alert sink and its settings to `builder`; a line for the log saying what was set.
    pub fn apply(&self, builder: PopBuilder) -> Result<(PopBuilder, Option<String>), CliError> {
        let Some(url) = &self.alert_webhook else {
            if self.alert_dead_letter.is_some() {
                return Err("--alert-dead-letter needs --alert-webhook (where the alerts go)".into());
            }
            return Ok((builder, None));
        };
        if let Some(file) = &self.alert_dead_letter {
            // fail now, not at the first undeliverable alert
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_err(|e| CliError::context(format!("--alert-dead-letter {}", file.display()), e))?;
        }
        let builder = builder.alert_webhook(url).map_err(|e| CliError::context("--alert-webhook", e))?;
        let idle = (self.alert_pool_idle_ms > 0).then(|| std::time::Duration::from_millis(self.alert_pool_idle_ms));
        let config = pop::AlertConfig {
            dead_letter: self.alert_dead_letter.clone(),
            pool_idle: idle,
            ..pop::AlertConfig::default()
        };
        let line = format!(
            "alerts: webhook set, dead letters {}, stall alerts {}",
            self.alert_dead_letter.as_ref().map_or("logged only".to_owned(), |f| format!("to {}", f.display())),
            idle.map_or("off".to_owned(), |d| format!("after {} ms without a pull", d.as_millis()))
        );
        Ok((builder.alert_config(config), Some(line)))
    }
}

/// Resource-aware admission of a pool worker (`pop worker`, `pop pool`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CapacityArgs {
    /// The pool's capacity, e.g. `cpu=4,memory=8Gi,gpu=1` (cpu in cores or `500m`, memory with
    /// `Ki`/`Mi`/`Gi`, any other name a count). Each pulled agenda's demand (agenda param
    /// `resources`, else derived from the registry's Pod requests) must fit what is free; one that
    /// does not is put back in the queue, one that never can fails. Default: no admission.
    #[arg(long)]
    pub capacity: Option<String>,
    /// With --capacity: how many smaller agendas may start past a pulled one that does not fit
    /// before the worker waits for it (the bound on a large agenda's wait).
    #[arg(long, default_value_t = 4)]
    pub max_backfill: usize,
}

impl CapacityArgs {
    /// The worker's capacity, if --capacity was given; demands derive from `registry`.
    pub fn capacity(&self, registry: &HandlerRegistry) -> Result<Option<pop::engine::worker::Capacity>, CliError> {
        let Some(spec) = self.capacity.as_deref() else {
            if self.max_backfill != 4 {
                return Err("--max-backfill needs --capacity".into());
            }
            return Ok(None);
        };
        let mut capacity = pop::engine::worker::Capacity::parse(spec)
            .map_err(|e| CliError::context(format!("--capacity {spec}"), e))?;
        if capacity.resources.0.is_empty() {
            return Err(format!("--capacity {spec:?}: declares no resource (e.g. cpu=4,memory=8Gi,gpu=1)").into());
        }
        capacity.max_backfill = self.max_backfill;
        capacity.registry = Some(std::sync::Arc::new(registry.clone()));
        Ok(Some(capacity))
    }
}

/// Where handlers run (`Default`: every field empty, for commands that build it from flags of their own).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuntimeArgs {
    /// The handler registry (JSON, the original's `registry.json` format).
    #[arg(long)]
    pub registry: PathBuf,
    /// Where handlers run: `process` (local child processes, default) or `k8s` (Kubernetes Pods; needs
    /// the `k8s` feature).
    #[arg(long, default_value = "process")]
    pub runtime: String,
    /// The Kubernetes namespace of handler Pods (default: $POP_K8S_NAMESPACE, else `pop`); with the
    /// options below, the namespace of the Pods they place nowhere else.
    #[arg(long)]
    pub namespace: Option<String>,
    /// One namespace per customer: PREFIX + the customer id made a DNS label (`pop-` + `Acme Corp` →
    /// `pop-acme-corp`); operations without a customer go to --namespace. The namespaces must exist.
    #[arg(long, value_name = "PREFIX")]
    pub namespace_per_customer: Option<String>,
    /// One namespace per insight: PREFIX + the insight id made a DNS label; operations without an
    /// insight go to --namespace. The namespaces must exist.
    #[arg(long, value_name = "PREFIX")]
    pub namespace_per_insight: Option<String>,
    /// An explicit namespace: `customer:ID=NS` or `insight:ID=NS` (repeatable). A customer's entry wins
    /// over its insight's; Pods no entry names go to --namespace. Ids are matched exactly.
    #[arg(long = "namespace-for", value_name = "KIND:ID=NS")]
    pub namespace_for: Vec<String>,
}

/// Where handler Pods go, as the runtime flags say (checked here, without the `k8s` feature, so a
/// wrong flag is reported the same by every build; the Kubernetes runtime checks the names again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every Pod in this namespace (`--namespace`).
    Single(String),
    /// `prefix + customer id`, else `fallback` (`--namespace-per-customer`).
    PerCustomer {
        /// The prefix.
        prefix: String,
        /// The namespace of operations without a customer.
        fallback: String,
    },
    /// `prefix + insight id`, else `fallback` (`--namespace-per-insight`).
    PerInsight {
        /// The prefix.
        prefix: String,
        /// The namespace of operations without an insight.
        fallback: String,
    },
    /// The customer's entry, else the insight's, else `default` (`--namespace-for`).
    Mapped {
        /// Customer id → namespace.
        by_customer: BTreeMap<String, String>,
        /// Insight id → namespace.
        by_insight: BTreeMap<String, String>,
        /// The namespace of Pods no entry names.
        default: String,
    },
}

impl Namespaces {
    /// A short description for the ready line.
    #[cfg_attr(
        all(not(feature = "k8s"), not(test)),
        expect(dead_code, reason = "only the k8s runtime's ready line uses it")
    )]
    pub fn describe(&self) -> String {
        match self {
            Namespaces::Single(ns) => format!("namespace {ns}"),
            Namespaces::PerCustomer { prefix, fallback } => {
                format!("namespace per customer {prefix}<customer> (else {fallback})")
            }
            Namespaces::PerInsight { prefix, fallback } => {
                format!("namespace per insight {prefix}<insight> (else {fallback})")
            }
            Namespaces::Mapped { by_customer, by_insight, default } => format!(
                "namespaces for {} customer(s) and {} insight(s) (else {default})",
                by_customer.len(),
                by_insight.len()
            ),
        }
    }
}

/// The longest namespace name (a DNS-1123 label).
const MAX_NAMESPACE: usize = 63;

/// Why `name` is not a DNS-1123 label (a namespace name), if it is not.
fn namespace_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_NAMESPACE {
        return Some(format!("it has {} characters, at most {MAX_NAMESPACE} are allowed", name.len()));
    }
    chars_problem(name).or_else(|| name.ends_with('-').then(|| "it must end with a letter or digit".into()))
}

/// Why `prefix` cannot start namespace names (it may end with `-`; it leaves room for the id).
fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("it is empty".into());
    }
    if prefix.len() >= MAX_NAMESPACE {
        return Some(format!("it has {} characters, at most {} are allowed", prefix.len(), MAX_NAMESPACE - 1));
    }
    chars_problem(prefix)
}

fn chars_problem(s: &str) -> Option<String> {
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!("{bad:?} is not allowed (only lower-case letters, digits and '-')"));
    }
    s.starts_with('-').then(|| "it must start with a letter or digit".into())
}

impl RuntimeArgs {
    /// The first flag given that only `--runtime k8s` takes.
    fn k8s_only_flag(&self) -> Option<&'static str> {
        [
            (self.namespace.is_some(), "--namespace"),
            (self.namespace_per_customer.is_some(), "--namespace-per-customer"),
            (self.namespace_per_insight.is_some(), "--namespace-per-insight"),
            (!self.namespace_for.is_empty(), "--namespace-for"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Where handler Pods go: the namespace flags checked (names, syntax, combinations), with
    /// `$POP_K8S_NAMESPACE` as the default namespace. Errors name the flag and the value.
    pub fn namespaces(&self) -> Result<Namespaces, CliError> {
        self.namespaces_with_default(std::env::var("POP_K8S_NAMESPACE").ok())
    }

    /// [`namespaces`](Self::namespaces) with this value of `$POP_K8S_NAMESPACE`.
    fn namespaces_with_default(&self, env_default: Option<String>) -> Result<Namespaces, CliError> {
        let default = match (&self.namespace, env_default.filter(|n| !n.trim().is_empty())) {
            (Some(ns), _) => {
                if let Some(why) = namespace_problem(ns) {
                    return Err(CliError::new(format!("--namespace {ns:?}: not a valid namespace name: {why}")));
                }
                ns.clone()
            }
            (None, Some(ns)) => {
                if let Some(why) = namespace_problem(&ns) {
                    return Err(CliError::new(format!(
                        "POP_K8S_NAMESPACE={ns:?} (the default of --namespace): not a valid namespace name: {why}"
                    )));
                }
                ns
            }
            (None, None) => "pop".to_owned(),
        };
        let prefix = |flag: &str, value: &String| match prefix_problem(value) {
            Some(why) => Err(CliError::new(format!("{flag} {value:?}: not a valid namespace prefix: {why}"))),
            None => Ok(value.clone()),
        };
        match (&self.namespace_per_customer, &self.namespace_per_insight, self.namespace_for.is_empty()) {
            (Some(_), Some(_), _) => {
                Err("--namespace-per-customer and --namespace-per-insight cannot be combined: choose one, or map \
                 namespaces with --namespace-for"
                    .into())
            }
            (Some(_), None, false) | (None, Some(_), false) => Err(CliError::new(format!(
                "{} cannot be combined with --namespace-for: choose a prefix or explicit maps",
                if self.namespace_per_customer.is_some() {
                    "--namespace-per-customer"
                } else {
                    "--namespace-per-insight"
                }
            ))),
            (Some(p), None, true) => {
                Ok(Namespaces::PerCustomer { prefix: prefix("--namespace-per-customer", p)?, fallback: default })
            }
            (None, Some(p), true) => {
                Ok(Namespaces::PerInsight { prefix: prefix("--namespace-per-insight", p)?, fallback: default })
            }
            (None, None, true) => Ok(Namespaces::Single(default)),
            (None, None, false) => {
                let mut by_customer = BTreeMap::new();
                let mut by_insight = BTreeMap::new();
                for entry in &self.namespace_for {
                    let (kind, id, ns) = parse_namespace_for(entry)?;
                    let map = if kind == "customer" { &mut by_customer } else { &mut by_insight };
                    if let Some(earlier) = map.insert(id.to_owned(), ns.to_owned()) {
                        return Err(CliError::new(format!(
                            "--namespace-for {entry:?}: {kind} {id:?} is already mapped (to {earlier:?}); give each \
                             {kind} once"
                        )));
                    }
                }
                Ok(Namespaces::Mapped { by_customer, by_insight, default })
            }
        }
    }
}

/// `customer:ID=NS` or `insight:ID=NS` → (kind, id, namespace). The id may hold `:` and `=`: the kind
/// ends at the first `:`, the namespace starts after the last `=`.
fn parse_namespace_for(entry: &str) -> Result<(&'static str, &str, &str), CliError> {
    let bad = |why: String| CliError::new(format!("--namespace-for {entry:?}: {why}"));
    let shape = || bad("expected customer:ID=NS or insight:ID=NS".into());
    let (kind, rest) = entry.split_once(':').ok_or_else(shape)?;
    let (id, ns) = rest.rsplit_once('=').ok_or_else(shape)?;
    let kind = match kind.trim() {
        "customer" => "customer",
        "insight" => "insight",
        other => return Err(bad(format!("unknown kind {other:?}: expected customer:ID=NS or insight:ID=NS"))),
    };
    if id.trim().is_empty() {
        return Err(bad(format!("the {kind} id is empty")));
    }
    if let Some(why) = namespace_problem(ns) {
        return Err(bad(format!("{ns:?} is not a valid namespace name: {why}")));
    }
    Ok((kind, id, ns))
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

/// The exit status of `pop serve` / `pop worker` when their store has failed in a way it cannot
/// recover from in-process (`EX_TEMPFAIL`): a supervisor restarts them.
pub const STORE_FAILED_EXIT: i32 = 75;

/// Waits for SIGTERM / Ctrl-C (returning which one), or for the store to fail in a way it cannot
/// recover from in this process ([`pop::core::store::Store::health`], checked every 2 s: sled after
/// an IO error such as a full disk, or a flush stuck past its stall timeout): then says so on stderr
/// and exits with [`STORE_FAILED_EXIT`] at once — crash-only, so that a supervisor (systemd,
/// Kubernetes) restarts the process, which reopens the store with every acknowledged write. No
/// graceful shutdown then: every write still running fails anyway, and a stuck store could hang it.
pub async fn terminated_or_store_failed(
    command: &str,
    store: std::sync::Arc<dyn pop::core::store::Store>,
) -> Result<&'static str, CliError> {
    let failed = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            if let Err(e) = store.health() {
                return e;
            }
        }
    };
    tokio::select! {
        why = terminated() => why,
        e = failed => {
            tracing::error!(error = %e, "the store failed");
            eprintln!("{command}: the store failed: {e}; exiting with status {STORE_FAILED_EXIT} for a supervisor to restart it");
            std::process::exit(STORE_FAILED_EXIT);
        }
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
    let dynamo_flags = args.dynamodb_endpoint.is_some()
        || args.table_prefix.is_some()
        || args.region.is_some()
        || args.dynamodb_shards.is_some();
    let kind = match args.store.as_deref() {
        Some(k) => k,
        None if dynamo_flags => "dynamo",
        None => "sled",
    };
    match kind {
        "sled" => {
            if dynamo_flags {
                return Err(
                    "--dynamodb-endpoint, --table-prefix, --region and --dynamodb-shards need --store dynamo".into()
                );
            }
            let data = args
                .data
                .as_ref()
                .ok_or(CliError::from("--data DIR is required with the sled store (or choose --store dynamo)"))?;
            let mut config = pop::sled::Config::new(data);
            if let Some(secs) = args.sled_stall_timeout {
                if secs == 0 {
                    return Err("--sled-stall-timeout 0: give at least 1 second".into());
                }
                config = config.stall_timeout(std::time::Duration::from_secs(secs));
            }
            let (store, queue) =
                pop::sled::open_both(config).map_err(|e| CliError::context(format!("--data {}", data.display()), e))?;
            let builder = builder.store(std::sync::Arc::new(store)).queue(std::sync::Arc::new(queue));
            Ok((builder, format!("sled {}", data.display())))
        }
        "fjall" => {
            if dynamo_flags {
                return Err(
                    "--dynamodb-endpoint, --table-prefix, --region and --dynamodb-shards need --store dynamo".into()
                );
            }
            if args.sled_stall_timeout.is_some() {
                return Err("--sled-stall-timeout is for the sled store, not --store fjall".into());
            }
            let data = args.data.as_ref().ok_or(CliError::from("--data DIR is required with the fjall store"))?;
            let (store, queue) = pop::fjall::open_both(pop::fjall::Config::new(data))
                .map_err(|e| CliError::context(format!("--data {}", data.display()), e))?;
            let builder = builder.store(std::sync::Arc::new(store)).queue(std::sync::Arc::new(queue));
            Ok((builder, format!("fjall {}", data.display())))
        }
        "dynamo" => {
            if args.data.is_some() {
                return Err("--data is for the sled store; with --store dynamo the state is in DynamoDB".into());
            }
            if args.sled_stall_timeout.is_some() {
                return Err("--sled-stall-timeout is for the sled store, not --store dynamo".into());
            }
            dynamo_store(builder, args).await
        }
        other => Err(CliError::new(format!("--store {other}: unknown store (sled, fjall or dynamo)"))),
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
    if let Some(s) = args.dynamodb_shards {
        cfg = cfg.shards(s);
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
            if let Some(flag) = args.k8s_only_flag() {
                return Err(CliError::new(format!("{flag} is for --runtime k8s")));
            }
            Ok((Arc::new(embedded::runtime(registry)), "process".into()))
        }
        // The flags are checked before the feature, so every build reports a wrong one the same way.
        "k8s" => k8s_runtime(args.namespaces()?, registry).await,
        other => Err(CliError::new(format!("--runtime {other}: unknown runtime (process or k8s)"))),
    }
}

#[cfg(feature = "k8s")]
async fn k8s_runtime(
    namespaces: Namespaces,
    registry: HandlerRegistry,
) -> Result<(Arc<dyn PodRuntime>, String), CliError> {
    use pop::k8s::NamespaceMode;
    let description = format!("k8s {}", namespaces.describe());
    let namespace = match namespaces {
        Namespaces::Single(ns) => NamespaceMode::Single(ns),
        Namespaces::PerCustomer { prefix, fallback } => NamespaceMode::PerCustomer { prefix, fallback },
        Namespaces::PerInsight { prefix, fallback } => NamespaceMode::PerInsight { prefix, fallback },
        Namespaces::Mapped { by_customer, by_insight, default } => {
            NamespaceMode::Mapped { by_customer, by_insight, default }
        }
    };
    let config = pop::k8s::KubeConfig { namespace, ..pop::k8s::KubeConfig::default() };
    let kube = pop::k8s::KubeRuntime::connect(Arc::new(registry), config)
        .await
        .map_err(|e| CliError::context("--runtime k8s", e))?;
    let router =
        pop::RuntimeRouter::new().with(Arc::new(pop::exec::inprocess::InProcessRuntime::new())).with(Arc::new(kube));
    Ok((Arc::new(router), description))
}

#[cfg(not(feature = "k8s"))]
async fn k8s_runtime(
    _namespaces: Namespaces,
    _registry: HandlerRegistry,
) -> Result<(Arc<dyn PodRuntime>, String), CliError> {
    Err("--runtime k8s: this pop was built without the `k8s` feature (build pop-cli with --features k8s)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        runtime: RuntimeArgs,
    }

    fn namespaces(flags: &[&str], env: Option<&str>) -> Result<Namespaces, String> {
        let args = ["pop", "--registry", "r.json", "--runtime", "k8s"].iter().chain(flags);
        let flags = Flags::try_parse_from(args).map_err(|e| format!("clap: {e}"))?;
        flags.runtime.namespaces_with_default(env.map(str::to_owned)).map_err(|e| e.message)
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_flags_choose_the_namespaces() {
        assert_eq!(namespaces(&[], None), Ok(Namespaces::Single("pop".into())));
        assert_eq!(namespaces(&[], Some("from-env")), Ok(Namespaces::Single("from-env".into())));
        assert_eq!(namespaces(&["--namespace", "work"], Some("from-env")), Ok(Namespaces::Single("work".into())));
        assert_eq!(
            namespaces(&["--namespace-per-customer", "pop-", "--namespace", "shared"], None),
            Ok(Namespaces::PerCustomer { prefix: "pop-".into(), fallback: "shared".into() })
        );
        assert_eq!(
            namespaces(&["--namespace-per-insight", "q-"], Some("ns")),
            Ok(Namespaces::PerInsight { prefix: "q-".into(), fallback: "ns".into() })
        );
        let mapped = namespaces(
            &[
                "--namespace-for",
                "customer:Acme Corp=tenant-acme",
                "--namespace-for",
                "insight:video=queue-video",
                "--namespace-for",
                "customer:a:b=c=tenant-abc",
            ],
            None,
        );
        assert_eq!(
            mapped,
            Ok(Namespaces::Mapped {
                by_customer: map(&[("Acme Corp", "tenant-acme"), ("a:b=c", "tenant-abc")]),
                by_insight: map(&[("video", "queue-video")]),
                default: "pop".into(),
            })
        );
        assert_eq!(
            mapped.map(|m| m.describe()),
            Ok("namespaces for 2 customer(s) and 1 insight(s) (else pop)".to_string())
        );
    }

    #[test]
    fn wrong_flags_are_one_line_naming_the_flag() {
        for (flags, env, expected) in [
            (
                &["--namespace", "Work"][..],
                None,
                r#"--namespace "Work": not a valid namespace name: 'W' is not allowed"#,
            ),
            (&[], Some("bad_ns"), r#"POP_K8S_NAMESPACE="bad_ns" (the default of --namespace): not a valid namespace"#),
            (&["--namespace", &"n".repeat(64)], None, "64 characters, at most 63"),
            (
                &["--namespace-per-customer=-pop"],
                None,
                r#"--namespace-per-customer "-pop": not a valid namespace prefix: it must start"#,
            ),
            (
                &["--namespace-per-insight", ""],
                None,
                r#"--namespace-per-insight "": not a valid namespace prefix: it is empty"#,
            ),
            (&["--namespace-per-customer", "a-", "--namespace-per-insight", "b-"], None, "cannot be combined"),
            (
                &["--namespace-per-customer", "a-", "--namespace-for", "customer:x=y"],
                None,
                "--namespace-per-customer cannot be combined with --namespace-for",
            ),
            (
                &["--namespace-for", "acme=tenant"],
                None,
                r#"--namespace-for "acme=tenant": expected customer:ID=NS or insight:ID=NS"#,
            ),
            (&["--namespace-for", "customer:acme"], None, "expected customer:ID=NS"),
            (&["--namespace-for", "team:acme=t"], None, r#"unknown kind "team""#),
            (&["--namespace-for", "customer: =t"], None, "the customer id is empty"),
            (
                &["--namespace-for", "insight:video=Queue_Video"],
                None,
                r#"--namespace-for "insight:video=Queue_Video": "Queue_Video" is not a valid namespace name"#,
            ),
            (&["--namespace-for", "customer:acme=t-"], None, "must end with a letter or digit"),
            (
                &["--namespace-for", "customer:acme=a", "--namespace-for", "customer:acme=b"],
                None,
                r#"customer "acme" is already mapped (to "a")"#,
            ),
        ] {
            let e = namespaces(flags, env).expect_err(expected);
            assert!(e.contains(expected), "{flags:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn namespace_flags_are_for_the_k8s_runtime() {
        for flag in ["--namespace", "--namespace-per-customer", "--namespace-per-insight", "--namespace-for"] {
            let flags = Flags::try_parse_from(["pop", "--registry", "r.json", flag, "x"]).expect("parses");
            assert_eq!(flags.runtime.k8s_only_flag(), Some(flag));
        }
        let flags = Flags::try_parse_from(["pop", "--registry", "r.json"]).expect("parses");
        assert_eq!(flags.runtime.k8s_only_flag(), None);
    }
}
