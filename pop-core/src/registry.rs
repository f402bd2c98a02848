//! The handler registry: operation type → handler spec (process command and raw Pod config), with the
//! original `registry.json` base-config layering.
//!
//! One JSON file serves every runtime. It is a superset of the original POP's `registry.json`, so the
//! original files load unchanged:
//!
//! * every top-level key except `basePodConfig` is an **operation type**;
//! * `basePodConfig` (optional here, required by the original) is a Pod config layered under every type;
//! * each type has an optional `configMapName`, an optional `podConfig` (used by the Kubernetes runtime)
//!   and an optional `process` (a [`ProcessSpec`], used by the local-process runtime).
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
//!                  "workingDir": "/tmp", "timeoutMs": 600000, "maxConcurrent": 4,
//!                  "inheritEnv": ["PATH", "LANG", "LC_*"],
//!                  "limits": {"cpuSeconds": 600, "memoryBytes": 2147483648, "openFiles": 256} }
//!   }
//! }
//! ```
//!
//! **Pod config.** The registry keeps it as raw JSON: [`HandlerSpec::pod_config`] is `basePodConfig` ⊕
//! the type's `podConfig`, overlaid key by key exactly like the original's Jackson `readerForUpdating`:
//! a key present in the type's layer replaces the base's value *as a whole* (lists and nested objects
//! are replaced, not merged; an explicit `null` is kept, so that it clears a default). Only the
//! Kubernetes runtime (`pop-runtime-k8s`) gives it a type: it lays its CORE defaults under this object,
//! writes the type's `configMapName` into the first config-map volume, and reports a wrong field
//! naming the operation type and the field. Here a layer must only be a JSON object.
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
//! assert_eq!(spec.pod_config["cpuMinRequestCount"], "100m");
//! assert_eq!(spec.pod_config["pullAlways"], true);
//! assert_eq!(spec.config_map_name.as_deref(), Some("cm-1"));
//! assert_eq!(spec.process.as_ref().unwrap().max_concurrent, Some(2));
//! assert!(registry.handler("encode").unwrap_err().to_string().contains("encode"));
//! ```

use crate::error::{Error, Problem, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The top-level key holding the Pod config layered under every type.
pub const BASE_POD_CONFIG_KEY: &str = "basePodConfig";

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
    /// Scrubs the environment: when set, the handler inherits only these variables of the runtime's
    /// environment (an entry ending in `*` is a prefix: `LC_*`), then gets `env` and the protocol's
    /// variables. When absent, it inherits the runtime's whole environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_env: Option<Vec<String>>,
    /// Resource limits (rlimits) the handler starts with; its children inherit them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ProcessLimits>,
}

/// Resource limits of a handler process (`process.limits`), set as rlimits before the handler runs
/// (soft = hard, except CPU time: the hard limit is one second above, so that the handler first gets
/// `SIGXCPU`). Each limit applies per process: a child inherits the limits, not a shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessLimits {
    /// CPU time, seconds (`RLIMIT_CPU`): past it the handler gets `SIGXCPU`, then `SIGKILL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// Address space, bytes (`RLIMIT_AS`): allocations past it fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`): opening more fails with `EMFILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// The largest file the handler may write, bytes (`RLIMIT_FSIZE`): past it, `SIGXFSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<u64>,
}

