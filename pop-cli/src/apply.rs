//! `pop apply -f FILE`: customers, resource pools, insights and agenda templates from JSON or YAML,
//! created or updated so the server holds what the files say (idempotent).
//!
//! The format: each document is one object, or an array of objects (YAML files may hold several
//! documents separated by `---`). An object is the API's own JSON (the original POP's JSON is
//! accepted as it is; keys this POP does not know are ignored), with an optional `kind`
//! (`customer`, `resourcePool` / `pool`, `insight`, `agendaTemplate` / `template`; case and `-`/`_`
//! ignored) that is removed before the object is sent. Without `kind`, it is inferred from the
//! fields only one kind has: `agenda` / `workflowTemplateId` / `staticParameters` /
//! `isDefaultTemplate` → template; `mappers` / `queueSize` / `queueName` / `schedulingAlgorithm` /
//! `allowedCustomerIds` / `isGlobal` → insight; `insightIds` / `ownerId` → resource pool;
//! `billingCode` / `availableInsightIds` / `weight` → customer. Anything else needs a `kind`.
//!
//! Each object with an `id` is read from the server: absent, it is created; present, the fields the
//! file gives (except `id`, `cid`, `version`, the timestamps and a pool's derived `insightIds`) are
//! compared with the stored ones and the changed ones sent as a merge update. A `null` leaves the
//! stored field as it is. An object without an `id` is created each time (a warning says so).
//! Objects are applied pools first, then insights, customers and templates (what refers to a pool
//! comes after it), in file order within a kind. Every file is read and checked before anything is
//! sent: a bad file changes nothing.

use crate::error::{CliError, CliResult, Outcome};
use crate::output::{Format, print_json, print_yaml};
use pop::core::model::{AgendaTemplate, Customer, Insight, ResourcePool};
use pop::http::Client;
use pop::http::client::ApiObject;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A kind `pop apply` manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApplyKind {
    /// A resource pool.
    Pool,
    /// An insight.
    Insight,
    /// A customer.
    Customer,
    /// An agenda template.
    Template,
}

impl ApplyKind {
    /// The name printed (`customer/acme created`).
    pub fn name(self) -> &'static str {
        match self {
            ApplyKind::Pool => "resourcePool",
            ApplyKind::Insight => "insight",
            ApplyKind::Customer => "customer",
            ApplyKind::Template => "agendaTemplate",
        }
    }

    /// The kind named by a `kind` field.
    pub fn parse(s: &str) -> Option<Self> {
        let norm: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        match norm.as_str() {
            "customer" => Some(ApplyKind::Customer),
            "resourcepool" | "pool" => Some(ApplyKind::Pool),
            "insight" => Some(ApplyKind::Insight),
            "agendatemplate" | "template" => Some(ApplyKind::Template),
            _ => None,
        }
    }
}

const KINDS: &str = r#""customer", "resourcePool", "insight" or "agendaTemplate""#;

/// The kind of an object: its `kind` field (removed), else inferred from its fields.
pub fn kind_of(obj: &mut Map<String, Value>) -> Result<ApplyKind, String> {
    if let Some(k) = obj.remove("kind") {
        let Some(name) = k.as_str() else {
            return Err(format!("`kind` must be a string: {KINDS}"));
        };
        if name.eq_ignore_ascii_case("agenda") {
            return Err("agendas are not applied: submit them with `pop submit`".into());
        }
        return ApplyKind::parse(name).ok_or_else(|| format!("unknown kind {name:?}: {KINDS}"));
    }
    let has = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    if has(&["operations"]) {
        return Err("this is an agenda (it has `operations`): submit it with `pop submit`".into());
    }
    if has(&["agenda", "workflowTemplateId", "staticParameters", "isDefaultTemplate"]) {
        return Ok(ApplyKind::Template);
    }
    if has(&["mappers", "queueSize", "queueName", "schedulingAlgorithm", "allowedCustomerIds", "isGlobal"]) {
        return Ok(ApplyKind::Insight);
    }
    if has(&["insightIds", "ownerId"]) {
        return Ok(ApplyKind::Pool);
    }
    if has(&["billingCode", "availableInsightIds", "weight"]) {
        return Ok(ApplyKind::Customer);
    }
    Err(format!("cannot tell what kind of object this is: add \"kind\": {KINDS}"))
}

