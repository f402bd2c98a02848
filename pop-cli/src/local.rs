//! Commands on files alone, with no instance: validate, resolve, expand.

use crate::error::{CliError, CliResult, Outcome};
use crate::output::print_json;
use std::path::{Path, PathBuf};

/// Reads a JSON file, naming the file in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::context(format!("{}: cannot read", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| CliError::context(format!("{}: not valid JSON", path.display()), e))
}

/// `pop validate FILE...`: one line per problem, `FILE: operation NAME: message`; exit 1 if any.
pub fn validate(files: &[PathBuf]) -> CliResult {
    let mut ok = true;
    for f in files {
        let problems: Vec<String> = match read_json(f).and_then(|v| {
            serde_json::from_value::<pop::core::model::Agenda>(v).map_err(|e| CliError::context("not an agenda", e))
        }) {
            Err(e) => vec![e.to_string()],
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
    Ok(Outcome::from_ok(ok))
}

/// `pop resolve --context C DOCUMENT`: the reference language as a tool.
pub fn resolve(context: &Path, document: &Path) -> CliResult {
    let ctx = read_json(context)?;
    let ctx = ctx
        .as_object()
        .ok_or_else(|| CliError::new(format!("{}: the context must be a JSON object", context.display())))?;
    let doc = read_json(document)?;
    let r = pop::core::refs::resolve(&doc, ctx);
    for m in &r.missing {
        eprintln!("{}: missing reference: {m} is not in the context", document.display());
    }
    for i in &r.invalid {
        eprintln!("{}: invalid reference: {i}", document.display());
    }
    print_json(&r.value)?;
    Ok(Outcome::from_ok(r.invalid.is_empty()))
}

/// `pop expand TEMPLATE PAYLOAD`: the expanded agenda.
pub fn expand(template: &Path, payload: &Path) -> CliResult {
    let t: pop::core::model::AgendaTemplate = serde_json::from_value(read_json(template)?)
        .map_err(|e| CliError::context(format!("{}: not an agenda template", template.display()), e))?;
    let p = read_json(payload)?;
    let agenda = pop::core::template::expand(&t, &p).map_err(|e| CliError::context(template.display(), e))?;
    print_json(&agenda)?;
    Ok(Outcome::Success)
}

/// The output of `pop graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// JSON: nodes (name, type, layer, generated parent), edges (from, to, kind), cycles, unresolved names.
    Json,
}

/// `pop graph AGENDA`: the agenda's dependency graph; exit 1 when it has cycles or unresolved names
/// (the graph is printed anyway, with them marked).
pub fn graph(path: &Path, format: GraphFormat) -> CliResult {
    let agenda: pop::core::model::Agenda = serde_json::from_value(read_json(path)?)
        .map_err(|e| CliError::context(format!("{}: not an agenda", path.display()), e))?;
    let graph = pop::core::dag::AgendaGraph::new(&agenda);
    let doc = graph.document();
    match format {
        GraphFormat::Dot => print!("{}", graph.to_dot()),
        GraphFormat::Json => print_json(&doc)?,
    }
    for c in &doc.cycles {
        eprintln!("{}: cycle: {} (each depends on the next)", path.display(), c.join(" -> "));
    }
    for u in &doc.unresolved {
        eprintln!(
            "{}: operation {}: depends on {}, which the agenda does not have",
            path.display(),
            u.operation,
            u.name
        );
    }
    Ok(Outcome::from_ok(doc.cycles.is_empty() && doc.unresolved.is_empty()))
}
