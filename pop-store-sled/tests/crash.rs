//! Crash test (`pop_core::testing::crash`): a child process (this test binary, re-run as
//! `crash_child`) submits agendas, moves them to the queue, receives and acks them in a loop,
//! printing a line for every operation whose future has completed (so is durable by the flush
//! policy). The parent SIGKILLs it at random moments (fixed seed), reopens the database each time
//! and checks that nothing reported durable was lost, that no acked item came back, that no item was
//! delivered twice while a lease on it was live, and that every index entry points at a live object
//! and every object is in its indexes (`SledStore::check_integrity`).
//!
//! Kills alternate between group commit and flush-every-write. The test can fail: with
//! `POP_SLED_CRASH_POLICY=background` (sled's periodic flush, which promises nothing) it reports
//! lost agendas after the first kill.

use pop_core::testing::crash;
use pop_store_sled::{Config, FlushPolicy, SledStore};
use std::sync::Arc;

const KILLS: usize = 24;

fn policy_for(run: usize) -> FlushPolicy {
    match std::env::var("POP_SLED_CRASH_POLICY").as_deref() {
        // For checking that the test detects loss: a policy that does not wait for the disk.
        Ok("background") => FlushPolicy::Background { every_ms: 1_000 },
        _ if run % 2 == 0 => FlushPolicy::GroupCommit { max_delay_ms: 2 },
        _ => FlushPolicy::FlushEveryWrite,
    }
}

/// The child's side; does nothing unless started by `crash_recovery`.
#[test]
#[ignore = "the child process of crash_recovery; it runs only when started by it"]
fn crash_child() {
    crash::child(|dir, run| {
        let store = SledStore::open(Config::new(dir).flush_policy(policy_for(run)))?;
        let queue = store.queue();
        Ok((Arc::new(store), Arc::new(queue)))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery() {
    let dir = tempfile::tempdir().unwrap();
    crash::parent("crash_child", dir.path(), KILLS, |dir| {
        let store = SledStore::open(Config::new(dir).flush_policy(FlushPolicy::FlushEveryWrite))?;
        let problems = store.check_integrity()?.problems;
        let queue = store.queue();
        Ok(((Arc::new(store), Arc::new(queue)), problems))
    })
    .await;
}
