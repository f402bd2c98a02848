//! Resource-aware admission through the simulator: capacity never exceeded, no starvation of large
//! agendas (reservation with bounded backfill), utilisation on a mixed workload.
//!
//! `cargo test -p pop-sched --test admission -- --nocapture` prints the numbers in the README.

use pop_sched::capacity::Resources;
use pop_sched::sim::{Job, run_admission};
use proptest::prelude::*;

const GI: u64 = 1 << 30;

fn job(cpu: u64, mem_gi: u64, gpu: u64, service_ms: u64) -> Job {
    let mut demand = Resources::new().with("cpu", cpu).with("memory", mem_gi * GI);
    if gpu > 0 {
        demand = demand.with("gpu", gpu);
    }
    Job { demand, service_ms }
}

fn capacity() -> Resources {
    Resources::parse("cpu=16,memory=64Gi,gpu=2").unwrap()
}

/// 400 agendas of four shapes in a pseudo-random order: small, medium, large (12 of 16 CPUs) and
/// GPU agendas.
fn mixed() -> Vec<Job> {
    let mut x: u64 = 42;
    (0..400)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match (x >> 33) % 10 {
                0..=4 => job(1000, 2, 0, 1_000),
                5..=6 => job(4000, 8, 0, 3_000),
                7 => job(12_000, 32, 0, 5_000),
                _ => job(2000, 4, 1, 4_000),
            }
        })
        .collect()
}

#[test]
fn a_mixed_workload_uses_at_least_80_percent_and_never_exceeds_the_capacity() {
    let jobs = mixed();
    let cap = capacity();
    let r = run_admission(&jobs, &cap, 8, 16);
    eprintln!(
        "mixed: makespan {} ms, utilisation {:?}, peak {}, most started past a reserved head {}",
        r.makespan_ms, r.utilisation, r.peak, r.max_bypassed
    );
    assert!(r.peak.fits_in(&cap), "peak {} over capacity {}", r.peak, cap);
    assert!(r.started_at.iter().all(Option::is_some), "every agenda ran");
    assert!(r.utilisation["cpu"] >= 0.8, "CPU utilisation {:.3}", r.utilisation["cpu"]);
    assert!(r.max_bypassed <= 8);
}

#[test]
fn a_large_agenda_is_not_starved_by_a_stream_of_small_ones() {
    // One agenda needing the whole CPU capacity behind two small ones, then 300 more small ones of
    // staggered lengths (so that the pool never drains by itself).
    let mut jobs = vec![job(1000, 1, 0, 1_000), job(1000, 1, 0, 1_000), job(16_000, 8, 0, 2_000)];
    jobs.extend((0..300u64).map(|i| job(1000, 1, 0, 700 + (i * 137) % 900)));
    let cap = capacity();
    let bounded = run_admission(&jobs, &cap, 8, 32);
    let unbounded = run_admission(&jobs, &cap, usize::MAX, 32);
    let (b, u) = (bounded.started_at[2].unwrap(), unbounded.started_at[2].unwrap());
    eprintln!(
        "large agenda starts at {b} ms with reservation (backfill ≤ 8), {u} ms with unbounded backfill; \
         makespans {} / {} ms, CPU utilisation {:.3} / {:.3}",
        bounded.makespan_ms, unbounded.makespan_ms, bounded.utilisation["cpu"], unbounded.utilisation["cpu"]
    );
    assert!(b <= 3_000, "the large agenda waits for the running ones and at most 8 more: started at {b}");
    assert!(u >= 10_000, "without the bound small agendas overtake it for long: started at {u}");
    assert!(bounded.peak.fits_in(&cap) && unbounded.peak.fits_in(&cap));
}

#[test]
fn an_agenda_that_can_never_fit_is_refused_not_waited_for() {
    let jobs = vec![job(1000, 1, 0, 10), job(1000, 1, 4, 10), job(32_000, 1, 0, 10), job(1000, 1, 0, 10)];
    let r = run_admission(&jobs, &capacity(), 4, 8);
    assert_eq!(r.refused, 2);
    assert_eq!(r.started_at.iter().filter(|s| s.is_some()).count(), 2);
}

fn arb_job() -> impl Strategy<Value = Job> {
    (1u64..=16, 0u64..=64, 0u64..=2, 1u64..5_000).prop_map(|(cpu, mem, gpu, ms)| job(cpu * 1000, mem.max(1), gpu, ms))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the workload, backfill bound and window: the capacity is never exceeded, every
    /// agenda that fits the pool runs (no starvation), and no more than `max_backfill` agendas start
    /// past a reserved head.
    #[test]
    fn capacity_holds_and_nothing_starves(
        jobs in proptest::collection::vec(arb_job(), 1..120),
        max_backfill in 0usize..12,
        window in 1usize..24,
    ) {
        let cap = capacity();
        let r = run_admission(&jobs, &cap, max_backfill, window);
        prop_assert!(r.peak.fits_in(&cap), "peak {} over {}", r.peak, cap);
        prop_assert_eq!(r.refused, 0);
        prop_assert!(r.started_at.iter().all(Option::is_some));
        prop_assert!(r.max_bypassed <= max_backfill);
    }
}
