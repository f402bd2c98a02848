//! The remote commands, end to end with real processes: a `pop serve` (sled in a temp dir, static
//! tokens, an in-serve worker for insight `main` running a shell handler) and the `pop` CLI against
//! it: apply (twice: `unchanged`; then `updated` with the field), submit, get, progress --watch to
//! completion, run-template, cancel, rerun, explain, `-o json|yaml`, and the exit codes of not
//! found, bad token, forbidden, unreachable server and bad input.
#![cfg(unix)]

mod common;

use common::{ACME, ADMIN, Proc, auth_file, pop, start, url_of, write};
use serde_json::Value;
use std::path::Path;

/// Starts `pop serve` and returns it with its URL (read from the ready line).
fn serve(dir: &Path) -> (Proc, String) {
    let mut cmd = pop();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-timed", "--worker-insight", "main"])
        .arg("--auth")
        .arg(dir.join("auth.toml"))
        .arg("--registry")
        .arg(dir.join("registry.json"))
        .arg("--data")
        .arg(dir.join("db"));
    let (proc, line) = start(cmd, "pop serve ready");
    (proc, url_of(&line))
}

fn files(dir: &Path) {
    auth_file(dir);
    let handler = dir.join("step.sh");
    write(
        &handler,
        r#"#!/bin/sh
# Sleeps the payload's ms (default 50); fails when the payload says "fail": true.
ms=$(printf '%s' "$PAYLOAD" | sed -n 's/.*"ms" *: *"\{0,1\}\([0-9]*\).*/\1/p')
sleep $(awk "BEGIN{print ${ms:-50}/1000}")
case "$PAYLOAD" in *'"fail":true'*|*'"fail": true'*) echo "asked to fail" >&2; exit 3;; esac
echo "POP_RESULT {\"done\": \"$OPERATION_NAME\"}"
"#,
    );
    let mut perms = std::fs::metadata(&handler).expect("handler").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&handler, perms).expect("chmod");
    write(&dir.join("registry.json"), &serde_json::json!({"step": {"process": {"command": handler}}}).to_string());
    // a pool (kind named), an insight (kind inferred from its mappers), customers in an array
    write(
        &dir.join("objects.yaml"),
        r#"kind: resourcePool
id: pool
customerId: ops
title: the pool
---
id: main
customerId: ops
title: main insight
resourcePoolId: pool
isGlobal: true
queueSize: 4
schedulingAlgorithm: FirstInFirstOut
mappers:
  operationType: [step]
---
- kind: customer
  id: acme
  title: Acme
  resourcePoolId: pool
- kind: customer
  id: other
  title: Other
  resourcePoolId: pool
"#,
    );
    write(
        &dir.join("template.json"),
        r#"{"kind": "agendaTemplate", "id": "tpl", "title": "two steps", "customerId": "acme",
            "agenda": {"customerId": "acme", "linkId": "from-template",
                       "operations": [{"name": "a", "type": "step", "payload": {"ms": "@<ms>"}},
                                      {"name": "b", "type": "step", "payload": {"in": "@<a.out::/done>"}}]}}"#,
    );
}

/// Runs `pop ARGS` against `url` with `token`; (exit code, stdout, stderr).
fn cli(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = pop().args(args).args(["--server", url, "--token", token]).output().expect("run pop");
    let r = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!r.2.contains("panicked"), "pop {args:?} panicked: {}", r.2);
    r
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn agenda(dir: &Path, name: &str, body: Value) -> String {
    let path = dir.join(name);
    write(&path, &body.to_string());
    path.display().to_string()
}

