//! The `pop` command-line tool: validate, resolve, expand, run, progress, explain, rerun.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Expand an agenda template with a payload.
    Expand {
        /// The template file.
        template: PathBuf,
        /// The payload file.
        payload: PathBuf,
    },
    #[command(flatten)]
    Instance(Box<pop::cli::InstanceCommand>),
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| format!("cannot print the result: {e}"))?;
    println!("{s}");
    Ok(())
}

fn validate(files: &[PathBuf]) -> Result<bool, String> {
    let mut ok = true;
    for f in files {
        let problems: Vec<String> = match read_json(f).and_then(|v| {
            serde_json::from_value::<pop::core::model::Agenda>(v).map_err(|e| format!("not an agenda: {e}"))
        }) {
            Err(e) => vec![e],
            Ok(agenda) => match pop::core::validate::validate_agenda(&agenda, &Default::default()) {
                Ok(()) => vec![],
                Err(e) if !e.problem_list().is_empty() => e.problem_list().iter().map(|p| p.to_string()).collect(),
                Err(e) => vec![e.to_string()],
            },
        };
        for p in &problems {
            let p = p.strip_prefix(&format!("{}: ", f.display())).unwrap_or(p);
            println!("{}: {p}", f.display());
        }
        ok &= problems.is_empty();
    }
    Ok(ok)
}

fn resolve(context: &Path, document: &Path) -> Result<bool, String> {
    let ctx = read_json(context)?;
    let ctx = ctx.as_object().ok_or_else(|| format!("{}: the context must be a JSON object", context.display()))?;
    let doc = read_json(document)?;
    let r = pop::core::refs::resolve(&doc, ctx);
    for m in &r.missing {
        eprintln!("{}: missing reference: {m} is not in the context", document.display());
    }
    for i in &r.invalid {
        eprintln!("{}: invalid reference: {i}", document.display());
    }
    print_json(&r.value)?;
    Ok(r.invalid.is_empty())
}

fn expand(template: &Path, payload: &Path) -> Result<bool, String> {
    let t: pop::core::model::AgendaTemplate = serde_json::from_value(read_json(template)?)
        .map_err(|e| format!("{}: not an agenda template: {e}", template.display()))?;
    let p = read_json(payload)?;
    let agenda = pop::core::template::expand(&t, &p).map_err(|e| format!("{}: {e}", template.display()))?;
    print_json(&agenda)?;
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Resolve { context, document } => resolve(&context, &document),
        Command::Expand { template, payload } => expand(&template, &payload),
        Command::Instance(cmd) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(pop::cli::run(*cmd)),
            Err(e) => Err(format!("cannot start the async runtime: {e}")),
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pop: {e}");
            ExitCode::from(2)
        }
    }
}
