//! The typed Pod config of an operation type: the original's `PodConfig` (with its CORE defaults),
//! read from the registry's raw `podConfig` JSON.
//!
//! The handler registry (`pop_core::registry`) keeps each type's Pod config as JSON: `basePodConfig` ⊕
//! the type's `podConfig`, key by key. [`PodConfig::effective`] lays the original's CORE layer
//! ([`PodConfig::core_defaults`]) under it, the same way (a key present in a later layer replaces the
//! earlier value as a whole; an explicit `null` clears it), then writes the type's `configMapName` into
//! the first config-map volume when there is one. Unknown keys (such as the original fixtures'
//! `configMapDetails`) are ignored. A wrong value is reported with the registry, the operation type and
//! the field (`basePodConfig.pullAlways` when it came from the base layer,
//! `sample.podConfig.pullAlways` otherwise).
//!
//! ```
//! use pop_core::registry::HandlerRegistry;
//! use pop_runtime_k8s::podconfig::PodConfig;
//! let registry = HandlerRegistry::from_json_str(r#"{
//!     "basePodConfig": {"cpuMinRequestCount": "1000m", "pullAlways": true},
//!     "sample": {"configMapName": "cm-1",
//!                "podConfig": {"imageName": "pop-sample:1.0.0", "cpuMinRequestCount": "100m"}}
//! }"#).unwrap();
//! let pc = PodConfig::for_type(&registry, "sample").unwrap();
//! assert_eq!(pc.cpu_min_request_count.as_deref(), Some("100m"));
//! assert_eq!(pc.pull_always, Some(true));
//! assert_eq!(pc.service_account_name.as_deref(), Some("pop-service"));
//! assert_eq!(pc.config_map_settings[0].config_map_name.as_deref(), Some("cm-1"));
//! ```

use pop_core::registry::{BASE_POD_CONFIG_KEY, HandlerRegistry, HandlerSpec};
use pop_core::{Error, Problem};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
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
/// set any subset). [`PodConfig::effective`] fills in the CORE defaults under a registry entry's
/// `podConfig`.
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