#[test]
fn remote_commands_against_a_running_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    files(dir);
    let (_server, url) = serve(dir);
    let url = url.as_str();
    let objects = dir.join("objects.yaml").display().to_string();

    // apply: created, then unchanged; then one changed field
    let (code, out, err) = cli(url, ADMIN, &["apply", "-f", &objects]);
    assert_eq!(code, 0, "{out}{err}");
    for line in ["resourcePool/pool created", "insight/main created", "customer/acme created", "customer/other created"]
    {
        assert!(out.lines().any(|l| l == line), "{line:?} missing in:\n{out}");
    }
    let (code, out, err) = cli(url, ADMIN, &["apply", "-f", &objects]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "the second apply changed something:\n{out}");
    let changed = dir.join("insight.json");
    write(
        &changed,
        r#"{"id": "main", "customerId": "ops", "title": "main insight", "resourcePoolId": "pool",
            "isGlobal": true, "queueSize": 8, "mappers": {"operationType": ["step"]}, "unknownKey": 1}"#,
    );
    let (code, out, err) = cli(url, ADMIN, &["apply", "-f", changed.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "insight/main updated (queueSize) (dry run)");
    let (_, out, _) = cli(url, ADMIN, &["get", "insight", "main", "-o", "yaml"]);
    assert!(out.contains("queueSize: 4"), "the dry run changed the insight: {out}");
    let (code, out, err) = cli(url, ADMIN, &["apply", "-f", changed.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let applied = json(&out);
    assert_eq!(applied[0]["result"], "updated", "{out}");
    assert_eq!(applied[0]["changed"], serde_json::json!(["queueSize"]), "{out}");
    let (code, out, _) = cli(url, ADMIN, &["get", "insight", "main", "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["queueSize"], 8);

    // the original's JSON (when the corpus is at hand): a customer and a pool with stale keys
    if let Some(fixtures) = pop_core::compat::fixtures_dir("remote_commands_against_a_running_server") {
        let customer = fixtures.join("objects/Customer.json").display().to_string();
        let pool = fixtures.join("objects/ResourcePool.json").display().to_string();
        let args = ["apply", "-f", &pool, "-f", &customer, "--customer", "ops"];
        let (code, out, err) = cli(url, ADMIN, &args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("customer/982048329048239jfkdsl created"), "{out}");
        assert!(out.contains("resourcePool/2u9490283912832109283091 created"), "{out}");
        let (code, out, err) = cli(url, ADMIN, &args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");
        // the original's agenda template has no id: created (with a warning that it will be again)
        let template = fixtures.join("templates/AgendaTemplate.json").display().to_string();
        let (code, out, err) = cli(url, ADMIN, &["apply", "-f", &template, "--customer", "ops", "-o", "json"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(json(&out)[0]["kind"], "agendaTemplate", "{out}");
        assert_eq!(json(&out)[0]["result"], "created", "{out}");
        assert!(err.contains("no `id`"), "{err}");
    }

    // bad input applies nothing: exit 2, naming the object
    let bad = dir.join("bad.json");
    write(&bad, r#"[{"kind": "customer", "id": "late", "title": "x"}, {"id": "x", "title": "no kind"}]"#);
    let (code, _, err) = cli(url, ADMIN, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("object 2") && err.contains("\"kind\""), "{err}");
    assert_eq!(cli(url, ADMIN, &["get", "customer", "late"]).0, 3, "a bad file created an object");

    // submit and follow to completion
    let ok = agenda(
        dir,
        "ok.json",
        serde_json::json!({"customerId": "acme", "linkId": "L1", "operations": [
            {"name": "a", "type": "step", "payload": {"ms": 100}},
            {"name": "b", "type": "step", "payload": {"in": "@<a.out::/done>"}}]}),
    );
    let (code, out, err) = cli(url, ACME, &["submit", &ok, "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let submitted = json(&out);
    let id = submitted[0]["id"].as_str().expect("the submitted agenda's id").to_owned();
    let (code, out, err) = cli(url, ACME, &["progress", &id, "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("COMPLETE") && out.contains("succeeded"), "{out}");
    assert!(err.contains(&id), "the watch printed no progress lines: {err}");
    let (code, out, _) = cli(url, ACME, &["progress", &id, "-o", "json"]);
    assert_eq!(code, 0);
    let p = json(&out);
    assert_eq!(p["processingStateMessage"], "succeeded");
    assert_eq!(p["operationProgress"].as_array().map(Vec::len), Some(2));
    let (code, out, _) = cli(url, ACME, &["progress", "--link-id", "L1", "-o", "yaml"]);
    assert_eq!(code, 0);
    assert!(out.contains("processingState: COMPLETE"), "{out}");

    // get: one object, lists with filters and paging
    let (code, out, _) = cli(url, ACME, &["get", "agenda", &id, "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["linkId"], "L1");
    let (code, out, _) = cli(url, ACME, &["get", "customer", "acme"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID") && out.contains("Acme"), "{out}");
    let (code, out, err) = cli(url, ACME, &["submit", &ok, "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(url, ACME, &["get", "agendas", "--customer", "acme", "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["items"].as_array().map(Vec::len), Some(2), "{out}");
    let (code, out, err) = cli(url, ACME, &["get", "agenda", "--customer", "acme", "--limit", "1", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let page = json(&out);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{out}");
    let next = page["next"].as_str().expect("a next cursor after the first of two").to_owned();
    let (code, out, _) = cli(url, ACME, &["get", "agenda", "--customer", "acme", "--limit", "1", "--cursor", &next]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "a header and the second agenda: {out}");
    let (code, out, _) = cli(url, ACME, &["get", "progress", "--link-id", "L1", "--all", "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["items"].as_array().map(Vec::len), Some(2), "{out}");

    // explain, rerun one operation
    let (code, out, _) = cli(url, ACME, &["explain", &id, "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["stage"], "complete", "{out}");
    let (code, out, err) = cli(url, ACME, &["rerun", &id, "--reset", "b", "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = cli(url, ACME, &["progress", &id, "-o", "json"]);
    let p = json(&out);
    assert_eq!(p["processingStateMessage"], "succeeded");
    assert_eq!(p["attemptsCompleted"], 2, "the rerun is the agenda's second attempt: {out}");

    // run a template
    let (code, out, err) = cli(url, ADMIN, &["apply", "-f", dir.join("template.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("agendaTemplate/tpl created"), "{out}");
    let payload = dir.join("payload.yaml");
    write(&payload, "ms: \"20\"\n");
    let (code, out, err) =
        cli(url, ACME, &["run-template", "tpl", payload.to_str().unwrap(), "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("from-template") && out.contains("succeeded"), "{out}");

    // a failing agenda: --watch exits 1
    let failing = agenda(
        dir,
        "fail.json",
        serde_json::json!({"customerId": "acme", "params": {"maximumAttempts": 1},
            "operations": [{"name": "a", "type": "step", "payload": {"fail": true}}]}),
    );
    let (code, out, err) = cli(url, ACME, &["submit", &failing, "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("failed"), "{out}");

    // cancel a long agenda: its watch ends with exit 1 (cancelled)
    let slow = agenda(
        dir,
        "slow.json",
        serde_json::json!({"customerId": "acme", "operations": [{"name": "a", "type": "step", "payload": {"ms": 30000}}]}),
    );
    let (code, out, err) = cli(url, ACME, &["submit", &slow, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let slow_id = json(&out)[0]["id"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(url, ACME, &["cancel", &slow_id, "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["agendaId"], slow_id.as_str());
    let (code, out, err) = cli(url, ACME, &["progress", &slow_id, "--watch", "--interval-ms", "100"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("cancelled"), "{out}");

    // exit codes: not found 3, unauthorized 4, forbidden 5, unreachable 6, usage 2
    let (code, _, err) = cli(url, ACME, &["get", "agenda", "no-such-agenda"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(cli(url, ACME, &["progress", "no-such-agenda"]).0, 3);
    assert_eq!(cli(url, ACME, &["explain", "no-such-agenda"]).0, 3);
    assert_eq!(cli(url, ACME, &["cancel", "no-such-agenda"]).0, 3);
    assert_eq!(cli(url, ACME, &["progress", "--link-id", "no-such-link"]).0, 3);
    let (code, _, err) = cli(url, "not-a-token-of-this-server", &["get", "agenda"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("unknown token") && !err.contains("unauthorized: unauthorized"), "{err}");
    let (code, _, err) = cli(url, ACME, &["apply", "-f", &objects]);
    assert_eq!(code, 5, "alice may not change ops's pool: {err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, err) = cli(&format!("http://{closed}"), ACME, &["get", "agenda"]);
    assert_eq!(code, 6, "{err}");
    assert_eq!(cli(url, ACME, &["get", "thing"]).0, 2);
    let (code, _, err) = cli(url, ACME, &["submit", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let out = pop().args(["get", "agenda"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no server given");
    assert!(String::from_utf8_lossy(&out.stderr).contains("POP_SERVER"));
    // the environment gives the server and the token
    let out = pop().args(["get", "agenda", &id, "-o", "json"]).env("POP_SERVER", url).env("POP_TOKEN", ACME).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // --data selects the local mode, and does not combine with --server
    let (code, _, err) = cli(url, ACME, &["progress", &id, "--data", dir.join("db").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be combined"), "{err}");
}

/// The local mode of progress / explain / rerun: `--data` selects it, even with `$POP_SERVER` set.
#[test]
fn data_selects_the_local_mode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    files(dir);
    let data = dir.join("local").display().to_string();
    let registry = dir.join("registry.json").display().to_string();
    let a = agenda(
        dir,
        "local.json",
        serde_json::json!({"customerId": "acme", "operations": [{"name": "a", "type": "step", "payload": {}}]}),
    );
    let run = |args: &[&str]| {
        // a server that does not exist: the local mode must not ask it
        let out = pop().args(args).env("POP_SERVER", "http://127.0.0.1:9").output().expect("run pop");
        let r = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(!r.2.contains("panicked"), "{}", r.2);
        r
    };
    let (code, out, err) = run(&["run", &a, "--registry", &registry, "--data", &data]);
    assert_eq!(code, 0, "{out}{err}");
    let id = json(&out)["agendaId"].as_str().expect("agendaId").to_owned();
    let (code, out, err) = run(&["progress", &id, "--data", &data]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["processingStateMessage"], "succeeded", "local progress prints JSON");
    let (code, out, _) = run(&["progress", &id, "--data", &data, "-o", "table"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("AGENDA") && out.contains("succeeded"), "{out}");
    let (code, out, _) = run(&["explain", &id, "--data", &data]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["stage"], "complete");
    let (code, out, err) = run(&["rerun", &id, "--reset", "a", "--registry", &registry, "--data", &data]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["attemptsCompleted"], 2, "{out}");
    assert_eq!(run(&["progress", "no-such-agenda", "--data", &data]).0, 3);
    assert_eq!(run(&["rerun", &id, "--data", &data]).0, 2, "the local rerun needs --registry");
    assert_eq!(run(&["progress", &id, "--watch", "--data", &data]).0, 2, "--watch needs a server");
    // without --data, the same command asks $POP_SERVER (nothing listens there)
    assert_eq!(run(&["progress", &id]).0, 6);
}
