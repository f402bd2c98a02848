//! A deterministic simulator: replays a trace of arrivals through a scheduling algorithm and a pool
//! of `slots` workers, in simulated time.
//!
//! Model: agendas arrive into the ready set at their `at` time. Whenever slots are free (at the pool's
//! start and each time an agenda finishes or arrives), the algorithm picks as many agendas as there are
//! free slots (through [`pick_checked`], so its contract is enforced);
//! each runs for its `service_ms`. Events at the same instant are handled arrivals first, then
//! completions, then one pick. Nothing reads a clock; the same trace gives the same report.
//!
//! The report has, per customer, the wait (pick time − arrival) p50/p99/max, the share of picks and
//! the share of service time, and the index of its first pick; and the whole pick sequence.

use crate::refill::pick_checked;
use pop_core::model::{Insight, Millis, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerKeys, CustomerReady, ReadyView, SchedulingAlgorithm};
use pop_core::{Error, Problem, Result};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;

/// One agenda arriving in the ready set.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// When it becomes ready (simulated epoch ms).
    pub at: Millis,
    /// Its customer.
    pub customer: String,
    /// Its priority.
    pub priority: i32,
    /// How long it occupies a slot once picked.
    pub service_ms: u64,
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The arrivals, in any order (replayed by time, then by position here).
    pub arrivals: Vec<Arrival>,
    /// Customer weights (default 1).
    pub weights: BTreeMap<String, u32>,
}

impl Trace {
    /// Adds `n` arrivals of a customer at `at`, all with `priority` and `service_ms`.
    pub fn burst(&mut self, customer: &str, n: usize, at: Millis, priority: i32, service_ms: u64) -> &mut Self {
        self.arrivals.extend((0..n).map(|_| Arrival { at, customer: customer.to_owned(), priority, service_ms }));
        self
    }
}

/// The pool and the insight being simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Parallel slots of the pool (≥ 1).
    pub slots: usize,
    /// When the pool starts picking; arrivals before it wait as a backlog. `None`: at the first arrival.
    pub start_at: Option<Millis>,
    /// Give the algorithm each customer's observed mean service time (seconds) as `costs`, from the
    /// agendas of that customer finished so far.
    pub observe_costs: bool,
    /// The insight handed to the algorithm in the view.
    pub insight: Insight,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { slots: 1, start_at: None, observe_costs: false, insight: Insight::default() }
    }
}

/// One pick in the simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// 1-based index of the pick.
    pub seq: usize,
    /// When it was picked.
    pub at: Millis,
    /// Its customer.
    pub customer: String,
    /// Its agenda id (`<customer>#<n>`, n counting that customer's arrivals from 0).
    pub agenda_id: String,
    /// How long it had waited.
    pub wait_ms: u64,
}

/// Per-customer results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerReport {
    /// Agendas that arrived.
    pub arrived: usize,
    /// Agendas picked.
    pub picked: usize,
    /// 1-based index of its first pick.
    pub first_pick: Option<usize>,
    /// Median wait, ms (nearest rank).
    pub wait_p50_ms: u64,
    /// 99th-percentile wait, ms (nearest rank).
    pub wait_p99_ms: u64,
    /// Longest wait, ms.
    pub wait_max_ms: u64,
    /// Its share of all picks (0..=1).
    pub pick_share: f64,
    /// Its share of all service time of picked agendas (0..=1).
    pub service_share: f64,
}

/// The result of a simulation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The algorithm's name.
    pub algorithm: String,
    /// Per customer.
    pub customers: BTreeMap<String, CustomerReport>,
    /// Every pick, in order.
    pub picks: Vec<Pick>,
    /// When the last agenda finished.
    pub end_ms: Millis,
    /// Contract violations the algorithm's answers had (dropped picks), if any.
    pub rejected: Vec<String>,
}

