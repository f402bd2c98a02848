//! A custom scheduling algorithm: **earliest deadline first, with a fairness floor**.
//!
//! Each agenda gets a deadline: the moment it became ready plus the service-level target of its
//! priority (priority ≥ 2: 1 s, 1: 10 s, otherwise 60 s). The algorithm picks the earliest deadline,
//! except that a customer with work waiting who has gone `floor` picks without one is served first, so
//! a customer flooding urgent work cannot starve the others. Its state (picks since each customer was
//! last served) is a typed serde value that the scheduler stores per insight.
//!
//! The example replays a workload through the algorithm with the deterministic simulator
//! (`pop::sched::sim`), then registers it on a live embedded instance (`PopBuilder::algorithm`), names
//! it in an insight's `schedulingAlgorithm`, runs the same workload with one slot and prints both pick
//! orders.
//!
//! Run: `cargo run -p pop-examples --example custom_scheduler`

use pop::core::authz::Principal;
use pop::core::model::{Agenda, Customer, Insight, Millis, Operation, ReadyAgenda, ResourcePool};
use pop::core::sched::{Algorithm, Explanation, ReadyView};
use pop::sched::sim::{SimConfig, Trace};
use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_examples::{BoxError, Out};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The algorithm. Pure: it sees the ready set and its own state, nothing else.
pub struct EarliestDeadline {
    /// After this many picks without one, a waiting customer goes first.
    pub floor: u32,
}

/// Its state: per customer with work waiting, the picks made since it was last served. `v` lets a
/// later version of the algorithm recognise this shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeadlineState {
    #[serde(default)]
    v: u32,
    waited: BTreeMap<String, u32>,
}

impl EarliestDeadline {
    /// The name insights use in `schedulingAlgorithm` (compared case-insensitively).
    pub const NAME: &'static str = "EarliestDeadline";

    /// The deadline of an entry: ready time + the target of its priority.
    pub fn deadline(entry: &ReadyAgenda) -> Millis {
        let target_ms = match entry.priority {
            p if p >= 2 => 1_000,
            1 => 10_000,
            _ => 60_000,
        };
        entry.added + target_ms
    }
}

impl Algorithm for EarliestDeadline {
    type State = DeadlineState;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut DeadlineState, count: usize) -> Vec<ReadyAgenda> {
        // Forget customers that have nothing waiting: the state stays as small as the ready set.
        state.waited.retain(|c, _| view.customer_index(c).is_some());
        // Every entry by deadline (ties by agenda id). O(n log n) per call: fine for an example; a
        // production algorithm would walk each customer's list, which the view keeps sorted.
        let mut queue: Vec<(Millis, &ReadyAgenda)> =
            view.customers.iter().flat_map(|c| c.entries.iter()).map(|e| (Self::deadline(e), e)).collect();
        queue.sort_by(|a, b| (a.0, &a.1.agenda_id).cmp(&(b.0, &b.1.agenda_id)));
        let mut taken = vec![false; queue.len()];
        let mut out = Vec::new();
        while out.len() < count {
            let left = |taken: &[bool], customer: &str| {
                queue.iter().zip(taken).any(|((_, e), t)| !t && e.customer_id == customer)
            };
            // The customer who waited longest, if it reached the floor and still has work.
            let starving = state
                .waited
                .iter()
                .filter(|(c, w)| **w >= self.floor && left(&taken, c))
                .max_by_key(|(c, w)| (**w, std::cmp::Reverse(c.as_str())))
                .map(|(c, _)| c.clone());
            let next = queue
                .iter()
                .zip(&taken)
                .position(|((_, e), t)| !t && starving.as_deref().is_none_or(|c| e.customer_id == c));
            let Some(i) = next else { break };
            taken[i] = true;
            let entry = queue[i].1;
            // Every other customer with work waited one more pick.
            for c in &view.customers {
                if c.customer_id != entry.customer_id && left(&taken, c.customer_id) {
                    *state.waited.entry(c.customer_id.to_owned()).or_default() += 1;
                }
            }
            state.waited.insert(entry.customer_id.clone(), 0);
            out.push(entry.clone());
        }
        out
    }

    fn explain(&self, view: &ReadyView<'_>, state: &DeadlineState, agenda_id: &str) -> Option<Explanation> {
        let order = self.pick(view, &mut state.clone(), view.len());
        let position = order.iter().position(|p| p.agenda_id == agenda_id)?;
        let deadline = Self::deadline(&order[position]);
        Some(Explanation {
            agenda_id: agenda_id.into(),
            position,
            reason: format!("deadline {deadline}; {position} agendas have earlier deadlines or are owed a turn"),
        })
    }
}