/// What applying one object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The kind.
    pub kind: &'static str,
    /// The object's id (as stored).
    pub id: String,
    /// `created`, `updated` or `unchanged`.
    pub result: &'static str,
    /// The fields an update changed (or would change, with `--dry-run`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// One object to apply, where it came from.
struct Item {
    origin: String,
    kind: ApplyKind,
    raw: Map<String, Value>,
}

/// `pop apply -f FILE...`.
pub async fn run(
    client: &Client,
    files: &[PathBuf],
    customer: Option<&str>,
    dry_run: bool,
    format: Format,
) -> CliResult {
    let mut items = Vec::new();
    for file in files {
        for (i, doc) in crate::remote::read_documents(file)?.into_iter().enumerate() {
            let origin = format!("{}: object {}", file.display(), i + 1);
            let Value::Object(mut raw) = doc else {
                return Err(CliError::new(format!("{origin}: not an object")));
            };
            let kind = kind_of(&mut raw).map_err(|e| CliError::new(format!("{origin}: {e}")))?;
            if raw.get("customerId").is_none_or(Value::is_null) {
                match (customer, kind, raw.get("id").and_then(Value::as_str)) {
                    (Some(c), _, _) => {
                        raw.insert("customerId".into(), c.into());
                    }
                    (None, ApplyKind::Customer, Some(id)) => {
                        raw.insert("customerId".into(), id.into());
                    }
                    _ => {}
                }
            }
            check(kind, &raw).map_err(|e| CliError::new(format!("{origin}: not a valid {}: {e}", kind.name())))?;
            items.push(Item { origin, kind, raw });
        }
    }
    if items.is_empty() {
        return Err("no object in the files".into());
    }
    items.sort_by_key(|i| i.kind);
    let mut results = Vec::new();
    let mut first_error: Option<CliError> = None;
    let mut failed = 0;
    for item in &items {
        let r = match item.kind {
            ApplyKind::Pool => apply_one::<ResourcePool>(client, item, dry_run).await,
            ApplyKind::Insight => apply_one::<Insight>(client, item, dry_run).await,
            ApplyKind::Customer => apply_one::<Customer>(client, item, dry_run).await,
            ApplyKind::Template => apply_one::<AgendaTemplate>(client, item, dry_run).await,
        };
        match r {
            Ok(applied) => {
                if format == Format::Table {
                    let suffix = if dry_run { " (dry run)" } else { "" };
                    if applied.changed.is_empty() {
                        println!("{}/{} {}{suffix}", applied.kind, applied.id, applied.result);
                    } else {
                        println!(
                            "{}/{} {} ({}){suffix}",
                            applied.kind,
                            applied.id,
                            applied.result,
                            applied.changed.join(", ")
                        );
                    }
                }
                results.push(applied);
            }
            Err(e) => {
                eprintln!("pop: {e}");
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    match format {
        Format::Table => {}
        Format::Json => print_json(&results)?,
        Format::Yaml => print_yaml(&results)?,
    }
    match first_error {
        None => Ok(Outcome::Success),
        Some(e) => Err(CliError {
            message: format!("{failed} of {} objects could not be applied (the first: {})", items.len(), e.message),
            kind: e.kind,
        }),
    }
}

/// Parses an object as its kind, for a clear message before anything is sent.
fn check(kind: ApplyKind, raw: &Map<String, Value>) -> Result<(), serde_json::Error> {
    let v = Value::Object(raw.clone());
    match kind {
        ApplyKind::Pool => serde_json::from_value::<ResourcePool>(v).map(drop),
        ApplyKind::Insight => serde_json::from_value::<Insight>(v).map(drop),
        ApplyKind::Customer => serde_json::from_value::<Customer>(v).map(drop),
        ApplyKind::Template => serde_json::from_value::<AgendaTemplate>(v).map(drop),
    }
}

/// Fields the server manages (or derives), never compared.
fn ignored(kind: ApplyKind, key: &str) -> bool {
    matches!(key, "id" | "cid" | "version" | "addedTime" | "updatedTime")
        || (kind == ApplyKind::Pool && key == "insightIds")
}

/// The fields of `raw` whose value (as `T` reads it) differs from `stored`'s, with the values to send.
pub fn diff(kind: ApplyKind, raw: &Map<String, Value>, desired: &Value, stored: &Value) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, raw_value) in raw {
        if ignored(kind, key) || raw_value.is_null() {
            continue;
        }
        let want = desired.get(key);
        if want != stored.get(key) {
            patch.insert(key.clone(), want.cloned().unwrap_or_else(|| raw_value.clone()));
        }
    }
    patch
}

async fn apply_one<T: ApiObject>(client: &Client, item: &Item, dry_run: bool) -> Result<Applied, CliError> {
    let kind = item.kind;
    let obj: T = serde_json::from_value(Value::Object(item.raw.clone()))
        .map_err(|e| CliError::new(format!("{}: not a valid {}: {e}", item.origin, kind.name())))?;
    let desired = crate::remote::to_value(&obj)?;
    let id = desired.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let context = |id: &str| format!("{}: {}/{id}", item.origin, kind.name());
    let Some(id) = id else {
        eprintln!(
            "pop: warning: {}: no `id`: a new {} is created on every apply (give it an id to make apply idempotent)",
            item.origin,
            kind.name()
        );
        if dry_run {
            return Ok(Applied { kind: kind.name(), id: "(new)".into(), result: "created", changed: vec![] });
        }
        let created = client.create(&obj).await.map_err(|e| CliError::remote(context("(new)"), e))?;
        let id = crate::remote::to_value(&created)?.get("id").and_then(Value::as_str).unwrap_or("?").to_owned();
        return Ok(Applied { kind: kind.name(), id, result: "created", changed: vec![] });
    };
    let stored = match client.get::<T>(&id).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => {
            if !dry_run {
                client.create(&obj).await.map_err(|e| CliError::remote(context(&id), e))?;
            }
            return Ok(Applied { kind: kind.name(), id, result: "created", changed: vec![] });
        }
        Err(e) => return Err(CliError::remote(context(&id), e)),
    };
    let stored = crate::remote::to_value(&stored)?;
    let patch = diff(kind, &item.raw, &desired, &stored);
    if patch.is_empty() {
        return Ok(Applied { kind: kind.name(), id, result: "unchanged", changed: vec![] });
    }
    let changed: Vec<String> = patch.keys().cloned().collect();
    if !dry_run {
        client.update::<T>(&id, &Value::Object(patch)).await.map_err(|e| CliError::remote(context(&id), e))?;
    }
    Ok(Applied { kind: kind.name(), id, result: "updated", changed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> Result<ApplyKind, String> {
        let Value::Object(mut m) = v else { panic!() };
        kind_of(&mut m)
    }

    #[test]
    fn kinds_are_named_or_inferred() {
        assert_eq!(kind(json!({"kind": "Resource-Pool", "id": "p"})), Ok(ApplyKind::Pool));
        assert_eq!(kind(json!({"kind": "agenda_template"})), Ok(ApplyKind::Template));
        assert_eq!(kind(json!({"id": "c", "billingCode": "b", "title": "t"})), Ok(ApplyKind::Customer));
        assert_eq!(kind(json!({"id": "p", "ownerId": "x", "insightIds": []})), Ok(ApplyKind::Pool));
        assert_eq!(kind(json!({"id": "i", "mappers": {}})), Ok(ApplyKind::Insight));
        assert_eq!(kind(json!({"workflowTemplateId": "w", "agenda": {}})), Ok(ApplyKind::Template));
        assert!(kind(json!({"operations": []})).unwrap_err().contains("pop submit"));
        assert!(kind(json!({"kind": "agenda"})).unwrap_err().contains("pop submit"));
        assert!(kind(json!({"kind": "thing"})).unwrap_err().contains("unknown kind"));
        assert!(kind(json!({"id": "x", "title": "t"})).unwrap_err().contains("add \"kind\""));
    }

    #[test]
    fn the_diff_names_the_fields_that_changed() {
        let raw =
            json!({"id": "i", "title": "new", "isGlobal": false, "unknownKey": 1, "queueSize": null, "version": 9});
        let Value::Object(raw) = raw else { panic!() };
        let desired = json!({"id": "i", "title": "new"});
        let stored = json!({"id": "i", "title": "old", "isGlobal": true, "queueSize": 4, "version": 3});
        let patch = diff(ApplyKind::Insight, &raw, &desired, &stored);
        assert_eq!(Value::Object(patch), json!({"title": "new", "isGlobal": false}));
        let same = json!({"id": "i", "title": "new", "queueSize": 4});
        assert!(diff(ApplyKind::Insight, &raw, &desired, &same).is_empty());
    }
}
