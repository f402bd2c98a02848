//! The simulator: the noisy-neighbour scenario, cost weighting, determinism, bad input.

use pop_core::sched::SchedulingAlgorithm;
use pop_sched::sim::{Report, SimConfig, Trace, run};
use pop_sched::{FirstInFirstOut, Priority, RoundRobin};

const LIGHT: usize = 50;

/// One customer with 10,000 ready agendas, 50 customers with 10 each, one insight, a pool of 10
/// slots, every agenda 1 s long. The heavy customer submitted first (t = 0), the light ones a
/// millisecond later, and the pool starts at t = 1 ms with all of it ready.
fn noisy_neighbour() -> (Trace, SimConfig) {
    let mut trace = Trace::default();
    trace.burst("heavy", 10_000, 0, 0, 1_000);
    for i in 0..LIGHT {
        trace.burst(&format!("light-{i:02}"), 10, 1, 0, 1_000);
    }
    (trace, SimConfig { slots: 10, start_at: Some(1), ..SimConfig::default() })
}

struct Summary {
    algorithm: String,
    light_first_pick_max: usize,
    light_p50_worst: u64,
    light_p99_worst: u64,
    light_max: u64,
    light_share_first_500: f64,
    heavy_p50: u64,
    heavy_max: u64,
}

fn summarize(report: &Report) -> Summary {
    let lights: Vec<_> = report.customers.iter().filter(|(c, _)| c.starts_with("light")).map(|(_, r)| r).collect();
    let heavy = &report.customers["heavy"];
    let first_500 = report.picks.iter().take(500).filter(|p| p.customer.starts_with("light")).count();
    Summary {
        algorithm: report.algorithm.clone(),
        light_first_pick_max: lights.iter().filter_map(|r| r.first_pick).max().unwrap_or(0),
        light_p50_worst: lights.iter().map(|r| r.wait_p50_ms).max().unwrap_or(0),
        light_p99_worst: lights.iter().map(|r| r.wait_p99_ms).max().unwrap_or(0),
        light_max: lights.iter().map(|r| r.wait_max_ms).max().unwrap_or(0),
        light_share_first_500: first_500 as f64 / 500.0,
        heavy_p50: heavy.wait_p50_ms,
        heavy_max: heavy.wait_max_ms,
    }
}

#[test]
fn noisy_neighbour_fairness_serves_every_light_customer_within_51_picks() {
    let (trace, config) = noisy_neighbour();
    let algos: Vec<Box<dyn SchedulingAlgorithm>> =
        vec![Box::new(FirstInFirstOut), Box::new(RoundRobin::new()), Box::new(Priority::new())];
    let mut table = String::from(
        "| algorithm | last light customer's first pick (#) | light wait p50, worst customer (s) | light wait p99, worst customer (s) | light wait max (s) | light share of first 500 picks | heavy wait p50 (s) | heavy wait max (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut summaries = Vec::new();
    for algo in &algos {
        let report = run(algo.as_ref(), &trace, &config).expect("runs");
        assert_eq!(report.picks.len(), 10_000 + LIGHT * 10, "everything runs");
        assert!(report.rejected.is_empty());
        let s = summarize(&report);
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0}% | {} | {} |\n",
            s.algorithm,
            s.light_first_pick_max,
            s.light_p50_worst / 1000,
            s.light_p99_worst / 1000,
            s.light_max / 1000,
            s.light_share_first_500 * 100.0,
            s.heavy_p50 / 1000,
            s.heavy_max / 1000
        ));
        summaries.push(s);
    }
    println!("{table}");
    let (fifo, rr, prio) = (&summaries[0], &summaries[1], &summaries[2]);
    assert!(rr.light_first_pick_max <= 51, "fairness: every light customer within the first 51 picks");
    assert!(prio.light_first_pick_max <= 51, "priority is fair among equals");
    assert!(fifo.light_first_pick_max > 10_000, "FIFO: the light customers wait behind the heavy one");
    // Under fairness the light customers are done within their 10 rounds of 51 picks.
    assert!(rr.light_max <= 52 * 1000, "light max wait {} ms", rr.light_max);
    assert!(fifo.light_p50_worst >= 1_000 * 1000, "FIFO light p50 {} ms", fifo.light_p50_worst);
}

#[test]
fn cost_weighting_balances_service_time() {
    // Two customers, equal weights, always backlogged: one's agendas take 10 s, the other's 1 s.
    let mut trace = Trace::default();
    trace.burst("long", 1_000, 0, 0, 10_000).burst("short", 3_000, 0, 0, 1_000);
    let config = SimConfig { slots: 4, observe_costs: true, ..SimConfig::default() };
    let share = |algo: &dyn SchedulingAlgorithm| {
        let report = run(algo, &trace, &config).expect("runs");
        // Look at the contended part: the first 1,000 picks.
        let mut service = [0u64; 2];
        for p in report.picks.iter().take(1_000) {
            service[usize::from(p.customer == "short")] += if p.customer == "long" { 10_000 } else { 1_000 };
        }
        service[0] as f64 / (service[0] + service[1]) as f64
    };
    let by_picks = share(&RoundRobin::new());
    let by_cost = share(&RoundRobin::cost_weighted());
    assert!(by_picks > 0.85, "by picks the long customer takes most of the time: {by_picks}");
    assert!((0.4..0.6).contains(&by_cost), "by cost the time is shared: {by_cost}");
}

#[test]
fn weighted_shares_follow_weights_in_the_simulator() {
    let mut trace = Trace::default();
    trace.burst("gold", 1_000, 0, 0, 500).burst("bronze", 1_000, 0, 0, 500);
    trace.weights.insert("gold".into(), 3);
    let report = run(&RoundRobin::new(), &trace, &SimConfig { slots: 2, ..SimConfig::default() }).expect("runs");
    let gold = report.picks.iter().take(400).filter(|p| p.customer == "gold").count();
    assert!((299..=301).contains(&gold), "gold got {gold} of the first 400 picks");
    let md = report.to_markdown();
    assert!(md.contains("| gold | 1000 |") && md.contains("| bronze | 1000 |"), "{md}");
}

#[test]
fn simulation_is_deterministic_and_checks_its_input() {
    let mut trace = Trace::default();
    for (i, c) in ["a", "b", "c"].iter().enumerate() {
        trace.burst(c, 20, i as i64 * 7, i as i32, 300 + 100 * i as u64);
    }
    trace.burst("b", 5, 2_000, 3, 50);
    let config = SimConfig { slots: 3, ..SimConfig::default() };
    let one = run(&Priority::new(), &trace, &config).expect("runs");
    let two = run(&Priority::new(), &trace, &config).expect("runs");
    assert_eq!(one, two);
    assert_eq!(one.picks.len(), 65);
    let c = &one.customers["b"];
    assert!(c.wait_p50_ms <= c.wait_p99_ms && c.wait_p99_ms <= c.wait_max_ms);
    let shares: f64 = one.customers.values().map(|c| c.pick_share).sum();
    assert!((shares - 1.0).abs() < 1e-9);
    let err = run(&FirstInFirstOut, &trace, &SimConfig { slots: 0, ..SimConfig::default() }).expect_err("no slots");
    assert!(err.to_string().contains("at least one slot"), "{err}");
    let mut bad = Trace::default();
    bad.burst("", 1, 0, 0, 1);
    assert!(run(&FirstInFirstOut, &bad, &config).is_err());
    let empty = run(&FirstInFirstOut, &Trace::default(), &config).expect("empty trace");
    assert!(empty.picks.is_empty());
}
