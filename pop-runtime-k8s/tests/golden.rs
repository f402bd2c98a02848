//! Golden tests of generated Pod specs: the original's registries (read from `POP_COMPAT_FIXTURES`) and a
//! full-featured inline registry. The golden files under `tests/golden/` are this crate's outputs;
//! `UPDATE_GOLDEN=1 cargo test -p pop-runtime-k8s --test golden` rewrites them after an intended change.

use pop_core::model::OperationProgress;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::LaunchRequest;
use pop_runtime_k8s::podspec::build_pod;
use pop_runtime_k8s::{KubeConfig, PayloadMode, sequential_names};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the golden file, or writes it when `UPDATE_GOLDEN=1`.
fn check_golden(file: &str, actual: &Value) {
    let path = golden_dir().join(file);
    let text = serde_json::to_string_pretty(actual).expect("pod JSON") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("read {}: {e} (run with UPDATE_GOLDEN=1 to create it, then review it)", path.display())
    });
    assert_eq!(text, expected, "{} differs (UPDATE_GOLDEN=1 rewrites it after an intended change)", path.display());
}

fn request(last_progress: Option<OperationProgress>) -> LaunchRequest {
    LaunchRequest {
        agenda_id: "ag-0001".into(),
        agenda_progress_id: Some("ap-0001".into()),
        cid: Some("cid-0001".into()),
        customer_id: Some("Customer One".into()),
        insight_id: Some("insight/one".into()),
        operation_name: "sample.1".into(),
        operation_id: Some("op-0001".into()),
        operation_type: String::new(),
        payload: json!({"actions": [{"action": "log", "paramsMap": {"sleepMilliseconds": 1, "logMessage": "hi"}}],
                        "resultPayload": {"ok": true}}),
        last_progress,
    }
}

#[test]
fn original_registries_produce_the_golden_pod_specs() {
    let Some(dir) = pop_core::compat::fixtures_dir("original_registries_produce_the_golden_pod_specs") else {
        return;
    };
    let last: OperationProgress =
        serde_json::from_value(pop_core::compat::read_json(&dir, "objects/lastProgress.json")).expect("lastProgress");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join("registry"))
        .expect("registry dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 4, "expected the original's four registries, found {entries:?}");
    for path in entries {
        let registry = HandlerRegistry::from_path(&path).expect("registry parses");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("registry").to_string();
        for (op_type, spec) in registry.handlers() {
            let config = KubeConfig { name_generator: sequential_names(), ..KubeConfig::single_namespace("pop") };
            let req = LaunchRequest { operation_type: op_type.clone(), ..request(Some(last.clone())) };
            let unique = (config.name_generator)();
            let pod = build_pod(spec, &req, &config, &unique, "pop").expect("pod spec");
            let pod = serde_json::to_value(&pod).expect("pod JSON");

            // What the original's Fabric8Helper produced, checked field by field as well.
            let c = &pod["spec"]["containers"][0];
            assert_eq!(pod["spec"]["restartPolicy"], "Never");
            assert_eq!(pod["spec"]["serviceAccountName"], "pop-service");
            assert_eq!(c["resources"]["requests"]["cpu"], "1000m", "{stem}/{op_type}");
            assert_eq!(c["resources"]["limits"]["cpu"], "1000m");
            assert_eq!(c["resources"]["requests"]["memory"], "1000m");
            assert!(c["resources"]["limits"].get("memory").is_none(), "the original set no memory limit");
            assert_eq!(c["imagePullPolicy"], "Always");
            assert_eq!(c["name"], pod["metadata"]["name"]);
            let volume = &pod["spec"]["volumes"][0];
            assert_eq!(volume["configMap"]["name"], json!(spec.config_map_name.clone().unwrap()));
            check_golden(&format!("{stem}.{op_type}.json"), &pod);
        }
    }
}

