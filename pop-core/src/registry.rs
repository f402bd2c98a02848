//! The handler registry: operation type → handler spec (process command and Pod config), with the original
//! `registry.json` base-config layering.
//!
//! One JSON file serves every runtime. It is a superset of the original POP's `registry.json`, so the
//! original files load unchanged:
//!
//! * every top-level key except `basePodConfig` is an **operation type**;
//! * `basePodConfig` (optional here, required by the original) is a [`PodConfig`] layered under every type;
//! * each type has an optional `configMapName`, an optional `podConfig` (a [`PodConfig`], used by the
//!   Kubernetes runtime) and an optional `process` (a [`ProcessSpec`], used by the local-process runtime).
//!
//! ```json
//! {
//!   "basePodConfig": {
//!     "memoryRequestCount": "1000m", "cpuMinRequestCount": "1000m", "cpuMaxRequestCount": "1000m",
//!     "podScheduledTimeoutMs": 600000, "reapCompletedPods": true, "pullAlways": true
//!   },
//!   "sample": {
//!     "configMapName": "pop-sample-01",
//!     "podConfig": { "imageName": "pop-sample:1.0.0", "namePrefix": "pop-sample",
//!                    "cpuMinRequestCount": "100m", "cpuMaxRequestCount": "250m" },
//!     "process": { "command": "pop-sample-handler", "args": [], "env": {"RUST_LOG": "info"},
//!                  "workingDir": "/tmp", "timeoutMs": 600000, "maxConcurrent": 4 }
//!   }
//! }
//! ```
//!
//! **Effective Pod config** of a type = [`PodConfig::core_defaults`] ⊕ `basePodConfig` ⊕ the type's
//! `podConfig`, overlaid field by field in that order, exactly like the original's Jackson
//! `readerForUpdating`: a field present in a later layer replaces the earlier value *as a whole* (lists and
//! nested objects such as `configMapSettings` or `aliveCheckDetails` are replaced, not merged; an explicit
//! `null` clears the field). Then, when the type has a `configMapName` and the result has at least one
//! `configMapSettings` entry, the name is written into `configMapSettings[0].configMapName` (for that type
//! only). Unknown keys (such as the original fixtures' `configMapDetails`) are ignored.
//!
//! The `process` section is not layered: it is the type's own. A type without `process` is known to the
//! registry but cannot run as a local process (the process runtime says so when asked to launch it).
//!
//! ```
//! use pop_core::registry::HandlerRegistry;
//! let registry = HandlerRegistry::from_json_str(r#"{
//!     "basePodConfig": {"cpuMinRequestCount": "1000m", "pullAlways": true},
//!     "sample": {"configMapName": "cm-1",
//!                "podConfig": {"imageName": "pop-sample:1.0.0", "cpuMinRequestCount": "100m"},
//!                "process": {"command": "pop-sample-handler", "timeoutMs": 60000, "maxConcurrent": 2}}
//! }"#).unwrap();
//! let spec = registry.handler("sample").unwrap();
//! assert_eq!(spec.pod_config.cpu_min_request_count.as_deref(), Some("100m"));
//! assert_eq!(spec.pod_config.pull_always, Some(true));
//! assert_eq!(spec.pod_config.service_account_name.as_deref(), Some("pop-service"));
//! assert_eq!(spec.pod_config.config_map_settings[0].config_map_name.as_deref(), Some("cm-1"));
//! assert_eq!(spec.process.as_ref().unwrap().max_concurrent, Some(2));
//! assert!(registry.handler("encode").unwrap_err().to_string().contains("encode"));
//! ```

use crate::error::{Error, Problem, Result};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The top-level key holding the Pod config layered under every type.
pub const BASE_POD_CONFIG_KEY: &str = "basePodConfig";
/// The service account the original's CORE layer sets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "pop-service";
/// The end-of-log marker the original's CORE layer sets (`BaseHandlerEntryPoint.POD_TERMINATION_STRING`).
pub const DEFAULT_END_OF_LOG_IDENTIFIER: &str = "HandlerComplete";
/// The CORE layer's config-map volume name.
pub const DEFAULT_CONFIG_VOLUME_NAME: &str = "config-volume";
/// The CORE layer's config-map mount path.
pub const DEFAULT_CONFIG_VOLUME_MOUNT_PATH: &str = "/app/config";

