//! Commands on a running deployment (`pop serve`) through its HTTP API, like kubectl: apply, submit,
//! run-template, get, progress, cancel, rerun, explain. Every request goes through
//! [`pop::http::Client`] with the caller's token, so the server's authentication and visibility rules
//! decide what each command may see and do.

use crate::error::{CliError, CliResult, ErrorKind, Outcome};
use crate::output::{Column, Format, OutputArgs, cell_text, print_json, print_object, print_objects, print_yaml};
use pop::core::model::{
    Agenda, AgendaProgress, AgendaTemplate, Conclusion, Customer, Insight, ProcessingState, ResourcePool,
};
use pop::core::store::{IndexField, Page, PageRequest};
use pop::http::Client;
use pop::http::client::ApiObject;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the server is and who the caller is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteArgs {
    /// The server, `http://HOST:PORT` (default: $POP_SERVER).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The bearer token (default: $POP_TOKEN).
    #[arg(long, value_name = "TOKEN", env = "POP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long to keep retrying while the server cannot be reached or answers 502/503/504, in
    /// seconds (0: fail at once, exit 6).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub retry_for: f64,
}

impl RemoteArgs {
    /// The server URL: `--server`, else `$POP_SERVER`.
    pub fn server_url(&self) -> Option<String> {
        self.server.clone().or_else(|| std::env::var("POP_SERVER").ok()).filter(|s| !s.trim().is_empty())
    }

    /// The client of the server.
    pub fn client(&self) -> Result<Client, CliError> {
        let server = self.server_url().ok_or_else(|| {
            CliError::new(
                "no server: give --server URL or set POP_SERVER (or --data DIR where a command has a local mode)",
            )
        })?;
        let client = Client::new(&server).map_err(|e| CliError::context("--server", e))?;
        if !self.retry_for.is_finite() || self.retry_for < 0.0 {
            return Err(CliError::new(format!(
                "--retry-for {}: must be a number of seconds, 0 or more",
                self.retry_for
            )));
        }
        let client = client.with_retry_for(Duration::from_secs_f64(self.retry_for));
        Ok(match self.token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => client.with_token(t),
            None => client,
        })
    }
}

/// How `--watch` follows agendas.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WatchArgs {
    /// Follow the agendas with live progress bars (plain lines when stderr is not a terminal) until
    /// they are COMPLETE; exit 1 unless every one succeeded.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often `--watch` polls, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub interval_ms: u64,
}

/// The kinds `pop get` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Agendas.
    #[value(alias = "agendas")]
    Agenda,
    /// Agenda progress (by its own id or its agenda's id).
    #[value(alias = "progresses")]
    Progress,
    /// Customers.
    #[value(alias = "customers")]
    Customer,
    /// Resource pools.
    #[value(alias = "pools", alias = "resourcepool", alias = "resourcepools")]
    Pool,
    /// Insights.
    #[value(alias = "insights")]
    Insight,
    /// Agenda templates.
    #[value(alias = "templates", alias = "agendatemplate", alias = "agendatemplates")]
    Template,
}

/// Which objects a listing reads, and how many.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only the objects of this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only the objects with this linkId (agendas and progress).
    #[arg(long)]
    pub link_id: Option<String>,
    /// The most objects in one page.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Where the previous page ended (the `next` it printed).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Read every page.
    #[arg(long)]
    pub all: bool,
}

