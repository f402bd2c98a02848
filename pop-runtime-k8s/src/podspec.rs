//! The Pod spec of one operation: the registry's layered `podConfig` plus the handler protocol's
//! environment, as the original's `Fabric8Helper.getPodSpec` built it (with the differences listed in
//! the crate docs). Pure: no IO, the unique name is passed in.

use crate::config::KubeConfig;
use crate::error::KubeError;
use crate::labels;
use crate::podconfig::PodConfig;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, ExecAction, KeyToPath, NFSVolumeSource,
    NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodSpec,
    PreferredSchedulingTerm, Probe, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pop_core::registry::HandlerSpec;
use pop_core::runtime::LaunchRequest;
use pop_handler_protocol::env::{COMPRESSED_PAYLOAD_PREFIX, PAYLOAD};
use pop_handler_protocol::{EnvOptions, PayloadEncoding, ProtocolError, UnknownIds, handler_env};
use std::collections::BTreeMap;

/// The node label (and taint key) of dedicated nodes, as in the original.
pub const TAINT_KEY: &str = "dedicated";
/// The weight of the preferred affinity to dedicated nodes, as in the original.
pub const TAINT_AFFINITY_WEIGHT: i32 = 40;

/// Builds the Pod for one operation from its registry entry (the CORE defaults laid under its raw
/// `podConfig`: [`PodConfig::effective`]). `unique` is the generated part of the name; `namespace`
/// where it goes.
pub fn build_pod(
    spec: &HandlerSpec,
    request: &LaunchRequest,
    config: &KubeConfig,
    unique: &str,
    namespace: &str,
) -> Result<Pod, KubeError> {
    let pc = PodConfig::effective(spec, &serde_json::Map::new()).map_err(|problems| KubeError::PodConfig {
        operation_type: spec.operation_type.clone(),
        message: problems
            .iter()
            .map(|p| p.message.strip_prefix(&format!("operation type {}: ", spec.operation_type)).unwrap_or(&p.message))
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    build_pod_with(&pc, &spec.operation_type, request, config, unique, namespace)
}

/// Builds the Pod for one operation of type `operation_type` from its effective Pod config.
pub fn build_pod_with(
    pc: &PodConfig,
    operation_type: &str,
    request: &LaunchRequest,
    config: &KubeConfig,
    unique: &str,
    namespace: &str,
) -> Result<Pod, KubeError> {
    let bad = |message: String| KubeError::PodConfig { operation_type: operation_type.to_string(), message };
    let image = pc
        .image_name
        .as_deref()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| bad("podConfig.imageName is missing: the registry must name the handler's image".into()))?;
    let name = labels::pod_name(pc.name_prefix.as_deref(), unique);

    let (volumes, mounts) = volumes(pc).map_err(bad)?;
    let container = Container {
        name: name.clone(),
        image: Some(image.to_string()),
        args: pc.arguments.clone().filter(|a| !a.is_empty()),
        env: Some(
            env(pc, request, config)
                .map_err(|e| bad(format!("payload of operation {}: {e}", request.operation_name)))?,
        ),
        resources: Some(resources(pc)),
        image_pull_policy: (pc.pull_always == Some(true)).then(|| "Always".to_string()),
        security_context: (pc.docker_privileged == Some(true))
            .then(|| SecurityContext { privileged: Some(true), ..SecurityContext::default() }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        liveness_probe: liveness_probe(pc),
        ..Container::default()
    };

    let mut node_selector = BTreeMap::new();
    if let Some(zone) = config.zone.as_deref().filter(|z| !z.is_empty()) {
        node_selector.insert(zone.to_string(), "true".to_string());
    }
    let (affinity, tolerations) = tainted(pc);
    let pod_spec = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: pc.service_account_name.clone().filter(|s| !s.is_empty()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        node_selector: (!node_selector.is_empty()).then_some(node_selector),
        affinity,
        tolerations,
        ..PodSpec::default()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(pod_labels(pc, request, config)),
            annotations: Some(pod_annotations(request)),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    })
}

/// The labels tying a Pod to POP: managed-by, the original's `app`, agenda, operation, type, customer,
/// insight (values sanitized to label rules), the runtime's extra labels, then the registry's `labels`.
pub fn pod_labels(pc: &PodConfig, request: &LaunchRequest, config: &KubeConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(labels::MANAGED_BY.to_string(), labels::label_value(&config.managed_by));
    let app = pc.name_prefix.as_deref().map(labels::label_value).filter(|a| !a.is_empty());
    l.insert(labels::APP.to_string(), app.unwrap_or_else(|| "pop".into()));
    l.insert(labels::AGENDA.to_string(), labels::label_value(&request.agenda_id));
    l.insert(labels::OPERATION.to_string(), labels::label_value(&request.operation_name));
    l.insert(labels::OPERATION_TYPE.to_string(), labels::label_value(&request.operation_type));
    if let Some(c) = request.customer_id.as_deref() {
        l.insert(labels::CUSTOMER.to_string(), labels::label_value(c));
    }
    if let Some(i) = request.insight_id.as_deref() {
        l.insert(labels::INSIGHT.to_string(), labels::label_value(i));
    }
    for (k, v) in config.extra_labels.iter().chain(pc.labels.iter()) {
        if k != labels::MANAGED_BY {
            l.insert(k.clone(), labels::label_value(v));
        }
    }
    l
}

fn pod_annotations(request: &LaunchRequest) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(labels::ANN_AGENDA.to_string(), request.agenda_id.clone());
    a.insert(labels::ANN_OPERATION.to_string(), request.operation_name.clone());
    a.insert(labels::ANN_OPERATION_TYPE.to_string(), request.operation_type.clone());
    if let Some(c) = &request.customer_id {
        a.insert(labels::ANN_CUSTOMER.to_string(), c.clone());
    }
    a
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value.into()), value_from: None }
}

