//! Benches for pop-sched: picks per second over 1,000,000 ready agendas of 10,000 customers, for each
//! algorithm, and the memory of a ready entry.
//!
//! Each measured iteration builds the view (one `CustomerReady` per customer, as the scheduler loop
//! does from the store's listing) and picks `count` agendas, carrying the algorithm's state from one
//! iteration to the next (the ready set is not shrunk, so every customer stays backlogged: the
//! steady state of a loaded insight). Throughput is in picks. `view/build` measures the view alone.
//!
//! Run: `cargo bench -p pop-benches --bench sched` (`POP_BENCH_SCHED_CPU_TABLE=0` skips the CPU-time
//! table printed first: picks per CPU-second, which stays meaningful on a shared machine).
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{BenchmarkId, Criterion, Throughput};
use pop_benches::sched::{CUSTOMERS, Dataset, PER_CUSTOMER, dataset, view, view_searching};
use pop_benches::thread_cpu_secs;
use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, SchedulingAlgorithm};
use pop_sched::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
use std::hint::black_box;
use std::time::Duration;

/// Picks per CPU-second at several counts per call, and the fixed per-call cost, printed as a
/// markdown table.
fn cpu_table(insight: &Insight, algos: &[Algo<'_>], now: i64) {
    if std::env::var("POP_BENCH_SCHED_CPU_TABLE").is_ok_and(|v| v == "0") {
        println!("cpu: table skipped (POP_BENCH_SCHED_CPU_TABLE=0)");
        return;
    }
    if thread_cpu_secs().is_none() {
        println!("cpu: /proc/thread-self/stat unavailable; skipping the CPU-time table");
        return;
    }
    let counts = [100usize, 1_000, 10_000, 100_000];
    println!("cpu: picks per CPU-second (this thread's user+system time; the view build is included)");
    println!("| algorithm | {} |", counts.map(|c| format!("{c} per call")).join(" | "));
    println!("|---|{}", "---:|".repeat(counts.len()));
    for (name, algo, data, with_runs) in algos {
        let view = if *with_runs { view } else { view_searching };
        let mut cells = Vec::new();
        for count in counts {
            let mut state = AlgorithmState::new();
            // Warm the state (first calls see every customer join).
            let _ = algo.pick(&view(insight, data, now), &mut state, count);
            let start = thread_cpu_secs().unwrap_or(0.0);
            let (mut picks, mut calls) = (0usize, 0usize);
            let mut spent = 0.0;
            while spent < 1.0 || calls < 3 {
                let v = view(insight, data, now);
                picks += black_box(algo.pick(&v, &mut state, count)).map_or(0, |p| p.len());
                calls += 1;
                spent = thread_cpu_secs().unwrap_or(start) - start;
            }
            cells.push(format!("{:.0}k/s ({:.2} ms/call)", picks as f64 / spent / 1e3, spent * 1e3 / calls as f64));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
}

/// (name, algorithm, data, whether the view carries the runs).
type Algo<'a> = (&'static str, Box<dyn SchedulingAlgorithm>, &'a Dataset, bool);

fn heap_bytes(e: &ReadyAgenda) -> usize {
    e.id.capacity() + e.insight_id.capacity() + e.agenda_id.capacity() + e.customer_id.capacity()
}

/// Prints the memory of a ready entry and of the per-call structures.
fn memory_report(data: &Dataset) {
    let entries: usize = data.iter().map(|(_, e)| e.len()).sum();
    let heap: usize = data.iter().flat_map(|(_, e)| e.iter()).map(heap_bytes).sum();
    let inline = std::mem::size_of::<ReadyAgenda>();
    println!("memory: {entries} ready entries of {CUSTOMERS} customers");
    println!(
        "memory: ReadyAgenda size_of = {inline} B, heap (4 strings: uuid id, insight id, uuid agenda id, customer id) = {:.1} B, total = {:.1} B per ready entry",
        heap as f64 / entries as f64,
        inline as f64 + heap as f64 / entries as f64
    );
    println!(
        "memory: view = {} B per customer (CustomerReady) = {:.2} B per ready entry at {PER_CUSTOMER} per customer",
        std::mem::size_of::<CustomerReady<'_>>(),
        std::mem::size_of::<CustomerReady<'_>>() as f64 / PER_CUSTOMER as f64
    );
    let insight = Insight::default();
    let v = view(&insight, data, 1_700_000_100_000);
    let mut state = AlgorithmState::new();
    let _ = SchedulingAlgorithm::pick(&RoundRobin::new(), &v, &mut state, 10_000);
    let text = state.to_json().unwrap_or_default();
    println!(
        "memory: RoundRobin state after 10,000 picks = {} B as JSON ({:.1} B per customer; independent of the ready count)",
        text.len(),
        text.len() as f64 / CUSTOMERS as f64
    );
}

fn picks(c: &mut Criterion) {
    let uniform = dataset(false);
    let mixed = dataset(true);
    memory_report(&uniform);
    let insight = Insight::default();
    let now = 1_700_000_100_000;

    let mut g = c.benchmark_group("view");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("build/10000-customers", |b| b.iter(|| black_box(view(&insight, &uniform, now)).customers.len()));
    g.finish();

    let algos: Vec<Algo<'_>> = vec![
        ("FirstInFirstOut/uniform", Box::new(FirstInFirstOut), &uniform, true),
        ("FirstInFirstOut/mixed-priorities", Box::new(FirstInFirstOut), &mixed, true),
        ("RoundRobin/weighted", Box::new(RoundRobin::new()), &uniform, true),
        ("Priority/mixed-priorities-aging", Box::new(Priority::new()), &mixed, true),
        (
            "Priority/uniform-no-aging",
            Box::new(Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false })),
            &uniform,
            true,
        ),
        ("FirstInFirstOut/mixed-priorities, runs searched", Box::new(FirstInFirstOut), &mixed, false),
        ("Priority/mixed-priorities-aging, runs searched", Box::new(Priority::new()), &mixed, false),
    ];
    cpu_table(&insight, &algos, now);

    let mut g = c.benchmark_group("pick");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (name, algo, data, _) in &algos[..5] {
        for count in [1_000usize, 100_000] {
            g.throughput(Throughput::Elements(count as u64));
            let mut state = AlgorithmState::new();
            g.bench_with_input(BenchmarkId::new(*name, count), &count, |b, &count| {
                b.iter(|| {
                    let v = view(&insight, data, now);
                    black_box(algo.pick(&v, &mut state, count)).map_or(0, |p| p.len())
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("explain");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, algo, data, _) in &algos[..4] {
        // The 5th agenda of a customer in the middle: ~5 rounds of the rotation (~50,000 picks) to replay.
        let target = data[CUSTOMERS / 2].1[4].agenda_id.clone();
        let state = AlgorithmState::new();
        g.bench_function(BenchmarkId::new(*name, "5th-of-middle-customer"), |b| {
            b.iter(|| {
                let v = view(&insight, data, now);
                black_box(algo.explain(&v, &state, &target)).ok().flatten().map(|e| e.position)
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    picks(&mut c);
    c.final_summary();
}
