//! A bounded soak (about 75 s): mixed load on an embedded instance; the open file descriptors do
//! not grow, RSS grows by less than a generous bound, the data reaper deletes finished agendas, and
//! the load meets no error. The long version is the `soak` example.
//!
//! `cargo test -p pop-examples --test soak -- --nocapture`
#![cfg(target_os = "linux")]

use pop_examples::soak::{SoakConfig, run};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_soak_leaks_no_descriptors_and_little_memory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = SoakConfig {
        duration: Duration::from_secs(75),
        sample_every: Duration::from_secs(5),
        reap_age: Duration::from_secs(10),
        rate: 20,
    };
    let report = run(tmp.path(), config).await.expect("the soak runs");
    assert_eq!(report.errors, 0, "the load met errors");
    // After a warm-up of three samples (15 s: caches, the first reaps), nothing should grow much.
    let warm = &report.samples[3];
    let last = report.samples.last().expect("samples");
    let max_fds = report.samples[3..].iter().map(|s| s.fds).max().unwrap_or(0);
    assert!(max_fds <= warm.fds + 16, "open fds grew from {} to {max_fds}", warm.fds);
    assert!(last.fds <= warm.fds + 4, "open fds: {} after warm-up, {} at the end", warm.fds, last.fds);
    let grown_mib = (last.rss_kib as f64 - warm.rss_kib as f64) / 1024.0;
    assert!(grown_mib < 96.0, "RSS grew by {grown_mib:.1} MiB after the warm-up");
    assert!(last.reaped > 0, "the data reaper deleted nothing");
    assert!(last.completed > 100, "too little load went through: {last:?}");
}