fn field_ref(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_string(), api_version: None }),
            ..EnvVarSource::default()
        }),
    }
}

/// How a Pod gets the handler protocol's variables: the payload as [`KubeConfig::payload_mode`] says,
/// ids the request lacks left out (as the original did), `LOG_LEVEL` among them.
pub fn env_options(config: &KubeConfig) -> EnvOptions {
    EnvOptions::new(PayloadEncoding { mode: config.payload_mode, max_chunk_chars: config.max_segment_size })
        .unknown_ids(UnknownIds::Omit)
        .log_level(config.log_level.clone())
}

/// The handler protocol's environment: the registry's `envVars` first (sorted), then the protocol's
/// variables ([`handler_env`]), which win over a registry variable of the same name, then the
/// downward-API variables `MY_POD_NAME`, `MY_POD_NAMESPACE` (and `MY_POD_IP` for the liveness probe).
fn env(pc: &PodConfig, request: &LaunchRequest, config: &KubeConfig) -> Result<Vec<EnvVar>, ProtocolError> {
    let mut protocol: Vec<EnvVar> =
        handler_env(request, &env_options(config))?.into_iter().map(|(k, v)| plain(&k, v)).collect();
    protocol.push(field_ref("MY_POD_NAME", "metadata.name"));
    protocol.push(field_ref("MY_POD_NAMESPACE", "metadata.namespace"));
    if pc.alive_check_details.as_ref().is_some_and(|a| a.alive_check_host.is_none()) {
        protocol.push(field_ref("MY_POD_IP", "status.podIP"));
    }
    let mut out: Vec<EnvVar> = pc
        .env_vars
        .iter()
        .filter(|(k, _)| !protocol.iter().any(|p| &p.name == *k))
        .filter(|(k, _)| !k.starts_with(COMPRESSED_PAYLOAD_PREFIX) && k.as_str() != PAYLOAD)
        .map(|(k, v)| plain(k, v.clone()))
        .collect();
    out.extend(protocol);
    Ok(out)
}

