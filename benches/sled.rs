//! pop-store-sled: operations per second for get, put, CAS update, receive+ack and the submit batch
//! (agenda + progress + 10 operation progresses + ready entry), under flush-every-write, group commit
//! and (as the CPU ceiling) sled's background flush, with 1 and 64 concurrent writers; and the disk's
//! raw fsync rate beside them, before and after.
//!
//! Run: `cargo bench -p pop-benches --bench sled`. Every benchmark's throughput is in elements (one
//! element = one operation), so criterion's `thrpt` line is operations per second.
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pop_benches::store::{customer_record, now, submit_batch};
use pop_core::model::ReadyAgenda;
use pop_core::queue::QueueBackend;
use pop_core::store::{Kind, Store, WriteOp};
use pop_store_sled::{Config, FlushPolicy, SledStore};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// Runs `iters` operations split over `writers` tasks; `op(task, i)` does one; returns the wall time.
fn run_concurrent<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, writers: u64, op: F) -> Duration
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let share = iters / writers + u64::from(w < iters % writers);
            let op = op.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..share {
                    op(w, i).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn fsync_rate(c: &mut Criterion) {
    fsync_probe(c, "write_4k+fsync/before");
}

fn fsync_rate_after(c: &mut Criterion) {
    fsync_probe(c, "write_4k+fsync/after");
}

/// The disk's fsync rate, on the filesystem the databases use (a temporary directory): measured
/// before and after the store benches, because a shared machine's disk varies.
fn fsync_probe(c: &mut Criterion, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("fsync-probe")).unwrap();
    let block = vec![7u8; 4096];
    let mut g = c.benchmark_group("sled/disk");
    g.throughput(Throughput::Elements(1)).sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function(name, |b| {
        b.iter(|| {
            f.write_all(&block).unwrap();
            f.sync_all().unwrap();
        })
    });
    g.finish();
}

fn store_ops(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `background` (sled's periodic flush, no waiting) is the CPU ceiling the other two approach.
    let policies = [
        ("every_write", FlushPolicy::FlushEveryWrite),
        ("group_commit", FlushPolicy::GroupCommit { max_delay_ms: 1 }),
        ("background", FlushPolicy::Background { every_ms: 500 }),
    ];
    for (pname, policy) in policies {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(Config::new(dir.path()).flush_policy(policy)).unwrap();
        let mut g = c.benchmark_group(format!("sled/{pname}"));
        g.throughput(Throughput::Elements(1))
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));

        if pname == "every_write" {
            // Reads do not wait for the disk: measured once.
            let ids: Vec<String> = (0..1000).map(|i| format!("get-{i}")).collect();
            rt.block_on(async {
                for id in &ids {
                    store.write(vec![WriteOp::Create(customer_record(id))]).await.unwrap();
                }
            });
            for writers in [1, 64] {
                let s = store.clone();
                g.bench_function(format!("get/{writers}"), |b| {
                    b.iter_custom(|iters| {
                        let s = s.clone();
                        run_concurrent(&rt, iters, writers, move |w, i| {
                            let s = s.clone();
                            async move {
                                let id = format!("get-{}", (w * 7919 + i) % 1000);
                                assert!(s.get(Kind::Customer, &id).await.unwrap().is_some());
                            }
                        })
                    })
                });
            }
        }

        for writers in [1u64, 64] {
            let s = store.clone();
            g.bench_function(format!("put/{writers}"), |b| {
                b.iter_custom(|iters| {
                    let s = s.clone();
                    run_concurrent(&rt, iters, writers, move |_, _| {
                        let s = s.clone();
                        async move { s.write(vec![WriteOp::Create(customer_record(&unique("put")))]).await.unwrap() }
                    })
                })
            });

            let s = store.clone();
            g.bench_function(format!("cas_update/{writers}"), |b| {
                b.iter_custom(|iters| {
                    // One object per writer, so concurrent updates do not conflict.
                    let ids: Vec<String> = (0..writers).map(|_| unique("cas")).collect();
                    rt.block_on(async {
                        for id in &ids {
                            s.write(vec![WriteOp::Create(customer_record(id))]).await.unwrap();
                        }
                    });
                    let ids = Arc::new(ids);
                    let s = s.clone();
                    run_concurrent(&rt, iters, writers, move |w, i| {
                        let (s, ids) = (s.clone(), ids.clone());
                        async move {
                            let record = customer_record(&ids[w as usize]);
                            s.write(vec![WriteOp::Update { record, expected_version: i + 1 }]).await.unwrap();
                        }
                    })
                })
            });

            let s = store.clone();
            g.bench_function(format!("receive+ack/{writers}"), |b| {
                b.iter_custom(|iters| {
                    let insight = Arc::new(unique("q"));
                    let q = Arc::new(s.queue());
                    // Fill the queue (not timed).
                    {
                        let (q, insight) = (q.clone(), insight.clone());
                        run_concurrent(&rt, iters, 64, move |w, i| {
                            let (q, insight) = (q.clone(), insight.clone());
                            async move {
                                let item = ReadyAgenda { agenda_id: format!("a-{w}-{i}"), ..Default::default() };
                                assert!(q.push(&insight, item, now()).await.unwrap());
                            }
                        });
                    }
                    run_concurrent(&rt, iters, writers, move |_, _| {
                        let (q, insight) = (q.clone(), insight.clone());
                        async move {
                            let leases = q.receive(&insight, 1, 600_000, now()).await.unwrap();
                            assert_eq!(leases.len(), 1, "one item per iteration was pushed");
                            q.ack(&leases[0].token).await.unwrap();
                        }
                    })
                })
            });

            let s = store.clone();
            g.bench_function(format!("submit_batch_13/{writers}"), |b| {
                b.iter_custom(|iters| {
                    let s = s.clone();
                    run_concurrent(&rt, iters, writers, move |_, _| {
                        let s = s.clone();
                        async move { s.write(submit_batch(&unique("agenda"), "bench-insight").0).await.unwrap() }
                    })
                })
            });
        }
        g.finish();
        drop(store);
    }
}

criterion_group!(benches, fsync_rate, store_ops, fsync_rate_after);
criterion_main!(benches);
