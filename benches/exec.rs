//! Benches for pop-exec: layered DAGs of no-op operations (fan-out 10, fan-in 10) run by the pure state
//! machine alone and by the async executor with the in-process runtime on one core (tokio current-thread).
//!
//! Before criterion runs, a memory pass prints, for each size, the wall and thread CPU time per operation
//! over runs repeated to about 100,000 operations in all, operations per second, and the peak heap bytes
//! per operation of one run, measured with a counting global allocator
//! (`peakmem-alloc`): the peak of bytes allocated and not yet freed since the run started, divided by
//! the number of operations. The agenda itself (built before) is reported separately. `build` is
//! `Machine::new` (+ drop) alone: parsing payloads, indexing names, wiring dependencies.
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use pop_benches::exec::{FAN, WIDTH, executor, layered, one_core, run_executor, run_machine};
use pop_core::model::Agenda;
use pop_exec::machine::{Machine, MachineOptions};
use std::alloc::System;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`), unaffected by other processes' load.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// Runs of one size repeated until about 100,000 operations in all: the thread's CPU time is accounted in
/// scheduler ticks, too coarse for one run of 1,000 operations.
fn reps(n: usize) -> usize {
    (100_000 / n).max(1)
}

/// Measured runs, one per agenda: (wall time, thread CPU time, peak heap bytes above the start). With
/// several agendas the times add up and the peak is the highest of any run (each frees what it built).
fn measure(agendas: Vec<Agenda>, mut f: impl FnMut(Agenda)) -> (Duration, Option<Duration>, usize) {
    GLOBAL.reset_peak_memory();
    let cpu = thread_cpu();
    let start = Instant::now();
    for a in agendas {
        f(a);
    }
    let wall = start.elapsed();
    let cpu = cpu.and_then(|c| thread_cpu().map(|d| d.saturating_sub(c)));
    (wall, cpu, GLOBAL.get_peak_memory())
}

/// One run for the peak heap, then `reps(n)` runs for the times.
fn measure_size(agenda: &Agenda, mut f: impl FnMut(Agenda)) -> (Duration, Option<Duration>, usize, usize) {
    let (_, _, peak) = measure(vec![agenda.clone()], &mut f);
    let runs = reps(agenda.operations.len());
    let (t, cpu, _) = measure(vec![agenda.clone(); runs], &mut f);
    (t, cpu, peak, runs)
}

fn memory_report() {
    println!(
        "pop-exec memory/speed pass (times over runs repeated to ~100k operations, peak heap of one run; layered DAG, width {WIDTH}, fan-in/out {FAN})"
    );
    println!(
        "{:<10} {:>8} {:>12} {:>10} {:>12} {:>14} {:>16}",
        "what", "ops", "ops/s", "µs/op", "cpu µs/op", "peak B/op", "agenda B/op"
    );
    let rt = one_core();
    let exec = executor();
    for n in SIZES {
        GLOBAL.reset_peak_memory();
        let agenda = layered(n);
        let agenda_bytes = GLOBAL.get_peak_memory();
        let m = measure_size(&agenda, |a| {
            std::hint::black_box(Machine::new(a, None, MachineOptions::default(), 0));
        });
        row("build", n, m, agenda_bytes);
        let m = measure_size(&agenda, |a| {
            run_machine(a);
        });
        row("machine", n, m, agenda_bytes);
        let m = measure_size(&agenda, |a| run_executor(&rt, &exec, a));
        row("executor", n, m, agenda_bytes);
    }
}

fn row(what: &str, n: usize, (t, cpu, peak, runs): (Duration, Option<Duration>, usize, usize), agenda_bytes: usize) {
    let ops = (n * runs) as f64;
    let secs = t.as_secs_f64();
    let cpu = cpu.map_or_else(|| "n/a".to_owned(), |c| format!("{:.3}", c.as_secs_f64() * 1e6 / ops));
    println!(
        "{:<10} {:>8} {:>12.0} {:>10.3} {:>12} {:>14} {:>16}",
        what,
        n,
        ops / secs,
        secs * 1e6 / ops,
        cpu,
        peak / n,
        agenda_bytes / n
    );
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("exec/machine");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let agenda = layered(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &agenda, |b, a| {
            b.iter_batched(|| a.clone(), run_machine, BatchSize::LargeInput)
        });
    }
    g.finish();
    let rt = one_core();
    let exec = executor();
    let mut g = c.benchmark_group("exec/executor-inprocess");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for n in SIZES {
        let agenda = layered(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &agenda, |b, a| {
            b.iter_batched(|| a.clone(), |a| run_executor(&rt, &exec, a), BatchSize::LargeInput)
        });
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and gets criterion's quick test mode only.
    if std::env::args().any(|a| a == "--bench") {
        memory_report();
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