impl ProcessLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.cpu_seconds.is_some()
            || self.memory_bytes.is_some()
            || self.open_files.is_some()
            || self.file_size_bytes.is_some()
    }
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
    /// The Pod config as raw JSON, always an object: `basePodConfig` ⊕ the type's `podConfig`, key by
    /// key (see the [module docs](self)). The Kubernetes runtime gives it a type and its defaults.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub pod_config: Value,
    /// How to run it as a local process, if it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSpec>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// Operation type → [`HandlerSpec`], loaded from one registry document.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerRegistry {
    source: String,
    base_pod_config: Map<String, Value>,
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
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                problems.push(
                    Problem::new(format!("handler registry {source}: {BASE_POD_CONFIG_KEY} must be an object"))
                        .field(BASE_POD_CONFIG_KEY),
                );
                Map::new()
            }
        };
        let mut handlers = BTreeMap::new();
        for (op_type, entry) in &top {
            if op_type == BASE_POD_CONFIG_KEY {
                continue;
            }
            match parse_entry(op_type, entry, &base, source) {
                Ok(spec) => {
                    handlers.insert(op_type.clone(), spec);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(Self { source: source.into(), base_pod_config: base, handlers })
        } else {
            Err(Error::problems(problems))
        }
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

    /// The `basePodConfig` layer as written (empty when there is none): the Kubernetes runtime uses it to
    /// say which layer a wrong Pod config field came from.
    pub fn base_pod_config(&self) -> &Map<String, Value> {
        &self.base_pod_config
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

fn parse_entry(
    op_type: &str,
    entry: &Value,
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
        Some(Value::Object(m)) => m.clone(),
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
            Ok(p)
                if p.limits.is_some_and(|l| {
                    [l.cpu_seconds, l.memory_bytes, l.open_files, l.file_size_bytes].contains(&Some(0))
                }) =>
            {
                problems.push(problem(
                    &format!("{op_type}.process.limits"),
                    format!("{op_type}.process.limits: a limit must be at least 1 (omit it for no limit)"),
                ));
                None
            }
            Ok(p)
                if p.inherit_env
                    .as_ref()
                    .is_some_and(|names| names.iter().any(|n| n.is_empty() || n.contains('='))) =>
            {
                problems.push(problem(
                    &format!("{op_type}.process.inheritEnv"),
                    format!("{op_type}.process.inheritEnv: a variable name must be non-empty and have no `=`"),
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
    // Jackson readerForUpdating: each key of the type's layer replaces the base's value as a whole.
    let mut pod_config = base.clone();
    for (k, v) in type_layer {
        pod_config.insert(k, v);
    }
    let pod_config = Value::Object(pod_config);
    Ok(HandlerSpec { operation_type: op_type.to_string(), config_map_name, pod_config, process })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures_dir;
    use serde_json::json;

    fn spec<'a>(r: &'a HandlerRegistry, t: &str) -> &'a HandlerSpec {
        match r.handler(t) {
            Ok(s) => s,
            Err(e) => panic!("{t}: {e}"),
        }
    }

    #[test]
    fn layering_base_then_type() {
        let r = HandlerRegistry::from_json_str(
            r#"{"basePodConfig": {"cpuMinRequestCount": "1000m", "memoryRequestCount": "1000m",
                                  "podScheduledTimeoutMs": 600000, "labels": {"a": "1"}},
                "t": {"podConfig": {"cpuMinRequestCount": "100m", "labels": {"b": "2"}, "envVars": {"X": "y"}}},
                "bare": {}}"#,
        )
        .unwrap();
        let p = &spec(&r, "t").pod_config;
        assert_eq!(p["cpuMinRequestCount"], "100m", "the type's value wins");
        assert_eq!(p["memoryRequestCount"], "1000m", "base kept");
        assert_eq!(p["podScheduledTimeoutMs"], 600000);
        // objects replace, not merge
        assert_eq!(p["labels"], json!({"b": "2"}));
        assert_eq!(p["envVars"], json!({"X": "y"}));
        assert!(p.get("serviceAccountName").is_none(), "no defaults here: they belong to the Kubernetes runtime");
        assert_eq!(spec(&r, "bare").pod_config, json!(r.base_pod_config()));
        assert_eq!(r.base_pod_config().len(), 4);
    }

    #[test]
    fn explicit_null_is_kept_to_clear_a_default() {
        let r = HandlerRegistry::from_json_str(
            r#"{"basePodConfig": {"pullAlways": true},
                "t": {"podConfig": {"serviceAccountName": null, "pullAlways": null, "cpuMaxRequestCount": 2}}}"#,
        )
        .unwrap();
        let p = &spec(&r, "t").pod_config;
        assert_eq!(p["serviceAccountName"], Value::Null);
        assert!(p.as_object().unwrap().contains_key("serviceAccountName"));
        assert_eq!(p["pullAlways"], Value::Null);
        assert_eq!(p["cpuMaxRequestCount"], 2);
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
        let e = HandlerRegistry::from_json_str(r#"{"t": {"podConfig": [1]}, "u": {"configMapName": 3}}"#).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t.podConfig must be an object"), "{msg}");
        assert!(msg.contains("u.configMapName must be a string"), "{msg}");
        assert!(msg.contains("inline"), "{msg}");
        assert_eq!(e.problem_list().len(), 2);
        assert_eq!(e.problem_list()[0].field.as_deref(), Some("t.podConfig"));
        let e = HandlerRegistry::from_json_str(r#"{"basePodConfig": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("basePodConfig must be an object"), "{e}");

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
    fn specs_round_trip_through_json() {
        let r = HandlerRegistry::from_json_str(
            r#"{"t": {"configMapName": "cm", "podConfig": {"imageName": "i"}, "process": {"command": "c"}},
                "u": {}}"#,
        )
        .unwrap();
        for s in r.handlers().values() {
            let back: HandlerSpec = serde_json::from_value(serde_json::to_value(s).unwrap()).unwrap();
            assert_eq!(&back, s);
        }
        assert!(serde_json::to_value(spec(&r, "u")).unwrap().get("podConfig").is_none());
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
                let p = &s.pod_config;
                assert_eq!(p["memoryRequestCount"], "1000m", "{file}");
                assert_eq!(p["podScheduledTimeoutMs"], 600000, "{file}");
                assert_eq!(p["reapCompletedPods"], true, "{file}");
                assert_eq!(p["pullAlways"], true, "{file}");
                assert!(p["imageName"].is_string(), "{file}");
                assert!(s.config_map_name.is_some(), "{file}");
                assert!(s.process.is_none());
            }
        }
    }

    #[test]
    fn compat_config_map_settings_layers() {
        let Some(dir) = fixtures_dir("compat_config_map_settings_layers") else { return };
        let load = |file: &str| HandlerRegistry::from_path(dir.join("registry").join(file)).unwrap();
        let r = load("defaultConfigMap.json");
        let s = spec(&r, "sample");
        assert_eq!(s.config_map_name.as_deref(), Some("lab-main-t-aor-fhsamp-t01"));
        assert_eq!(s.pod_config["imageName"], "your.repo.com/fhsamp:1.0.0");
        assert_eq!(s.pod_config["namePrefix"], "pop-samp");
        assert!(s.pod_config.get("configMapSettings").is_none(), "CORE's volume comes from the Kubernetes runtime");
        // The type's own settings (testConfigMap.json) and the base's (testConfigMap_BaseConfigMap.json).
        let r = load("testConfigMap.json");
        assert_eq!(spec(&r, "sample").pod_config["configMapSettings"][0]["volumeName"], "config-volume-ex");
        let r = load("testConfigMap_BaseConfigMap.json");
        assert_eq!(
            spec(&r, "sample").pod_config["configMapSettings"][0]["mapKeyPaths"],
            json!([{"key": "X", "path": "Y"}])
        );
        // Unknown keys such as puller-registry.json's configMapDetails are carried along, untyped.
        let r = load("puller-registry.json");
        assert!(spec(&r, "executor").pod_config["configMapDetails"].is_object());
    }
}
