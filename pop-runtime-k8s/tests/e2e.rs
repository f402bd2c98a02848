//! End-to-end against a real cluster (kind, minikube, ...). Runs only when `POP_K8S_E2E=1` and a
//! kubeconfig is present (`KUBECONFIG` or `~/.kube/config`); otherwise each test says why it skips.
//!
//! ```text
//! kind create cluster            # or: minikube start
//! kubectl create namespace pop-e2e
//! POP_K8S_E2E=1 POP_K8S_NAMESPACE=pop-e2e cargo test -p pop-runtime-k8s --test e2e -- --nocapture
//! ```
//! The handler image is `busybox:1.36` (pulled by the cluster); Pods run as the namespace's `default`
//! service account.

use futures_util::StreamExt;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, PodRuntime, RuntimeEvent};
use pop_runtime_k8s::{KubeConfig, KubeRuntime};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn enabled(test: &str) -> bool {
    if std::env::var("POP_K8S_E2E").as_deref() != Ok("1") {
        eprintln!("skipping {test}: POP_K8S_E2E is not 1 (needs a real cluster)");
        return false;
    }
    let kubeconfig = std::env::var_os("KUBECONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".kube/config")));
    if !kubeconfig.is_some_and(|p| p.is_file()) {
        eprintln!("skipping {test}: no kubeconfig (set KUBECONFIG or create ~/.kube/config)");
        return false;
    }
    true
}

const REGISTRY: &str = r#"{
  "basePodConfig": {"cpuMinRequestCount": "50m", "cpuMaxRequestCount": "200m", "memoryRequestCount": "32Mi",
                    "memoryLimitCount": "64Mi", "reapCompletedPods": true, "serviceAccountName": "default",
                    "configMapSettings": [], "podScheduledTimeoutMs": 300000},
  "ok": {"podConfig": {"imageName": "busybox:1.36", "namePrefix": "pop-e2e-ok",
         "arguments": ["sh", "-c", "echo \"got $PAYLOAD\"; echo 'POP_PROGRESS {\"percentComplete\": 50}'; echo \"POP_RESULT {\\\"agenda\\\": \\\"$AGENDA_ID\\\"}\""]}},
  "fail": {"podConfig": {"imageName": "busybox:1.36", "namePrefix": "pop-e2e-fail",
           "arguments": ["sh", "-c", "echo first; echo last; exit 7"]}}
}"#;

async fn runtime() -> KubeRuntime {
    let namespace = std::env::var("POP_K8S_NAMESPACE").unwrap_or_else(|_| "default".into());
    let registry = Arc::new(HandlerRegistry::from_json_str(REGISTRY).expect("registry"));
    KubeRuntime::connect(registry, KubeConfig::single_namespace(namespace)).await.expect("client from kubeconfig")
}

async fn run(rt: &KubeRuntime, op_type: &str) -> Vec<RuntimeEvent> {
    let launched = rt
        .launch(LaunchRequest {
            agenda_id: "e2e-agenda".into(),
            operation_name: "e2e".into(),
            operation_type: op_type.into(),
            payload: json!({"n": 1}),
            ..LaunchRequest::default()
        })
        .await
        .expect("launch");
    tokio::time::timeout(Duration::from_secs(360), launched.events.collect::<Vec<_>>()).await.expect("pod finished")
}

#[tokio::test]
async fn e2e_success_and_failure_on_a_real_cluster() {
    if !enabled("e2e_success_and_failure_on_a_real_cluster") {
        return;
    }
    let rt = runtime().await;
    let events = run(&rt, "ok").await;
    assert!(events.contains(&RuntimeEvent::Output(json!({"agenda": "e2e-agenda"}))), "{events:?}");
    assert!(matches!(events.last(), Some(RuntimeEvent::Exited(e)) if e.success), "{events:?}");

    let events = run(&rt, "fail").await;
    let Some(RuntimeEvent::Exited(exit)) = events.last() else { panic!("{events:?}") };
    assert!(!exit.success);
    assert_eq!(exit.code, Some(7));
    assert_eq!(exit.diagnostic.as_ref().unwrap().payload, json!(["first", "last"]));
    // Both pods were reaped (reapCompletedPods).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = rt.list().await.expect("list");
    assert!(!left.iter().any(|i| i.agenda_id == "e2e-agenda"), "{left:?}");
}