/// The workload: globex floods urgent work (priority 2), acme has routine work (priority 0).
const WORKLOAD: [(&str, usize, i32); 2] = [("globex", 8, 2), ("acme", 3, 0)];
/// The fairness floor of the example.
const FLOOR: u32 = 3;

/// Runs the example: the simulated pick order, then the live one.
pub async fn run(mut out: Out) -> Result<Out, BoxError> {
    let algorithm = Arc::new(EarliestDeadline { floor: FLOOR });

    // 1. Replay the workload through the simulator: one slot, 100 ms per agenda, everything ready at 0.
    let mut trace = Trace::default();
    for (customer, n, priority) in WORKLOAD {
        trace.burst(customer, n, 0, priority, 100);
    }
    let insight = Insight { id: Some("deadlines".into()), ..Insight::default() };
    let report =
        pop::sched::sim::run(algorithm.as_ref(), &trace, &SimConfig { slots: 1, insight, ..Default::default() })?;
    let simulated: Vec<&str> = report.picks.iter().map(|p| p.customer.as_str()).collect();
    out.say(format!("simulated pick order: {}", simulated.join(" ")));
    out.say(report.to_markdown());

    // 2. The same workload on a live embedded instance: the algorithm registered on the builder, an
    //    insight naming it, one pool worker running one agenda at a time.
    let data = tempfile::tempdir()?;
    let handlers = pop::exec::inprocess::InProcessRuntime::new();
    handlers.register("work", |_ctx| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(serde_json::json!({"done": true}))
    });
    let config = PopConfig { scheduler_interval: Duration::from_millis(20), ..PopConfig::default() };
    let pop = Pop::builder()
        .sled_path(data.path())?
        .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(handlers))))
        .algorithm(algorithm)
        .config(config)
        .build()?;
    let admin = Principal::superuser("example");
    let objects = pop.objects();
    let owner = Some("operator".to_owned());
    objects
        .create(
            &admin,
            ResourcePool {
                id: Some("pool".into()),
                title: Some("pool".into()),
                customer_id: owner.clone(),
                ..Default::default()
            },
        )
        .await?;
    objects
        .create(
            &admin,
            Insight {
                id: Some("deadlines".into()),
                title: Some("deadline lane".into()),
                customer_id: owner,
                resource_pool_id: Some("pool".into()),
                is_global: true,
                queue_size: Some(1), // one waiting agenda at a time: every pick is one call of `pick`
                scheduling_algorithm: Some(EarliestDeadline::NAME.into()),
                mappers: [("operationType".to_owned(), vec!["work".to_owned()])].into(),
                ..Default::default()
            },
        )
        .await?;
    let mut ids = Vec::new();
    for (customer, n, priority) in WORKLOAD {
        objects
            .create(
                &admin,
                Customer {
                    id: Some(customer.into()),
                    title: Some(customer.into()),
                    customer_id: Some(customer.into()),
                    resource_pool_id: Some("pool".into()),
                    ..Default::default()
                },
            )
            .await?;
        for _ in 0..n {
            let agenda = Agenda {
                customer_id: Some(customer.into()),
                priority,
                operations: vec![Operation { name: "w".into(), op_type: "work".into(), ..Default::default() }],
                ..Default::default()
            };
            ids.push((customer, pop.agendas().submit(&admin, agenda).await?.id.unwrap_or_default()));
        }
    }
    // Everything is ready before the loops start, as in the simulation.
    pop.start_all(WorkerConfig { max_running: 1, pull_count: 1, ..WorkerConfig::for_insights(["deadlines"]) });
    let agenda_ids: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    let finals = pop::embedded::wait_all(&pop, &agenda_ids, Duration::from_millis(50), |_| {}).await?;
    pop.shutdown().await;

    // The pick order is the start order (one slot, one waiting agenda).
    let mut started: Vec<(i64, &str)> =
        ids.iter().zip(&finals).map(|((customer, _), p)| (p.started_time.unwrap_or(i64::MAX), *customer)).collect();
    started.sort();
    let live: Vec<&str> = started.iter().map(|(_, c)| *c).collect();
    out.say(format!("live pick order:      {}", live.join(" ")));
    out.say(format!("live order matches the simulation: {}", if live == simulated { "yes" } else { "no" }));
    Ok(out)
}

/// Runs the example on stdout.
pub fn main() -> std::process::ExitCode {
    pop_examples::main_with("custom_scheduler", run)
}
