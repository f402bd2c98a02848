//! The deployment material in `deploy/k8s/` stays consistent with the runtime: every manifest parses as
//! YAML into the typed Kubernetes objects, its registry yields a valid Pod, and its RBAC grants every
//! verb the runtime uses, in the namespaces it uses, to the worker's account — and no more than the file
//! says.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::LaunchRequest;
use pop_runtime_k8s::KubeConfig;
use pop_runtime_k8s::namespace::check_namespace;
use pop_runtime_k8s::podspec::build_pod;
use serde_json::Value;
use std::path::Path;

/// What the runtime does with Pods in a namespace it launches into: create, follow (a watch, which
/// lists first), get, delete; list for the reaper; and read the log.
const POD_VERBS: [&str; 5] = ["create", "get", "list", "watch", "delete"];

/// The placeholder of the per-namespace template.
const PLACEHOLDER: &str = "POP_HANDLER_NAMESPACE";

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The YAML documents of a manifest, each checked to be a Kubernetes object (apiVersion, kind, name).
fn documents(name: &str, text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "{name} has no document");
    for d in &docs {
        for field in ["apiVersion", "kind"] {
            assert!(d[field].is_string(), "{name}: a document without {field}: {d}");
        }
        assert!(d["metadata"]["name"].is_string(), "{name}: a {} without metadata.name", d["kind"]);
    }
    docs
}

/// The one document of this kind and name, as its typed object.
fn object<T: serde::de::DeserializeOwned>(file: &str, docs: &[Value], kind: &str, name: &str) -> T {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind && d["metadata"]["name"] == name).collect();
    assert_eq!(found.len(), 1, "{file}: expected one {kind} {name}");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"))
}

/// Whether the rules grant `verb` on the core-group `resource`.
fn grants(rules: &[PolicyRule], resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.as_ref().is_some_and(|g| g.iter().any(|g| g.is_empty() || g == "*"))
            && r.resources.as_ref().is_some_and(|rs| rs.iter().any(|x| x == resource || x == "*"))
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}

/// Every (resource, verb) the rules grant, sorted (no wildcards allowed: each grant is spelled out).
fn granted(rules: &[PolicyRule]) -> Vec<String> {
    let mut all: Vec<String> = rules
        .iter()
        .flat_map(|r| {
            assert_eq!(r.api_groups.as_deref(), Some(&[String::new()][..]), "only the core group: {r:?}");
            let resources = r.resources.clone().unwrap_or_default();
            resources.into_iter().flat_map(move |res| r.verbs.iter().map(move |v| format!("{res}:{v}")))
        })
        .collect();
    assert!(all.iter().all(|g| !g.contains('*')), "no wildcard: {all:?}");
    all.sort();
    all
}

/// What the worker needs in a namespace it launches into.
fn assert_worker_rules(file: &str, rules: &[PolicyRule]) {
    for verb in POD_VERBS {
        assert!(grants(rules, "pods", verb), "{file} lacks pods {verb}");
    }
    assert!(grants(rules, "pods/log", "get"), "{file} lacks pods/log get");
    let mut expected: Vec<String> = POD_VERBS.iter().map(|v| format!("pods:{v}")).collect();
    expected.push("pods/log:get".into());
    expected.sort();
    assert_eq!(granted(rules), expected, "{file}: the worker gets exactly what the runtime uses");
}

fn is_worker(s: &Subject) -> bool {
    s.kind == "ServiceAccount" && s.name == "pop-worker" && s.namespace.as_deref() == Some("pop")
}

/// The embedded registry of the ConfigMap, parsed as YAML (no indentation tricks).
fn embedded_registry() -> String {
    let file = "registry-configmap.yaml";
    let docs = documents(file, &deploy_file(file));
    let cm: ConfigMap = object(file, &docs, "ConfigMap", "pop-registry");
    cm.data.and_then(|d| d.get("registry.json").cloned()).expect("registry.json in the ConfigMap")
}

#[test]
fn the_deployed_registry_builds_pods() {
    let registry = HandlerRegistry::from_json_str(&embedded_registry()).expect("deploy/k8s registry parses");
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
fn every_manifest_parses_into_kubernetes_objects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "rbac-cluster-list.yaml",
            "rbac-handler-namespace.yaml",
            "rbac-namespace-per-customer.yaml",
            "rbac.yaml",
            "registry-configmap.yaml",
            "worker-deployment.yaml"
        ],
        "a new manifest needs a check here"
    );
    for file in &files {
        let text = deploy_file(file).replace(PLACEHOLDER, "tenant-acme");
        for d in documents(file, &text) {
            let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let typed = match kind.as_str() {
                "Namespace" => serde_json::from_value::<Namespace>(d.clone()).map(|_| ()),
                "ServiceAccount" => serde_json::from_value::<ServiceAccount>(d.clone()).map(|_| ()),
                "Role" => serde_json::from_value::<Role>(d.clone()).map(|_| ()),
                "RoleBinding" => serde_json::from_value::<RoleBinding>(d.clone()).map(|_| ()),
                "ClusterRole" => serde_json::from_value::<ClusterRole>(d.clone()).map(|_| ()),
                "ClusterRoleBinding" => serde_json::from_value::<ClusterRoleBinding>(d.clone()).map(|_| ()),
                "ConfigMap" => serde_json::from_value::<ConfigMap>(d.clone()).map(|_| ()),
                "Deployment" => serde_json::from_value::<Deployment>(d.clone()).map(|_| ()),
                other => panic!("{file}: unexpected kind {other}"),
            };
            typed.unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"));
            check_namespace(&name).unwrap_or_else(|e| panic!("{file}: {kind} name {name:?}: {e}"));
            if let Some(ns) = d["metadata"]["namespace"].as_str() {
                check_namespace(ns).unwrap_or_else(|e| panic!("{file}: {kind} {name} namespace {ns:?}: {e}"));
            }
        }
    }
}

