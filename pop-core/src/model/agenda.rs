use super::{Millis, Params, is_false, is_zero_i32, is_zero_u64, null_default, owned_object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The insight an agenda was routed to (`AgendaInsight`), set by the server at submission.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgendaInsight {
    /// The resource pool that serves the insight.
    pub resource_pool_id: Option<String>,
    /// The insight (queue) id.
    pub insight_id: Option<String>,
}

/// One operation of an agenda: a typed JSON payload for a handler.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operation {
    /// Free string passed to the handler as `OPERATION_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique (case-insensitive) key of the operation within its agenda; used in references.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub name: String,
    /// The handler type, looked up in the handler registry.
    #[serde(rename = "type", deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub op_type: String,
    /// The payload handed to the handler after reference resolution.
    pub payload: Value,
    /// Operation parameters: `dependsOn`, `retry`, `timeoutMs`, `agenda.operation.generator`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Params>,
}

/// The per-operation retry policy (extension: operation param `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub backoff_ms: u64,
    /// Factor applied to the delay after each retry.
    pub backoff_multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 1, backoff_ms: 1000, backoff_multiplier: 2.0 }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based), capped at one hour.
    pub fn delay_ms(&self, retry: u32) -> u64 {
        let factor = self.backoff_multiplier.max(1.0).powi(retry.saturating_sub(1) as i32);
        ((self.backoff_ms as f64) * factor).min(3_600_000.0) as u64
    }
}

/// Operation param keys recognised by POP.
pub mod param_keys {
    /// Explicit dependencies: a comma string (original) or a JSON array (extension).
    pub const DEPENDS_ON: &str = "dependsOn";
    /// Per-operation retry policy (extension).
    pub const RETRY: &str = "retry";
    /// Per-operation timeout in milliseconds (extension).
    pub const TIMEOUT_MS: &str = "timeoutMs";
    /// Operation generator settings: `{operationsJsonPointer, paramsJsonPointer, logOnly}`.
    pub const GENERATOR: &str = "agenda.operation.generator";
    /// Set on generated operations: the generator's name.
    pub const GENERATED_PARENT: &str = "generatedOperationParent";
    /// Agenda param: attempts an agenda gets (default 3, hard cap 20).
    pub const MAXIMUM_ATTEMPTS: &str = "maximumAttempts";
    /// Agenda param: copied to `AgendaProgress.externalId`.
    pub const EXTERNAL_ID: &str = "externalId";
    /// Agenda param: presence means "store but do not run".
    pub const DO_NOT_RUN: &str = "doNotRun";
    /// Agenda param: preferred insight id or title.
    pub const DEFAULT_INSIGHT: &str = "defaultInsight";
}

impl Operation {
    #[inline]
    fn param(&self, key: &str) -> Option<&Value> {
        self.params.as_ref().and_then(|p| p.get(key)).filter(|v| !v.is_null())
    }

    /// The explicit dependencies (`params.dependsOn`), owned: [`Operation::depends_on_names`] collected.
    pub fn depends_on(&self) -> Vec<String> {
        self.depends_on_names().map(str::to_owned).collect()
    }

    /// The explicit dependencies (`params.dependsOn`), borrowed: the one reader of the param. It is a
    /// comma string (the original) or an array of names (each item may itself hold commas); names are
    /// trimmed, empties dropped, items that are not strings skipped (validation reports them). An
    /// operation's full dependency list (references included) is [`crate::dag::dependencies`].
    // Inlined across crates: the executor reads it for every operation it builds.
    #[inline]
    pub fn depends_on_names(&self) -> impl Iterator<Item = &str> {
        let (single, items): (Option<&str>, &[Value]) = match self.param(param_keys::DEPENDS_ON) {
            Some(Value::String(s)) => (Some(s.as_str()), &[]),
            Some(Value::Array(items)) => (None, items.as_slice()),
            _ => (None, &[]),
        };
        single.into_iter().chain(items.iter().filter_map(Value::as_str)).flat_map(CommaNames::new)
    }

    /// The retry policy from `params.retry`; `Ok(None)` when absent, `Err` with a message when malformed.
    pub fn retry_policy(&self) -> Result<Option<RetryPolicy>, String> {
        match self.param(param_keys::RETRY) {
            None => Ok(None),
            Some(v) => serde_json::from_value::<RetryPolicy>(v.clone()).map(Some).map_err(|e| {
                format!("params.retry is not a retry policy {{maxAttempts, backoffMs, backoffMultiplier}}: {e}")
            }),
        }
    }

