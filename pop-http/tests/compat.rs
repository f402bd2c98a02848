//! The original client's JSON over HTTP: documents of the original POP's corpus (`POP_COMPAT_FIXTURES`,
//! default `/work/shared/fixtures/pop-original`; skipped with a note when absent) are submitted to a
//! real server as the original's clients sent them and read back: every field comes back with the
//! value it was sent with, except the fields listed here that the server legitimately adds or
//! replaces, and the keys the original's own model does not carry.
//!
//! `cargo test -p pop-http --test compat`

mod common;

use common::{OWNER, Server, Who, envelope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Fields the server sets on every stored object (ids, times, the correlation id, the version).
const STAMPED: &[&str] = &["id", "cid", "addedTime", "updatedTime", "version"];
/// Fields a submission adds to an agenda: its progress and the insight it was routed to (and
/// `params: {}` when the agenda had none).
const AGENDA_ADDED: &[&str] = &["progressId", "agendaInsight", "params"];
/// Fields the client adds to the original's documents: the owning customer (the corpus's documents
/// have none; POP, like the original's endpoint, requires one).
const CLIENT_ADDED: &[&str] = &["customerId"];
/// A resource pool's `insightIds` is derived by the server from the insights in the pool (the
/// original's GET filled it the same way).
const POOL_DERIVED: &[&str] = &["insightIds"];
/// Keys of corpus documents that are not fields of the original's model for that kind (the corpus's
/// README: stale keys that must be ignored): dropped on input.
const NOT_IN_MODEL: &[(&str, &[&str])] = &[
    ("ResourcePool.json", &["ownerId"]),
    ("Customer.json", &["availableInsightIds"]),
    ("AgendaTemplate.json", &["workflowTemplateId", "workflowTemplateVersion", "processor"]),
];

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os(pop_core::compat::ENV)
        .map_or_else(|| PathBuf::from("/work/shared/fixtures/pop-original"), PathBuf::from);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping the compatibility round trips: {} is not a directory (set {})",
            dir.display(),
            pop_core::compat::ENV
        );
        None
    }
}

/// The document with `null` fields removed at the model's levels (the object's own fields and each
/// operation's): the server, like the original, omits null fields. Payloads and params are opaque
/// JSON and kept as they are.
fn without_nulls(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Value::Object(m) = &mut doc {
        m.retain(|_, v| !v.is_null());
        if let Some(Value::Array(ops)) = m.get_mut("operations") {
            for op in ops {
                if let Value::Object(o) = op {
                    o.retain(|_, v| !v.is_null());
                }
            }
        }
    }
    doc
}

/// Compares what was sent with what was read back: every sent field unchanged (except `replaced`),
/// and nothing else read back except `added`.
fn same(what: &str, sent: &Value, back: &Value, replaced: &[&str], added: &[&str]) -> Vec<String> {
    let (Value::Object(sent), Value::Object(back)) = (sent, back) else {
        return vec![format!("{what}: not objects: {back}")];
    };
    let mut wrong = Vec::new();
    for (k, v) in sent {
        if replaced.contains(&k.as_str()) {
            continue;
        }
        match back.get(k) {
            Some(b) if b == v => {}
            Some(b) => wrong.push(format!("{what}: `{k}` changed: sent {v}, read back {b}")),
            None => wrong.push(format!("{what}: `{k}` was lost (sent {v})")),
        }
    }
    for k in back.keys() {
        if !sent.contains_key(k) && !added.contains(&k.as_str()) {
            wrong.push(format!("{what}: `{k}` appeared: {}", back[k]));
        }
    }
    wrong
}

fn read(dir: &std::path::Path, rel: &str) -> Value {
    pop_core::compat::read_json(dir, rel)
}

fn drop_keys(doc: &mut Value, file: &str) {
    let keys = NOT_IN_MODEL.iter().find(|(f, _)| *f == file).map_or(&[][..], |(_, k)| *k);
    if let Value::Object(m) = doc {
        for k in keys {
            assert!(m.remove(*k).is_some(), "{file} no longer has `{k}`: update NOT_IN_MODEL");
        }
    }
}

