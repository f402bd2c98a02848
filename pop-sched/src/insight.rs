//! Insight selection at submission (the original's `InsightSelector`, §5.1) and insight validation.
//!
//! Candidates are the insights of the customer's resource pool that the customer may use (`isGlobal`,
//! owned by the customer, or the customer in `allowedCustomerIds`, compared lower-cased), in the
//! order given. An insight matches when **any** of its mappers matches (an insight without mappers
//! never matches):
//!
//! * `operationName`: some operation's name is one of the values (case-insensitive);
//! * `operationType`: some operation's type is one of the values (case-insensitive);
//! * `paramMap`: values are `key=value`; some entry of the agenda's params or of any operation's params
//!   has the key and, as a string, the value (both case-insensitive).
//!
//! Mapper names are case-insensitive. When the agenda has a `defaultInsight` param, the first matching
//! insight whose id or title equals it (case-insensitive) wins; otherwise the first matching insight.
//!
//! Unlike the original, a malformed mapper (an unknown mapper name, a `paramMap` value without `=`,
//! with an empty key or an empty value) does not crash selection: it disqualifies that mapper's
//! insight only, and is named in the error when no insight matches.

use crate::registry::Registry;
use pop_core::model::{Agenda, Customer, Insight, Params, param_keys};
use pop_core::{Error, Problem, Result};
use serde_json::Value;

/// One parsed mapper of an insight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapper {
    /// `operationName`: lower-cased operation names.
    OperationName(Vec<String>),
    /// `operationType`: lower-cased operation types.
    OperationType(Vec<String>),
    /// `paramMap`: lower-cased `(key, value)` pairs.
    ParamMap(Vec<(String, String)>),
}

/// The mapper names an insight may use (compared case-insensitively).
pub const MAPPER_NAMES: [&str; 3] = ["operationName", "operationType", "paramMap"];

/// Parses an insight's mappers; every malformed one is a [`Problem`] naming the insight and the mapper.
pub fn parse_mappers(insight: &Insight) -> std::result::Result<Vec<Mapper>, Vec<Problem>> {
    let who = insight_label(insight);
    let mut mappers = Vec::with_capacity(insight.mappers.len());
    let mut problems = Vec::new();
    for (name, values) in &insight.mappers {
        let field = format!("mappers.{name}");
        if name.eq_ignore_ascii_case("operationName") {
            mappers.push(Mapper::OperationName(values.iter().map(|v| v.trim().to_lowercase()).collect()));
        } else if name.eq_ignore_ascii_case("operationType") {
            mappers.push(Mapper::OperationType(values.iter().map(|v| v.trim().to_lowercase()).collect()));
        } else if name.eq_ignore_ascii_case("paramMap") {
            let mut pairs = Vec::with_capacity(values.len());
            for value in values {
                match value.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                        pairs.push((k.trim().to_lowercase(), v.trim().to_lowercase()))
                    }
                    _ => problems.push(
                        Problem::new(format!(
                            "{who}: paramMap value {value:?} is malformed: expected \"key=value\" with a non-empty key and value"
                        ))
                        .field(field.clone()),
                    ),
                }
            }
            mappers.push(Mapper::ParamMap(pairs));
        } else {
            problems.push(
                Problem::new(format!(
                    "{who}: unknown mapper {name:?}: expected one of {} (case-insensitive)",
                    MAPPER_NAMES.join(", ")
                ))
                .field(field),
            );
        }
    }
    if problems.is_empty() { Ok(mappers) } else { Err(problems) }
}

/// Whether one parsed mapper matches the agenda.
pub fn mapper_matches(mapper: &Mapper, agenda: &Agenda) -> bool {
    match mapper {
        Mapper::OperationName(names) => {
            agenda.operations.iter().any(|op| names.iter().any(|n| eq_ci(n, op.name.trim())))
        }
        Mapper::OperationType(types) => {
            agenda.operations.iter().any(|op| types.iter().any(|t| eq_ci(t, op.op_type.trim())))
        }
        Mapper::ParamMap(pairs) => {
            let param_sets = agenda.params.iter().chain(agenda.operations.iter().filter_map(|op| op.params.as_ref()));
            param_sets.into_iter().any(|params| params_match(params, pairs))
        }
    }
}

fn params_match(params: &Params, pairs: &[(String, String)]) -> bool {
    params.iter().any(|(key, value)| {
        let Some(text) = value_text(value) else {
            return false;
        };
        pairs.iter().any(|(k, v)| eq_ci(k, key.trim()) && eq_ci(v, text.trim()))
    })
}

/// Case-insensitive equality (Unicode lower case, with an ASCII fast path).
fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
}

/// A parameter value as the original's `toString()`: strings as themselves, `null` as nothing, other
/// values as their JSON text.
fn value_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

