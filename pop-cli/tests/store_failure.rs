//! `pop serve` on a sled directory whose disk fills up: submissions are refused with a clear error,
//! the server exits with status 75 (its store cannot recover in-process) instead of running on and
//! refusing everything, and once space returns a restart (what a supervisor does on that status)
//! serves every acknowledged agenda and accepts submissions again.
//!
//! A real full disk: the data directory lives on a 6 MiB tmpfs mounted by the test, grown afterwards
//! with `mount -o remount,size=...`. Needs root (mount); otherwise the test skips and says so.
//!
//! `cargo test -p pop-cli --test store_failure -- --nocapture`
#![cfg(target_os = "linux")]

mod common;

use common::*;
use pop::core::model::Agenda;
use pop::http::Client;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `pop serve` on `data`, with a 3 s stall timeout; its stderr goes to `log`.
fn serve(dir: &Path, data: &Path, log: &Path) -> (Proc, String) {
    let mut cmd = pop();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-timed", "--sled-stall-timeout", "3"])
        .arg("--auth")
        .arg(dir.join("auth.toml"))
        .arg("--data")
        .arg(data)
        .stderr(Stdio::from(std::fs::File::create(log).expect("the server's log")));
    let (proc, line) = start(cmd, "pop serve ready");
    (proc, url_of(&line))
}

/// ~40 KiB of payload that does not compress away, for customer `acme`.
fn big(i: usize) -> Agenda {
    let pad: String = (0..40_000).map(|k| char::from(b'a' + ((k * 7 + i * 13) % 26) as u8)).collect();
    serde_json::from_value(serde_json::json!({
        "customerId": "acme",
        "operations": [{"name": "a", "type": "step", "payload": {"i": i, "pad": pad}}]
    }))
    .expect("agenda")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_disk_fills_up_refuses_exits_75_and_recovers_on_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    auth_file(dir);
    let Some(fs) = pop_core::testing::tmpfs::Tmpfs::mount(&dir.join("fs"), "6m") else {
        eprintln!("cannot mount a tmpfs (not root?): the store-failure test is skipped");
        return;
    };
    let data = fs.path().join("db");
    let log = dir.join("serve.log");

    let (mut server, url) = serve(dir, &data, &log);
    let admin = Client::new(&url).expect("client").with_token(ADMIN);
    provision(&admin, "pool", "main", &["acme"], 10_000).await;
    // No retries: the refusal (503) is what the test wants to read.
    let acme = Client::new(&url).expect("client").with_token(ACME).with_retry_for(Duration::ZERO);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        match acme.submit(&big(i)).await {
            Ok(a) => acknowledged.push(a.id.expect("an id")),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("the 6 MiB tmpfs never filled up");
    eprintln!("store failure: {} acknowledged, then refused: {refused}", acknowledged.len());
    assert!(!acknowledged.is_empty(), "nothing was acknowledged before the disk filled");
    let names_the_disk =
        |s: &str| s.contains("No space left on device") || s.contains("os error 28") || s.contains("stalled");
    // The refusal is either the server's answer, which names the disk, or no answer at all: the
    // server's health check found the store failed first and it exited (its log must then say why).
    let went_away = refused.contains("connection closed") || refused.contains("Connection refused");
    assert!(names_the_disk(&refused) || went_away, "the refusal does not say the disk is full: {refused}");

    // The server notices that its store cannot recover and exits with 75 (within the health check
    // period, plus the stall timeout if sled's flush got stuck).
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait for the server") {
            break status;
        }
        assert!(Instant::now() < until, "the server kept running for 30 s on a failed store");
        // Requests keep it noticing sooner if the failure shows only on a write.
        let _ = acme.submit(&big(5_000)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("store failure: the server exited with {status}: {}", text.lines().last().unwrap_or_default());
    assert_eq!(status.code(), Some(75), "the server's exit status; its log:\n{text}");
    assert!(text.contains("the store failed"), "the server's log does not say why it exited:\n{text}");
    assert!(names_the_disk(&text), "the server's log does not say the disk is full:\n{text}");

    // Space returns; the supervisor's restart.
    assert!(fs.resize("256m"), "remount the tmpfs larger");
    let (_server, url) = serve(dir, &data, &log);
    let acme = Client::new(&url).expect("client").with_token(ACME);
    let ready = Client::new(&url).expect("client").ready().await.expect("ready after the restart");
    assert_eq!(ready.status, "ready");
    for id in &acknowledged {
        let p = acme.agenda_progress(id).await.unwrap_or_else(|e| panic!("acknowledged agenda {id}: {e}"));
        assert_eq!(p.operation_progress.len(), 1, "agenda {id} is half-written");
    }
    let after = acme.submit(&big(10_000)).await.expect("a submission after the restart");
    eprintln!(
        "store failure: after the restart all {} acknowledged agendas are there; {} accepted",
        acknowledged.len(),
        after.id.unwrap_or_default()
    );
}