    /// The timeout from `params.timeoutMs`; `Err` with a message when it is not a positive integer.
    pub fn timeout_ms(&self) -> Result<Option<u64>, String> {
        match self.param(param_keys::TIMEOUT_MS) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => Ok(n.as_u64()),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok_and(|v| v > 0) => Ok(s.trim().parse().ok()),
            Some(other) => Err(format!("params.timeoutMs must be a positive integer of milliseconds, got {other}")),
        }
    }

    /// The generator settings (`params["agenda.operation.generator"]`), if this operation is a generator.
    pub fn generator(&self) -> Option<&Value> {
        self.param(param_keys::GENERATOR)
    }

    /// The generator that produced this operation (`params.generatedOperationParent`), if any.
    pub fn generated_parent(&self) -> Option<&str> {
        self.param(param_keys::GENERATED_PARENT).and_then(Value::as_str)
    }
}

/// A workflow instance: a DAG of operations wired by references (`Agenda`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agenda {
    /// Server-assigned id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The owning customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Free title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// The operations (at least one for a valid agenda).
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub operations: Vec<Operation>,
    /// Agenda parameters (`maximumAttempts`, `externalId`, `doNotRun`, `defaultInsight`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Params>,
    /// Legacy job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Groups the agendas of one submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// Id of the agenda's AgendaProgress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_id: Option<String>,
    /// The insight selected at submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_insight: Option<AgendaInsight>,
    /// Extension: higher runs first under the Priority algorithm.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_i32")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub priority: i32,
    /// Extension: optimistic-concurrency version (0 = never stored).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(Agenda);

impl Agenda {
    /// An agenda parameter, ignoring `null`.
    pub fn param(&self, key: &str) -> Option<&Value> {
        self.params.as_ref().and_then(|p| p.get(key)).filter(|v| !v.is_null())
    }

    /// The operation with this name (case-insensitive).
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// `maximumAttempts` from the params (default 3, capped at 20).
    pub fn maximum_attempts(&self) -> u32 {
        let v = match self.param(param_keys::MAXIMUM_ATTEMPTS) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(3),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(3),
            _ => 3,
        };
        v.clamp(1, 20) as u32
    }

    /// Whether the `doNotRun` param is present (presence-only, as the original).
    pub fn do_not_run(&self) -> bool {
        self.params.as_ref().is_some_and(|p| p.contains_key(param_keys::DO_NOT_RUN))
    }

    /// The insight id the agenda was routed to.
    pub fn insight_id(&self) -> Option<&str> {
        self.agenda_insight.as_ref().and_then(|i| i.insight_id.as_deref())
    }
}

/// A reusable agenda with parameters (`AgendaTemplate`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgendaTemplate {
    /// Id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title (indexed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// Customers that may read (not modify) it; compared lower-cased.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub allowed_customer_ids: Vec<String>,
    /// Readable by everyone.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub is_global: bool,
    /// Constants referenceable as `@<name>` during expansion.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub static_parameters: Option<Params>,
    /// Stored, not used by expansion.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Params>,
    /// The template body: an agenda whose strings may hold references, resolved at expansion.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub agenda: Value,
    /// Unused by logic; kept for compatibility.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub is_default_template: bool,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(AgendaTemplate);

/// The names of one `dependsOn` item: split on commas, trimmed, empties dropped
/// (`s.split(',').map(str::trim).filter(|n| !n.is_empty())`, without the pattern machinery: the
/// executor reads every dependency of every operation it builds, most of them one plain name).
#[derive(Debug, Clone)]
struct CommaNames<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaNames<'a> {
    #[inline]
    fn new(s: &'a str) -> Self {
        Self { rest: Some(s) }
    }
}

impl<'a> Iterator for CommaNames<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        loop {
            let s = self.rest?;
            let piece = match s.bytes().position(|b| b == b',') {
                Some(i) => {
                    self.rest = Some(&s[i + 1..]);
                    &s[..i]
                }
                None => {
                    self.rest = None;
                    s
                }
            };
            // (plain ASCII names need no trimming: skip the char decoding of `trim`)
            let name = match (piece.as_bytes().first(), piece.as_bytes().last()) {
                (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => piece,
                _ => piece.trim(),
            };
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
}
