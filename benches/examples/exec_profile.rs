//! One run of the executor bench's workload, for profilers (callgrind counts instructions repeatably on a
//! loaded machine): `cargo run --release -p pop-benches --example exec_profile -- <build|build-refs|machine|executor> <n>`.
//!
//! `executor-cpu <n> [rounds]`: the executor's thread CPU time per operation as the bench's memory pass
//! measures it (one warm-up run, then runs repeated to about 100,000 operations), `rounds` times
//! (default 5), and the least; with the system allocator (the bench counts allocations). Also the
//! process's minor page faults per operation over each round (`/proc/self/stat`) and how much the
//! warm-up run raised the peak resident set (`VmHWM`) above the agenda's, per operation.
//!
//! The agenda is the bench's layered DAG (width 100, fan-in/out 10, no-op operations; `pop_benches::exec`);
//! `executor-inline` and `executor-inline-cpu`: the same with the `noop` handler registered with
//! `InProcessRuntime::register_inline` (a launch that ends at its first poll gets no tokio task).
//!
//! `build-refs` builds the machine for the same DAG written with references instead of `dependsOn`.
//! The measured work is in the `#[inline(never)]` functions `measured_*`, so that
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_*'` counts only it.

use pop_benches::exec::{executor, executor_inline, layered, layered_refs, one_core, run_executor, run_machine};
use pop_core::model::Agenda;
use pop_exec::executor::Executor;
use pop_exec::machine::{Machine, MachineOptions};

#[inline(never)]
fn measured_build(agenda: Agenda) {
    std::hint::black_box(Machine::new(agenda, None, MachineOptions::default(), 0));
}

#[inline(never)]
fn measured_machine(agenda: Agenda) -> usize {
    run_machine(agenda)
}

#[inline(never)]
fn measured_executor(rt: &tokio::runtime::Runtime, exec: &Executor, agenda: Agenda) {
    run_executor(rt, exec, agenda);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("executor", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let agenda = if mode == "build-refs" { layered_refs(n) } else { layered(n) };
    let rt = one_core();
    let inline = mode.starts_with("executor-inline");
    let exec = if inline { executor_inline() } else { executor() };
    if mode == "executor-cpu" || mode == "executor-inline-cpu" {
        let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
        executor_cpu(&rt, &exec, &agenda, rounds);
        return;
    }
    let start = std::time::Instant::now();
    match mode {
        "build" | "build-refs" => measured_build(agenda),
        "machine" => {
            measured_machine(agenda);
        }
        "executor" | "executor-inline" => measured_executor(&rt, &exec, agenda),
        other => panic!(
            "unknown mode {other}: use build, build-refs, machine, executor, executor-cpu, executor-inline or executor-inline-cpu"
        ),
    }
    println!("{mode} {n}: {:?}", start.elapsed());
}

/// Minor page faults of this process so far (Linux `/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (in parentheses, which may hold spaces).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().nth(7).and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// The process's peak resident set so far, in bytes (Linux `/proc/self/status`, `VmHWM`).
fn peak_rss() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kb.unwrap_or(0) * 1024
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`).
fn thread_cpu() -> std::time::Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    std::time::Duration::from_nanos(text.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or(0))
}

fn executor_cpu(rt: &tokio::runtime::Runtime, exec: &Executor, agenda: &Agenda, rounds: usize) {
    let n = agenda.operations.len();
    let rss_before = peak_rss();
    measured_executor(rt, exec, agenda.clone());
    // The warm-up run's growth of the peak resident set over the agenda's, per operation.
    let rss_growth = peak_rss().saturating_sub(rss_before);
    println!(
        "executor {n}: peak RSS {} MB, {} B per operation above the agenda's",
        peak_rss() >> 20,
        rss_growth / n as u64
    );
    let reps = (100_000 / n.max(1)).max(1);
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let agendas = vec![agenda.clone(); reps];
        let faults = minor_faults();
        let start = thread_cpu();
        for a in agendas {
            measured_executor(rt, exec, a);
        }
        let us = (thread_cpu() - start).as_secs_f64() * 1e6 / (n * reps) as f64;
        let faults = (minor_faults() - faults) as f64 / (n * reps) as f64;
        best = best.min(us);
        println!("executor {n}: {us:.3} µs of CPU per operation, {faults:.3} minor page faults per operation");
    }
    println!("executor {n}: least {best:.3} µs of CPU per operation over {rounds} rounds");
}
