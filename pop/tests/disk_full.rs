//! The sled store's disk fills up: submissions are refused with a clear error, nothing is
//! half-written (every agenda in the store has its progress and its operations' progress, every
//! acknowledged one is there), and submissions are accepted again once space returns and the
//! instance is restarted on the same directory.
//!
//! A real full disk: the store lives on a small tmpfs mounted for the test, grown afterwards with
//! `mount -o remount,size=...`. Needs root (mount); otherwise the test skips and says so.
//!
//! The instance that meets the full disk runs in a child process (this test binary again, running
//! the ignored `disk_full_child`), as in production under a supervisor: sled 0.34 sometimes leaves a
//! flush waiting for ever after an ENOSPC (a log buffer that failed to write is never made stable).
//! The store's stall timeout turns that into errors (`stalled … restart the process`) instead of
//! writes waiting for ever, and the child ends by itself; then, like a supervisor's restart, the
//! parent reopens the directory and checks that every acknowledged agenda is there and whole. A
//! child that still hangs for 60 s fails the test (it is killed first, so CI never hangs on it).
//!
//! `cargo test -p pop --test disk_full -- --nocapture`
#![cfg(all(feature = "sled", target_os = "linux"))]

mod common;

use common::*;
use pop::{Pop, RuntimeRouter};
use pop_core::model::Agenda;
use pop_core::testing::tmpfs;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The stall timeout of the store meeting the full disk (the default is 30 s).
const STALL: Duration = Duration::from_secs(3);

fn open(dir: &Path) -> pop_core::Result<Pop> {
    let runtime = RuntimeRouter::new().with(Arc::new(pop_exec::inprocess::InProcessRuntime::new()));
    let (store, queue) = pop::sled::open_both(pop::sled::Config::new(dir.join("db")).stall_timeout(STALL))?;
    Pop::builder().store(Arc::new(store)).queue(Arc::new(queue)).runtime(Arc::new(runtime)).build()
}

fn big(i: usize) -> Agenda {
    // ~40 KiB of payload that does not compress away.
    let pad: String = (0..40_000).map(|k| char::from(b'a' + ((k * 7 + i * 13) % 26) as u8)).collect();
    agenda("c1", json!([{"name": "a", "type": "noop", "payload": {"i": i, "pad": pad}}]))
}

/// Every agenda of `c1` is whole: its progress and one operation progress per operation.
async fn all_whole(pop: &Pop, acknowledged: &[String]) -> usize {
    let su = admin();
    let agendas = pop
        .agendas()
        .query(&su, pop_core::store::IndexField::CustomerId, "c1", pop_core::store::PageRequest::first(10_000))
        .await
        .expect("query the agendas")
        .items;
    let ids: std::collections::HashSet<String> = agendas.iter().filter_map(|a| a.id.clone()).collect();
    for id in acknowledged {
        assert!(ids.contains(id), "acknowledged agenda {id} is missing");
    }
    for id in &ids {
        let p = pop.progress().agenda_progress(&su, id).await.expect("every stored agenda has its progress");
        assert_eq!(p.operation_progress.len(), 1, "agenda {id}: half-written operation progress");
    }
    ids.len()
}

/// Appends a line to the child's report (outside the tmpfs).
fn report(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the report file");
    writeln!(f, "{line}").expect("write the report");
}