/// Whether `customer_id` may route work to `insight`: global, owned by it, or allowed (lower-cased).
pub fn usable_by(insight: &Insight, customer_id: &str) -> bool {
    insight.is_global
        || insight.customer_id.as_deref() == Some(customer_id)
        || insight.allowed_customer_ids.iter().any(|a| a.to_lowercase() == customer_id.to_lowercase())
}

/// Whether an insight matches an agenda; `Err` lists the insight's malformed mappers.
pub fn insight_matches(insight: &Insight, agenda: &Agenda) -> std::result::Result<bool, Vec<Problem>> {
    let mappers = parse_mappers(insight)?;
    Ok(mappers.iter().any(|m| mapper_matches(m, agenda)))
}

/// Picks the insight for a submitted agenda of `customer` among `insights` (§5.1).
///
/// Errors (all `Error::Invalid`, naming the customer, the pool and what was tried): the customer has
/// no id or no `resourcePoolId`; no insight of the pool is usable by the customer; or none matches
/// (the problems then include every malformed mapper met on the way).
pub fn select_insight<'a>(agenda: &Agenda, customer: &Customer, insights: &'a [Insight]) -> Result<&'a Insight> {
    let Some(customer_id) = customer.id.as_deref().or(customer.customer_id.as_deref()) else {
        return Err(Error::problems(vec![
            Problem::new("cannot select an insight: the customer record has no id").field("customer.id"),
        ]));
    };
    let Some(pool) = customer.resource_pool_id.as_deref().filter(|p| !p.trim().is_empty()) else {
        return Err(Error::problems(vec![
            Problem::new(format!(
                "cannot select an insight: customer {customer_id} has no resourcePoolId (set the pool that processes its work)"
            ))
            .field("customer.resourcePoolId"),
        ]));
    };
    let candidates: Vec<&Insight> =
        insights.iter().filter(|i| i.resource_pool_id.as_deref() == Some(pool) && usable_by(i, customer_id)).collect();
    if candidates.is_empty() {
        return Err(Error::problems(vec![Problem::new(format!(
            "no available insight for customer {customer_id}: resource pool {pool} has no insight that is global, \
             owned by {customer_id} or lists it in allowedCustomerIds ({} insights looked at)",
            insights.len()
        ))]));
    }
    let mut matching: Vec<&Insight> = Vec::new();
    let mut malformed: Vec<Problem> = Vec::new();
    for insight in &candidates {
        match insight_matches(insight, agenda) {
            Ok(true) => matching.push(insight),
            Ok(false) => {}
            Err(problems) => malformed.extend(problems),
        }
    }
    if matching.is_empty() {
        let tried: Vec<String> = candidates.iter().map(|i| insight_label(i)).collect();
        let names: Vec<&str> = agenda.operations.iter().map(|o| o.name.as_str()).collect();
        let types: Vec<&str> = agenda.operations.iter().map(|o| o.op_type.as_str()).collect();
        let mut problems = vec![
            Problem::new(format!(
                "no available insight for processing the agenda of customer {customer_id} in resource pool {pool}: \
                 tried {} (none has a mapper matching operation names {names:?}, operation types {types:?} or the \
                 agenda's and operations' params)",
                tried.join(", ")
            ))
            .field("mappers"),
        ];
        problems.extend(malformed);
        return Err(Error::problems(problems));
    }
    if let Some(preferred) = agenda.param(param_keys::DEFAULT_INSIGHT).and_then(value_text) {
        let preferred = preferred.trim();
        if let Some(found) = matching.iter().find(|i| {
            i.id.as_deref().is_some_and(|id| eq_ci(id, preferred))
                || i.title.as_deref().is_some_and(|t| eq_ci(t, preferred))
        }) {
            return Ok(found);
        }
    }
    Ok(matching[0])
}

/// Validates an insight for create/update: its mappers parse and its scheduling algorithm is known to
/// `registry` (a missing one means `FirstInFirstOut`). Every problem is listed.
pub fn validate_insight(insight: &Insight, registry: &Registry) -> Result<()> {
    let mut problems = match parse_mappers(insight) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    if let Err(e) = registry.for_insight(insight) {
        problems.extend(e.problem_list().iter().cloned());
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::problems(problems)) }
}

/// "insight <id> (<title>)" for messages.
pub(crate) fn insight_label(insight: &Insight) -> String {
    match (insight.id.as_deref(), insight.title.as_deref()) {
        (Some(id), Some(title)) => format!("insight {id} ({title:?})"),
        (Some(id), None) => format!("insight {id}"),
        (None, Some(title)) => format!("insight {title:?}"),
        (None, None) => "insight (no id)".to_string(),
    }
}
