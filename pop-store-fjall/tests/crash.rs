//! Crash test (`pop_core::testing::crash`, the one `pop-store-sled` runs): a child process (this
//! test binary, re-run as `crash_child`) submits agendas, moves them to the queue, receives and acks
//! them in a loop, printing a line for every operation whose future has completed (so is durable by
//! the flush policy). The parent SIGKILLs it at random moments (fixed seed), reopens the database
//! each time and checks that nothing reported durable was lost, that no acked item came back, and
//! that no item was delivered twice while a lease on it was live.
//!
//! Kills alternate between group commit and sync-every-write. The test can fail: with
//! `POP_FJALL_CRASH_POLICY=never` (no sync: the journal stays in the process's buffer) it reports
//! lost agendas after the first kill.

use pop_core::testing::crash;
use pop_store_fjall::{Config, FjallStore, FlushPolicy};
use std::sync::Arc;

const KILLS: usize = 24;

fn policy_for(run: usize) -> FlushPolicy {
    match std::env::var("POP_FJALL_CRASH_POLICY").as_deref() {
        // For checking that the test detects loss: a policy that does not wait for the disk.
        Ok("never") => FlushPolicy::Never,
        // the default (group commit, syncs back to back), a spaced group commit, a sync per write
        _ if run % 3 == 0 => FlushPolicy::default(),
        _ if run % 3 == 1 => FlushPolicy::GroupCommit { max_delay_ms: 2 },
        _ => FlushPolicy::FlushEveryWrite,
    }
}

/// The child's side; does nothing unless started by `crash_recovery`.
#[test]
#[ignore = "the child process of crash_recovery; it runs only when started by it"]
fn crash_child() {
    crash::child(|dir, run| {
        let store = FjallStore::open(Config::new(dir).flush_policy(policy_for(run)))?;
        let queue = store.queue();
        Ok((Arc::new(store), Arc::new(queue)))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery() {
    let dir = tempfile::tempdir().unwrap();
    crash::parent("crash_child", dir.path(), KILLS, |dir| {
        let store = FjallStore::open(Config::new(dir).flush_policy(FlushPolicy::FlushEveryWrite))?;
        let queue = store.queue();
        Ok(((Arc::new(store), Arc::new(queue)), Vec::new()))
    })
    .await;
}
