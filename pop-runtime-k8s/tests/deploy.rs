//! The deployment material in `deploy/k8s/` stays consistent with the runtime: its registry parses and
//! yields a valid Pod, and its RBAC grants every verb the runtime uses.

use pop_core::registry::HandlerRegistry;
use pop_core::runtime::LaunchRequest;
use pop_runtime_k8s::KubeConfig;
use pop_runtime_k8s::podspec::build_pod;
use std::path::Path;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The indented block after `registry.json: |` in the ConfigMap.
fn embedded_registry(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| !l.trim_start().starts_with("registry.json: |")).skip(1);
    let first = lines.next().expect("registry.json block");
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent))
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_deployed_registry_builds_pods() {
    let json = embedded_registry(&deploy_file("registry-configmap.yaml"));
    let registry = HandlerRegistry::from_json_str(&json).expect("deploy/k8s registry parses");
    let spec = registry.handler("sample").expect("sample type");
    let request = LaunchRequest {
        agenda_id: "a".into(),
        operation_name: "o".into(),
        operation_type: "sample".into(),
        ..LaunchRequest::default()
    };
    let pod = build_pod(spec, &request, &KubeConfig::default(), "1", "pop").expect("pod");
    let pod = serde_json::to_value(pod).expect("json");
    assert_eq!(pod["spec"]["serviceAccountName"], "pop-service");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi");
}

#[test]
fn rbac_grants_what_the_runtime_uses() {
    for file in ["rbac.yaml", "rbac-namespace-per-customer.yaml"] {
        let rbac = deploy_file(file);
        for verb in ["create", "get", "list", "watch", "delete"] {
            assert!(rbac.contains(&format!("\"{verb}\"")), "{file} lacks {verb}");
        }
        assert!(rbac.contains("pods/log"), "{file} lacks pods/log");
    }
    let deployment = deploy_file("worker-deployment.yaml");
    assert!(deployment.contains("serviceAccountName: pop-worker"));
}