#[test]
fn single_namespace_rbac_grants_what_the_runtime_uses() {
    let file = "rbac.yaml";
    let docs = documents(file, &deploy_file(file));
    let role: Role = object(file, &docs, "Role", "pop-worker-pods");
    assert_eq!(role.metadata.namespace.as_deref(), Some("pop"));
    assert_worker_rules(file, &role.rules.unwrap_or_default());
    let binding: RoleBinding = object(file, &docs, "RoleBinding", "pop-worker-pods");
    assert_eq!((binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()), ("Role", "pop-worker-pods"));
    assert!(binding.subjects.unwrap_or_default().iter().any(is_worker));
    let _: ServiceAccount = object(file, &docs, "ServiceAccount", "pop-worker");

    let deployment: Deployment = object(
        "worker-deployment.yaml",
        &documents("worker-deployment.yaml", &deploy_file("worker-deployment.yaml")),
        "Deployment",
        "pop-pool-worker",
    );
    let pod = deployment.spec.and_then(|s| s.template.spec).expect("pod template");
    assert_eq!(pod.service_account_name.as_deref(), Some("pop-worker"));
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("worker"));
    assert!(args.windows(2).any(|w| w == ["--runtime", "k8s"]), "{args:?}");
}

#[test]
fn the_handler_namespace_template_confines_the_worker_to_that_namespace() {
    let file = "rbac-handler-namespace.yaml";
    let template = deploy_file(file);
    assert!(check_namespace(PLACEHOLDER).is_err(), "an unedited template must be refused by the API server");
    for ns in ["tenant-acme", "pop-video"] {
        let text = template.replace(PLACEHOLDER, ns);
        let docs = documents(file, &text);
        // Everything namespaced lands in that namespace.
        for d in docs.iter().filter(|d| d["kind"] != "Namespace") {
            assert_eq!(d["metadata"]["namespace"], ns, "{file}: {} {}", d["kind"], d["metadata"]["name"]);
        }
        let namespace: Namespace = object(file, &docs, "Namespace", ns);
        assert_eq!(namespace.metadata.name.as_deref(), Some(ns));
        assert!(
            !docs.iter().any(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding"),
            "{file} grants nothing cluster-wide"
        );

        let role: Role = object(file, &docs, "Role", "pop-worker-pods");
        assert_worker_rules(file, &role.rules.unwrap_or_default());
        let binding: RoleBinding = object(file, &docs, "RoleBinding", "pop-worker-pods");
        assert_eq!((binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()), ("Role", "pop-worker-pods"));
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert!(is_worker(&subjects[0]), "{subjects:?}");

        let report: Role = object(file, &docs, "Role", "pop-handler-report");
        assert_eq!(granted(&report.rules.unwrap_or_default()), ["pods:get", "pods:patch"]);
        let binding: RoleBinding = object(file, &docs, "RoleBinding", "pop-handler-report");
        assert_eq!(binding.role_ref.name, "pop-handler-report");
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!((subjects[0].name.as_str(), subjects[0].namespace.as_deref()), ("pop-service", Some(ns)));
        let _: ServiceAccount = object(file, &docs, "ServiceAccount", "pop-service");
    }
}

#[test]
fn cluster_wide_rbac_for_prefixes() {
    // The broad variant: everything the runtime uses, everywhere.
    let file = "rbac-namespace-per-customer.yaml";
    let docs = documents(file, &deploy_file(file));
    let role: ClusterRole = object(file, &docs, "ClusterRole", "pop-worker-pods");
    assert_worker_rules(file, &role.rules.unwrap_or_default());
    let binding: ClusterRoleBinding = object(file, &docs, "ClusterRoleBinding", "pop-worker-pods");
    assert_eq!((binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()), ("ClusterRole", "pop-worker-pods"));
    assert!(binding.subjects.unwrap_or_default().iter().any(is_worker));

    // The tight variant: only the reaper's cluster-wide list; the rest comes from the per-namespace Roles.
    let file = "rbac-cluster-list.yaml";
    let docs = documents(file, &deploy_file(file));
    let role: ClusterRole = object(file, &docs, "ClusterRole", "pop-worker-list-pods");
    assert_eq!(granted(&role.rules.unwrap_or_default()), ["pods:list"], "{file} grants list only");
    let binding: ClusterRoleBinding = object(file, &docs, "ClusterRoleBinding", "pop-worker-list-pods");
    assert_eq!(
        (binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()),
        ("ClusterRole", "pop-worker-list-pods")
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert!(is_worker(&subjects[0]), "{subjects:?}");
}
