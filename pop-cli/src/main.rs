//! The `pop` command-line tool: validate, resolve and expand agendas; run them on an embedded
//! instance; run a long-lived worker, a server or a remote pool; operate a running server like
//! kubectl (apply, submit, run-template, get, progress, cancel, rerun, explain).
//!
//! Local or remote: `progress`, `explain` and `rerun` work on a local data directory when given
//! `--data DIR`, else on the server of `--server URL` (or `$POP_SERVER`); `--data` with `--server`
//! is a usage error. The other remote commands always need a server.
//!
//! Exit codes (see [`error`]): 0 success; 1 the command ran and what it checked or ran failed (an
//! invalid agenda, a failed agenda) or the server refused the operation; 2 usage or bad input; 3 not
//! found; 4 unauthorized; 5 forbidden; 6 server unreachable. Errors are one line on stderr.

mod apply;
mod error;
mod instance;
mod local;
mod output;
mod pool;
mod remote;
mod serve;
mod setup;
mod worker;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the engine allocates and frees many small buffers per agenda
/// (sled copies a B-tree leaf per insert), and glibc's malloc took about 30% of its CPU.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pop", version, about = "POP for Rust: validate, resolve and run agendas")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate agenda files; print every problem as `FILE: operation NAME: message`.
    Validate {
        /// Agenda JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Resolve the references of a JSON document against a context (a JSON object: name → value).
    Resolve {
        /// The context file.
        #[arg(long)]
        context: PathBuf,
        /// The document.
        document: PathBuf,
    },
    /// Print an agenda's dependency graph: DOT (Graphviz; `pop graph a.json | dot -Tsvg`) or JSON
    /// (nodes with their topological layer, edges by kind: reference, dependsOn, generated).
    Graph {
        /// The agenda file.
        agenda: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = local::GraphFormat::Dot)]
        format: local::GraphFormat,
    },
    /// Expand an agenda template with a payload.
    Expand {
        /// The template file.
        template: PathBuf,
        /// The payload file.
        payload: PathBuf,
    },
    #[command(flatten)]
    Instance(Box<instance::InstanceCommand>),
    #[command(flatten)]
    Remote(Box<remote::RemoteCommand>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => local::validate(&files),
        Command::Resolve { context, document } => local::resolve(&context, &document),
        Command::Expand { template, payload } => local::expand(&template, &payload),
        Command::Graph { agenda, format } => local::graph(&agenda, format),
        Command::Instance(cmd) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(instance::run(*cmd)),
            Err(e) => Err(error::CliError::context("cannot start the async runtime", e)),
        },
        Command::Remote(cmd) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(remote::run(*cmd)),
            Err(e) => Err(error::CliError::context("cannot start the async runtime", e)),
        },
    };
    error::exit_code(result)
}
