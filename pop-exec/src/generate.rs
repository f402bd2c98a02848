//! Operation generators (`agenda.operation.generator`): reading the operations a generator's output names,
//! and validating them against the agenda before they are added.

use pop_core::model::{Operation, Params, param_keys};
use serde_json::Value;

/// What a succeeded generator adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The operations, stamped with `generatedOperationParent`.
    pub operations: Vec<Operation>,
    /// Params to merge into the agenda's params.
    pub params: Option<Params>,
    /// `logOnly`: report, do not add.
    pub log_only: bool,
}

fn pointer_setting<'s>(settings: &'s Value, key: &str) -> Result<Option<&'s str>, String> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("{key} must be a JSON pointer string, got {other}")),
    }
}

fn normalise(pointer: &str) -> String {
    match pointer {
        "" | "/" => String::new(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    }
}

/// Reads the generated operations and params out of generator `name`'s output, as its settings
/// (`{operationsJsonPointer, paramsJsonPointer, logOnly}`) say. `operationsJsonPointer` defaults to
/// `/operations`.
pub fn plan(name: &str, settings: &Value, output: &Value) -> Result<Plan, String> {
    let bad = |msg: String| format!("generator {name}: {msg}");
    if !settings.is_object() {
        return Err(bad(format!(
            "params.{} must be an object {{operationsJsonPointer, paramsJsonPointer, logOnly}}, got {settings}",
            param_keys::GENERATOR
        )));
    }
    let ops_ptr = normalise(pointer_setting(settings, "operationsJsonPointer").map_err(&bad)?.unwrap_or("/operations"));
    let params_ptr = pointer_setting(settings, "paramsJsonPointer").map_err(&bad)?.map(normalise);
    let log_only = match settings.get("logOnly") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let operations = match output.pointer(&ops_ptr) {
        None | Some(Value::Null) => {
            return Err(bad(format!("its output has no operations at operationsJsonPointer {ops_ptr:?}")));
        }
        Some(Value::Array(items)) => {
            let mut ops = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                let mut op: Operation = serde_json::from_value(item.clone())
                    .map_err(|e| bad(format!("generated operation #{k} at {ops_ptr} is not an operation: {e}")))?;
                op.params
                    .get_or_insert_with(Params::new)
                    .insert(param_keys::GENERATED_PARENT.to_owned(), Value::String(name.to_owned()));
                ops.push(op);
            }
            ops
        }
        Some(other) => {
            return Err(bad(format!(
                "operationsJsonPointer {ops_ptr:?} must point to an array of operations, found {}",
                kind(other)
            )));
        }
    };
    let params = match params_ptr.as_deref().map(|p| (p, output.pointer(p))) {
        None | Some((_, None)) | Some((_, Some(Value::Null))) => None,
        Some((_, Some(Value::Object(m)))) => Some(m.clone()),
        Some((p, Some(other))) => {
            return Err(bad(format!("paramsJsonPointer {p:?} must point to an object, found {}", kind(other))));
        }
    };
    Ok(Plan { operations, params, log_only })
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

/// Validates generated operations against the agenda's existing ones with
/// [`pop_core::validate::validate_generated`] (default limits): every problem, named.
pub fn validate(existing: &[Operation], generated: &[Operation]) -> pop_core::Result<()> {
    pop_core::validate::validate_generated(existing, generated, &pop_core::validate::ValidationOptions::default())
}
