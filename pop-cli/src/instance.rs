//! Commands on an embedded instance's data directory (run; progress, explain and rerun with `--data`,
//! else on a server), and the long-lived ones: worker, serve, pool.

use crate::error::{CliError, CliResult, Outcome};
use crate::output::{Format, OutputArgs, print_json as json};
use crate::remote::{RemoteArgs, WatchArgs};
use crate::worker::WorkerArgs;
use clap::Subcommand;
use pop::core::authz::Principal;
use pop::core::model::{AgendaProgress, Conclusion, ProcessingState};
use pop::core::registry::HandlerRegistry;
use pop::embedded;
use pop::services::RerunOptions;
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
    /// An agenda's progress: from a server (`--server` / $POP_SERVER; a table, or `-o json|yaml`;
    /// `--link-id L` for every agenda of a linkId; `--watch` follows to the end), or from a local
    /// data directory with `--data DIR` (JSON).
    Progress {
        /// The agenda id.
        agenda_id: Option<String>,
        /// The agendas of this linkId instead (server only).
        #[arg(long)]
        link_id: Option<String>,
        /// The local data directory (selects the local mode).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        watch: WatchArgs,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Explain where an agenda is and why it waits: on a server, or in a local data directory with
    /// `--data DIR`.
    Explain {
        /// The agenda id.
        agenda_id: String,
        /// The local data directory (selects the local mode).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Rerun an agenda (`resetAll` unless told otherwise): on a server (prints the reset progress;
    /// `--watch` follows it), or on a local data directory with `--data DIR --registry R` (runs it
    /// to completion).
    Rerun {
        /// The agenda id.
        agenda_id: String,
        /// Reset every operation (`resetAll`; the default when nothing else is asked).
        #[arg(long, conflicts_with = "reset")]
        reset_all: bool,
        /// Reset this operation (repeatable; `operationsToReset=a,b`).
        #[arg(long = "reset", value_name = "OPERATION")]
        reset: Vec<String>,
        /// A rerun parameter as the API takes it: resetAll, continue, skipExecution,
        /// operationsToReset=a,b (repeatable).
        #[arg(long = "param", value_name = "NAME[=VALUE]")]
        params: Vec<String>,
        /// The handler registry (JSON; local mode).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// The local data directory (selects the local mode).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        watch: WatchArgs,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Run a long-lived worker: scheduler, reclaimer, a pool worker and the timed processes for the
    /// given insights, on a sled directory or DynamoDB, until SIGTERM or Ctrl-C.
    Worker(Box<WorkerArgs>),
    /// Serve POP's HTTP API (and console) over an instance running the scheduler, the reclaimer and
    /// the timed processes, until SIGTERM or Ctrl-C (requests in flight finish).
    Serve(Box<crate::serve::ServeArgs>),
    /// Run a resource pool on this machine that pulls agendas from a central `pop serve` over HTTP
    /// (no store credentials: only its token), until SIGTERM or Ctrl-C.
    Pool(Box<crate::pool::PoolArgs>),
}

/// Runs an instance command; `Ok(false)` means "ran, but something failed" (exit 1).
pub async fn run(cmd: InstanceCommand) -> CliResult {
    let su = Principal::superuser("pop-cli");
    match cmd {
        InstanceCommand::Run { agendas, registry, data, customer } => {
            let registry = HandlerRegistry::from_path(&registry)?;
            let tmp;
            let dir = match data {
                Some(d) => d,
                None => {
                    tmp = tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let mut parsed = Vec::new();
            for path in &agendas {
                let mut a = embedded::read_agenda(path)?;
                if a.customer_id.as_deref().is_none_or(str::is_empty) {
                    a.customer_id = Some(customer.clone());
                }
                parsed.push((path.clone(), a));
            }
            let pop = embedded::open(&dir, registry, Default::default())?;
            let all: Vec<_> = parsed.iter().map(|(_, a)| a.clone()).collect();
            embedded::prepare(&pop, &all).await?;
            let mut ids = Vec::new();
            for (path, a) in parsed {
                let stored = pop.agendas().submit(&su, a).await.map_err(|e| CliError::context(path.display(), e))?;
                ids.push(stored.id.ok_or_else(|| CliError::context(path.display(), "the stored agenda has no id"))?);
            }
            pop.start_all(embedded::worker());
            let finals = follow(&pop, &ids).await?;
            pop.shutdown().await;
            for p in &finals {
                json(p)?;
            }
            Ok(Outcome::from_ok(finals.iter().all(|p| p.conclusion() == Some(Conclusion::Succeeded))))
        }
        InstanceCommand::Progress { agenda_id, link_id, data, watch, remote, out } => {
            let Some(data) = local_data(data, &remote)? else {
                return crate::remote::progress(
                    &remote,
                    agenda_id.as_deref(),
                    link_id.as_deref(),
                    watch,
                    out.or(Format::Table),
                )
                .await;
            };
            if link_id.is_some() || watch.watch {
                return Err("--link-id and --watch need a server (--server URL), not --data".into());
            }
            let agenda_id = agenda_id.ok_or(CliError::from("give the agenda id"))?;
            let pop = open_existing(&data)?;
            print(out.or(Format::Json), &pop.progress().agenda_progress(&su, &agenda_id).await?)?;
            Ok(Outcome::Success)
        }
        InstanceCommand::Explain { agenda_id, data, remote, out } => {
            let Some(data) = local_data(data, &remote)? else {
                return crate::remote::explain(&remote, &agenda_id, out.or(Format::Table)).await;
            };
            let pop = open_existing(&data)?;
            crate::remote::print_explain(out.or(Format::Json), &pop.progress().explain(&su, &agenda_id).await?)?;
            Ok(Outcome::Success)
        }
        InstanceCommand::Rerun { agenda_id, reset_all, reset, mut params, registry, data, watch, remote, out } => {
            if reset_all {
                params.push("resetAll".into());
            }
            if !reset.is_empty() {
                params.push(format!("operationsToReset={}", reset.join(",")));
            }
            let Some(data) = local_data(data, &remote)? else {
                if registry.is_some() {
                    return Err("--registry is for the local mode (--data DIR)".into());
                }
                return crate::remote::rerun(&remote, &agenda_id, &params, watch, out.or(Format::Table)).await;
            };
            let registry = registry.ok_or(CliError::from("--registry FILE is required with --data"))?;
            let registry = HandlerRegistry::from_path(&registry)?;
            let options = RerunOptions::parse(&params)?;
            let format = out.or(Format::Json);
            let pop = embedded::open(&data, registry, Default::default())?;
            pop.agendas().rerun(&su, &agenda_id, options.clone()).await?;
            if options.skip_execution {
                print(format, &pop.progress().agenda_progress(&su, &agenda_id).await?)?;
                return Ok(Outcome::Success);
            }
            pop.start_all(embedded::worker());
            let finals = follow(&pop, std::slice::from_ref(&agenda_id)).await?;
            pop.shutdown().await;
            for p in &finals {
                print(format, p)?;
            }
            Ok(Outcome::from_ok(finals.first().and_then(AgendaProgress::conclusion) == Some(Conclusion::Succeeded)))
        }
        InstanceCommand::Worker(args) => crate::worker::run(*args).await,
        InstanceCommand::Serve(args) => crate::serve::run(*args).await,
        InstanceCommand::Pool(args) => crate::pool::run(*args).await,
    }
}

/// The local mode's data directory: `--data` selects the local mode, and does not combine with
/// `--server` (`$POP_SERVER` is ignored when `--data` is given).
fn local_data(data: Option<PathBuf>, remote: &RemoteArgs) -> Result<Option<PathBuf>, CliError> {
    match (data, &remote.server) {
        (Some(_), Some(_)) => {
            Err("--data (a local data directory) and --server (a running server) cannot be combined: choose one".into())
        }
        (data, _) => Ok(data),
    }
}

/// Prints local progress: JSON (the local default), YAML, or the remote commands' table.
fn print(format: Format, p: &AgendaProgress) -> Result<(), CliError> {
    match format {
        Format::Yaml => crate::output::print_yaml(p),
        Format::Json => json(p),
        Format::Table => crate::remote::progress_table(std::slice::from_ref(p)),
    }
}

fn open_existing(data: &std::path::Path) -> Result<pop::Pop, CliError> {
    if !data.is_dir() {
        return Err(CliError::new(format!("{}: no such data directory", data.display())));
    }
    let registry = HandlerRegistry::from_json_str("{}")?;
    Ok(embedded::open(data, registry, Default::default())?)
}

fn tempdir() -> Result<tempfile::TempDir, CliError> {
    tempfile::Builder::new()
        .prefix("pop-run-")
        .tempdir()
        .map_err(|e| CliError::context("cannot create a temporary data directory", e))
}

async fn follow(pop: &pop::Pop, ids: &[String]) -> Result<Vec<AgendaProgress>, CliError> {
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
    .await?;
    for b in bars {
        b.finish();
    }
    Ok(finals)
}