/// The commands only a server answers.
#[derive(Debug, clap::Subcommand)]
pub enum RemoteCommand {
    /// Create or update customers, resource pools, insights and agenda templates from JSON or YAML
    /// files (an object, an array, or YAML documents separated by `---`); idempotent: each object is
    /// `created`, `updated` (with the fields that changed) or `unchanged`. See the README for the
    /// format (a `kind` field, or the kind inferred from the fields).
    Apply {
        /// The files (`-` for stdin; JSON or YAML, by extension, else by content).
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// The customerId of objects that name none (a customer without one owns itself).
        #[arg(long)]
        customer: Option<String>,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Submit agendas (JSON or YAML; an object, an array, or YAML documents); print their ids.
    Submit {
        /// The agenda files.
        #[arg(required = true)]
        agendas: Vec<PathBuf>,
        /// The customerId of agendas that name none.
        #[arg(long)]
        customer: Option<String>,
        #[command(flatten)]
        watch: WatchArgs,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Expand a stored agenda template with a payload and submit the agenda.
    RunTemplate {
        /// The template's id.
        template_id: String,
        /// The payload file (JSON or YAML).
        payload: PathBuf,
        #[command(flatten)]
        watch: WatchArgs,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Read one object, or list them (`--customer`, `--link-id`, `--limit`, `--cursor`, `--all`).
    Get {
        /// What to read.
        #[arg(value_enum)]
        kind: Kind,
        /// The object's id (omit to list).
        id: Option<String>,
        #[command(flatten)]
        list: ListArgs,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Cancel an agenda.
    Cancel {
        /// The agenda's id.
        agenda_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// Runs a remote command.
pub async fn run(cmd: RemoteCommand) -> CliResult {
    match cmd {
        RemoteCommand::Apply { files, customer, dry_run, remote, out } => {
            crate::apply::run(&remote.client()?, &files, customer.as_deref(), dry_run, out.or(Format::Table)).await
        }
        RemoteCommand::Submit { agendas, customer, watch, remote, out } => {
            submit(&remote.client()?, &agendas, customer.as_deref(), watch, out.or(Format::Table)).await
        }
        RemoteCommand::RunTemplate { template_id, payload, watch, remote, out } => {
            let client = remote.client()?;
            let payload = read_one(&payload)?;
            let agenda = client
                .run_template(&template_id, &payload)
                .await
                .map_err(|e| CliError::remote(format!("template {template_id}"), e))?;
            submitted(&client, vec![agenda], watch, out.or(Format::Table)).await
        }
        RemoteCommand::Get { kind, id, list, remote, out } => {
            get(&remote.client()?, kind, id.as_deref(), &list, out.or(Format::Table)).await
        }
        RemoteCommand::Cancel { agenda_id, remote, out } => {
            let client = remote.client()?;
            let p = client.cancel(&agenda_id).await.map_err(|e| CliError::remote(format!("agenda {agenda_id}"), e))?;
            print_object(out.or(Format::Table), PROGRESS, &to_value(&p)?)?;
            Ok(Outcome::Success)
        }
    }
}

/// `pop progress ID | --link-id L [--watch]` against a server.
pub async fn progress(
    remote: &RemoteArgs,
    agenda_id: Option<&str>,
    link_id: Option<&str>,
    watch: WatchArgs,
    format: Format,
) -> CliResult {
    let client = remote.client()?;
    let target = match (agenda_id, link_id) {
        (Some(id), None) => Target::Agenda(id.to_owned()),
        (None, Some(l)) => Target::Link(l.to_owned()),
        (Some(_), Some(_)) => return Err("give an agenda id or --link-id, not both".into()),
        (None, None) => return Err("give an agenda id or --link-id L".into()),
    };
    if watch.watch {
        let finals = follow(&client, &target, watch.interval_ms).await?;
        print_progress(&client, &target, format, Some(&finals)).await?;
        return Ok(Outcome::from_ok(all_succeeded(&finals)));
    }
    print_progress(&client, &target, format, None).await?;
    Ok(Outcome::Success)
}

/// `pop explain ID` against a server.
pub async fn explain(remote: &RemoteArgs, agenda_id: &str, format: Format) -> CliResult {
    let client = remote.client()?;
    let e = client.explain(agenda_id).await.map_err(|e| CliError::remote(format!("agenda {agenda_id}"), e))?;
    print_explain(format, &e)?;
    Ok(Outcome::Success)
}

/// Prints an explanation: `Label value` lines (table), or JSON / YAML.
pub fn print_explain(format: Format, e: &pop::services::Explain) -> Result<(), CliError> {
    let v = to_value(e)?;
    match format {
        Format::Table => {
            for (label, key) in [
                ("Agenda", "agendaId"),
                ("State", "processingState"),
                ("Stage", "stage"),
                ("Position", "position"),
                ("Reason", "reason"),
            ] {
                println!("{label:<9} {}", cell_text(v.get(key)));
            }
            Ok(())
        }
        Format::Json => print_json(&v),
        Format::Yaml => print_yaml(&v),
    }
}

/// Prints agenda progress as a table, with the operations' table under a single agenda.
pub fn progress_table(list: &[AgendaProgress]) -> Result<(), CliError> {
    let rows = list.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
    crate::output::print_table(PROGRESS, &rows);
    if let [one] = list {
        let ops = one.operation_progress.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
        if !ops.is_empty() {
            println!();
            crate::output::print_table(OPERATIONS, &ops);
        }
    }
    Ok(())
}

/// `pop rerun ID [...]` against a server: `params` are the rerun parameters.
pub async fn rerun(
    remote: &RemoteArgs,
    agenda_id: &str,
    params: &[String],
    watch: WatchArgs,
    format: Format,
) -> CliResult {
    let client = remote.client()?;
    let p = client.rerun(agenda_id, params).await.map_err(|e| CliError::remote(format!("agenda {agenda_id}"), e))?;
    if watch.watch {
        let target = Target::Agenda(agenda_id.to_owned());
        let finals = follow(&client, &target, watch.interval_ms).await?;
        print_progress(&client, &target, format, Some(&finals)).await?;
        return Ok(Outcome::from_ok(all_succeeded(&finals)));
    }
    print_object(format, PROGRESS, &to_value(&p)?)?;
    Ok(Outcome::Success)
}

async fn submit(
    client: &Client,
    files: &[PathBuf],
    customer: Option<&str>,
    watch: WatchArgs,
    format: Format,
) -> CliResult {
    let mut agendas = Vec::new();
    for file in files {
        for (i, v) in read_documents(file)?.into_iter().enumerate() {
            let mut a: Agenda = serde_json::from_value(v)
                .map_err(|e| CliError::new(format!("{}: document {}: not an agenda: {e}", file.display(), i + 1)))?;
            if a.customer_id.as_deref().is_none_or(str::is_empty) {
                a.customer_id = customer.map(str::to_owned);
            }
            agendas.push((file.clone(), a));
        }
    }
    if agendas.is_empty() {
        return Err("no agenda in the files".into());
    }
    let mut stored = Vec::new();
    for (file, a) in agendas {
        stored.push(client.submit(&a).await.map_err(|e| CliError::remote(file.display(), e))?);
    }
    submitted(client, stored, watch, format).await
}

/// Prints submitted agendas, or follows them with `--watch`.
async fn submitted(client: &Client, agendas: Vec<Agenda>, watch: WatchArgs, format: Format) -> CliResult {
    if !watch.watch {
        let rows = agendas.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
        print_objects(format, AGENDA, &rows)?;
        return Ok(Outcome::Success);
    }
    let ids: Vec<String> = agendas.iter().filter_map(|a| a.id.clone()).collect();
    let target = Target::Agendas(ids);
    let finals = follow(client, &target, watch.interval_ms).await?;
    print_progress(client, &target, format, Some(&finals)).await?;
    Ok(Outcome::from_ok(all_succeeded(&finals)))
}

fn all_succeeded(finals: &[AgendaProgress]) -> bool {
    !finals.is_empty() && finals.iter().all(|p| p.conclusion() == Some(Conclusion::Succeeded))
}

/// What `--watch` follows.
enum Target {
    Agenda(String),
    Agendas(Vec<String>),
    Link(String),
}

async fn fetch(client: &Client, target: &Target) -> Result<Vec<AgendaProgress>, CliError> {
    match target {
        Target::Agenda(id) => {
            Ok(vec![client.agenda_progress(id).await.map_err(|e| CliError::remote(format!("agenda {id}"), e))?])
        }
        Target::Agendas(ids) => {
            let mut all = Vec::new();
            for id in ids {
                all.push(client.agenda_progress(id).await.map_err(|e| CliError::remote(format!("agenda {id}"), e))?);
            }
            Ok(all)
        }
        Target::Link(l) => {
            let list =
                client.progress_summary(l).await.map_err(|e| CliError::remote(format!("linkId {l}"), e))?.progress_list;
            if list.is_empty() {
                return Err(CliError::new(format!("linkId {l}: no agenda (visible with this token) has it"))
                    .with_kind(ErrorKind::NotFound));
            }
            Ok(list)
        }
    }
}

/// How long `--watch` waits out a server that stopped answering after the watch started.
const WATCH_OUTAGE: Duration = Duration::from_secs(30);

/// Polls until every agenda is COMPLETE, with a bar per agenda on a terminal (else a line on stderr
/// per change); the final progress of each. Once it has read the progress, an unreachable or failing
/// server is retried for up to [`WATCH_OUTAGE`].
async fn follow(client: &Client, target: &Target, interval_ms: u64) -> Result<Vec<AgendaProgress>, CliError> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let multi = indicatif::MultiProgress::new();
    let mut bars: BTreeMap<String, indicatif::ProgressBar> = BTreeMap::new();
    let mut last: BTreeMap<String, (ProcessingState, i64, Option<String>)> = BTreeMap::new();
    let interval = Duration::from_millis(interval_ms.max(50));
    let mut last_success = std::time::Instant::now();
    loop {
        let all = match fetch(client, target).await {
            Ok(all) => {
                last_success = std::time::Instant::now();
                all
            }
            // once the watch has started, a server that restarts or a network blip is waited out
            Err(e)
                if !last.is_empty()
                    && matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Failed)
                    && last_success.elapsed() < WATCH_OUTAGE =>
            {
                tracing::debug!(error = %e, "watch: the server did not answer; retrying");
                tokio::time::sleep(interval).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        for p in &all {
            let id = p.agenda_id.clone().unwrap_or_default();
            let pct = p.percent_complete.round() as i64;
            let message = p.processing_state_message.clone();
            let state = (p.processing_state, pct, message.clone());
            if tty {
                let bar = bars.entry(id.clone()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(100));
                    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos:>3}% {msg}") {
                        b.set_style(style);
                    }
                    b
                });
                bar.set_position(pct.clamp(0, 100) as u64);
                bar.set_message(format!("{id} {} {}", p.processing_state, message.as_deref().unwrap_or("")));
            } else if last.get(&id) != Some(&state) {
                eprintln!("{id} {} {pct}% {}", p.processing_state, message.as_deref().unwrap_or(""));
            }
            last.insert(id, state);
        }
        if !all.is_empty() && all.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            for b in bars.values() {
                b.finish();
            }
            return Ok(all);
        }
        tokio::time::sleep(interval).await;
    }
}

async fn print_progress(
    client: &Client,
    target: &Target,
    format: Format,
    known: Option<&[AgendaProgress]>,
) -> Result<(), CliError> {
    let list = match known {
        Some(k) => k.to_vec(),
        None => fetch(client, target).await?,
    };
    match (format, target) {
        (Format::Table, _) => progress_table(&list),
        (_, Target::Agenda(_)) if list.len() == 1 => print_value(format, &to_value(&list[0])?),
        (_, Target::Link(l)) if known.is_none() => {
            let summary = client.progress_summary(l).await.map_err(|e| CliError::remote(format!("linkId {l}"), e))?;
            print_value(format, &to_value(&summary)?)
        }
        _ => print_value(format, &to_value(&list)?),
    }
}

fn print_value(format: Format, v: &Value) -> Result<(), CliError> {
    match format {
        Format::Yaml => print_yaml(v),
        _ => print_json(v),
    }
}

async fn get(client: &Client, kind: Kind, id: Option<&str>, list: &ListArgs, format: Format) -> CliResult {
    let columns = match kind {
        Kind::Agenda => AGENDA,
        Kind::Progress => PROGRESS,
        Kind::Customer => CUSTOMER,
        Kind::Pool => POOL,
        Kind::Insight => INSIGHT,
        Kind::Template => TEMPLATE,
    };
    if let Some(id) = id {
        if list.customer.is_some() || list.link_id.is_some() || list.cursor.is_some() || list.all {
            return Err("--customer, --link-id, --cursor and --all are for listing: give no id".into());
        }
        let v = match kind {
            Kind::Agenda => one::<Agenda>(client, id).await?,
            Kind::Progress => match client.get::<AgendaProgress>(id).await {
                Ok(p) => to_value(&p)?,
                Err(e) if e.is_not_found() => to_value(
                    &client.agenda_progress(id).await.map_err(|e| CliError::remote(format!("progress {id}"), e))?,
                )?,
                Err(e) => return Err(CliError::remote(format!("progress {id}"), e)),
            },
            Kind::Customer => one::<Customer>(client, id).await?,
            Kind::Pool => one::<ResourcePool>(client, id).await?,
            Kind::Insight => one::<Insight>(client, id).await?,
            Kind::Template => one::<AgendaTemplate>(client, id).await?,
        };
        print_object(format, columns, &v)?;
        return Ok(Outcome::Success);
    }
    if list.link_id.is_some() && !matches!(kind, Kind::Agenda | Kind::Progress) {
        return Err("--link-id lists agendas and progress only".into());
    }
    let (items, next) = match kind {
        Kind::Agenda => many::<Agenda>(client, list).await?,
        Kind::Progress => many::<AgendaProgress>(client, list).await?,
        Kind::Customer => many::<Customer>(client, list).await?,
        Kind::Pool => many::<ResourcePool>(client, list).await?,
        Kind::Insight => many::<Insight>(client, list).await?,
        Kind::Template => many::<AgendaTemplate>(client, list).await?,
    };
    match format {
        Format::Table => {
            crate::output::print_table(columns, &items);
            if let Some(n) = &next {
                eprintln!("more: --cursor {n}");
            }
        }
        _ => {
            let mut doc = serde_json::json!({ "items": items });
            if let Some(n) = next {
                doc["next"] = Value::String(n);
            }
            print_value(format, &doc)?;
        }
    }
    Ok(Outcome::Success)
}

async fn one<T: ApiObject>(client: &Client, id: &str) -> Result<Value, CliError> {
    to_value(&client.get::<T>(id).await.map_err(|e| CliError::remote(format!("{} {id}", T::PATH), e))?)
}

async fn many<T: ApiObject>(client: &Client, list: &ListArgs) -> Result<(Vec<Value>, Option<String>), CliError> {
    if list.limit == 0 {
        return Err("--limit: must be at least 1".into());
    }
    let filter = match (&list.customer, &list.link_id) {
        (Some(_), Some(_)) => return Err("give --customer or --link-id, not both".into()),
        (Some(c), None) => Some((IndexField::CustomerId, c.as_str())),
        (None, Some(l)) => Some((IndexField::LinkId, l.as_str())),
        (None, None) => None,
    };
    let mut page = PageRequest { limit: list.limit, cursor: list.cursor.clone() };
    let mut items = Vec::new();
    loop {
        let got: Page<T> = match filter {
            Some((field, value)) => client.query::<T>(field, value, page.clone()).await,
            None => client.list::<T>(page.clone()).await,
        }
        .map_err(|e| CliError::remote(format!("listing {}", T::PATH), e))?;
        for item in &got.items {
            items.push(to_value(item)?);
        }
        match got.next {
            Some(next) if list.all => page.cursor = Some(next),
            next => return Ok((items, next)),
        }
    }
}

/// An object as JSON.
pub fn to_value(v: &impl serde::Serialize) -> Result<Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::context("cannot encode the result", e).with_kind(ErrorKind::Failed))
}

