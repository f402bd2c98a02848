//! The sled store's disk fills up: submissions are refused with a clear error, nothing is
//! half-written (every agenda in the store has its progress and its operations' progress, every
//! acknowledged one is there), and submissions are accepted again once space returns (the instance
//! reopened from the same directory if sled cannot go on in place).
//!
//! A real full disk: the store lives on a small tmpfs mounted for the test, grown afterwards with
//! `mount -o remount,size=...`. Needs root (mount); otherwise the test skips and says so.
//!
//! `cargo test -p pop --test disk_full -- --nocapture`
#![cfg(all(feature = "sled", target_os = "linux"))]

mod common;

use common::*;
use pop::{Pop, RuntimeRouter};
use pop_core::model::Agenda;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn mount(args: &[&str], at: &Path) -> bool {
    Command::new("mount").args(args).arg(at).status().is_ok_and(|s| s.success())
}

fn open(dir: &Path) -> pop_core::Result<Pop> {
    let runtime = RuntimeRouter::new().with(Arc::new(pop_exec::inprocess::InProcessRuntime::new()));
    Pop::builder().sled_path(dir.join("db"))?.runtime(Arc::new(runtime)).build()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_submissions_clearly_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fs");
    std::fs::create_dir(&dir).expect("mkdir");
    if !mount(&["-t", "tmpfs", "-o", "size=6m", "tmpfs"], &dir) {
        eprintln!("cannot mount a tmpfs (not root?): the disk-full test is skipped");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.clone());

    let pop = open(&dir).expect("open on the small tmpfs");
    setup(&pop, &["c1"], None, 10).await;
    let submitter = customer("c1");
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        match pop.agendas().submit(&submitter, big(i)).await {
            Ok(a) => acknowledged.push(a.id.expect("id")),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let error = refused.expect("the 6 MiB tmpfs never filled up");
    let message = error.to_string();
    eprintln!("disk full after {} submissions: {message}", acknowledged.len());
    assert!(
        message.contains("No space left on device") || message.contains("os error 28"),
        "the error does not say the disk is full: {message}"
    );
    // still refused while full
    let again = pop.agendas().submit(&submitter, big(9_999)).await;
    eprintln!("a second submission while full: {:?}", again.as_ref().map(|_| "accepted").map_err(ToString::to_string));

    // Space returns.
    assert!(mount(&["-o", "remount,size=256m"], &dir), "remount the tmpfs larger");
    let in_place = pop.agendas().submit(&submitter, big(10_000)).await;
    let (pop, recovered) = match in_place {
        Ok(a) => {
            acknowledged.push(a.id.expect("id"));
            (pop, "in place")
        }
        Err(e) => {
            eprintln!("after space returned, the open store still refuses ({e}); reopening it");
            pop.shutdown().await;
            drop(pop);
            let pop = open(&dir).expect("reopen after space returned");
            let a = pop.agendas().submit(&submitter, big(10_001)).await.expect("a submission after the reopen");
            acknowledged.push(a.id.expect("id"));
            (pop, "after a reopen")
        }
    };
    let stored = all_whole(&pop, &acknowledged).await;
    pop.shutdown().await;
    drop(pop);
    // And from disk.
    let pop = open(&dir).expect("reopen");
    let stored_after = all_whole(&pop, &acknowledged).await;
    eprintln!(
        "disk full: {} acknowledged, {stored} stored and whole (recovered {recovered}); after a reopen {stored_after}",
        acknowledged.len()
    );
    pop.shutdown().await;
}
