//! Agenda-template expansion (`staticParameters`, `pop.payload`).
//!
//! [`expand`] turns an [`AgendaTemplate`] and a run payload into an [`Agenda`], as the original POP's
//! `DefaultAgendaFactory` did (`docs/pop-original.md` §8.3):
//!
//! 1. The **parameters** are the template's `staticParameters`, plus `pop.payload` and
//!    `pop.transformRequest` (both the run payload). A static parameter named like one of these two
//!    built-ins is refused ("Parameter \[x\] is duplicated.").
//! 2. **Extension** (needed by the original's own fixture, whose template references `@<sourceFile>`,
//!    a key of the run payload): when the payload is a JSON object, each of its top-level keys is a
//!    parameter too. On a clash **the static parameter wins**: static parameters are the template
//!    author's constants, and a caller's payload cannot override them (the caller can still read its
//!    own value as `@<pop.payload::/key>`). Payload keys that start with `pop.` or end with `.out` are
//!    *not* exposed: those names belong to the built-ins and to run-time operation outputs, and a
//!    payload must not be able to pre-empt an operation's output.
//! 3. The template's `agenda` document is resolved against the parameters with the reference language
//!    ([`crate::refs`]). References to operation outputs (`@<encode.out::/file>`) and the run-time
//!    tokens (`pop.agendaId`, `pop.operationName`, `pop.params`) are left as they are, for execution.
//!    Any other unresolved name is a parameter the template needs and nobody provided: an error naming
//!    the reference, where it is, and how to provide it. Invalid references (a pointer that finds
//!    nothing without a fallback, an object in a composite string) are errors too.
//! 4. The result is read as an [`Agenda`]; a shape error names the path (`operations[0].name`).
//!    A blank `title` becomes the template's title.
//!
//! Malformed reference text (`@<` without `>`) is left as it is here; validation at submission
//! ([`crate::validate::validate_agenda`]) reports it.
//!
//! ```
//! use pop_core::model::AgendaTemplate;
//! use serde_json::json;
//! let template: AgendaTemplate = serde_json::from_value(json!({
//!     "title": "encode one file",
//!     "staticParameters": {"preset": "hd"},
//!     "agenda": {"operations": [
//!         {"name": "probe", "type": "probe", "payload": {"file": "@<pop.payload::/file>"}},
//!         {"name": "encode", "type": "encode",
//!          "payload": {"in": "@<probe.out::/file>", "preset": "@<preset>", "tag": "@<tag>"}}
//!     ]}
//! })).unwrap();
//! let agenda = pop_core::template::expand(&template, &json!({"file": "dog.mp4", "tag": 7})).unwrap();
//! assert_eq!(agenda.title.as_deref(), Some("encode one file"));
//! assert_eq!(agenda.operations[0].payload, json!({"file": "dog.mp4"}));
//! assert_eq!(agenda.operations[1].payload, json!({"in": "@<probe.out::/file>", "preset": "hd", "tag": 7}));
//! ```

use crate::error::{Error, Problem, Result};
use crate::model::{Agenda, AgendaTemplate, Operation};
use crate::refs::{
    AGENDA_ID, OPERATION_NAME, OUTPUT_SUFFIX, PARAMS, PAYLOAD, ParsedDocument, Step, TOKEN_PREFIX, TRANSFORM_REQUEST,
};
use serde_json::Value;
use std::collections::HashMap;

/// The names every expansion defines, whatever the template says.
pub const BUILT_IN_PARAMETERS: [&str; 2] = [PAYLOAD, TRANSFORM_REQUEST];

/// The parameters a template is expanded with: `staticParameters`, the built-ins, and the top-level
/// keys of an object payload (static parameters win; see the module docs).
pub fn parameters(template: &AgendaTemplate, payload: &Value) -> Result<HashMap<String, Value>> {
    let mut params: HashMap<String, Value> = HashMap::new();
    if let Value::Object(map) = payload {
        for (k, v) in map {
            if k.starts_with(TOKEN_PREFIX) || k.ends_with(OUTPUT_SUFFIX) {
                continue;
            }
            params.insert(k.clone(), v.clone());
        }
    }
    let mut problems = Vec::new();
    if let Some(statics) = &template.static_parameters {
        for (k, v) in statics {
            if BUILT_IN_PARAMETERS.contains(&k.as_str()) {
                problems.push(
                    Problem::new(format!("Parameter [{k}] is duplicated.")).field(format!("staticParameters.{k}")),
                );
                continue;
            }
            params.insert(k.clone(), v.clone());
        }
    }
    if !problems.is_empty() {
        return Err(Error::problems(problems));
    }
    for name in BUILT_IN_PARAMETERS {
        params.insert(name.to_owned(), payload.clone());
    }
    Ok(params)
}