/// The agendas of the corpus, submitted over HTTP, read back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_agendas_round_trip() {
    let Some(dir) = fixtures() else { return };
    let server = Server::start().await;
    common::world(&server.engine).await;
    // The owner's pool gets a global insight taking every operation type of the corpus.
    let files = ["sampleAgenda.json", "payload.json", "multiSamplePayload.json", "filterAgenda.json"];
    let mut types: Vec<String> = files
        .iter()
        .flat_map(|f| {
            read(&dir, &format!("agendas/{f}"))["operations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| o["type"].as_str().map(str::to_owned))
        })
        .collect();
    types.sort();
    types.dedup();
    let insight = json!({"id": "corpus", "customerId": OWNER, "title": "corpus", "resourcePoolId": format!("pool-{OWNER}"),
        "isGlobal": true, "mappers": {"operationType": types}});
    let (status, body) = server.call(Who::Super, Method::POST, "/pop/insight", Some(&insight)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut wrong = Vec::new();
    for f in files {
        let original = read(&dir, &format!("agendas/{f}"));
        let mut sent = without_nulls(&original);
        sent["customerId"] = json!(OWNER);
        let client = Who::Owner.client(&server.base);
        // Through the typed client (the original's Agenda POST) ...
        let (status, body) = server.call(Who::Owner, Method::POST, "/pop/agenda", Some(&sent)).await;
        assert_eq!(status, StatusCode::OK, "{f}: {body}");
        let id = body["all"][0]["id"].as_str().expect("the stored agenda's id").to_owned();
        // ... and read back raw and through the client.
        let (status, back) = server.call(Who::Owner, Method::GET, &format!("/pop/agenda/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{f}: {back}");
        let back = back["all"][0].clone();
        let mut added: Vec<&str> = STAMPED.to_vec();
        added.extend(AGENDA_ADDED);
        // A client-sent id is replaced by the server's (the original ignored it too).
        let mut replaced = vec!["id"];
        if sent.get("params").is_none() {
            assert_eq!(back["params"], json!({}), "{f}: params defaults to {{}}");
        } else {
            replaced.retain(|k| *k != "params");
        }
        if sent.get("cid").is_some() {
            replaced.push("cid");
        }
        wrong.extend(same(f, &sent, &back, &replaced, &added));
        assert_ne!(back["id"], original["id"], "{f}: the server assigns the id");
        let typed: pop_core::model::Agenda = client.get(&id).await.expect("typed read");
        assert_eq!(serde_json::to_value(&typed).expect("json"), back, "{f}: the typed client reads the same document");
        // Its progress has one row per operation, each naming it.
        let progress = client.agenda_progress(&id).await.expect("progress");
        assert_eq!(progress.operation_progress.len(), sent["operations"].as_array().map_or(0, Vec::len), "{f}");
    }
    // The corpus's agenda without operations is refused (the original refused it too), with the envelope.
    let mut noop = without_nulls(&read(&dir, "agendas/NoopAgenda.json"));
    noop["customerId"] = json!(OWNER);
    let (status, body) = server.call(Who::Owner, Method::POST, "/pop/agenda", Some(&noop)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "NoopAgenda: {body}");
    envelope(status, &body);
    // The legacy `$$$` syntax: refused with a clear error or stored as plain text, never a 5xx.
    let mut legacy = without_nulls(&read(&dir, "agendas/sampleActions-legacy-syntax.json"));
    legacy["customerId"] = json!(OWNER);
    let (status, body) = server.call(Who::Owner, Method::POST, "/pop/agenda", Some(&legacy)).await;
    assert!(status == StatusCode::OK || status.is_client_error(), "legacy syntax: {status} {body}");
    if !status.is_success() {
        envelope(status, &body);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The corpus's Customer, ResourcePool and AgendaTemplate documents, created over HTTP, read back
/// unchanged (a data object keeps the id it was created with).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_objects_round_trip() {
    let Some(dir) = fixtures() else { return };
    let server = Server::start().await;
    common::world(&server.engine).await;
    let mut wrong = Vec::new();
    for (file, path) in [
        ("objects/Customer.json", "customer"),
        ("objects/ResourcePool.json", "resourcepool"),
        ("templates/AgendaTemplate.json", "agendatemplate"),
    ] {
        let name = file.rsplit('/').next().unwrap_or(file);
        let mut sent = without_nulls(&read(&dir, file));
        drop_keys(&mut sent, name);
        sent["customerId"] = json!(OWNER);
        let (status, body) = server.call(Who::Owner, Method::POST, &format!("/pop/{path}"), Some(&sent)).await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
        let id = body["all"][0]["id"].as_str().expect("id").to_owned();
        if let Some(given) = sent.get("id").and_then(Value::as_str) {
            assert_eq!(id, given, "{file}: a data object keeps the id it was created with");
        }
        let (status, back) = server.call(Who::Owner, Method::GET, &format!("/pop/{path}/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{file}: {back}");
        let back = back["all"][0].clone();
        let mut added: Vec<&str> = STAMPED.to_vec();
        added.extend(CLIENT_ADDED);
        let mut replaced: Vec<&str> = Vec::new();
        if path == "resourcepool" {
            // No insight is in this pool: the derived list is empty (and then omitted).
            replaced.extend(POOL_DERIVED);
            assert!(back.get("insightIds").is_none_or(|v| v == &json!([])), "{file}: insightIds derived: {back}");
        }
        wrong.extend(same(file, &sent, &back, &replaced, &added));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
