//! The `PodRuntime` conformance suite (`pop_core::testing::runtime`) against the Kubernetes runtime and
//! the mock Kubernetes API (`mock/`): a real kube client over real HTTP, with a scripted kubelet playing
//! each Pod as its operation type's behaviour says — it reads the Pod's environment (decoding the
//! payload with the handler protocol's own decoder, as a handler image would), runs the Pod, writes
//! its log and ends it with the behaviour's exit code.

mod mock;

use mock::MockKube;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{PodRuntime, ProgressUpdate};
use pop_core::testing::runtime::{Behaviour, Capabilities, HandlerDef, RuntimeHarness, Skip};
use pop_handler_protocol::env;
use pop_handler_protocol::output::{progress_line, result_line};
use pop_runtime_k8s::config::DEFAULT_COMPRESS_THRESHOLD;
use pop_runtime_k8s::{KubeConfig, KubeRuntime, RetryPolicy};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

fn config() -> KubeConfig {
    KubeConfig {
        retry: RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            watch_error_budget: Duration::from_secs(5),
        },
        log_drain_timeout: Duration::from_secs(3),
        // Several chunks for the compressed payload.
        max_segment_size: 4096,
        ..KubeConfig::single_namespace("pop")
    }
}

/// The Pod's container environment, by name (downward-API variables have no value here).
fn pod_env(pod: &Value) -> HashMap<String, String> {
    pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}

/// Plays one Pod: runs it and writes what its behaviour says, then ends it (or leaves it running).
fn play(mock: &MockKube, ns: &str, name: &str, pod: &Value, behaviours: &HashMap<String, Behaviour>) {
    let op_type = pod["metadata"]["annotations"]["pop/operation-type"].as_str().unwrap_or_default();
    let Some(behaviour) = behaviours.get(op_type) else {
        mock.run(ns, name);
        mock.log(ns, name, &format!("kubelet: no behaviour for operation type {op_type:?}"));
        mock.terminate(ns, name, 127);
        return;
    };
    let vars = pod_env(pod);
    let get = |k: &str| vars.get(k).cloned();
    mock.run(ns, name);
    let (lines, code): (Vec<String>, Option<i32>) = match behaviour {
        Behaviour::Succeed(output) => (vec![result_line(output)], Some(0)),
        Behaviour::ProgressThenSucceed { percents, output } => {
            let mut lines: Vec<String> = percents
                .iter()
                .map(|p| progress_line(&ProgressUpdate { percent_complete: Some(*p), ..Default::default() }))
                .collect();
            lines.push(result_line(output));
            (lines, Some(0))
        }
        Behaviour::Fail { exit_code, diagnostic } => (vec![diagnostic.clone()], Some(*exit_code)),
        Behaviour::HangUntilCancelled => (vec!["working until cancelled".into()], None),
        Behaviour::EchoPayload => match pop_handler_protocol::decode_payload(get) {
            Ok(json) => (vec![format!("POP_RESULT {json}")], Some(0)),
            Err(e) => (vec![format!("kubelet: cannot read the payload: {e}")], Some(2)),
        },
        Behaviour::EchoEnv => {
            let text = |k: &str| Value::String(get(k).unwrap_or_default());
            let last = match get(env::LAST_PROGRESS) {
                None => Ok(Value::Null),
                Some(t) => serde_json::from_str(&t),
            };
            match last {
                Ok(last) => {
                    let seen = json!({
                        "agendaId": text(env::AGENDA_ID), "cid": text(env::CID),
                        "customerId": text(env::CUSTOMER_ID), "operationName": text(env::OPERATION_NAME),
                        "operationId": text(env::OPERATION_ID), "lastProgress": last,
                    });
                    (vec![result_line(&seen)], Some(0))
                }
                Err(e) => (vec![format!("kubelet: LAST_PROGRESS is not JSON: {e}")], Some(2)),
            }
        }
        other => (vec![format!("kubelet: unknown behaviour {other:?}")], Some(127)),
    };
    for line in &lines {
        mock.log(ns, name, line);
    }
    if let Some(code) = code {
        mock.terminate(ns, name, code);
    }
}

/// Plays every Pod the runtime creates, as its type's behaviour says.
async fn kubelet(mock: MockKube, behaviours: HashMap<String, Behaviour>) {
    let mut changes = mock.subscribe();
    let mut seen = HashSet::new();
    loop {
        for handle in mock.pod_handles() {
            if !seen.insert(handle.clone()) {
                continue;
            }
            let Some((ns, name)) = handle.split_once('/') else { continue };
            if let Some(pod) = mock.pod(ns, name) {
                play(&mock, ns, name, &pod, &behaviours);
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

struct KubeHarness;

#[async_trait::async_trait]
impl RuntimeHarness for KubeHarness {
    async fn runtime(&self, handlers: &[HandlerDef]) -> Result<Arc<dyn PodRuntime>, Skip> {
        let mock = MockKube::start().await;
        let mut doc = Map::new();
        let mut behaviours = HashMap::new();
        for def in handlers {
            let image = format!("conformance/{}:1", def.operation_type);
            doc.insert(def.operation_type.clone(), json!({"podConfig": {"imageName": image, "namePrefix": "conf"}}));
            behaviours.insert(def.operation_type.clone(), def.behaviour.clone());
        }
        let registry = HandlerRegistry::from_value(Value::Object(doc), "conformance")
            .map_err(|e| Skip::because(format!("the harness's registry does not load: {e}")))?;
        KubeRuntime::check_registry(&registry)
            .map_err(|e| Skip::because(format!("the harness's registry is not a valid Pod registry: {e}")))?;
        let runtime = KubeRuntime::new(mock.client(), Arc::new(registry), config());
        tokio::spawn(kubelet(mock, behaviours));
        Ok(Arc::new(runtime))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { compressed_payload_above: Ok(DEFAULT_COMPRESS_THRESHOLD), exit_codes: Ok(()) }
    }
}

pop_core::runtime_conformance!(async { Arc::new(KubeHarness) });
