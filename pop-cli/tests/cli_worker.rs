//! `pop worker`, run as a built binary: it picks up an agenda left in a sled directory, runs it with a
//! shell handler from the registry, prints a ready line, and stops cleanly on SIGTERM.
#![cfg(unix)]

use pop_core::authz::Principal;
use pop_core::model::{Agenda, ProcessingState};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn pop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pop"))
}

fn agenda() -> Agenda {
    serde_json::from_value(serde_json::json!({
        "customerId": "cli",
        "linkId": "worker-test",
        "operations": [{"name": "touch", "type": "shell", "payload": {"x": 1}}]
    }))
    .unwrap()
}

#[test]
fn worker_runs_waiting_agendas_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let marker = tmp.path().join("ran");
    let registry = tmp.path().join("registry.json");
    let script = "echo ran > \"$MARKER\"; echo 'POP_RESULT {\"ok\": true}'";
    let reg = serde_json::json!({"shell": {"process": {"command": "/bin/sh", "args": ["-c", script], "env": {"MARKER": marker}}}});
    std::fs::write(&registry, reg.to_string()).unwrap();

    // an agenda waits in the store (submitted, no loop running), then the instance is closed
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agenda_id = rt.block_on(async {
        let reg = pop_core::registry::HandlerRegistry::from_path(&registry).unwrap();
        let pop = pop::embedded::open(&data, reg, Default::default()).unwrap();
        pop::embedded::prepare(&pop, &[agenda()]).await.unwrap();
        let a = pop.agendas().submit(&Principal::superuser("test"), agenda()).await.unwrap();
        a.id.unwrap()
    });
    drop(rt);

    // no --insight: the worker takes every insight in the store
    let mut child = pop()
        .args(["worker", "--no-timed", "--instance-id", "cli-test-worker", "--data"])
        .arg(&data)
        .arg("--registry")
        .arg(&registry)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30)).expect("no ready line within 30 s");
    assert!(ready.starts_with("pop worker ready: instance cli-test-worker, store sled "), "{ready}");
    assert!(ready.ends_with(&format!("insights {}", pop::embedded::INSIGHT)), "{ready}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the worker did not run the waiting agenda's handler");
        std::thread::sleep(Duration::from_millis(50));
    }
    // let the completion be persisted, then SIGTERM
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let stopped_by = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > stopped_by {
            let _ = child.kill();
            panic!("pop worker did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("SIGTERM, stopping"), "{err}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(rest, vec!["pop worker stopped".to_string()]);

    // the agenda's completion is durable
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let reg = pop_core::registry::HandlerRegistry::from_json_str("{}").unwrap();
        let pop = pop::embedded::open(&data, reg, Default::default()).unwrap();
        let p = pop.progress().agenda_progress(&Principal::superuser("test"), &agenda_id).await.unwrap();
        assert_eq!(p.processing_state, ProcessingState::Complete, "{p:#?}");
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"), "{p:#?}");
    });
}

#[test]
fn worker_flags_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry.json");
    std::fs::write(&registry, "{}").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "--data DIR is required"),
        (vec!["--data", "d", "--runtime", "nope"], "--runtime nope: unknown runtime"),
        (vec!["--store", "nope"], "--store nope: unknown store"),
        (vec!["--data", "d", "--table-prefix", "x_"], "--data is for the sled store"),
        (vec!["--sled-stall-timeout", "5", "--table-prefix", "x_"], "--sled-stall-timeout is for the sled store"),
        (vec!["--data", "d", "--sled-stall-timeout", "0"], "--sled-stall-timeout 0: give at least 1 second"),
        (vec!["--store", "sled", "--data", "d", "--region", "eu-west-1"], "need --store dynamo"),
        (vec!["--data", "d", "--max-running", "0"], "--max-running: must be at least 1"),
        (vec!["--data", "d", "--capacity", "cpu=lots"], "--capacity cpu=lots: "),
        (vec!["--data", "d", "--capacity", "gpu"], "--capacity gpu: "),
        (vec!["--data", "d", "--capacity", ""], "--capacity \"\": declares no resource"),
        (vec!["--data", "d", "--max-backfill", "2"], "--max-backfill needs --capacity"),
        (vec!["--data", "d", "--alert-dead-letter", "dead.jsonl"], "--alert-dead-letter needs --alert-webhook"),
        (vec!["--data", "d", "--alert-webhook", "ftp://hooks"], "--alert-webhook: "),
        (
            vec!["--data", "d", "--alert-webhook", "http://h", "--alert-dead-letter", "no/such/dir/x"],
            "--alert-dead-letter no/such/dir/x: ",
        ),
    ];
    for (args, want) in cases {
        let out =
            pop().current_dir(tmp.path()).arg("worker").arg("--registry").arg(&registry).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // an empty store and no --insight: nothing to work on, said plainly
    let out = pop()
        .current_dir(tmp.path())
        .args(["worker", "--data", "empty", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no insight to work on"), "{err}");
    // a named insight that does not exist: said plainly, before any loop starts
    let out = pop()
        .current_dir(tmp.path())
        .args(["worker", "--data", "empty", "--insight", "nope", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--insight nope: no such insight in the store (known: none)"), "{err}");
}

/// A webhook receiver on 127.0.0.1 (a plain socket: one JSON body per request, answered 200); the
/// bodies arrive on the channel.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or_default());
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

/// `pop worker --alert-webhook`: an agenda whose only attempt fails is reported to the webhook.
#[test]
fn worker_alerts_an_agenda_failed_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let registry = tmp.path().join("registry.json");
    let reg = serde_json::json!({"shell": {"process": {"command": "/bin/sh", "args": ["-c", "echo no space left >&2; exit 3"]}}});
    std::fs::write(&registry, reg.to_string()).unwrap();
    let mut failing = agenda();
    failing.params.get_or_insert_with(Default::default).insert("maximumAttempts".into(), 1.into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agenda_id = rt.block_on(async {
        let reg = pop_core::registry::HandlerRegistry::from_path(&registry).unwrap();
        let pop = pop::embedded::open(&data, reg, Default::default()).unwrap();
        pop::embedded::prepare(&pop, &[failing.clone()]).await.unwrap();
        pop.agendas().submit(&Principal::superuser("test"), failing).await.unwrap().id.unwrap()
    });
    drop(rt);
    let (url, alerts) = receiver();
    let mut child = pop()
        .args(["worker", "--no-timed", "--alert-webhook", &url, "--alert-dead-letter"])
        .arg(tmp.path().join("dead.jsonl"))
        .arg("--data")
        .arg(&data)
        .arg("--registry")
        .arg(&registry)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = alerts.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let alert = got.expect("no alert within 30 s");
    assert_eq!(alert["kind"], "agendaFailed", "{alert}");
    assert_eq!(alert["agendaId"], agenda_id.as_str());
    assert_eq!(alert["customerId"], "cli");
    assert_eq!(alert["operation"], "touch");
    assert!(alert["message"].as_str().unwrap().contains("exit code 3"), "{alert}");
    assert!(alert["text"].as_str().unwrap().contains("failed for good"), "{alert}");
}