/// One `key → path` item of a config-map volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyPathPair {
    /// The config-map key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The file path inside the mount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl KeyPathPair {
    /// A pair.
    pub fn new(key: impl Into<String>, path: impl Into<String>) -> Self {
        Self { key: Some(key.into()), path: Some(path.into()) }
    }
}

/// A config map mounted as a volume (`configMapSettings[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapDetails {
    /// The config map (for entry 0, the type's `configMapName` is written here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// The volume's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// Where the volume is mounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mount_path: Option<String>,
    /// Which keys become which files.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub map_key_paths: Vec<KeyPathPair>,
}

/// An NFS mount (`nfsSettings[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NfsDetails {
    /// The server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs_server: Option<String>,
    /// The exported path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs_server_path: Option<String>,
    /// Where to mount it (one volume per path).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub nfs_mount_paths: Vec<String>,
    /// Read-only mount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs_read_only: Option<bool>,
}

/// A liveness probe (`aliveCheckDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AliveCheckDetails {
    /// The host to probe (default: the pod's IP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_check_host: Option<String>,
    /// The HTTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_path: Option<String>,
    /// The port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_port: Option<u16>,
    /// Whether the probe is put in the container spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_check_linking: Option<bool>,
    /// Seconds between probes (default 2).
    pub alive_check_interval: u32,
    /// Failed probes before the pod counts as dead (default 10).
    pub alive_check_failure_threshold: u32,
}

impl Default for AliveCheckDetails {
    fn default() -> Self {
        Self {
            alive_check_host: None,
            alive_path: None,
            alive_port: None,
            alive_check_linking: None,
            alive_check_interval: 2,
            alive_check_failure_threshold: 10,
        }
    }
}

/// How to run a handler as a Kubernetes Pod: the original's `PodConfig`, every field optional (a layer may
/// set any subset). After [`HandlerRegistry::handler`] the CORE defaults are filled in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodConfig {
    /// Pod name prefix (the pod is `namePrefix + uuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Container image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// A log line the follower expects (output scraping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_line_expectation: Option<String>,
    /// The log line that marks the handler's end (CORE: `HandlerComplete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_log_identifier: Option<String>,
    /// Use `logLineExpectation` as the end-of-log marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_output_scraping: Option<bool>,
    /// Container arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<String>>,
    /// Container environment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_default")]
    pub env_vars: BTreeMap<String, String>,
    /// Prefer tainted (dedicated) nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_tainted_nodes: Option<bool>,
    /// The `dedicated` node label value preferred when `useTaintedNodes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tainted_node_selector: Option<String>,
    /// The `dedicated` taint tolerated when `useTaintedNodes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tainted_node_toleration: Option<String>,
    /// Service account (CORE: `pop-service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Mount an emptyDir `log` volume at `/app/dumps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_empty_dir_logging: Option<bool>,
    /// CPU limit (CORE: `"1.0"`).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "opt_quantity")]
    pub cpu_max_request_count: Option<String>,
    /// CPU request (CORE: `"1.0"`).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "opt_quantity")]
    pub cpu_min_request_count: Option<String>,
    /// Memory request.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "opt_quantity")]
    pub memory_request_count: Option<String>,
    /// Memory limit (new; the original set none).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "opt_quantity")]
    pub memory_limit_count: Option<String>,
    /// Delete the pod when it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reap_completed_pods: Option<bool>,
    /// `imagePullPolicy: Always`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_always: Option<bool>,
    /// How long a pod may take to be scheduled, ms (CORE: 300 000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_scheduled_timeout_ms: Option<u64>,
    /// How long the pod may stay silent on stdout, ms (CORE: 120 000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_stdout_timeout: Option<u64>,
    /// Pod launch retries (CORE: 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_retry_count: Option<u32>,
    /// Delay between pod launch retries, ms (CORE: 3 000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_milli_secs: Option<u64>,
    /// Privileged security context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_privileged: Option<bool>,
    /// Liveness probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_check_details: Option<AliveCheckDetails>,
    /// Config-map volumes (CORE: one `config-volume` at `/app/config`).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub config_map_settings: Vec<ConfigMapDetails>,
    /// NFS volumes.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub nfs_settings: Vec<NfsDetails>,
    /// A logback configuration (kept for compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logback: Option<String>,
    /// Extra pod labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
}