/// The child: fills the disk through the engine, reporting each acknowledged agenda, the refusal,
/// a second submission while full, and a submission after space returned, in
/// `POP_DISK_FULL_REPORT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_full_disk_refuses_submissions_clearly_and_recovers in a child process"]
async fn disk_full_child() {
    let (Some(dir), Some(out)) = (std::env::var_os("POP_DISK_FULL_DIR"), std::env::var_os("POP_DISK_FULL_REPORT"))
    else {
        return;
    };
    let (dir, out) = (Path::new(&dir), Path::new(&out));
    let pop = open(dir).expect("open on the small tmpfs");
    setup(&pop, &["c1"], None, 10).await;
    let submitter = customer("c1");
    for i in 0..2_000 {
        match pop.agendas().submit(&submitter, big(i)).await {
            Ok(a) => report(out, &format!("ack {}", a.id.expect("id"))),
            Err(e) => {
                report(out, &format!("refused {e}"));
                break;
            }
        }
    }
    let again = pop.agendas().submit(&submitter, big(9_999)).await;
    report(out, &format!("second {:?}", again.as_ref().map(|_| "accepted").map_err(ToString::to_string)));
    if let Ok(a) = again {
        report(out, &format!("ack {}", a.id.expect("id")));
    }
    // The store says it cannot recover in-process (what `pop serve` / `pop worker` exit on).
    match pop.store().health() {
        Ok(()) => report(out, "health ok"),
        Err(e) => report(out, &format!("health failed {e}")),
    }
    // Space returns.
    assert!(tmpfs::resize(dir, "256m"), "remount the tmpfs larger");
    report(out, "remounted");
    match pop.agendas().submit(&submitter, big(10_000)).await {
        Ok(a) => {
            report(out, "in-place accepted");
            report(out, &format!("ack {}", a.id.expect("id")));
        }
        Err(e) => report(out, &format!("in-place refused {e}")),
    }
    pop.shutdown().await;
    report(out, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_submissions_clearly_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(fs) = tmpfs::Tmpfs::mount(&tmp.path().join("fs"), "6m") else {
        eprintln!("cannot mount a tmpfs (not root?): the disk-full test is skipped");
        return;
    };
    let dir = fs.path().to_owned();
    let out = tmp.path().join("report.txt");

    // The instance meeting the full disk, in a child process; killed if it stalls for 60 s.
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "disk_full_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("POP_DISK_FULL_DIR", &dir)
        .env("POP_DISK_FULL_REPORT", &out)
        .spawn()
        .expect("start the child");
    let until = Instant::now() + Duration::from_secs(60);
    let stalled = loop {
        if child.try_wait().expect("wait for the child").is_some() {
            break false;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let acknowledged: Vec<String> =
        text.lines().filter_map(|l| l.strip_prefix("ack ")).map(ToOwned::to_owned).collect();
    let refused = text.lines().find_map(|l| l.strip_prefix("refused "));
    eprintln!(
        "disk full: {} acknowledged; refused: {refused:?}; {}",
        acknowledged.len(),
        text.lines().filter(|l| !l.starts_with("ack ")).collect::<Vec<_>>().join(" | ")
    );
    assert!(!stalled, "the instance hung after the disk filled (killed after 60 s):\n{text}");
    assert!(text.lines().any(|l| l == "done"), "the child failed:\n{text}");
    assert!(!acknowledged.is_empty(), "nothing was acknowledged before the disk filled:\n{text}");
    assert!(
        text.lines().any(|l| l.starts_with("health failed") && l.contains("restart the process")),
        "after the refusals the store's health does not say it failed:\n{text}"
    );
    // Refused with a clear error: the full disk, or the stall it left sled in.
    let refused = refused.unwrap_or_else(|| panic!("the 6 MiB tmpfs never filled up:\n{text}"));
    assert!(
        refused.contains("No space left on device") || refused.contains("os error 28") || refused.contains("stalled"),
        "the error does not say the disk is full: {refused}"
    );

    // The restart: space has returned (grown here if the child did not get that far); every
    // acknowledged agenda is there and whole, and submissions are accepted.
    if !text.lines().any(|l| l == "remounted") {
        assert!(fs.resize("256m"), "remount the tmpfs larger");
    }
    let mut acknowledged = acknowledged;
    let pop = open(&dir).expect("reopen after space returned");
    let a = pop.agendas().submit(&customer("c1"), big(10_001)).await.expect("a submission after the restart");
    acknowledged.push(a.id.expect("id"));
    let stored = all_whole(&pop, &acknowledged).await;
    pop.shutdown().await;
    drop(pop);
    let pop = open(&dir).expect("reopen");
    let stored_after = all_whole(&pop, &acknowledged).await;
    eprintln!(
        "disk full: {} acknowledged, {stored} stored and whole after the restart; after another reopen {stored_after}",
        acknowledged.len()
    );
    pop.shutdown().await;
}