/// Reads a file (`-`: stdin) as JSON or YAML documents: YAML by the `.yaml` / `.yml` extension, JSON
/// by `.json`, else JSON when the text starts with `{` or `[`. A top-level array is several documents.
pub fn read_documents(path: &Path) -> Result<Vec<Value>, CliError> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| CliError::context("stdin", e))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::context(format!("{}: cannot read", path.display()), e))?
    };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let yaml = match ext.as_deref() {
        Some("yaml" | "yml") => true,
        Some("json") => false,
        _ => !text.trim_start().starts_with(['{', '[']),
    };
    let docs: Vec<Value> = if yaml {
        serde_saphyr::from_multiple::<Value>(&text)
            .map_err(|e| CliError::new(format!("{}: not valid YAML: {}", path.display(), first_line(&e.to_string()))))?
    } else {
        vec![
            serde_json::from_str(&text)
                .map_err(|e| CliError::new(format!("{}: not valid JSON: {e}", path.display())))?,
        ]
    };
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Array(items) => out.extend(items),
            Value::Null => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// One JSON or YAML document.
fn read_one(path: &Path) -> Result<Value, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::context(format!("{}: cannot read", path.display()), e))?;
    if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(&text).map_err(|e| CliError::new(format!("{}: not valid JSON: {e}", path.display())))
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|e| CliError::new(format!("{}: not valid YAML: {}", path.display(), first_line(&e.to_string()))))
    }
}

