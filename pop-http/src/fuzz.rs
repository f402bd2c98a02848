//! Fuzzing of what the API parses before any engine call: request bodies ([`parse_json`] into the
//! request types) and object query strings ([`ObjectQuery::parse`] over `form_urlencoded`). Every
//! refusal must be a 4xx that says where: a problem naming its field, a JSON position (`line N
//! column M`), or the body as a whole ("needs a JSON body", "must be a JSON object").
//!
//! `cargo test -p pop-http --lib fuzz` runs 256 cases per property;
//! `PROPTEST_CASES=100000 cargo test -p pop-http --lib fuzz --release` is the long run.

use crate::dto::{CreateAgendaRequest, RerunAgendaRequest, UpdateAgendaProgressRequest, UpdateAgendaRequest};
use crate::error::ApiError;
use crate::extract::{ObjectQuery, parse_json};
use pop_core::model::{Agenda, AgendaTemplate, Customer, Insight, ResourcePool};
use pop_core::store::IndexField;
use proptest::prelude::*;
use serde::de::DeserializeOwned;

use pop_core::testing::fuzz::bounded;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn assert_located(what: &str, input: &str, e: ApiError) {
    let status = e.status();
    let r = e.into_error_response();
    assert!(status.is_client_error(), "{what}: {status} on {input}: {r:?}");
    let whole_body = ["needs a JSON body", "must be a JSON object", "larger than"];
    let located = (!r.problems.is_empty()
        && r.problems.iter().all(|p| p.field.is_some() || p.operation.is_some() || p.message.contains("the body")))
        || (r.description.contains("line ") && r.description.contains("column "))
        || whole_body.iter().any(|w| r.description.contains(w) || r.problems.iter().any(|p| p.message.contains(w)));
    assert!(located, "{what}: the error does not say where: {r:?} on {input}");
}

fn check_body<T: DeserializeOwned>(what: &str, bytes: &[u8]) {
    let input = format!("{:?}", String::from_utf8_lossy(bytes));
    match bounded(&input, || parse_json::<T>(bytes)) {
        Err(_) => panic!("{what}: parse_json panicked on {input}"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => assert_located(what, &input, e),
    }
}

fn check_all_bodies(bytes: &[u8]) {
    check_body::<Agenda>("agenda", bytes);
    check_body::<CreateAgendaRequest>("createAgenda", bytes);
    check_body::<RerunAgendaRequest>("rerun", bytes);
    check_body::<UpdateAgendaRequest>("updateAgenda", bytes);
    check_body::<UpdateAgendaProgressRequest>("updateAgendaProgress", bytes);
    check_body::<Customer>("customer", bytes);
    check_body::<ResourcePool>("resourcePool", bytes);
    check_body::<Insight>("insight", bytes);
    check_body::<AgendaTemplate>("agendaTemplate", bytes);
}

/// JSON-ish text: the request types' field names, values of the wrong types, broken syntax.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"operations\"",
        "\"agendas\"",
        "\"agendaId\"",
        "\"params\"",
        "\"agendaProgress\"",
        "\"leaseToken\"",
        "\"name\"",
        "\"type\"",
        "\"payload\"",
        "\"customerId\"",
        "\"priority\"",
        "\"id\"",
        "\"weight\"",
        "\"queueSize\"",
        "\"mappers\"",
        "\"agenda\"",
        "null",
        "true",
        "1",
        "-1",
        "1e400",
        "18446744073709551616",
        "\"x\"",
        "\"@<a.out>\"",
        "\"\\ud800\"",
        "\\",
        " ",
        "\u{0}",
        "é",
        "\u{feff}",
    ]);
    prop_oneof![
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A well-formed body of the right shape with one field replaced by something of another type.
fn near_miss() -> impl Strategy<Value = Vec<u8>> {
    let wrong = prop::sample::select(vec!["null", "1", "\"s\"", "[]", "{}", "[1]", "true", "-5", "1.5"]);
    (0usize..8, wrong).prop_map(|(slot, w)| {
        let mut fields = [
            r#""customerId":"acme""#.to_owned(),
            r#""priority":3"#.to_owned(),
            r#""operations":[{"name":"a","type":"t","payload":{}}]"#.to_owned(),
            r#""params":{}"#.to_owned(),
            r#""agendaId":"a-1""#.to_owned(),
            r#""agendas":[{"operations":[]}]"#.to_owned(),
            r#""agendaProgress":{"id":"p"}"#.to_owned(),
            r#""leaseToken":{"insightId":"i","agendaId":"a","receipt":"r","epoch":1}"#.to_owned(),
        ];
        let name = fields[slot].split(':').next().unwrap().to_owned();
        fields[slot] = format!("{name}:{w}");
        format!("{{{}}}", fields.join(",")).into_bytes()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bodies(b in body()) {
        check_all_bodies(&b);
    }

    #[test]
    fn near_miss_bodies(b in near_miss()) {
        check_all_bodies(&b);
    }

    /// Raw query strings, decoded as axum does (`form_urlencoded`), then parsed.
    #[test]
    fn query_strings(
        parts in prop::collection::vec((
            prop_oneof![
                prop::sample::select(vec!["id", "bylimit", "ByLimit", "bycursor", "bycount", "byfields",
                    "bycustomerId", "byCUSTOMERID", "bytitle", "bylinkId", "by", "b", "byé", "", "limit", "bynope"])
                    .prop_map(str::to_owned),
                "[a-z%=&+]{0,6}",
            ],
            prop_oneof![".{0,8}", "[0-9]{0,25}", Just("-1".to_owned()), Just("0".to_owned()), Just("1001".to_owned()),
                        Just("%ff%fe".to_owned()), Just("a,,b, ,".to_owned())],
        ), 0..6),
        indexed in prop::sample::subsequence(vec![IndexField::CustomerId, IndexField::LinkId, IndexField::Title, IndexField::AgendaId], 0..4),
    ) {
        let raw: String = parts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        match bounded(&raw, || ObjectQuery::parse(&pairs, &indexed)) {
            Err(_) => panic!("ObjectQuery::parse panicked on {raw:?}"),
            Ok(Ok(q)) => {
                prop_assert!((1..=crate::extract::MAX_LIMIT).contains(&q.limit));
                let _ = q.keeps(&serde_json::json!({"customerId": "acme", "n": 1}));
            }
            Ok(Err(e)) => {
                let r = e.into_error_response();
                prop_assert!(!r.problems.is_empty(), "{r:?}");
                for p in &r.problems {
                    prop_assert!(p.field.is_some(), "a query problem names no parameter: {p:?} on {raw:?}");
                }
            }
        }
    }
}
