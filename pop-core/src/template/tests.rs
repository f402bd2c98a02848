use super::*;
use crate::compat::{fixtures_dir, read_json};
use serde_json::json;

fn template(v: Value) -> AgendaTemplate {
    serde_json::from_value(v).unwrap()
}

fn problems(r: Result<Agenda>) -> Vec<Problem> {
    match r {
        Err(Error::Invalid(p)) => p.0,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn compat_template_fixture_expands_to_agenda_expressed() {
    let Some(dir) = fixtures_dir("compat_template_fixture_expands_to_agenda_expressed") else { return };
    let t: AgendaTemplate = serde_json::from_value(read_json(&dir, "templates/AgendaTemplate.json")).unwrap();
    let payload = read_json(&dir, "templates/AgendaTemplateParameters.json");
    let expected: Agenda = serde_json::from_value(read_json(&dir, "templates/AgendaExpressed.json")).unwrap();
    let agenda = expand(&t, &payload).unwrap();
    assert_eq!(agenda, expected);
    assert_eq!(agenda.operations[0].payload["inputs"]["targets"][0]["file"], json!({"file": "coolestdog.mp4"}));
    assert_eq!(agenda.operations[0].payload["inputs"]["targets"][0]["processorVersion"], json!("1.5"));
}

#[test]
fn payload_builtins_and_static_parameters() {
    let t = template(json!({
        "staticParameters": {"k": "static", "n": 3},
        "agenda": {"operations": [{"name": "a", "type": "t", "payload": {
            "whole": "@<pop.payload>", "legacy": "@<pop.transformRequest::/k>", "k": "@<k>", "n": "@<n>",
            "composite": "n=@<n>, k=@<pop.payload::/k>"
        }}]}
    }));
    let a = expand(&t, &json!({"k": "caller"})).unwrap();
    assert_eq!(
        a.operations[0].payload,
        json!({"whole": {"k": "caller"}, "legacy": "caller", "k": "static", "n": 3, "composite": "n=3, k=caller"})
    );
}

#[test]
fn static_parameter_named_like_a_builtin_is_duplicated() {
    for name in ["pop.payload", "pop.transformRequest"] {
        let t = template(json!({"staticParameters": {name: 1}, "agenda": {"operations": []}}));
        let p = problems(expand(&t, &json!({})));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].message, format!("Parameter [{name}] is duplicated."));
        assert_eq!(p[0].field.as_deref(), Some(format!("staticParameters.{name}").as_str()));
    }
}

#[test]
fn run_time_references_stay_literal() {
    let t = template(json!({"agenda": {"operations": [
        {"name": "a", "type": "t", "payload": {}},
        {"name": "b", "type": "t", "payload": {
            "x": "@<a.out::/x>", "id": "@<pop.agendaId>", "me": "@<pop.operationName>", "p": "@<pop.params::/q?>",
            "mixed": "@<a.out::/y>-@<pop.payload::/v>"
        }}
    ]}}));
    let a = expand(&t, &json!({"v": 1})).unwrap();
    assert_eq!(
        a.operations[1].payload,
        json!({"x": "@<a.out::/x>", "id": "@<pop.agendaId>", "me": "@<pop.operationName>", "p": "@<pop.params::/q?>",
               "mixed": "@<a.out::/y>-1"})
    );
}

#[test]
fn payload_keys_cannot_preempt_outputs_or_tokens() {
    let t = template(json!({"agenda": {"operations": [{"name": "b", "type": "t", "payload": {
        "x": "@<a.out>", "id": "@<pop.agendaId>"
    }}]}}));
    let a = expand(&t, &json!({"a.out": "forged", "pop.agendaId": "forged"})).unwrap();
    assert_eq!(a.operations[0].payload, json!({"x": "@<a.out>", "id": "@<pop.agendaId>"}));
}

#[test]
fn missing_parameter_names_reference_operation_and_path() {
    let t = template(json!({"agenda": {"operations": [
        {"name": "enc", "type": "t", "payload": {"in": ["@<sourceFile>"], "other": "x @<sourceFile> y"}},
        {"type": "t", "payload": {"cfg": "@<preset::/a>"}}
    ]}}));
    let p = problems(expand(&t, &json!({"unrelated": 1})));
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(p[0].operation.as_deref(), Some("enc"));
    assert_eq!(p[0].field.as_deref(), Some("agenda.operations[0].payload.in[0]"));
    assert!(p[0].message.contains("`sourceFile`") && p[0].message.contains("run payload"), "{}", p[0].message);
    assert_eq!(p[1].field.as_deref(), Some("agenda.operations[0].payload.other"));
    assert_eq!(p[2].operation, None, "an unnamed operation is named by its path");
    assert_eq!(p[2].field.as_deref(), Some("agenda.operations[1].payload.cfg"));
    assert!(p[2].message.contains("@<preset::/a>"));
}