fn ptr(v: &Value, p: &str) -> String {
    cell_text(v.pointer(p))
}

const AGENDA: &[Column] = &[
    Column { header: "ID", cell: |v| ptr(v, "/id") },
    Column { header: "CUSTOMER", cell: |v| ptr(v, "/customerId") },
    Column { header: "LINK", cell: |v| ptr(v, "/linkId") },
    Column { header: "OPERATIONS", cell: |v| v["operations"].as_array().map_or(0, Vec::len).to_string() },
    Column { header: "TITLE", cell: |v| ptr(v, "/title") },
];

const PROGRESS: &[Column] = &[
    Column { header: "AGENDA", cell: |v| ptr(v, "/agendaId") },
    Column { header: "STATE", cell: |v| ptr(v, "/processingState") },
    Column { header: "RESULT", cell: |v| ptr(v, "/processingStateMessage") },
    Column { header: "PERCENT", cell: |v| format!("{:.0}", v["percentComplete"].as_f64().unwrap_or(0.0)) },
    Column {
        header: "OPS DONE",
        cell: |v| {
            let ops = v["operationProgress"].as_array().map(Vec::as_slice).unwrap_or_default();
            let done = ops.iter().filter(|o| o["processingState"] == "COMPLETE").count();
            format!("{done}/{}", ops.len())
        },
    },
    Column { header: "ATTEMPTS", cell: |v| ptr(v, "/attemptsCompleted") },
    Column { header: "LINK", cell: |v| ptr(v, "/linkId") },
];

