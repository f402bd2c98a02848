//! Profiling harness for the per-call cost of `pick` at the bench's scale (1,000,000 ready agendas of
//! 10,000 customers, uuid-shaped ids), for callgrind or perf:
//!
//! `cargo run --release -p pop-benches --example pick_profile -- <fifo|fifo-mixed|rr|prio-mixed|prio|ids> <count> <calls> [searched|keyed] [ids-together]`
//!
//! `searched`: the view carries no priority runs (the algorithm searches them, as before views carried them).
//! `keyed`: the view carries the customers' keys (`ReadyView::keys`): RoundRobin and Priority find
//! their per-customer state by key, without reading the ids.
//! `ids`: no algorithm; each call builds the view and reads one byte of every customer's id (the
//! floor of an algorithm that matches customers against its state). `ids-together`: the dataset
//! with the customer ids allocated one after another (`dataset_ids_together`).
//!
//! Prints CPU time per call (this thread's user+system time). The dataset is
//! `benches/sched.rs`'s (`pop_benches::sched`); the state is warmed by one call before the measured calls.

use pop_benches::sched::{dataset, dataset_ids_together, view, view_keyed, view_searching};
use pop_core::model::Insight;
use pop_core::sched::{AlgorithmState, SchedulingAlgorithm};
use pop_sched::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("rr");
    let count: usize = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(100);
    let calls: usize = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(100);
    let (algo, mixed): (Box<dyn SchedulingAlgorithm>, bool) = match which {
        "fifo" => (Box::new(FirstInFirstOut), false),
        "fifo-mixed" => (Box::new(FirstInFirstOut), true),
        "prio-mixed" => (Box::new(Priority::new()), true),
        "prio" => {
            (Box::new(Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false })), false)
        }
        _ => (Box::new(RoundRobin::new()), false),
    };
    let flag = |f: &str| args.iter().skip(4).any(|a| a == f);
    let data = if flag("ids-together") { dataset_ids_together(mixed) } else { dataset(mixed) };
    let view = if flag("searched") {
        view_searching
    } else if flag("keyed") {
        view_keyed
    } else {
        view
    };
    let ids_only = which == "ids";
    let insight = Insight::default();
    let now = 1_700_000_100_000;
    let mut state = AlgorithmState::new();
    let _ = algo.pick(&view(&insight, &data, now), &mut state, count);
    let cpu_now = || pop_benches::thread_cpu_secs().unwrap_or(0.0);
    let start = cpu_now();
    let wall = std::time::Instant::now();
    let mut picks = 0;
    for _ in 0..calls {
        let v = view(&insight, &data, now);
        if ids_only {
            black_box(v.customers.iter().fold(0u8, |t, c| t ^ c.customer_id.as_bytes().first().copied().unwrap_or(0)));
            picks += count;
            continue;
        }
        picks += black_box(algo.pick(&v, &mut state, count)).map_or(0, |p| p.len());
    }
    let cpu = cpu_now() - start;
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{which} count={count} calls={calls}: {:.1} us/call cpu ({:.1} us wall), {:.0}k picks/cpu-s",
        cpu * 1e6 / calls as f64,
        wall * 1e6 / calls as f64,
        picks as f64 / cpu.max(1e-9) / 1e3
    );
}
