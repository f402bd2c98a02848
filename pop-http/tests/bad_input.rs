//! Bad input over HTTP: malformed JSON, wrong types, oversized bodies, unknown routes and methods,
//! agendas with cycles or unknown references. Every answer is a 4xx with the error envelope, whose
//! message says what to fix (the field's path, the limit, the operation) — never a 500.
//!
//! `cargo test -p pop-http --test bad_input`

mod common;

use common::{OWNER, Server, Who, envelope, world};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Asserts a 4xx answer with the envelope and `status`; returns the `errorResponse`.
fn refused(what: &str, want: StatusCode, got: StatusCode, body: &Value) -> Value {
    assert!(got.is_client_error(), "{what}: want a 4xx, got {got}: {body}");
    assert_eq!(got, want, "{what}: {body}");
    envelope(got, body).clone()
}

fn description(e: &Value) -> String {
    e["description"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_naming_where() {
    let server = Server::start().await;
    for (path, text) in [
        ("/pop/agenda", "{\"customerId\": \"acme\", "),
        ("/pop/agenda", "{'single': 'quotes'}"),
        ("/pop/agenda/service/createAgenda", "[1, 2,]"),
        ("/pop/resourcepool/service/getAgenda", "not json at all"),
        ("/pop/customer", "{\"a\": 1} trailing"),
    ] {
        let (status, body) = server.call_raw(Who::Owner, Method::POST, path, text.as_bytes().to_vec()).await;
        let e = refused(&format!("POST {path} {text:?}"), StatusCode::BAD_REQUEST, status, &body);
        let d = description(&e);
        assert!(d.contains("not valid JSON") && d.contains("line 1 column"), "POST {path}: {d}");
    }
    let (status, body) = server.call_raw(Who::Owner, Method::POST, "/pop/agenda", Vec::new()).await;
    let e = refused("an empty body", StatusCode::BAD_REQUEST, status, &body);
    assert!(description(&e).contains("needs a JSON body"), "{e}");
    let (status, body) = server.call_raw(Who::Owner, Method::POST, "/pop/agenda", vec![0xff, 0xfe, b'{']).await;
    refused("bytes that are not UTF-8", StatusCode::BAD_REQUEST, status, &body);
    // Every body is a JSON object: serde would otherwise read a struct from an array, by position.
    for (path, text) in
        [("/pop/agenda/service/validate", "[null, null]"), ("/pop/agenda", "\"agenda\""), ("/pop/customer", "42")]
    {
        let (status, body) = server.call_raw(Who::Owner, Method::POST, path, text.as_bytes().to_vec()).await;
        let e = refused(&format!("POST {path} {text}"), StatusCode::UNPROCESSABLE_ENTITY, status, &body);
        assert!(description(&e).contains("must be a JSON object"), "{e}");
    }
}

/// A bulk submission: 207 with the stored agendas and a failure per index when some fail; the error
/// envelope naming every item when all fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_submissions_report_each_item() {
    let server = Server::start().await;
    world(&server.engine).await;
    let good = json!({"customerId": OWNER, "operations": [{"name": "a", "type": "step", "payload": {}}]});
    let cycle =
        json!({"customerId": OWNER, "operations": [{"name": "a", "type": "step", "payload": {"x": "@<a.out>"}}]});
    let body = json!({"agendas": [good, cycle, {"customerId": "initech", "operations": []}]});
    let (status, answer) = server.call(Who::Owner, Method::POST, "/pop/agenda/service/createAgenda", Some(&body)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["all"].as_array().map(Vec::len), Some(1), "{answer}");
    let failures = answer["failures"].as_array().cloned().unwrap_or_default();
    let indexes: Vec<Value> = failures.iter().map(|f| f["index"].clone()).collect();
    assert_eq!(indexes, vec![json!(1), json!(2)], "{answer}");
    assert_eq!(failures[0]["errorResponse"]["responseCode"], json!(422), "{answer}");
    assert_eq!(failures[1]["errorResponse"]["responseCode"], json!(403), "{answer}");
    // All failed: the envelope, with the first failure's status, naming each item.
    let body = json!({"agendas": [{"customerId": OWNER, "operations": []}, {"operations": [{"name": "a", "type": "step", "payload": {}}]}]});
    let (status, answer) = server.call(Who::Owner, Method::POST, "/pop/agenda/service/createAgenda", Some(&body)).await;
    let e = refused("every item failing", StatusCode::UNPROCESSABLE_ENTITY, status, &answer);
    let d = description(&e);
    assert!(d.contains("[0]") && d.contains("[1]"), "{e}");
    let fields: Vec<&str> =
        e["problems"].as_array().expect("problems").iter().filter_map(|p| p["field"].as_str()).collect();
    assert!(fields.iter().any(|f| f.starts_with("agendas[0]")) && fields.contains(&"agendas[1].customerId"), "{e}");
}

/// A body of the wrong shape: 422, and the problem names the field's path in the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_name_the_field_path() {
    let server = Server::start().await;
    world(&server.engine).await;
    let op = |extra: Value| {
        let mut o = json!({"name": "a", "type": "step", "payload": {}});
        for (k, v) in extra.as_object().expect("object") {
            o[k] = v.clone();
        }
        o
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/pop/agenda",
            json!({"customerId": OWNER, "operations": [op(json!({})), op(json!({"name": 7}))]}),
            "operations[1].name",
        ),
        ("/pop/agenda", json!({"customerId": OWNER, "operations": "none"}), "operations"),
        ("/pop/agenda", json!({"customerId": ["acme"], "operations": []}), "customerId"),
        (
            "/pop/agenda",
            json!({"customerId": OWNER, "operations": [op(json!({"params": "retry"}))]}),
            "operations[0].params",
        ),
        ("/pop/agenda", json!({"customerId": OWNER, "params": [1], "operations": [op(json!({}))]}), "params"),
        ("/pop/agenda", json!({"customerId": OWNER, "priority": "high", "operations": [op(json!({}))]}), "priority"),
        (
            "/pop/agenda/service/createAgenda",
            json!({"agendas": [{"customerId": OWNER, "operations": []}, {"customerId": OWNER, "operations": [{"name": "a", "type": false}]}]}),
            "agendas[1].operations[0].type",
        ),
        ("/pop/agenda/service/createAgenda", json!({"agendas": {"customerId": OWNER}}), "agendas"),
        ("/pop/resourcepool/service/getAgenda", json!({"insightId": "ins-acme", "count": "many"}), "count"),
        ("/pop/resourcepool/service/getAgenda", json!({"insightId": "ins-acme", "count": -1}), "count"),
        ("/pop/resourcepool/service/getAgenda", json!({"count": 1}), "insightId"),
        ("/pop/agenda/service/rerun", json!({"agendaId": "x", "params": "continue"}), "params"),
        ("/pop/agenda/service/cancel", json!({"agendaId": 12}), "agendaId"),
        ("/pop/agenda/service/run", json!({"agendaTemplateId": ["t"], "payload": "{}"}), "agendaTemplateId"),
        (
            "/pop/resourcepool/service/updateAgendaProgress",
            json!({"agendaProgress": {"id": "p", "percentComplete": "half"}, "leaseToken": null}),
            "agendaProgress.percentComplete",
        ),
        (
            "/pop/resourcepool/service/updateAgendaProgress",
            json!({"agendaProgress": {"id": "p", "processingState": "SLEEPING"}}),
            "agendaProgress.processingState",
        ),
        (
            "/pop/resourcepool/service/updateAgendaProgress",
            json!({"agendaProgress": {"id": "p", "operationProgress": [{"id": "o"}, {"id": "o2", "attemptCount": "x"}]}}),
            "agendaProgress.operationProgress[1].attemptCount",
        ),
        (
            "/pop/resourcepool/service/extendLease",
            json!({"leaseToken": {"insightId": "i", "agendaId": "a", "receipt": "r", "epoch": "one"}}),
            "leaseToken.epoch",
        ),
        ("/pop/insight", json!({"customerId": OWNER, "title": "t", "queueSize": "big"}), "queueSize"),
        (
            "/pop/insight",
            json!({"customerId": OWNER, "title": "t", "mappers": {"operationType": "step"}}),
            "mappers.operationType",
        ),
        ("/pop/customer", json!({"customerId": OWNER, "title": 3}), "title"),
        (
            "/pop/agendatemplate",
            json!({"customerId": OWNER, "title": "t", "isGlobal": "yes", "agenda": {}}),
            "isGlobal",
        ),
        ("/pop/resourcepool", json!({"customerId": OWNER, "title": "p", "insightIds": "i"}), "insightIds"),
    ];
    let mut wrong = Vec::new();
    for (path, body, field) in cases {
        let (status, answer) = server.call(Who::Super, Method::POST, path, Some(&body)).await;
        if status != StatusCode::UNPROCESSABLE_ENTITY || answer.get("errorResponse").is_none() {
            wrong.push(format!("POST {path} {body}: want 422 naming {field}, got {status}: {answer}"));
            continue;
        }
        let e = &answer["errorResponse"];
        let named = e["problems"].as_array().is_some_and(|ps| ps.iter().any(|p| p["field"] == json!(field)));
        if !named || !description(e).contains(field) {
            wrong.push(format!("POST {path} {body}: the answer does not name `{field}`: {e}"));
        }
    }
    // PUT merges into the stored object: a wrong type in the patch names the patch's field.
    let (status, answer) =
        server.call(Who::Super, Method::PUT, "/pop/insight/ins-acme", Some(&json!({"queueSize": "x"}))).await;
    let e = refused("PUT insight with a wrong type", StatusCode::UNPROCESSABLE_ENTITY, status, &answer);
    if !description(&e).contains("queueSize") {
        wrong.push(format!("PUT insight queueSize: {e}"));
    }
    let (status, answer) = server.call(Who::Super, Method::PUT, "/pop/insight/ins-acme", Some(&json!([1]))).await;
    refused("PUT with an array", StatusCode::UNPROCESSABLE_ENTITY, status, &answer);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_naming_the_limit() {
    let server = Server::start_with(|c| c.body_limit = 4096).await;
    world(&server.engine).await;
    let big = json!({"customerId": OWNER, "operations": [{"name": "a", "type": "step", "payload": {"blob": "x".repeat(8192)}}]});
    for path in ["/pop/agenda", "/pop/agenda/service/createAgenda", "/pop/resourcepool/service/updateAgendaProgress"] {
        let (status, body) = server.call(Who::Owner, Method::POST, path, Some(&big)).await;
        let e = refused(&format!("POST {path} of 8 KiB"), StatusCode::PAYLOAD_TOO_LARGE, status, &body);
        assert!(description(&e).contains("4096"), "the limit is named: {e}");
    }
    let (status, body) = server.call(Who::Owner, Method::PUT, "/pop/customer/acme", Some(&big)).await;
    refused("PUT of 8 KiB", StatusCode::PAYLOAD_TOO_LARGE, status, &body);
    // Just under the limit is read (and then judged on its content).
    let small = json!({"customerId": OWNER, "operations": [{"name": "a", "type": "step", "payload": {"blob": "x".repeat(3000)}}]});
    let (status, body) = server.call(Who::Owner, Method::POST, "/pop/agenda", Some(&small)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Unauthenticated, a large body is still 401 (nothing is read for a caller not let in).
    let (status, body) = server.call(Who::Anonymous, Method::POST, "/pop/agenda", Some(&big)).await;
    refused("anonymous 8 KiB", StatusCode::UNAUTHORIZED, status, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods() {
    let server = Server::start().await;
    let cases = [
        (Method::GET, "/pop/nothing", StatusCode::NOT_FOUND),
        (Method::GET, "/pop/transform", StatusCode::NOT_FOUND),
        (Method::POST, "/pop/agenda/service/nothing", StatusCode::NOT_FOUND),
        (Method::GET, "/", StatusCode::NOT_FOUND),
        (Method::PATCH, "/pop/agenda", StatusCode::METHOD_NOT_ALLOWED),
        (Method::DELETE, "/pop/agenda", StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/pop/agenda/some-id", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/pop/agenda/service/run", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/pop/resourcepool/service/getAgenda", StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/openapi.json", StatusCode::METHOD_NOT_ALLOWED),
    ];
    for (method, path, want) in cases {
        let (status, body) = server.call(Who::Owner, method.clone(), path, None).await;
        let e = refused(&format!("{method} {path}"), want, status, &body);
        assert!(description(&e).contains(path), "{method} {path}: the path is named: {e}");
    }
    // A write a kind does not take on its route: 405 saying what does, with the methods it takes.
    for (method, path, allow, says) in [
        (Method::PUT, "/pop/agenda/some-id", "GET,HEAD,DELETE", "does not change once submitted"),
        (Method::POST, "/pop/progress/agenda", "GET,HEAD", "created with the agenda"),
        (Method::DELETE, "/pop/progress/operation/x", "GET,HEAD", "deleted with its agenda progress"),
    ] {
        let resp = common::http()
            .request(method.clone(), format!("{}{path}", server.base))
            .bearer_auth(common::OWNER_TOKEN)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let got = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().replace(' ', "");
        let mut got: Vec<&str> = got.split(',').collect();
        got.sort_unstable();
        let mut want: Vec<&str> = allow.split(',').collect();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}: Allow");
        let body: Value = resp.json().await.expect("json");
        assert!(description(&envelope(StatusCode::METHOD_NOT_ALLOWED, &body).clone()).contains(says), "{body}");
    }
    // An empty cursor or projection is an absent one.
    let (status, body) = server.call(Who::Owner, Method::GET, "/pop/agenda?bycursor=&byfields=", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Unknown query parameters and bad paging are refused, naming the parameter.
    for (path, param) in [
        ("/pop/agenda?colour=red", "colour"),
        ("/pop/agenda?bylimit=0", "bylimit"),
        ("/pop/agenda?bylimit=", "bylimit"),
        ("/pop/agenda?bycount=null", "bycount"),
        ("/pop/agenda?bycolour=b", "bycolour"),
    ] {
        let (status, body) = server.call(Who::Owner, Method::GET, path, None).await;
        let e = refused(&format!("GET {path}"), StatusCode::UNPROCESSABLE_ENTITY, status, &body);
        assert!(description(&e).contains(param), "GET {path}: {e}");
    }
}

/// Agendas whose graph cannot run: 422, with a problem naming each operation concerned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_and_unknown_references_name_the_operation() {
    let server = Server::start().await;
    world(&server.engine).await;
    let cases = [
        (
            "a cycle through references",
            json!([
                {"name": "enc", "type": "step", "payload": {"in": "@<pack.out>"}},
                {"name": "pack", "type": "step", "payload": {"in": "@<enc.out>"}}
            ]),
            vec!["enc", "pack"],
        ),
        (
            "a cycle through dependsOn",
            json!([
                {"name": "a", "type": "step", "payload": {}, "params": {"dependsOn": ["b"]}},
                {"name": "b", "type": "step", "payload": {}, "params": {"dependsOn": ["a"]}}
            ]),
            vec!["a", "b"],
        ),
        (
            "an operation that refers to itself",
            json!([{"name": "loop", "type": "step", "payload": {"in": "@<loop.out>"}}]),
            vec!["loop"],
        ),
        (
            "a reference to an unknown operation",
            json!([
                {"name": "probe", "type": "step", "payload": {}},
                {"name": "thumb", "type": "step", "payload": {"in": "@<nosuch.out::/file>"}}
            ]),
            vec!["thumb"],
        ),
        (
            "dependsOn an unknown operation",
            json!([{"name": "solo", "type": "step", "payload": {}, "params": {"dependsOn": ["ghost"]}}]),
            vec!["solo"],
        ),
        (
            "two operations with one name",
            json!([{"name": "twin", "type": "step", "payload": {}}, {"name": "twin", "type": "step", "payload": {}}]),
            vec!["twin"],
        ),
        ("no operations", json!([]), vec![]),
    ];
    let mut wrong = Vec::new();
    for (what, operations, names) in cases {
        let agenda = json!({"customerId": OWNER, "operations": operations});
        for path in ["/pop/agenda", "/pop/agenda/service/createAgenda"] {
            let body =
                if path.ends_with("createAgenda") { json!({"agendas": [agenda.clone()]}) } else { agenda.clone() };
            let (status, answer) = server.call(Who::Owner, Method::POST, path, Some(&body)).await;
            if status != StatusCode::UNPROCESSABLE_ENTITY || answer.get("errorResponse").is_none() {
                wrong.push(format!("{what} via {path}: want 422 with the envelope, got {status}: {answer}"));
                continue;
            }
            let problems = answer["errorResponse"]["problems"].as_array().cloned().unwrap_or_default();
            if problems.is_empty() {
                wrong.push(format!("{what} via {path}: no problems listed: {answer}"));
            }
            for name in &names {
                let named = problems
                    .iter()
                    .any(|p| p["operation"] == json!(name) || p["message"].as_str().is_some_and(|m| m.contains(name)));
                if !named {
                    wrong.push(format!("{what} via {path}: operation {name} not named: {answer}"));
                }
            }
        }
        // validate says the same without storing anything.
        let (status, answer) =
            server.call(Who::Owner, Method::POST, "/pop/agenda/service/validate", Some(&agenda)).await;
        if status != StatusCode::OK || answer["valid"] != json!(false) {
            wrong.push(format!("{what} via validate: want 200 valid=false, got {status}: {answer}"));
        }
    }
    let (status, answer) =
        server.call(Who::Owner, Method::GET, &format!("/pop/agenda?bycustomerId={OWNER}"), None).await;
    assert_eq!((status, answer["count"].clone()), (StatusCode::OK, json!(0)), "nothing was stored: {answer}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