const OPERATIONS: &[Column] = &[
    Column { header: "OPERATION", cell: |v| ptr(v, "/operation") },
    Column { header: "STATE", cell: |v| ptr(v, "/processingState") },
    Column { header: "RESULT", cell: |v| ptr(v, "/processingStateMessage") },
    Column { header: "PERCENT", cell: |v| format!("{:.0}", v["percentComplete"].as_f64().unwrap_or(0.0)) },
    Column { header: "ATTEMPTS", cell: |v| ptr(v, "/attemptCount") },
];

const CUSTOMER: &[Column] = &[
    Column { header: "ID", cell: |v| ptr(v, "/id") },
    Column { header: "TITLE", cell: |v| ptr(v, "/title") },
    Column { header: "OWNER", cell: |v| ptr(v, "/customerId") },
    Column { header: "POOL", cell: |v| ptr(v, "/resourcePoolId") },
    Column { header: "WEIGHT", cell: |v| v.get("weight").map_or("1".into(), |w| cell_text(Some(w))) },
];

const POOL: &[Column] = &[
    Column { header: "ID", cell: |v| ptr(v, "/id") },
    Column { header: "TITLE", cell: |v| ptr(v, "/title") },
    Column { header: "OWNER", cell: |v| ptr(v, "/customerId") },
    Column { header: "INSIGHTS", cell: |v| ptr(v, "/insightIds") },
];

const INSIGHT: &[Column] = &[
    Column { header: "ID", cell: |v| ptr(v, "/id") },
    Column { header: "TITLE", cell: |v| ptr(v, "/title") },
    Column { header: "OWNER", cell: |v| ptr(v, "/customerId") },
    Column { header: "POOL", cell: |v| ptr(v, "/resourcePoolId") },
    Column { header: "QUEUE", cell: |v| ptr(v, "/queueSize") },
    Column { header: "ALGORITHM", cell: |v| ptr(v, "/schedulingAlgorithm") },
    Column { header: "GLOBAL", cell: |v| v["isGlobal"].as_bool().unwrap_or(false).to_string() },
];

const TEMPLATE: &[Column] = &[
    Column { header: "ID", cell: |v| ptr(v, "/id") },
    Column { header: "TITLE", cell: |v| ptr(v, "/title") },
    Column { header: "OWNER", cell: |v| ptr(v, "/customerId") },
    Column { header: "DEFAULT", cell: |v| v["isDefaultTemplate"].as_bool().unwrap_or(false).to_string() },
    Column { header: "GLOBAL", cell: |v| v["isGlobal"].as_bool().unwrap_or(false).to_string() },
];