const FULL: &str = r#"{
  "basePodConfig": {"memoryRequestCount": "512Mi", "cpuMinRequestCount": "250m", "cpuMaxRequestCount": "2",
                    "reapCompletedPods": true, "pullAlways": false,
                    "envVars": {"BASE_VAR": "base", "PAYLOAD": "must not leak", "CID": "overridden"}},
  "encode": {
    "configMapName": "pop-encode-cm",
    "podConfig": {
      "imageName": "registry.example/encode:2.1", "namePrefix": "Pop_Encode",
      "arguments": ["--threads", "4"],
      "envVars": {"ENCODER": "x264"},
      "memoryLimitCount": "2Gi",
      "useTaintedNodes": true, "taintedNodeSelector": "encoders", "taintedNodeToleration": "encoders",
      "serviceAccountName": "encode-sa",
      "defaultEmptyDirLogging": true,
      "dockerPrivileged": true,
      "aliveCheckDetails": {"alivePath": "health", "alivePort": 8080, "aliveCheckLinking": true,
                            "aliveCheckInterval": 5, "aliveCheckFailureThreshold": 3},
      "nfsSettings": [{"nfsServer": "nfs.example", "nfsServerPath": "/exports/media",
                       "nfsMountPaths": ["/media/in", "/media/out"], "nfsReadOnly": false}],
      "labels": {"team": "video encoding"}
    }
  },
  "noimage": {"podConfig": {"namePrefix": "x"}},
  "badnfs": {"podConfig": {"imageName": "i", "nfsSettings": [{"nfsServerPath": "/x", "nfsMountPaths": ["/m"]}]}}
}"#;

#[test]
fn full_featured_registry_produces_the_golden_pod_spec() {
    let registry = HandlerRegistry::from_json_str(FULL).expect("registry");
    let config = KubeConfig {
        zone: Some("zone-a".into()),
        payload_mode: PayloadMode::Compressed,
        max_segment_size: 64,
        name_generator: sequential_names(),
        extra_labels: [("pool".to_string(), "pool 1".to_string())].into(),
        ..KubeConfig::namespace_per_customer("pop-", "pop")
    };
    let last: OperationProgress = serde_json::from_value(json!({
        "processingState": "COMPLETE", "processingStateMessage": "failed", "percentComplete": 40.0,
        "params": {"resumeFrom": 3}
    }))
    .expect("progress");
    let req = LaunchRequest { operation_type: "encode".into(), ..request(Some(last)) };
    let spec = registry.handler("encode").expect("encode");
    let ns = config.namespace_for(req.customer_id.as_deref(), req.insight_id.as_deref());
    assert_eq!(ns, "pop-customer-one");
    let pod = build_pod(spec, &req, &config, "00000001", &ns).expect("pod");
    let pod = serde_json::to_value(&pod).expect("pod JSON");

    assert_eq!(pod["metadata"]["name"], "pop-encode-00000001");
    assert_eq!(pod["metadata"]["labels"]["pop/insight-id"], "insight-one");
    assert_eq!(pod["metadata"]["labels"]["team"], "video-encoding");
    assert_eq!(pod["metadata"]["annotations"]["pop/customer-id"], "Customer One");
    let c = &pod["spec"]["containers"][0];
    let env: Vec<&str> = c["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(!env.contains(&"PAYLOAD"), "a registry PAYLOAD never reaches a compressed-payload pod");
    assert_eq!(env.iter().filter(|n| **n == "CID").count(), 1, "the protocol's CID wins");
    assert!(env.contains(&"POP_COMPRESSED_PAYLOAD_1"), "64-char segments: several");
    assert!(env.contains(&"MY_POD_IP"), "the probe without host needs the pod IP");
    assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(c.get("imagePullPolicy").is_none());
    assert_eq!(pod["spec"]["nodeSelector"]["zone-a"], "true");
    assert_eq!(pod["spec"]["tolerations"][0]["value"], "encoders");
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        40
    );
    check_golden("inline.encode.json", &pod);

    for (bad, field) in [("noimage", "imageName"), ("badnfs", "nfsSettings[0].nfsServer")] {
        let req = LaunchRequest { operation_type: bad.into(), ..request(None) };
        let err = build_pod(registry.handler(bad).unwrap(), &req, &config, "1", "pop").expect_err(bad);
        let err: pop_core::Error = err.into();
        assert!(matches!(err, pop_core::Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains(field) && err.to_string().contains(bad), "{err}");
    }
}