impl PodConfig {
    /// The original's CORE layer: `PodConfig.applyDefaults()` plus service account `pop-service`,
    /// end-of-log identifier `HandlerComplete` and one config-map volume `config-volume` at `/app/config`
    /// with items `external-properties → external.properties`, `env-properties → env.properties`.
    pub fn core_defaults() -> Self {
        Self {
            end_of_log_identifier: Some(DEFAULT_END_OF_LOG_IDENTIFIER.into()),
            enable_output_scraping: Some(false),
            use_tainted_nodes: Some(false),
            service_account_name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
            default_empty_dir_logging: Some(false),
            cpu_max_request_count: Some("1.0".into()),
            cpu_min_request_count: Some("1.0".into()),
            reap_completed_pods: Some(false),
            pull_always: Some(false),
            pod_scheduled_timeout_ms: Some(5 * 60 * 1000),
            pod_stdout_timeout: Some(2 * 60 * 1000),
            pod_retry_count: Some(0),
            retry_delay_milli_secs: Some(3000),
            docker_privileged: Some(false),
            config_map_settings: vec![ConfigMapDetails {
                config_map_name: None,
                volume_name: Some(DEFAULT_CONFIG_VOLUME_NAME.into()),
                volume_mount_path: Some(DEFAULT_CONFIG_VOLUME_MOUNT_PATH.into()),
                map_key_paths: vec![
                    KeyPathPair::new("external-properties", "external.properties"),
                    KeyPathPair::new("env-properties", "env.properties"),
                ],
            }],
            ..Self::default()
        }
    }
}

/// How to run a handler as a local child process (the `process` section of a type).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSpec {
    /// The program: a path, or a name looked up in `PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment (the protocol's variables are set after these and win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The working directory (default: the runtime's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Wall-clock limit, ms; past it the process group is terminated and the operation fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// At most this many operations of the type run at once on this runtime; further launches wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
}

/// Everything the registry knows about one operation type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerSpec {
    /// The operation type.
    pub operation_type: String,
    /// The type's `configMapName`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// The effective Pod config (CORE ⊕ base ⊕ type).
    pub pod_config: PodConfig,
    /// How to run it as a local process, if it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSpec>,
}

/// Operation type → [`HandlerSpec`], loaded from one registry document.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerRegistry {
    source: String,
    handlers: BTreeMap<String, HandlerSpec>,
}

impl HandlerRegistry {
    /// Parses a registry document; the registry is named `inline` in messages.
    pub fn from_json_str(json: &str) -> Result<Self> {
        Self::parse(json, "inline")
    }