/// Expands `template` with the run `payload` into an agenda (see the module docs for the rules).
///
/// Errors are `Error::Invalid`, with one problem per unresolvable reference or shape error, each naming
/// the operation and the path concerned.
pub fn expand(template: &AgendaTemplate, payload: &Value) -> Result<Agenda> {
    let body = match &template.agenda {
        Value::Object(_) => template.agenda.clone(),
        Value::Null => {
            return Err(Error::problems(vec![
                Problem::new("the template has no `agenda`: set it to the agenda to run, with its operations")
                    .field("agenda"),
            ]));
        }
        other => {
            return Err(Error::problems(vec![
                Problem::new(format!("the template's `agenda` must be a JSON object, got {}", kind(other)))
                    .field("agenda"),
            ]));
        }
    };
    let params = parameters(template, payload)?;
    let doc = ParsedDocument::parse(body);
    let resolution = doc.resolve(&params);

    let mut problems = Vec::new();
    for name in &resolution.missing {
        if is_run_time_name(name) {
            continue;
        }
        for site in doc.sites().iter().filter(|s| s.template.references().any(|r| &r.name == name)) {
            let reference = site.template.references().find(|r| &r.name == name).map(|r| r.raw.as_str());
            problems.push(locate_problem(
                doc.value(),
                &site.path,
                format!(
                    "{} needs the template parameter `{name}`, which is not provided: {}",
                    reference.unwrap_or(name),
                    missing_hint(name, payload)
                ),
            ));
        }
    }
    for invalid in &resolution.invalid {
        match doc.sites().iter().find(|s| s.template.references().any(|r| r.raw == invalid.reference)) {
            Some(site) => problems.push(locate_problem(doc.value(), &site.path, invalid.message.clone())),
            None => problems.push(Problem::new(invalid.message.clone())),
        }
    }
    if !problems.is_empty() {
        return Err(Error::problems(problems));
    }

    let mut agenda = read_agenda(resolution.value)?;
    if agenda.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        agenda.title = template.title.clone();
    }
    Ok(agenda)
}

/// Whether an unresolved name is meant for execution time: an operation output or a run-time token.
fn is_run_time_name(name: &str) -> bool {
    name.ends_with(OUTPUT_SUFFIX) || name == AGENDA_ID || name == OPERATION_NAME || name == PARAMS
}

fn missing_hint(name: &str, payload: &Value) -> String {
    if name.starts_with(TOKEN_PREFIX) {
        return format!(
            "`{name}` is not a known name (templates know {PAYLOAD} and {TRANSFORM_REQUEST}; operations know \
             {AGENDA_ID}, {OPERATION_NAME} and {PARAMS})"
        );
    }
    match payload {
        Value::Object(_) => format!(
            "add the key `{name}` to the run payload or to the template's staticParameters \
             (an operation output is written `@<{name}.out>`)"
        ),
        other => format!(
            "the run payload is {}, not a JSON object with the key `{name}`; pass an object payload or add \
             `{name}` to the template's staticParameters",
            kind(other)
        ),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A problem at `path` of the template's agenda: names the operation when the path is inside one.
fn locate_problem(agenda: &Value, path: &[Step], message: String) -> Problem {
    let field = format!("agenda{}", display_path(path));
    let operation = match path {
        [Step::Key(k), Step::Index(i), ..] if k == "operations" => agenda
            .pointer(&format!("/operations/{i}/name"))
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .map(str::to_owned),
        _ => None,
    };
    Problem { operation, field: Some(field), message }
}

/// `.operations[0].payload.file` for a path.
pub(crate) fn display_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Reads the resolved document as an agenda; on failure, pins the error down to a field.
fn read_agenda(value: Value) -> Result<Agenda> {
    match serde_json::from_value::<Agenda>(value.clone()) {
        Ok(a) => Ok(a),
        Err(whole) => {
            let mut problems = Vec::new();
            if let Value::Object(map) = &value {
                for (k, v) in map {
                    let single = Value::Object([(k.clone(), v.clone())].into_iter().collect());
                    let Err(e) = serde_json::from_value::<Agenda>(single) else { continue };
                    match (k.as_str(), v) {
                        ("operations", Value::Array(ops)) => problems.extend(operation_problems(ops)),
                        _ => problems
                            .push(Problem::new(format!("the expanded agenda's `{k}` is malformed: {e}")).field(k)),
                    }
                }
            }
            if problems.is_empty() {
                problems.push(Problem::new(format!("the expanded agenda is malformed: {whole}")).field("agenda"));
            }
            Err(Error::problems(problems))
        }
    }
}

fn operation_problems(ops: &[Value]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Err(e) = serde_json::from_value::<Operation>(op.clone()) else { continue };
        let name = op.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()).map(str::to_owned);
        let mut found = false;
        if let Value::Object(map) = op {
            for (k, v) in map {
                let single = Value::Object([(k.clone(), v.clone())].into_iter().collect());
                if let Err(e) = serde_json::from_value::<Operation>(single) {
                    found = true;
                    problems.push(Problem {
                        operation: name.clone(),
                        field: Some(format!("operations[{i}].{k}")),
                        message: format!("the expanded operation's `{k}` is malformed: {e}"),
                    });
                }
            }
        }
        if !found {
            problems.push(Problem {
                operation: name,
                field: Some(format!("operations[{i}]")),
                message: format!("the expanded operation is malformed: {e}"),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests;