impl Report {
    /// A markdown table: one row per customer.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| customer | agendas | first pick # | wait p50 (ms) | wait p99 (ms) | wait max (ms) | share of picks | share of service |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, c) in &self.customers {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% |",
                c.arrived,
                c.first_pick.map_or("-".to_string(), |p| p.to_string()),
                c.wait_p50_ms,
                c.wait_p99_ms,
                c.wait_max_ms,
                c.pick_share * 100.0,
                c.service_share * 100.0
            );
        }
        out
    }
}

/// One customer's ready list: sorted by (priority desc, added asc, agenda id), live from `start`.
#[derive(Default)]
struct ReadyList {
    entries: Vec<ReadyAgenda>,
    start: usize,
}

impl ReadyList {
    fn live(&self) -> &[ReadyAgenda] {
        &self.entries[self.start..]
    }

    fn insert(&mut self, e: ReadyAgenda) {
        let live = &self.entries[self.start..];
        let at = self.start + live.partition_point(|x| x.order_key() < e.order_key());
        self.entries.insert(at, e);
    }

    fn remove(&mut self, e: &ReadyAgenda) -> bool {
        let live = &self.entries[self.start..];
        let Ok(i) = live.binary_search_by(|x| x.order_key().cmp(&e.order_key())) else {
            return false;
        };
        let i = self.start + i;
        if i == self.start {
            self.start += 1;
            if self.start > 1024 && self.start * 2 > self.entries.len() {
                self.entries.drain(..self.start);
                self.start = 0;
            }
        } else {
            self.entries.remove(i);
        }
        true
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Replays `trace` through `algorithm` (its state starting fresh). Errors on a pool of zero slots or an
/// arrival without customer.
pub fn run(algorithm: &dyn SchedulingAlgorithm, trace: &Trace, config: &SimConfig) -> Result<Report> {
    if config.slots == 0 {
        return Err(Error::problems(vec![Problem::new("simulation needs at least one slot").field("slots")]));
    }
    if let Some(i) = trace.arrivals.iter().position(|a| a.customer.is_empty()) {
        return Err(Error::problems(vec![
            Problem::new(format!("arrival {i} has an empty customer")).field(format!("arrivals[{i}].customer")),
        ]));
    }
    let mut order: Vec<usize> = (0..trace.arrivals.len()).collect();
    order.sort_by_key(|&i| (trace.arrivals[i].at, i));
    // Agenda ids `<customer>#<n>`, n zero-padded so ids sort by arrival within a customer.
    let mut seq_of: HashMap<&str, usize> = HashMap::new();
    let mut ids = vec![String::new(); trace.arrivals.len()];
    for &i in &order {
        let a = &trace.arrivals[i];
        let n = seq_of.entry(a.customer.as_str()).or_insert(0);
        ids[i] = format!("{}#{:09}", a.customer, n);
        *n += 1;
    }
    let index_of: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let insight_id = config.insight.id.clone().unwrap_or_else(|| "sim".to_owned());

    let mut ready: BTreeMap<String, ReadyList> = BTreeMap::new();
    let mut running: BinaryHeap<Reverse<(Millis, usize)>> = BinaryHeap::new();
    let mut free = config.slots;
    let mut next_arrival = 0usize;
    let mut state = AlgorithmState::new();
    // The state stays in memory from call to call: the views carry keys, so RoundRobin and Priority
    // find their customers' entries without reading the ids.
    let mut keys = CustomerKeys::new();
    let mut picks: Vec<Pick> = Vec::new();
    let mut rejected = Vec::new();
    let mut done_service: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut end_ms: Millis = 0;
    let mut now = match (order.first(), config.start_at) {
        (Some(&i), Some(s)) => trace.arrivals[i].at.min(s),
        (Some(&i), None) => trace.arrivals[i].at,
        (None, _) => return Ok(Report { algorithm: algorithm.name().to_owned(), ..Report::default() }),
    };
    let start = config.start_at.unwrap_or(now);

    loop {
        while next_arrival < order.len() && trace.arrivals[order[next_arrival]].at <= now {
            let i = order[next_arrival];
            let a = &trace.arrivals[i];
            ready.entry(a.customer.clone()).or_default().insert(ReadyAgenda {
                id: ids[i].clone(),
                insight_id: insight_id.clone(),
                agenda_id: ids[i].clone(),
                customer_id: a.customer.clone(),
                added: a.at,
                priority: a.priority,
            });
            next_arrival += 1;
        }
        while let Some(&Reverse((end, i))) = running.peek() {
            if end > now {
                break;
            }
            running.pop();
            free += 1;
            let a = &trace.arrivals[i];
            let slot = done_service.entry(a.customer.clone()).or_insert((0.0, 0));
            slot.0 += a.service_ms as f64 / 1000.0;
            slot.1 += 1;
        }
        if now >= start && free > 0 {
            let costs: Option<BTreeMap<String, f64>> = config
                .observe_costs
                .then(|| done_service.iter().map(|(c, (s, n))| (c.clone(), s / *n as f64)).collect());
            let customers: Vec<CustomerReady<'_>> = ready
                .iter()
                .filter(|(_, l)| !l.live().is_empty())
                .map(|(c, l)| CustomerReady {
                    customer_id: c.as_str(),
                    weight: trace.weights.get(c).copied().unwrap_or(1).max(1),
                    entries: l.live(),
                    runs: &[],
                    key: keys.key(c),
                })
                .collect();
            if !customers.is_empty() {
                let view = ReadyView {
                    insight: &config.insight,
                    customers,
                    costs: costs.as_ref(),
                    now,
                    keys: Some(keys.space()),
                };
                let count = free.min(view.len());
                let plan = pick_checked(algorithm, &view, &mut state, count)?;
                rejected.extend(plan.rejected);
                for p in plan.picks {
                    let Some(list) = ready.get_mut(&p.customer_id) else { continue };
                    if !list.remove(&p) {
                        continue;
                    }
                    let Some(&i) = index_of.get(p.agenda_id.as_str()) else { continue };
                    let a = &trace.arrivals[i];
                    free -= 1;
                    let end = now.saturating_add(a.service_ms.min(i64::MAX as u64) as i64);
                    end_ms = end_ms.max(end);
                    running.push(Reverse((end, i)));
                    picks.push(Pick {
                        seq: picks.len() + 1,
                        at: now,
                        customer: a.customer.clone(),
                        agenda_id: p.agenda_id,
                        wait_ms: now.saturating_sub(a.at).max(0) as u64,
                    });
                }
            }
        }
        let mut next = running.peek().map(|Reverse((end, _))| *end);
        if next_arrival < order.len() {
            let at = trace.arrivals[order[next_arrival]].at;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if now < start {
            next = Some(next.map_or(start, |n| n.min(start)));
        }
        match next {
            // t == now only for a zero-length service that finishes at once: handled next round.
            Some(t) => now = t.max(now),
            None => break,
        }
    }

    let mut report =
        Report { algorithm: algorithm.name().to_owned(), picks: Vec::new(), end_ms, rejected, ..Report::default() };
    let mut waits: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut service: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total_service = 0u64;
    for a in &trace.arrivals {
        report.customers.entry(a.customer.clone()).or_default().arrived += 1;
    }
    for p in &picks {
        let c = report.customers.entry(p.customer.clone()).or_default();
        c.picked += 1;
        c.first_pick.get_or_insert(p.seq);
        waits.entry(p.customer.as_str()).or_default().push(p.wait_ms);
        let s = index_of.get(p.agenda_id.as_str()).map_or(0, |&i| trace.arrivals[i].service_ms);
        *service.entry(p.customer.as_str()).or_default() += s;
        total_service += s;
    }
    let total_picks = picks.len().max(1) as f64;
    for (name, c) in report.customers.iter_mut() {
        if let Some(w) = waits.get_mut(name.as_str()) {
            w.sort_unstable();
            c.wait_p50_ms = percentile(w, 0.50);
            c.wait_p99_ms = percentile(w, 0.99);
            c.wait_max_ms = w.last().copied().unwrap_or(0);
        }
        c.pick_share = c.picked as f64 / total_picks;
        c.service_share = service.get(name.as_str()).copied().unwrap_or(0) as f64 / total_service.max(1) as f64;
    }
    report.picks = picks;
    Ok(report)
}

/// One agenda of an admission workload: what it demands and how long it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its demand.
    pub demand: crate::capacity::Resources,
    /// How long it runs once started, ms.
    pub service_ms: u64,
}

/// What [`run_admission`] measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdmissionReport {
    /// When each job started (ms), by job index; `None` for jobs refused as never fitting.
    pub started_at: Vec<Option<u64>>,
    /// When the last job finished, ms.
    pub makespan_ms: u64,
    /// The most of each resource in use at once.
    pub peak: crate::capacity::Resources,
    /// Per resource of the capacity: the time-averaged use over the makespan divided by the capacity.
    pub utilisation: BTreeMap<String, f64>,
    /// The most jobs that started while one job was the reserved head (ahead of it).
    pub max_bypassed: usize,
    /// Jobs refused as never fitting.
    pub refused: usize,
}

/// Replays `jobs`, all queued at time 0 in this order, through an [`Admitter`](crate::capacity::Admitter)
/// of `capacity` with `max_backfill`, seeing the first `window` jobs not started yet (what a pool
/// holds from its pulls). Deterministic.
pub fn run_admission(
    jobs: &[Job],
    capacity: &crate::capacity::Resources,
    max_backfill: usize,
    window: usize,
) -> AdmissionReport {
    use crate::capacity::{Admit, Admitter};
    let mut admitter = Admitter::new(capacity.clone(), max_backfill);
    let mut report = AdmissionReport { started_at: vec![None; jobs.len()], ..AdmissionReport::default() };
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut now = 0u64;
    // (resource → integral of use over time)
    let mut area: BTreeMap<String, f64> = BTreeMap::new();
    let mut last = 0u64;
    loop {
        // start what can start now
        loop {
            let keys: Vec<String> = pending.iter().take(window.max(1)).map(|i| i.to_string()).collect();
            let cands: Vec<(&str, &crate::capacity::Resources)> =
                pending.iter().take(window.max(1)).zip(&keys).map(|(i, k)| (k.as_str(), &jobs[*i].demand)).collect();
            match admitter.choose(&cands) {
                Admit::Start(j) => {
                    let i = pending.remove(j);
                    admitter.started(&jobs[i].demand);
                    report.peak.max_with(admitter.in_use());
                    report.started_at[i] = Some(now);
                    running.push(Reverse((now + jobs[i].service_ms, i)));
                }
                Admit::Never(j, _) => {
                    pending.remove(j);
                    report.refused += 1;
                }
                Admit::Wait => break,
            }
            if let Some((_, n)) = admitter.reserved() {
                report.max_bypassed = report.max_bypassed.max(n);
            }
        }
        let Some(Reverse((end, i))) = running.pop() else { break };
        for (k, v) in &admitter.in_use().0 {
            *area.entry(k.clone()).or_insert(0.0) += *v as f64 * (end - last) as f64;
        }
        last = end;
        now = end;
        admitter.finished(&jobs[i].demand);
        // finish everything ending at the same instant before starting more
        while let Some(Reverse((e, j))) = running.peek().copied() {
            if e != now {
                break;
            }
            running.pop();
            admitter.finished(&jobs[j].demand);
        }
    }
    report.makespan_ms = now;
    for (k, cap) in &capacity.0 {
        let used = area.get(k).copied().unwrap_or(0.0);
        let denom = *cap as f64 * now.max(1) as f64;
        report.utilisation.insert(k.clone(), if denom > 0.0 { used / denom } else { 0.0 });
    }
    report
}
