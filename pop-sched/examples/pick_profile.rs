//! Profiling harness for the per-call cost of `pick` at the bench's scale (1,000,000 ready agendas of
//! 10,000 customers, uuid-shaped ids), for callgrind or perf:
//!
//! `cargo run --release -p pop-sched --example pick_profile -- <fifo|fifo-mixed|rr|prio-mixed|prio> <count> <calls>`
//!
//! Prints CPU time per call (this thread's user+system time). The dataset matches
//! `benches/sched.rs`; the state is warmed by one call before the measured calls.

use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, ReadyView, SchedulingAlgorithm};
use pop_sched::{FirstInFirstOut, Priority, PriorityConfig, RoundRobin};
use std::hint::black_box;

const CUSTOMERS: usize = 10_000;
const PER_CUSTOMER: usize = 100;

fn uuid_like(n: u64, salt: u64) -> String {
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    let y = x.rotate_left(17).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        (x & 0xfff) as u16,
        (y >> 52) as u16,
        y & 0xffff_ffff_ffff
    )
}

fn dataset(mixed: bool) -> Vec<(String, Vec<ReadyAgenda>)> {
    let mut n = 0u64;
    (0..CUSTOMERS)
        .map(|c| {
            let customer = format!("customer-{c:05}");
            let mut entries: Vec<ReadyAgenda> = (0..PER_CUSTOMER)
                .map(|k| {
                    n += 1;
                    ReadyAgenda {
                        id: uuid_like(n, 1),
                        insight_id: "insight-1".to_owned(),
                        agenda_id: uuid_like(n, 2),
                        customer_id: customer.clone(),
                        added: 1_700_000_000_000 + (k * CUSTOMERS + c) as i64,
                        priority: if mixed { ((n * 7) % 4) as i32 } else { 0 },
                    }
                })
                .collect();
            entries.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
            (customer, entries)
        })
        .collect()
}

fn view<'a>(insight: &'a Insight, data: &'a [(String, Vec<ReadyAgenda>)], now: i64) -> ReadyView<'a> {
    ReadyView {
        insight,
        customers: data
            .iter()
            .map(|(c, e)| CustomerReady { customer_id: c, weight: 1 + (c.len() as u32 % 3), entries: e })
            .collect(),
        costs: None,
        now,
    }
}

fn thread_cpu_secs() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/thread-self/stat") else { return 0.0 };
    let Some(after) = s.rfind(')').and_then(|i| s.get(i + 2..)) else { return 0.0 };
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

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
    let data = dataset(mixed);
    let insight = Insight::default();
    let now = 1_700_000_100_000;
    let mut state = AlgorithmState::Null;
    let _ = algo.pick(&view(&insight, &data, now), &mut state, count);
    let start = thread_cpu_secs();
    let wall = std::time::Instant::now();
    let mut picks = 0;
    for _ in 0..calls {
        let v = view(&insight, &data, now);
        picks += black_box(algo.pick(&v, &mut state, count)).len();
    }
    let cpu = thread_cpu_secs() - start;
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{which} count={count} calls={calls}: {:.1} us/call cpu ({:.1} us wall), {:.0}k picks/cpu-s",
        cpu * 1e6 / calls as f64,
        wall * 1e6 / calls as f64,
        picks as f64 / cpu.max(1e-9) / 1e3
    );
}
