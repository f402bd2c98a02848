//! Params: `retry`, `timeoutMs` and the generator settings (`agenda.operation.generator`).

use super::Checker;
use crate::model::param_keys;
use serde_json::Value;

impl Checker<'_> {
    pub(super) fn check_params(&mut self, i: usize) {
        let op = self.ops[i];
        let retry_field = format!("params.{}", param_keys::RETRY);
        match op.retry_policy() {
            Err(message) => {
                let p = self.problem(i, &retry_field, message);
                self.problems.push(p);
            }
            Ok(Some(policy)) if policy.max_attempts == 0 => {
                let p = self.problem(
                    i,
                    &retry_field,
                    "params.retry.maxAttempts counts every attempt including the first: it must be at least 1".into(),
                );
                self.problems.push(p);
            }
            Ok(_) => {}
        }
        if let Err(message) = op.timeout_ms() {
            let p = self.problem(i, &format!("params.{}", param_keys::TIMEOUT_MS), message);
            self.problems.push(p);
        }
        if let Some(generator) = op.generator() {
            let field = format!("params.{}", param_keys::GENERATOR);
            for message in generator_problems(generator) {
                let p = self.problem(i, &field, message);
                self.problems.push(p);
            }
        }
    }
}

/// What is wrong with a generator's settings `{operationsJsonPointer?, paramsJsonPointer?, logOnly?}`
/// (`operationsJsonPointer` defaults to `/operations`, as the executor reads it).
fn generator_problems(v: &Value) -> Vec<String> {
    let key = param_keys::GENERATOR;
    let Value::Object(map) = v else {
        return vec![format!(
            "`{key}` must be an object {{\"operationsJsonPointer\": \"/operations\", \"paramsJsonPointer\": \
             \"/params\", \"logOnly\": false}}, got {v}"
        )];
    };
    let mut out = Vec::new();
    if let Some(p) = map.get("operationsJsonPointer").filter(|p| !p.is_null()) {
        out.extend(pointer_problem(key, "operationsJsonPointer", p));
    }
    if let Some(p) = map.get("paramsJsonPointer").filter(|p| !p.is_null()) {
        out.extend(pointer_problem(key, "paramsJsonPointer", p));
    }
    match map.get("logOnly") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {}
        Some(other) => out.push(format!("`{key}.logOnly` must be true or false, got {other}")),
    }
    out
}

fn pointer_problem(key: &str, field: &str, p: &Value) -> Option<String> {
    let Value::String(s) = p else {
        return Some(format!("`{key}.{field}` must be a JSON pointer string such as \"/operations\", got {p}"));
    };
    if !s.is_empty() && !s.starts_with('/') {
        return Some(format!("`{key}.{field}` must be a JSON pointer starting with `/` (e.g. \"/{s}\"), got {s:?}"));
    }
    let bytes = s.as_bytes();
    for (idx, b) in bytes.iter().enumerate() {
        if *b == b'~' && !matches!(bytes.get(idx + 1), Some(b'0') | Some(b'1')) {
            return Some(format!(
                "`{key}.{field}` is not a valid JSON pointer ({s:?}): `~` must be followed by 0 or 1"
            ));
        }
    }
    None
}
