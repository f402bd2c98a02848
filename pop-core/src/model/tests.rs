use super::*;
use crate::compat::{fixtures_dir, read_json};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: serde_json::Value, what: &str) -> T {
    let first: T = serde_json::from_value(v).unwrap_or_else(|e| panic!("{what} does not parse: {e}"));
    let again: T = serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap();
    assert_eq!(first, again, "{what} round trip");
    first
}

#[test]
fn compat_agendas_parse_and_round_trip() {
    let Some(dir) = fixtures_dir("compat_agendas_parse_and_round_trip") else { return };
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("agendas")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let a: Agenda = round_trip(read_json(&dir, &format!("agendas/{name}")), &name);
        if name == "multiSamplePayload.json" {
            assert_eq!(a.operations.len(), 65);
            assert_eq!(a.operations[50].name, "Sample.51");
        }
        seen += 1;
    }
    assert!(seen >= 6, "expected the six agenda fixtures, saw {seen}");
}

#[test]
fn compat_templates_and_objects_parse() {
    let Some(dir) = fixtures_dir("compat_templates_and_objects_parse") else { return };
    let t: AgendaTemplate = round_trip(read_json(&dir, "templates/AgendaTemplate.json"), "AgendaTemplate");
    assert!(t.static_parameters.is_some());
    let _: Agenda = round_trip(read_json(&dir, "templates/AgendaExpressed.json"), "AgendaExpressed");
    let c: Customer = round_trip(read_json(&dir, "objects/Customer.json"), "Customer");
    assert_eq!(c.title.as_deref(), Some("babs account"));
    assert_eq!(c.weight, 1);
    let p: ResourcePool = round_trip(read_json(&dir, "objects/ResourcePool.json"), "ResourcePool");
    assert_eq!(p.insight_ids, vec!["9384932rfdiofjwoiejf".to_string()]);
    let lp: OperationProgress = round_trip(read_json(&dir, "objects/lastProgress.json"), "lastProgress");
    assert!(lp.params.unwrap().contains_key("jobInfo"));
}

#[test]
fn extensions_and_nulls() {
    let a: Agenda = serde_json::from_str(
        r#"{"priority": null, "operations": [{"name": "a", "type": null, "params": {"dependsOn": ["b, c", "d"],
           "retry": {"maxAttempts": 3, "backoffMs": 10}, "timeoutMs": 500}}], "params": null}"#,
    )
    .unwrap();
    let op = &a.operations[0];
    assert_eq!(op.depends_on(), vec!["b", "c", "d"]);
    let retry = op.retry_policy().unwrap().unwrap();
    assert_eq!((retry.max_attempts, retry.backoff_ms, retry.backoff_multiplier), (3, 10, 2.0));
    assert_eq!(retry.delay_ms(2), 20);
    assert_eq!(op.timeout_ms().unwrap(), Some(500));
    assert_eq!(a.maximum_attempts(), 3);

    let bad: Operation = serde_json::from_str(r#"{"name":"x","params":{"retry":"often","timeoutMs":-4}}"#).unwrap();
    assert!(bad.retry_policy().unwrap_err().contains("params.retry"));
    assert!(bad.timeout_ms().unwrap_err().contains("timeoutMs"));

    let comma: Operation = serde_json::from_str(r#"{"name":"x","params":{"dependsOn":" a, ,b "}}"#).unwrap();
    assert_eq!(comma.depends_on(), vec!["a", "b"]);

    let ap: AgendaProgress = serde_json::from_str(
        r#"{"processingState":"COMPLETE","processingStateMessage":"SUCCEEDED","maximumAttempts":null,"percentComplete":null}"#,
    )
    .unwrap();
    assert_eq!(ap.conclusion(), Some(Conclusion::Succeeded));
    assert_eq!(ap.maximum_attempts, 3);

    let i: Insight =
        serde_json::from_str(r#"{"schedulingAlgorithm": null, "queueSize": null, "mappers": null}"#).unwrap();
    assert_eq!(i.algorithm_name(), "FirstInFirstOut");
    assert_eq!(i.effective_queue_size(), facility::DEFAULT_QUEUE_SIZE);
}