fn resources(pc: &PodConfig) -> ResourceRequirements {
    let q = |s: &Option<String>| s.as_deref().filter(|v| !v.trim().is_empty()).map(|v| Quantity(v.trim().to_string()));
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = q(&pc.cpu_min_request_count) {
        requests.insert("cpu".to_string(), cpu);
    }
    if let Some(cpu) = q(&pc.cpu_max_request_count) {
        limits.insert("cpu".to_string(), cpu);
    }
    if let Some(mem) = q(&pc.memory_request_count) {
        requests.insert("memory".to_string(), mem);
    }
    if let Some(mem) = q(&pc.memory_limit_count) {
        limits.insert("memory".to_string(), mem);
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

/// Config-map volumes (entries without a config map name are left out: there is nothing to mount),
/// NFS volumes (one per mount path, named `nfs-<setting>-<path>`), and the optional `log` emptyDir.
fn volumes(pc: &PodConfig) -> Result<(Vec<Volume>, Vec<VolumeMount>), String> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, cm) in pc.config_map_settings.iter().enumerate() {
        let Some(cm_name) = cm.config_map_name.as_deref().filter(|n| !n.is_empty()) else { continue };
        let at = format!("podConfig.configMapSettings[{i}]");
        let volume_name =
            cm.volume_name.clone().filter(|v| !v.is_empty()).ok_or(format!("{at}.volumeName is missing"))?;
        let mount_path =
            cm.volume_mount_path.clone().filter(|v| !v.is_empty()).ok_or(format!("{at}.volumeMountPath is missing"))?;
        let mut items = Vec::new();
        for (j, kp) in cm.map_key_paths.iter().enumerate() {
            match (&kp.key, &kp.path) {
                (Some(key), Some(path)) => items.push(KeyToPath { key: key.clone(), path: path.clone(), mode: None }),
                _ => return Err(format!("{at}.mapKeyPaths[{j}] needs both key and path")),
            }
        }
        volumes.push(Volume {
            name: volume_name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: cm_name.to_string(),
                items: (!items.is_empty()).then_some(items),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount { name: volume_name, mount_path, ..VolumeMount::default() });
    }
    for (i, nfs) in pc.nfs_settings.iter().enumerate() {
        let at = format!("podConfig.nfsSettings[{i}]");
        let server = nfs.nfs_server.clone().filter(|s| !s.is_empty()).ok_or(format!("{at}.nfsServer is missing"))?;
        let path =
            nfs.nfs_server_path.clone().filter(|s| !s.is_empty()).ok_or(format!("{at}.nfsServerPath is missing"))?;
        for (j, mount_path) in nfs.nfs_mount_paths.iter().enumerate() {
            let name = format!("nfs-{i}-{j}");
            volumes.push(Volume {
                name: name.clone(),
                nfs: Some(NFSVolumeSource { server: server.clone(), path: path.clone(), read_only: nfs.nfs_read_only }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name,
                mount_path: mount_path.clone(),
                read_only: nfs.nfs_read_only,
                ..VolumeMount::default()
            });
        }
    }
    if pc.default_empty_dir_logging == Some(true) {
        volumes.push(Volume { name: "log".into(), empty_dir: Some(Default::default()), ..Volume::default() });
        mounts.push(VolumeMount { name: "log".into(), mount_path: "/app/dumps".into(), ..VolumeMount::default() });
    }
    Ok((volumes, mounts))
}

/// The original's exec probe: `curl -sSf -m 3 -o /dev/null http://<host|$MY_POD_IP>:<port><path>`, added
/// when `aliveCheckDetails` names a port and `aliveCheckLinking` is not `false`.
fn liveness_probe(pc: &PodConfig) -> Option<Probe> {
    let a = pc.alive_check_details.as_ref()?;
    if a.alive_check_linking == Some(false) {
        return None;
    }
    let port = a.alive_port?;
    let host = a.alive_check_host.clone().unwrap_or_else(|| "${MY_POD_IP}".into());
    let path = a.alive_path.clone().unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("curl -sSf -m 3 -o /dev/null http://{host}:{port}{path}"),
            ]),
        }),
        period_seconds: Some(i32::try_from(a.alive_check_interval.max(1)).unwrap_or(i32::MAX)),
        failure_threshold: Some(i32::try_from(a.alive_check_failure_threshold.max(1)).unwrap_or(i32::MAX)),
        ..Probe::default()
    })
}

fn tainted(pc: &PodConfig) -> (Option<Affinity>, Option<Vec<Toleration>>) {
    if pc.use_tainted_nodes != Some(true) {
        return (None, None);
    }
    let affinity = pc.tainted_node_selector.as_ref().filter(|s| !s.is_empty()).map(|selector| Affinity {
        node_affinity: Some(NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![PreferredSchedulingTerm {
                weight: TAINT_AFFINITY_WEIGHT,
                preference: NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: TAINT_KEY.into(),
                        operator: "In".into(),
                        values: Some(vec![selector.clone()]),
                    }]),
                    match_fields: None,
                },
            }]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    });
    let tolerations = pc.tainted_node_toleration.as_ref().filter(|t| !t.is_empty()).map(|t| {
        vec![Toleration {
            key: Some(TAINT_KEY.into()),
            operator: Some("Equal".into()),
            value: Some(t.clone()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }]
    });
    (affinity, tolerations)
}