impl PodConfig {
    /// The effective Pod config of one registry entry: [`core_defaults`](Self::core_defaults) ⊕ the
    /// entry's `podConfig` (already `basePodConfig` ⊕ the type's layer), then the type's `configMapName`
    /// written into the first config-map volume. `base` is the registry's `basePodConfig` (to say which
    /// layer a wrong field came from). Every wrong field is a problem naming the operation type and the
    /// field; [`for_type`](Self::for_type) and [`for_registry`](Self::for_registry) add the registry.
    pub fn effective(spec: &HandlerSpec, base: &Map<String, Value>) -> Result<Self, Vec<Problem>> {
        let op_type = &spec.operation_type;
        let at = format!("{op_type}.podConfig");
        let problem =
            |field: String, message: String| Problem::new(format!("operation type {op_type}: {message}")).field(field);
        let layer = match &spec.pod_config {
            Value::Object(m) => m,
            Value::Null => &Map::new(),
            _ => return Err(vec![problem(at.clone(), format!("{at} must be an object"))]),
        };
        // Each key on its own first, so that a wrong value is reported with its field.
        let mut problems = Vec::new();
        for (key, value) in layer {
            let mut single = Map::new();
            single.insert(key.clone(), value.clone());
            if let Err(e) = serde_json::from_value::<PodConfig>(Value::Object(single)) {
                let field = if base.get(key) == Some(value) {
                    format!("{BASE_POD_CONFIG_KEY}.{key}")
                } else {
                    format!("{at}.{key}")
                };
                problems.push(problem(field.clone(), format!("{field}: {e}")));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut merged = match serde_json::to_value(Self::core_defaults()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in layer {
            merged.insert(k.clone(), v.clone());
        }
        let mut pc: PodConfig = serde_json::from_value(Value::Object(merged))
            .map_err(|e| vec![problem(at.clone(), format!("effective {at}: {e}"))])?;
        if let (Some(name), Some(first)) = (&spec.config_map_name, pc.config_map_settings.first_mut()) {
            first.config_map_name = Some(name.clone());
        }
        Ok(pc)
    }

    /// The effective Pod config of one type of the registry; an unknown type or a wrong field is
    /// `Error::Invalid` naming it.
    pub fn for_type(registry: &HandlerRegistry, operation_type: &str) -> pop_core::Result<Self> {
        let spec = registry.handler(operation_type)?;
        Self::effective(spec, registry.base_pod_config())
            .map_err(|problems| Error::problems(in_registry(registry, problems)))
    }

    /// The effective Pod config of every type of the registry, or every problem of every type (a wrong
    /// `basePodConfig` field is reported once).
    pub fn for_registry(registry: &HandlerRegistry) -> pop_core::Result<BTreeMap<String, Self>> {
        let mut configs = BTreeMap::new();
        let mut problems: Vec<Problem> = Vec::new();
        for (op_type, spec) in registry.handlers() {
            match Self::effective(spec, registry.base_pod_config()).map_err(|p| in_registry(registry, p)) {
                Ok(pc) => {
                    configs.insert(op_type.clone(), pc);
                }
                Err(found) => {
                    for p in found {
                        let from_base = p.field.as_deref().is_some_and(|f| f.starts_with(BASE_POD_CONFIG_KEY));
                        if !(from_base && problems.iter().any(|q| q.field == p.field)) {
                            problems.push(p);
                        }
                    }
                }
            }
        }
        if problems.is_empty() { Ok(configs) } else { Err(Error::problems(problems)) }
    }
}

/// Names the registry in each problem's message.
pub(crate) fn in_registry(registry: &HandlerRegistry, problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|mut p| {
            p.message = format!("handler registry {}: {}", registry.source(), p.message);
            p
        })
        .collect()
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
    use pop_core::compat::fixtures_dir;

    fn effective(registry: &HandlerRegistry, t: &str) -> PodConfig {
        PodConfig::for_type(registry, t).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn registry(json: &str) -> HandlerRegistry {
        HandlerRegistry::from_json_str(json).unwrap_or_else(|e| panic!("registry: {e}"))
    }

    #[test]
    fn layering_core_base_type() {
        let r = registry(
            r#"{"basePodConfig": {"cpuMinRequestCount": "1000m", "memoryRequestCount": "1000m",
                                  "podScheduledTimeoutMs": 600000, "labels": {"a": "1"}},
                "t": {"podConfig": {"cpuMinRequestCount": "100m", "labels": {"b": "2"}, "envVars": {"X": "y"}}}}"#,
        );
        let p = effective(&r, "t");
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
        let r = registry(
            r#"{"t": {"podConfig": {"serviceAccountName": null, "cpuMaxRequestCount": 2, "configMapSettings": null}}}"#,
        );
        let p = effective(&r, "t");
        assert_eq!(p.service_account_name, None);
        assert_eq!(p.cpu_max_request_count.as_deref(), Some("2"));
        assert!(p.config_map_settings.is_empty());
    }

    #[test]
    fn bad_fields_name_the_registry_the_type_and_the_field() {
        let r = registry(r#"{"t": {"podConfig": {"pullAlways": "yes", "podRetryCount": -1, "imageName": "i"}}}"#);
        let e = PodConfig::for_type(&r, "t").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(msg.contains("t.podConfig.pullAlways"), "{msg}");
        assert!(msg.contains("t.podConfig.podRetryCount"), "{msg}");
        assert!(msg.contains("inline") && msg.contains("operation type t"), "{msg}");
        assert_eq!(e.problem_list().len(), 2);
        let mut fields: Vec<&str> = e.problem_list().iter().filter_map(|p| p.field.as_deref()).collect();
        fields.sort();
        assert_eq!(fields, ["t.podConfig.podRetryCount", "t.podConfig.pullAlways"]);

        // A wrong base field is named as such, once for the whole registry.
        let r = registry(r#"{"basePodConfig": {"pullAlways": "yes"}, "a": {}, "b": {"podConfig": {"pullAlways": 1}}}"#);
        let e = PodConfig::for_registry(&r).unwrap_err();
        let mut fields: Vec<&str> = e.problem_list().iter().filter_map(|p| p.field.as_deref()).collect();
        fields.sort();
        assert_eq!(fields, ["b.podConfig.pullAlways", "basePodConfig.pullAlways"], "{e}");
        assert!(PodConfig::for_type(&r, "nope").unwrap_err().to_string().contains("\"nope\""));
    }

    #[test]
    fn every_type_of_a_registry() {
        let r = registry(r#"{"basePodConfig": {"pullAlways": true}, "a": {}, "b": {"podConfig": {"imageName": "i"}}}"#);
        let all = PodConfig::for_registry(&r).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.values().all(|p| p.pull_always == Some(true)));
        assert_eq!(all["b"].image_name.as_deref(), Some("i"));
    }

    #[test]
    fn compat_registries_load() {
        let Some(dir) = fixtures_dir("compat_registries_load") else { return };
        for file in
            ["defaultConfigMap.json", "puller-registry.json", "testConfigMap.json", "testConfigMap_BaseConfigMap.json"]
        {
            let r = HandlerRegistry::from_path(dir.join("registry").join(file)).unwrap();
            for p in PodConfig::for_registry(&r).unwrap_or_else(|e| panic!("{file}: {e}")).values() {
                assert_eq!(p.memory_request_count.as_deref(), Some("1000m"), "{file}");
                assert_eq!(p.pod_scheduled_timeout_ms, Some(600000), "{file}");
                assert_eq!(p.reap_completed_pods, Some(true), "{file}");
                assert_eq!(p.pull_always, Some(true), "{file}");
                assert_eq!(p.service_account_name.as_deref(), Some("pop-service"), "{file}");
            }
        }
    }

    #[test]
    fn compat_default_config_map() {
        let Some(dir) = fixtures_dir("compat_default_config_map") else { return };
        let r = HandlerRegistry::from_path(dir.join("registry/defaultConfigMap.json")).unwrap();
        let p = effective(&r, "sample");
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
        let p = effective(&r, "sample");
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
        // testConfigMap_BaseConfigMap.json: base's configMapSettings replace CORE's (original
        // testPodConfigBaseMapDetails), and the type's configMapName lands in entry 0 without leaking into
        // other types.
        let Some(dir) = fixtures_dir("compat_base_config_map_settings_replace_core") else { return };
        let path = dir.join("registry/testConfigMap_BaseConfigMap.json");
        let r = HandlerRegistry::from_path(&path).unwrap();
        let p = effective(&r, "sample");
        assert_eq!(p.config_map_settings.len(), 1);
        let cm = &p.config_map_settings[0];
        assert_eq!(cm.volume_name.as_deref(), Some("config-volume-ex"));
        assert_eq!(cm.volume_mount_path.as_deref(), Some("/configex"));
        assert_eq!(cm.map_key_paths, vec![KeyPathPair::new("X", "Y")]);
        assert_eq!(cm.config_map_name.as_deref(), Some("lab-main-t-aor-fhsamp-t01"));

        // A second type without configMapName gets base's settings untouched.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        doc["analysis"] = serde_json::json!({"podConfig": {"imageName": "a"}});
        let r = HandlerRegistry::from_value(doc, "test").unwrap();
        let a = effective(&r, "analysis").config_map_settings;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].config_map_name, None);
        assert_eq!(a[0].map_key_paths, vec![KeyPathPair::new("X", "Y")]);
    }

    #[test]
    fn compat_unknown_keys_ignored() {
        let Some(dir) = fixtures_dir("compat_unknown_keys_ignored") else { return };
        let r = HandlerRegistry::from_path(dir.join("registry/puller-registry.json")).unwrap();
        let p = effective(&r, "executor");
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
