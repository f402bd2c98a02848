//! The `pop` command-line tool, run as a built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn pop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pop"))
}

fn fixtures(test: &str) -> Option<PathBuf> {
    pop_core::compat::fixtures_dir(test)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_valid_and_invalid_agendas() {
    let Some(dir) = fixtures("validate_valid_and_invalid_agendas") else { return };
    let agendas = dir.join("agendas");
    let (code, out, _) =
        run(pop().arg("validate").arg(agendas.join("multiSamplePayload.json")).arg(agendas.join("payload.json")));
    assert_eq!(code, 0, "{out}");
    let legacy = agendas.join("sampleActions-legacy-syntax.json");
    let noop = agendas.join("NoopAgenda.json");
    let (code, out, err) = run(pop().arg("validate").arg(&legacy).arg(&noop));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{}: operation sample.2: ", legacy.display())) && l.contains("$$$")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with(&format!("{}: ", noop.display()))), "{out}");
    // unreadable / not JSON: one clear line, exit 1, no panic
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let (code, out, err) = run(pop().arg("validate").arg(&bad).arg(tmp.path().join("missing.json")));
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn resolve_the_original_vectors() {
    let Some(dir) = fixtures("resolve_the_original_vectors") else { return };
    let refs = dir.join("references");
    // the context of the first vector also holds agendaId
    let mut ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(refs.join("testParams.json")).unwrap()).unwrap();
    ctx["agendaId"] = "456-789".into();
    let tmp = tempfile::tempdir().unwrap();
    let ctx_path = tmp.path().join("ctx.json");
    std::fs::write(&ctx_path, ctx.to_string()).unwrap();
    let (code, out, err) =
        run(pop().arg("resolve").arg("--context").arg(&ctx_path).arg(refs.join("testReferences.json")));
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(refs.join("testExpectedResult.json")).unwrap()).unwrap();
    assert_eq!(got, want);
}

#[test]
fn expand_the_original_template() {
    let Some(dir) = fixtures("expand_the_original_template") else { return };
    let t = dir.join("templates");
    let (code, out, err) =
        run(pop().arg("expand").arg(t.join("AgendaTemplate.json")).arg(t.join("AgendaTemplateParameters.json")));
    assert_eq!(code, 0, "{err}");
    let got: pop_core::model::Agenda = serde_json::from_str(&out).unwrap();
    let want: pop_core::model::Agenda =
        serde_json::from_str(&std::fs::read_to_string(t.join("AgendaExpressed.json")).unwrap()).unwrap();
    assert_eq!(got, want);
}

fn sample_handler() -> PathBuf {
    // target/<profile>/deps/cli-xxxx → target/<profile>/pop-sample-handler
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = profile_dir.join("pop-sample-handler");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "pop-runtime-process", "--bin", "pop-sample-handler"])
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

#[test]
fn run_the_65_operation_sample_agenda() {
    let Some(dir) = fixtures("run_the_65_operation_sample_agenda") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry.json");
    std::fs::write(&registry, serde_json::json!({"sample": {"process": {"command": sample_handler()}}}).to_string())
        .unwrap();
    let (code, out, err) = run(pop()
        .arg("run")
        .arg(dir.join("agendas/multiSamplePayload.json"))
        .arg("--registry")
        .arg(&registry)
        .arg("--data")
        .arg(tmp.path().join("data")));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let progress: pop_core::model::AgendaProgress = serde_json::from_str(&out).unwrap();
    assert_eq!(progress.processing_state_message.as_deref(), Some("succeeded"));
    assert_eq!(progress.operation_progress.len(), 65);
    assert!(progress.operation_progress.iter().all(|o| o.succeeded()));
    // errors are one clear line
    let (code, _, err) = run(pop().arg("run").arg(tmp.path().join("nope.json")).arg("--registry").arg(&registry));
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn graph_prints_dot_and_json_and_fails_on_a_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = tmp.path().join("ok.json");
    std::fs::write(
        &ok,
        r#"{"operations": [
            {"name": "probe", "type": "t", "payload": {}},
            {"name": "encode", "type": "t", "payload": {"in": "@<probe.out::/file>"}},
            {"name": "pack", "type": "t", "payload": {}, "params": {"dependsOn": "encode,probe"}}
        ]}"#,
    )
    .unwrap();
    let (code, out, err) = run(pop().arg("graph").arg(&ok));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("digraph"), "{out}");
    assert_eq!(out.matches("->").count(), 3, "{out}");
    let (code, out, _) = run(pop().args(["graph", "--format", "json"]).arg(&ok));
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layers: Vec<u64> = doc["nodes"].as_array().unwrap().iter().map(|n| n["layer"].as_u64().unwrap()).collect();
    assert_eq!(layers, vec![0, 1, 2]);
    let cyclic = tmp.path().join("cyclic.json");
    std::fs::write(
        &cyclic,
        r#"{"operations": [
            {"name": "a", "type": "t", "payload": {"x": "@<b.out>"}},
            {"name": "b", "type": "t", "payload": {"x": "@<a.out>"}}
        ]}"#,
    )
    .unwrap();
    let (code, _, err) = run(pop().arg("graph").arg(&cyclic));
    assert_eq!(code, 1);
    assert!(err.contains("cycle: a -> b") || err.contains("cycle: b -> a"), "{err}");
}
