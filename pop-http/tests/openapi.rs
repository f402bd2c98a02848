//! The OpenAPI document served at `/openapi.json` says what the server does (what schemathesis
//! checks in `.ci/schemathesis.sh`, kept here as plain assertions): every route, the error answers,
//! the query parameters' types, the bulk submission's 207, and the fields read as null.
//!
//! `cargo test -p pop-http --test openapi`

mod common;

use common::{Server, Who};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_the_server() {
    let server = Server::start().await;
    let doc: Value = Who::Owner.client(&server.base).openapi().await.expect("GET /openapi.json");
    let paths = doc["paths"].as_object().expect("paths");
    for kind in
        ["agenda", "agendatemplate", "customer", "insight", "resourcepool", "progress/agenda", "progress/operation"]
    {
        assert!(paths.contains_key(&format!("/pop/{kind}")), "/pop/{kind}");
        assert!(paths.contains_key(&format!("/pop/{kind}/{{id}}")), "/pop/{kind}/{{id}}");
    }
    // Writes a kind does not take are not in the document (the server answers 405 with Allow).
    assert!(paths["/pop/agenda/{id}"].get("put").is_none());
    assert!(paths["/pop/progress/agenda"].get("post").is_none());
    assert!(paths["/pop/progress/operation/{id}"].get("delete").is_none());
    for service in ["run", "rerun", "cancel", "createAgenda", "explain", "graph", "validate"] {
        assert!(paths.contains_key(&format!("/pop/agenda/service/{service}")), "{service}");
    }
    for service in ["getAgenda", "createAgenda", "updateAgendaProgress", "finishAgenda", "updateAgenda", "extendLease"]
    {
        assert!(paths.contains_key(&format!("/pop/resourcepool/service/{service}")), "{service}");
    }
    // Every API operation declares the error envelope for 401, 404, 422.
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/pop/")) {
        for (method, op) in item.as_object().expect("path item") {
            for code in ["401", "404", "422"] {
                let schema = &op["responses"][code]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, &json!("#/components/schemas/ErrorBody"), "{method} {path} {code}");
            }
        }
    }
    let query = &paths["/pop/agenda"]["get"]["parameters"];
    let param = |name: &str| query.as_array().and_then(|ps| ps.iter().find(|p| p["name"] == json!(name))).cloned();
    let bylimit = param("bylimit").expect("bylimit");
    assert_eq!(
        (bylimit["schema"]["type"].clone(), bylimit["schema"]["maximum"].clone()),
        (json!("integer"), json!(1000))
    );
    assert_eq!(param("bycount").expect("bycount")["schema"]["type"], json!("boolean"));
    assert!(paths["/pop/agenda/service/createAgenda"]["post"]["responses"].get("207").is_some());
    // Fields read as their default when null are nullable (the original's documents send nulls).
    let version = &doc["components"]["schemas"]["Agenda"]["properties"]["version"];
    assert!(version["type"].as_array().is_some_and(|t| t.contains(&json!("null"))), "{version}");
    // An unsigned 64-bit integer: not `int64`, whose bound (i64::MAX) the server does not apply
    // (utoipa's non_strict_integers spells the format `u-int64`).
    assert_ne!(version["format"], json!("int64"), "{version}");
    assert_eq!(version["minimum"], json!(0), "{version}");
}