    /// Reads and parses a registry file; messages name its path.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("handler registry {}: cannot read the file: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses an already-read JSON document; `source` names it in messages (a path, `inline`, ...).
    pub fn from_value(document: Value, source: &str) -> Result<Self> {
        let Value::Object(top) = document else {
            return Err(Error::invalid(format!(
                "handler registry {source}: expected a JSON object mapping operation types to handlers"
            )));
        };
        let mut problems = Vec::new();
        let base = match top.get(BASE_POD_CONFIG_KEY) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                check_pod_config_layer(m, source, BASE_POD_CONFIG_KEY, &mut problems);
                m.clone()
            }
            Some(_) => {
                problems.push(
                    Problem::new(format!("handler registry {source}: {BASE_POD_CONFIG_KEY} must be an object"))
                        .field(BASE_POD_CONFIG_KEY),
                );
                Map::new()
            }
        };
        let core = match serde_json::to_value(PodConfig::core_defaults()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut handlers = BTreeMap::new();
        for (op_type, entry) in &top {
            if op_type == BASE_POD_CONFIG_KEY {
                continue;
            }
            match parse_entry(op_type, entry, &core, &base, source) {
                Ok(spec) => {
                    handlers.insert(op_type.clone(), spec);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() { Ok(Self { source: source.into(), handlers }) } else { Err(Error::problems(problems)) }
    }

    fn parse(json: &str, source: &str) -> Result<Self> {
        let document: Value = serde_json::from_str(json)
            .map_err(|e| Error::invalid(format!("handler registry {source}: not valid JSON: {e}")))?;
        Self::from_value(document, source)
    }

    /// The spec of an operation type; an unknown type is `Error::Invalid` naming the type and the registry.
    pub fn handler(&self, operation_type: &str) -> Result<&HandlerSpec> {
        self.handlers.get(operation_type).ok_or_else(|| {
            let known: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
            Error::problems(vec![
                Problem::new(format!(
                    "unknown operation type {operation_type:?}: handler registry {} has no entry for it \
                     (known types: {})",
                    self.source,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ))
                .field("type"),
            ])
        })
    }

    /// Whether the registry has the type.
    pub fn contains(&self, operation_type: &str) -> bool {
        self.handlers.contains_key(operation_type)
    }

    /// The known operation types, sorted.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Every spec, by type.
    pub fn handlers(&self) -> &BTreeMap<String, HandlerSpec> {
        &self.handlers
    }

    /// Where the registry came from (a path or `inline`), for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Adds or replaces one type's spec (for embedding and tests).
    pub fn insert(&mut self, spec: HandlerSpec) {
        self.handlers.insert(spec.operation_type.clone(), spec);
    }
}

/// Checks each key of a Pod config layer on its own, so a wrong value is reported with its field.
fn check_pod_config_layer(layer: &Map<String, Value>, source: &str, at: &str, problems: &mut Vec<Problem>) {
    for (key, value) in layer {
        let mut single = Map::new();
        single.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<PodConfig>(Value::Object(single)) {
            problems
                .push(Problem::new(format!("handler registry {source}: {at}.{key}: {e}")).field(format!("{at}.{key}")));
        }
    }
}

fn parse_entry(
    op_type: &str,
    entry: &Value,
    core: &Map<String, Value>,
    base: &Map<String, Value>,
    source: &str,
) -> std::result::Result<HandlerSpec, Vec<Problem>> {
    let mut problems = Vec::new();
    let problem = |field: &str, msg: String| Problem::new(format!("handler registry {source}: {msg}")).field(field);
    let Value::Object(entry) = entry else {
        return Err(vec![problem(op_type, format!("operation type {op_type}: expected an object"))]);
    };
    let config_map_name = match entry.get("configMapName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(problem(
                &format!("{op_type}.configMapName"),
                format!("{op_type}.configMapName must be a string, found {other}"),
            ));
            None
        }
    };
    let type_layer = match entry.get("podConfig") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            check_pod_config_layer(m, source, &format!("{op_type}.podConfig"), &mut problems);
            m.clone()
        }
        Some(_) => {
            problems.push(problem(&format!("{op_type}.podConfig"), format!("{op_type}.podConfig must be an object")));
            Map::new()
        }
    };
    let process = match entry.get("process") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value::<ProcessSpec>(v.clone()) {
            Ok(p) if p.command.trim().is_empty() => {
                problems.push(problem(
                    &format!("{op_type}.process.command"),
                    format!("{op_type}.process.command is empty"),
                ));
                None
            }
            Ok(p) if p.max_concurrent == Some(0) => {
                problems.push(problem(
                    &format!("{op_type}.process.maxConcurrent"),
                    format!("{op_type}.process.maxConcurrent must be at least 1 (omit it for no limit)"),
                ));
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(problem(&format!("{op_type}.process"), format!("{op_type}.process: {e}")));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    // Jackson readerForUpdating: each layer's present keys replace the earlier values as a whole.
    let mut merged = core.clone();
    for layer in [base, &type_layer] {
        for (k, v) in layer {
            merged.insert(k.clone(), v.clone());
        }
    }
    let mut pod_config: PodConfig = serde_json::from_value(Value::Object(merged))
        .map_err(|e| vec![problem(&format!("{op_type}.podConfig"), format!("{op_type}: effective podConfig: {e}"))])?;
    if let (Some(name), Some(first)) = (&config_map_name, pod_config.config_map_settings.first_mut()) {
        first.config_map_name = Some(name.clone());
    }
    Ok(HandlerSpec { operation_type: op_type.to_string(), config_map_name, pod_config, process })
}

/// `null` → the type's default (Jackson would store null; an empty collection means the same here).
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A Kubernetes quantity given as a string (`"250m"`) or a bare number (`1.5`), as Jackson accepted.
fn opt_quantity<'de, D>(d: D) -> std::result::Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => {
            Err(serde::de::Error::custom(format!("expected a quantity string such as \"250m\", found {other}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures_dir;

    fn spec<'a>(r: &'a HandlerRegistry, t: &str) -> &'a HandlerSpec {
        match r.handler(t) {
            Ok(s) => s,
            Err(e) => panic!("{t}: {e}"),
        }
    }

    #[test]
    fn layering_core_base_type() {
        let r = HandlerRegistry::from_json_str(
            r#"{"basePodConfig": {"cpuMinRequestCount": "1000m", "memoryRequestCount": "1000m",
                                  "podScheduledTimeoutMs": 600000, "labels": {"a": "1"}},
                "t": {"podConfig": {"cpuMinRequestCount": "100m", "labels": {"b": "2"}, "envVars": {"X": "y"}}}}"#,
        )
        .unwrap();
        let p = &spec(&r, "t").pod_config;
        assert_eq!(p.cpu_min_request_count.as_deref(), Some("100m"));
        assert_eq!(p.cpu_max_request_count.as_deref(), Some("1.0"), "CORE default kept");
        assert_eq!(p.memory_request_count.as_deref(), Some("1000m"), "base kept");
        assert_eq!(p.pod_scheduled_timeout_ms, Some(600000));
        assert_eq!(p.pod_stdout_timeout, Some(120000));
        assert_eq!(p.end_of_log_identifier.as_deref(), Some("HandlerComplete"));
        // maps replace, not merge
        assert_eq!(p.labels.len(), 1);
        assert_eq!(p.labels.get("b").map(String::as_str), Some("2"));
        assert_eq!(p.env_vars.get("X").map(String::as_str), Some("y"));
        // CORE config map, no configMapName given → none written
        assert_eq!(p.config_map_settings.len(), 1);
        assert_eq!(p.config_map_settings[0].config_map_name, None);
        assert_eq!(p.config_map_settings[0].map_key_paths.len(), 2);
    }

    #[test]
    fn explicit_null_clears_and_numbers_are_quantities() {
        let r = HandlerRegistry::from_json_str(
            r#"{"t": {"podConfig": {"serviceAccountName": null, "cpuMaxRequestCount": 2, "configMapSettings": null}}}"#,
        )
        .unwrap();
        let p = &spec(&r, "t").pod_config;
        assert_eq!(p.service_account_name, None);
        assert_eq!(p.cpu_max_request_count.as_deref(), Some("2"));
        assert!(p.config_map_settings.is_empty());
    }

    #[test]
    fn process_section() {
        let r = HandlerRegistry::from_json_str(
            r#"{"t": {"process": {"command": "/bin/sh", "args": ["-c", "echo hi"], "env": {"A": "b"},
                                  "workingDir": "/tmp", "timeoutMs": 5, "maxConcurrent": 3}},
                "podOnly": {"podConfig": {"imageName": "x"}}}"#,
        )
        .unwrap();
        let p = spec(&r, "t").process.clone().unwrap();
        assert_eq!(p.command, "/bin/sh");
        assert_eq!(p.args, vec!["-c", "echo hi"]);
        assert_eq!(p.env.get("A").map(String::as_str), Some("b"));
        assert_eq!(p.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(p.timeout_ms, Some(5));
        assert_eq!(p.max_concurrent, Some(3));
        assert!(spec(&r, "podOnly").process.is_none());
        assert_eq!(r.types().collect::<Vec<_>>(), vec!["podOnly", "t"]);
    }

    #[test]
    fn bad_input_names_type_field_and_registry() {
        let e = HandlerRegistry::from_json_str(r#"{"t": {"podConfig": {"pullAlways": "yes", "podRetryCount": -1}}}"#)
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t.podConfig.pullAlways"), "{msg}");
        assert!(msg.contains("t.podConfig.podRetryCount"), "{msg}");
        assert!(msg.contains("inline"), "{msg}");
        assert_eq!(e.problem_list().len(), 2);

        let e = HandlerRegistry::from_json_str(r#"{"t": {"process": {"command": ""}}}"#).unwrap_err();
        assert!(e.to_string().contains("t.process.command"), "{e}");
        let e =
            HandlerRegistry::from_json_str(r#"{"t": {"process": {"command": "x", "maxConcurrent": 0}}}"#).unwrap_err();
        assert!(e.to_string().contains("maxConcurrent"), "{e}");
        let e = HandlerRegistry::from_json_str(r#"{"t": {"process": {"command": "x", "timeout": 5}}}"#).unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
        let e = HandlerRegistry::from_json_str(r#"{"t": 5}"#).unwrap_err();
        assert!(e.to_string().contains("operation type t"), "{e}");
        let e = HandlerRegistry::from_json_str("[1]").unwrap_err();
        assert!(e.to_string().contains("inline"), "{e}");
        let e = HandlerRegistry::from_json_str("{").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = HandlerRegistry::from_path("/nonexistent/registry.json").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/registry.json"), "{e}");
    }

    #[test]
    fn unknown_type_names_type_and_registry() {
        let r = HandlerRegistry::from_json_str(r#"{"sample": {}}"#).unwrap();
        let e = r.handler("encode").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"encode\"") && msg.contains("inline") && msg.contains("sample"), "{msg}");
        assert!(matches!(e, Error::Invalid(_)));
    }

    #[test]
    fn compat_registries_load() {
        let Some(dir) = fixtures_dir("compat_registries_load") else { return };
        for file in
            ["defaultConfigMap.json", "puller-registry.json", "testConfigMap.json", "testConfigMap_BaseConfigMap.json"]
        {
            let path = dir.join("registry").join(file);
            let r = HandlerRegistry::from_path(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(r.source(), path.display().to_string());
            assert!(r.types().count() >= 1, "{file}");
            for s in r.handlers().values() {
                // base layer applies to every type in these files
                assert_eq!(s.pod_config.memory_request_count.as_deref(), Some("1000m"), "{file}");
                assert_eq!(s.pod_config.pod_scheduled_timeout_ms, Some(600000), "{file}");
                assert_eq!(s.pod_config.reap_completed_pods, Some(true), "{file}");
                assert_eq!(s.pod_config.pull_always, Some(true), "{file}");
                assert_eq!(s.pod_config.service_account_name.as_deref(), Some("pop-service"), "{file}");
                assert!(s.process.is_none());
            }
        }
    }

    #[test]
    fn compat_default_config_map() {
        let Some(dir) = fixtures_dir("compat_default_config_map") else { return };
        let r = HandlerRegistry::from_path(dir.join("registry/defaultConfigMap.json")).unwrap();
        let p = &spec(&r, "sample").pod_config;
        assert_eq!(p.image_name.as_deref(), Some("your.repo.com/fhsamp:1.0.0"));
        assert_eq!(p.name_prefix.as_deref(), Some("pop-samp"));
        assert_eq!(p.cpu_min_request_count.as_deref(), Some("1000m"));
        assert_eq!(p.config_map_settings.len(), 1);
        let cm = &p.config_map_settings[0];
        assert_eq!(cm.config_map_name.as_deref(), Some("lab-main-t-aor-fhsamp-t01"));
        assert_eq!(cm.volume_name.as_deref(), Some("config-volume"));
        assert_eq!(cm.volume_mount_path.as_deref(), Some("/app/config"));
        assert_eq!(
            cm.map_key_paths,
            vec![
                KeyPathPair::new("external-properties", "external.properties"),
                KeyPathPair::new("env-properties", "env.properties")
            ]
        );
    }

    #[test]
    fn compat_type_config_map_settings_replace_core() {
        // testConfigMap.json: the type's own configMapSettings replace CORE's (original testBaseOverlayOnSample).
        let Some(dir) = fixtures_dir("compat_type_config_map_settings_replace_core") else { return };
        let r = HandlerRegistry::from_path(dir.join("registry/testConfigMap.json")).unwrap();
        let p = &spec(&r, "sample").pod_config;
        assert_eq!(p.end_of_log_identifier.as_deref(), Some("HandlerComplete"));
        assert_eq!(p.config_map_settings.len(), 1);
        let cm = &p.config_map_settings[0];
        assert_eq!(cm.volume_name.as_deref(), Some("config-volume-ex"));
        assert_eq!(cm.volume_mount_path.as_deref(), Some("/configex"));
        assert_eq!(cm.config_map_name.as_deref(), Some("lab-main-t-aor-fhsamp-t01"));
        assert_eq!(cm.map_key_paths, vec![KeyPathPair::new("1", "2"), KeyPathPair::new("3", "4")]);
    }

    #[test]
    fn compat_base_config_map_settings_replace_core() {
        // testConfigMap_BaseConfigMap.json: base's configMapSettings replace CORE's (original testPodConfigBaseMapDetails),
        // and the type's configMapName lands in entry 0 without leaking into other types.
        let Some(dir) = fixtures_dir("compat_base_config_map_settings_replace_core") else { return };
        let path = dir.join("registry/testConfigMap_BaseConfigMap.json");
        let r = HandlerRegistry::from_path(&path).unwrap();
        let p = &spec(&r, "sample").pod_config;
        assert_eq!(p.config_map_settings.len(), 1);
        let cm = &p.config_map_settings[0];
        assert_eq!(cm.volume_name.as_deref(), Some("config-volume-ex"));
        assert_eq!(cm.volume_mount_path.as_deref(), Some("/configex"));
        assert_eq!(cm.map_key_paths, vec![KeyPathPair::new("X", "Y")]);
        assert_eq!(cm.config_map_name.as_deref(), Some("lab-main-t-aor-fhsamp-t01"));

        // A second type without configMapName gets base's settings untouched.
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        doc["analysis"] = serde_json::json!({"podConfig": {"imageName": "a"}});
        let r = HandlerRegistry::from_value(doc, "test").unwrap();
        let a = &spec(&r, "analysis").pod_config.config_map_settings;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].config_map_name, None);
        assert_eq!(a[0].map_key_paths, vec![KeyPathPair::new("X", "Y")]);
    }

    #[test]
    fn compat_unknown_keys_ignored() {
        let Some(dir) = fixtures_dir("compat_unknown_keys_ignored") else { return };
        let r = HandlerRegistry::from_path(dir.join("registry/puller-registry.json")).unwrap();
        let p = &spec(&r, "executor").pod_config;
        assert_eq!(p.image_name.as_deref(), Some("you.docker.repo/fhexec:1.0.0"));
        // configMapDetails is not a PodConfig field: CORE's settings stay, with the name written in.
        assert_eq!(p.config_map_settings[0].volume_name.as_deref(), Some("config-volume"));
        assert_eq!(p.config_map_settings[0].config_map_name.as_deref(), Some("pop-executor-01"));
    }

    #[test]
    fn pod_config_round_trips() {
        let p = PodConfig {
            alive_check_details: Some(AliveCheckDetails { alive_port: Some(8080), ..Default::default() }),
            nfs_settings: vec![NfsDetails { nfs_mount_paths: vec!["/m".into()], ..Default::default() }],
            memory_limit_count: Some("2Gi".into()),
            ..PodConfig::core_defaults()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["aliveCheckDetails"]["aliveCheckInterval"], 2);
        assert_eq!(v["memoryLimitCount"], "2Gi");
        let back: PodConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
        let a: AliveCheckDetails = serde_json::from_str(r#"{"alivePort": 1}"#).unwrap();
        assert_eq!(a.alive_check_failure_threshold, 10);
    }
}
