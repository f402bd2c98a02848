//! One run of the executor bench's workload, for profilers (callgrind counts instructions repeatably on a
//! loaded machine): `cargo run --release -p pop-benches --example exec_profile -- <build|build-refs|machine|executor> <n>`.
//!
//! The agenda is the bench's layered DAG (width 100, fan-in/out 10, no-op operations; `pop_benches::exec`);
//! `build-refs` builds the machine for the same DAG written with references instead of `dependsOn`.
//! The measured work is in the `#[inline(never)]` functions `measured_*`, so that
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_*'` counts only it.

use pop_benches::exec::{executor, layered, layered_refs, one_core, run_executor, run_machine};
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
    let exec = executor();
    let start = std::time::Instant::now();
    match mode {
        "build" | "build-refs" => measured_build(agenda),
        "machine" => {
            measured_machine(agenda);
        }
        "executor" => measured_executor(&rt, &exec, agenda),
        other => panic!("unknown mode {other}: use build, build-refs, machine or executor"),
    }
    println!("{mode} {n}: {:?}", start.elapsed());
}