#[test]
fn payload_that_is_not_an_object_is_explained() {
    let t =
        template(json!({"agenda": {"operations": [{"name": "a", "type": "t", "payload": {"f": "@<sourceFile>"}}]}}));
    for payload in [json!("dog.mp4"), json!([1]), Value::Null, json!(4)] {
        let p = problems(expand(&t, &payload));
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("not a JSON object with the key `sourceFile`"), "{}", p[0].message);
    }
    // `pop.payload` itself always works, whatever the payload is.
    let t =
        template(json!({"agenda": {"operations": [{"name": "a", "type": "t", "payload": {"f": "@<pop.payload>"}}]}}));
    assert_eq!(expand(&t, &json!("dog.mp4")).unwrap().operations[0].payload, json!({"f": "dog.mp4"}));
}

#[test]
fn unknown_pop_token_in_template_is_reported() {
    let t =
        template(json!({"agenda": {"operations": [{"name": "a", "type": "t", "payload": {"f": "@<pop.paylod>"}}]}}));
    let p = problems(expand(&t, &json!({})));
    assert!(p[0].message.contains("`pop.paylod` is not a known name"), "{}", p[0].message);
}

#[test]
fn invalid_references_are_errors_naming_the_path() {
    let t = template(json!({"staticParameters": {"obj": {"a": 1}}, "agenda": {"operations": [
        {"name": "a", "type": "t", "payload": {"p": "@<obj::/missing>", "c": "x-@<obj>"}}
    ]}}));
    let p = problems(expand(&t, &json!({})));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|p| p.operation.as_deref() == Some("a")));
    let fields: Vec<_> = p.iter().filter_map(|p| p.field.as_deref()).collect();
    assert!(fields.contains(&"agenda.operations[0].payload.p"), "{fields:?}");
    assert!(fields.contains(&"agenda.operations[0].payload.c"), "{fields:?}");
    assert!(p.iter().any(|p| p.message.contains("finds nothing")));
    assert!(p.iter().any(|p| p.message.contains("composite string")));
}

#[test]
fn shape_errors_name_the_field() {
    let t = template(json!({"agenda": {"operations": [
        {"name": "ok", "type": "t", "payload": {}},
        {"name": "@<n>", "type": "t", "payload": {}}
    ]}}));
    let p = problems(expand(&t, &json!({"n": 5})));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field.as_deref(), Some("operations[1].name"));
    assert!(p[0].message.contains("malformed"));

    let t = template(json!({"agenda": {"operations": "@<ops>", "title": "t"}}));
    let p = problems(expand(&t, &json!({"ops": 5})));
    assert_eq!(p[0].field.as_deref(), Some("operations"));

    let t = template(json!({"agenda": [1]}));
    assert_eq!(problems(expand(&t, &json!({})))[0].field.as_deref(), Some("agenda"));
    let t = template(json!({"title": "no body"}));
    assert!(problems(expand(&t, &json!({})))[0].message.contains("has no `agenda`"));
}

#[test]
fn operations_can_come_from_the_payload() {
    let t =
        template(json!({"agenda": {"customerId": "@<pop.payload::/customer>", "operations": "@<pop.payload::/ops>"}}));
    let a = expand(&t, &json!({"customer": "acme", "ops": [{"name": "a", "type": "t"}]})).unwrap();
    assert_eq!(a.customer_id.as_deref(), Some("acme"));
    assert_eq!(a.operations[0].name, "a");
}

#[test]
fn blank_title_becomes_the_template_title() {
    for (agenda_title, expected) in [(Value::Null, "tmpl"), (json!("  "), "tmpl"), (json!("mine"), "mine")] {
        let t = template(json!({"title": "tmpl", "agenda": {"title": agenda_title, "operations": []}}));
        assert_eq!(expand(&t, &json!({})).unwrap().title.as_deref(), Some(expected));
    }
}
