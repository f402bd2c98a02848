//! The scheduler loop: per insight, refill the queue from the ready set with the insight's algorithm.
//!
//! One scheduler per insight at a time across instances, held by a named store lease. Each pick is
//! pushed to the queue (idempotent by agenda id) and only then removed from the ready set, so a crash
//! in between at worst leaves an entry that the next run pushes again as a no-op.
//!
//! The algorithm's state is stored per insight (`Kind::InsightSchedule`, the document of
//! [`AlgorithmState::to_json`]). A stored state the algorithm cannot read (`Error::Corrupt`, naming
//! the insight, the algorithm and the bad value) does not stop the insight's scheduling: the pass
//! logs it at warn, counts `pop_scheduler_state_errors_total{insight}`, copies the unreadable
//! document to the record `<insight id>#corrupt-v<version>` (same kind) so the fairness history can
//! be recovered, and only then goes on from a fresh state, which replaces the stored one. If the copy
//! cannot be written the pass fails for that insight and leaves the stored document alone (the next
//! pass tries again). Explain reads the state the same way and, on a corrupt one, explains from a
//! fresh state (as the next pass will schedule), with a warning.

use crate::context::Ctx;
use pop_core::model::{Customer, Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, Explanation, ReadyRuns, ReadyView, SchedulingAlgorithm};
use pop_core::store::{Kind, Record, StoreExt, WriteOp};
use pop_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The scheduler loop of one engine, with what it keeps between passes: customer weights and the
/// scheduler leases it holds.
pub(crate) struct Scheduler {
    ctx: Arc<Ctx>,
    weights: WeightCache,
    /// Scheduler leases this instance holds: insight id → held until (epoch ms).
    held: HashMap<String, i64>,
}

impl Scheduler {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx, weights: WeightCache::default(), held: HashMap::new() }
    }

    /// Runs passes every `scheduler_interval` (or when woken) until the engine shuts down.
    pub async fn run(mut self) {
        let ctx = self.ctx.clone();
        loop {
            tokio::select! {
                _ = ctx.signals.shutdown.cancelled() => return,
                _ = tokio::time::sleep(ctx.config.scheduler_interval) => {}
                _ = ctx.signals.wake.notified() => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "scheduler pass failed");
            }
        }
    }

    /// One pass over every insight; returns the agendas queued.
    pub async fn run_once(&mut self) -> Result<usize> {
        if let Err(e) = crate::costs::flush(&self.ctx).await {
            tracing::warn!(error = %e, "flushing agenda costs failed");
        }
        let mut queued = 0;
        for insight in self.ctx.insights().await? {
            let Some(insight_id) = insight.id.clone() else { continue };
            let span = tracing::debug_span!("schedule", insight_id = %insight_id);
            match tracing::Instrument::instrument(self.schedule_insight(&insight, &insight_id), span).await {
                Ok(n) => queued += n,
                Err(e) => tracing::warn!(insight_id, error = %e, "scheduling an insight failed"),
            }
        }
        Ok(queued)
    }
}

struct Snapshot {
    entries: Vec<ReadyAgenda>,
    /// Per customer: (id, weight, execution limit, its entries in `entries`).
    groups: Vec<(String, u32, Option<u32>, std::ops::Range<usize>)>,
    /// Each group's priority runs, found once per read (the algorithms' pass over every customer
    /// then reads no entry).
    runs: ReadyRuns,
}

/// Reads the insight's ready set (up to `ready_read_limit` entries): all of it, or with `per_run`
/// only the first `per_run` entries of each priority run ([`pop_core::store::Store::ready_heads`],
/// for an algorithm that takes runs in order and a refill of at most `per_run`).
async fn read_ready(
    ctx: &Ctx,
    weights: &mut WeightCache,
    insight_id: &str,
    per_run: Option<usize>,
) -> Result<Snapshot> {
    let entries = ctx.store.ready_heads(insight_id, per_run.unwrap_or(usize::MAX), ctx.config.ready_read_limit).await?;
    let mut groups: Vec<(String, u32, Option<u32>, std::ops::Range<usize>)> = Vec::new();
    let mut seen: HashMap<String, (u32, Option<u32>)> = HashMap::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || entries[i].customer_id != entries[start].customer_id {
            let customer = entries[start].customer_id.clone();
            let (weight, limit) = match seen.get(&customer) {
                Some(w) => *w,
                None => {
                    let w = weights.get(ctx, &customer).await?;
                    seen.insert(customer.clone(), w);
                    w
                }
            };
            groups.push((customer, weight, limit, start..i));
            start = i;
        }
    }
    let runs = ReadyRuns::new(groups.iter().map(|(_, _, _, r)| &entries[r.clone()]));
    Ok(Snapshot { entries, groups, runs })
}

/// Customers' weights and execution limits as the scheduler last read them: id → (weight, limit,
/// read at).
#[derive(Default)]
struct WeightCache(HashMap<String, (u32, Option<u32>, i64)>);

impl WeightCache {
    /// A customer's weight and execution limit, cached for [`WEIGHT_CACHE_MS`] (1 and none for a
    /// customer that no longer exists).
    async fn get(&mut self, ctx: &Ctx, customer: &str) -> Result<(u32, Option<u32>)> {
        let now = ctx.now();
        if let Some((w, l, at)) = self.0.get(customer).copied() {
            if now - at < WEIGHT_CACHE_MS {
                return Ok((w, l));
            }
        }
        let (w, l) = ctx
            .store
            .get_obj::<Customer>(customer)
            .await?
            .map(|c| (c.weight.max(1), c.execution_limit))
            .unwrap_or((1, None));
        self.0.insert(customer.to_owned(), (w, l, now));
        Ok((w, l))
    }
}

/// What the execution limits leave room for in one pass (see [`admission`]).
#[derive(Debug, Default)]
struct Admission {
    /// The insight's limit and the agendas in its queue, when it has a limit.
    insight: Option<(u32, usize)>,
    /// Per customer with a limit: (limit, its agendas in the queue).
    customers: HashMap<String, (u32, usize)>,
}

impl Admission {
    /// How many more agendas the insight may queue (`None`: no insight limit).
    fn insight_room(&self) -> Option<usize> {
        self.insight.map(|(l, n)| (l as usize).saturating_sub(n))
    }

    /// How many more agendas of `customer` may be queued (`None`: no limit).
    fn customer_room(&self, customer: &str) -> Option<usize> {
        self.customers.get(customer).map(|(l, n)| (*l as usize).saturating_sub(*n))
    }
}

/// Reads what the execution limits of the insight and of the snapshot's customers leave room
/// for: the queue's items (waiting or leased, counted by the queue backend, so every instance and
/// pool sees the same counts).
async fn admission(ctx: &Ctx, insight: &Insight, insight_id: &str, snap: &Snapshot) -> Result<Admission> {
    let mut out = Admission::default();
    if let Some(l) = insight.execution_limit {
        out.insight = Some((l, ctx.queue.len(insight_id).await?));
    }
    if snap.groups.iter().any(|g| g.2.is_some()) {
        let counts = ctx.queue.count_by_customer(insight_id).await?;
        for (c, _, l, _) in &snap.groups {
            if let Some(l) = l {
                out.customers.insert(c.clone(), (*l, counts.get(c).copied().unwrap_or(0)));
            }
        }
    }
    Ok(out)
}

/// How long a customer's weight is cached by the scheduler.
const WEIGHT_CACHE_MS: i64 = 10_000;

/// The algorithm's view: a customer at its execution limit is left out (skipped), and one with room
/// for `n` more shows only its first `n` entries.
fn view<'a>(
    insight: &'a Insight,
    snap: &'a Snapshot,
    admission: &Admission,
    costs: Option<&'a BTreeMap<String, f64>>,
    now: i64,
) -> ReadyView<'a> {
    ReadyView {
        insight,
        customers: snap
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, (c, w, _, r))| {
                let entries = &snap.entries[r.clone()];
                let room = admission.customer_room(c).unwrap_or(entries.len()).min(entries.len());
                // the runs describe the whole list: a list cut by a limit lets the algorithm find its own
                let runs = if room == entries.len() { snap.runs.get(i) } else { &[] };
                (room > 0).then(|| CustomerReady {
                    customer_id: c,
                    weight: *w,
                    entries: &entries[..room],
                    runs,
                    key: 0,
                })
            })
            .collect(),
        costs,
        now,
        keys: None,
    }
}

async fn load_state(ctx: &Ctx, insight_id: &str) -> Result<(AlgorithmState, Option<u64>)> {
    match ctx.store.get(Kind::InsightSchedule, insight_id).await? {
        Some(r) => Ok((AlgorithmState::from_json(r.body), Some(r.version))),
        None => Ok((AlgorithmState::new(), None)),
    }
}

/// The record an unreadable state of `insight_id` at `version` is copied to.
fn corrupt_copy_id(insight_id: &str, version: Option<u64>) -> String {
    format!("{insight_id}#corrupt-v{}", version.unwrap_or(0))
}

/// Picks with the stored state; on a corrupt one, keeps a copy of it (see the module docs) and picks
/// from a fresh state.
async fn pick(
    ctx: &Ctx,
    algorithm: &dyn SchedulingAlgorithm,
    view: &ReadyView<'_>,
    insight_id: &str,
    state: &mut AlgorithmState,
    version: Option<u64>,
    count: usize,
) -> Result<Vec<ReadyAgenda>> {
    let error = match algorithm.pick(view, state, count) {
        Ok(picks) => return Ok(picks),
        Err(e @ Error::Corrupt { .. }) => e,
        Err(e) => return Err(e),
    };
    metrics::counter!("pop_scheduler_state_errors_total", "insight" => insight_id.to_owned()).increment(1);
    let copy_id = corrupt_copy_id(insight_id, version);
    let body = state.to_json()?;
    let copy =
        Record { kind: Kind::InsightSchedule, id: copy_id.clone(), version: 1, indexes: vec![], phase: None, body };
    match ctx.store.write(vec![WriteOp::Create(copy)]).await {
        Ok(()) => {}
        // This version was copied already (by an earlier pass or another instance).
        Err(e) if e.is_conflict() => {}
        Err(e) => {
            tracing::warn!(insight_id, error = %error, copy = %copy_id, copy_error = %e,
                "scheduler state unreadable and its copy could not be written; the insight is not scheduled until it is");
            return Err(error);
        }
    }
    tracing::warn!(insight_id, algorithm = algorithm.name(), error = %error, copy = %copy_id,
        "scheduler state unreadable: kept a copy under another key and scheduling from a fresh state \
         (the fairness history restarts)");
    *state = AlgorithmState::new();
    algorithm.pick(view, state, count)
}

impl Scheduler {
    async fn schedule_insight(&mut self, insight: &Insight, insight_id: &str) -> Result<usize> {
        let ctx = self.ctx.clone();
        let now = ctx.now();
        // `queueSize` caps the agendas waiting in the queue (not the ones pools run), as the original's
        // SQS queue held only waiting work.
        let len = ctx.queue.waiting(insight_id, now).await?;
        metrics::gauge!("pop_queue_depth", "insight" => insight_id.to_owned()).set(len as f64);
        let size = insight.effective_queue_size();
        // Refill at the low-water mark (half full), so that a busy insight is scheduled in batches rather
        // than one pick per pass: reading the ready set is the expensive part of a pass.
        if size > 1 && len > (size as usize) / 2 {
            return Ok(0);
        }
        let free = pop_sched::refill_count(len, size);
        if free == 0 {
            return Ok(0);
        }
        if !self.hold_lease(insight_id, now).await? {
            return Ok(0);
        }
        // the queue may have been refilled by the previous holder since it was measured
        let len = ctx.queue.waiting(insight_id, now).await?;
        let free = pop_sched::refill_count(len, size);
        if free == 0 {
            return Ok(0);
        }
        let algorithm = ctx.algorithms.for_insight(insight)?;
        // An algorithm that takes runs in order picks at most `free` of any run: the rest of a long
        // backlog need not be read (or decoded) on every refill; one more entry per run shows the
        // algorithm which customers stay backlogged after the pick.
        let per_run = algorithm.in_run_order().then_some(free + 1);
        let snap = read_ready(&ctx, &mut self.weights, insight_id, per_run).await?;
        if snap.entries.is_empty() {
            return Ok(0);
        }
        let admission = admission(&ctx, insight, insight_id, &snap).await?;
        let free = match admission.insight_room() {
            Some(room) if room < free => {
                tracing::debug!(insight_id, room, "the insight's execution limit caps the refill");
                room
            }
            _ => free,
        };
        if free == 0 {
            return Ok(0);
        }
        let (mut state, version) = load_state(&ctx, insight_id).await?;
        let costs = crate::costs::means(&ctx, insight_id).await?;
        let view = view(insight, &snap, &admission, costs.as_ref(), now);
        if view.is_empty() {
            tracing::debug!(insight_id, "every customer with ready work is at its execution limit");
            return Ok(0);
        }
        let picks = pick(&ctx, algorithm.as_ref(), &view, insight_id, &mut state, version, free).await?;
        if let Some(from) = state.discarded_from() {
            tracing::info!(
                insight_id,
                algorithm = algorithm.name(),
                previous = from,
                "the insight's algorithm changed and the previous one's state does not fit it: starting afresh"
            );
        }
        // One push of the whole refill (one transaction on sled, concurrent requests on DynamoDB).
        ctx.queue.push_many(insight_id, picks.clone(), now).await?;
        let mut removals = Vec::with_capacity(picks.len());
        for pick in &picks {
            metrics::histogram!("pop_ready_wait_seconds", "insight" => insight_id.to_owned())
                .record((now - pick.added).max(0) as f64 / 1000.0);
            tracing::debug!(agenda_id = %pick.agenda_id, customer = %pick.customer_id, "queued");
            removals.push(WriteOp::ReadyRemove { agenda_id: pick.agenda_id.clone() });
        }
        if !removals.is_empty() {
            ctx.store.write(removals).await?;
        }
        let body = state.to_json()?;
        let record = Record {
            kind: Kind::InsightSchedule,
            id: insight_id.to_owned(),
            version: 1,
            indexes: vec![],
            phase: None,
            body,
        };
        let op = match version {
            Some(v) => WriteOp::Update { record, expected_version: v },
            None => WriteOp::Create(record),
        };
        if let Err(e) = ctx.store.write(vec![op]).await {
            tracing::warn!(insight_id, error = %e, "scheduler state not saved; the next pass starts from the last saved one");
        }
        if !picks.is_empty() {
            tracing::debug!(insight_id, queued = picks.len(), algorithm = algorithm.name(), "queue refilled");
        }
        Ok(picks.len())
    }

    /// Whether this instance holds the insight's scheduler lease, acquiring or renewing it in the store
    /// once less than half of it is left (a held lease is not rewritten on every pass).
    async fn hold_lease(&mut self, insight_id: &str, now: i64) -> Result<bool> {
        let ctx = &self.ctx;
        let lease_ms = ctx.config.scheduler_lease.as_millis() as u64;
        let held_until = self.held.get(insight_id).copied();
        if held_until.is_some_and(|until| now + ((lease_ms / 2) as i64) < until) {
            return Ok(true);
        }
        let got =
            ctx.store.lease_acquire(&format!("scheduler/{insight_id}"), &ctx.config.instance_id, lease_ms, now).await?;
        if got {
            self.held.insert(insight_id.to_owned(), now + lease_ms as i64);
        } else {
            self.held.remove(insight_id);
        }
        Ok(got)
    }
}

/// The algorithm's explanation of a ready agenda's position.
pub(crate) async fn explain(ctx: &Ctx, insight_id: &str, agenda_id: &str) -> Result<Option<Explanation>> {
    let Some(insight) = ctx.store.get_obj::<Insight>(insight_id).await? else { return Ok(None) };
    let algorithm = ctx.algorithms.for_insight(&insight)?;
    // the whole ready set: the agenda explained may be deep in its run
    let snap = read_ready(ctx, &mut WeightCache::default(), insight_id, None).await?;
    let admission = admission(ctx, &insight, insight_id, &snap).await?;
    // What a refill now would show the algorithm: for one in run order, a customer cut by its
    // execution limit sees the first `room` of its runs' heads, not of its whole list.
    let shown = if algorithm.in_run_order() {
        let now = ctx.now();
        let free = pop_sched::refill_count(ctx.queue.waiting(insight_id, now).await?, insight.effective_queue_size());
        Some(limited_heads(&snap, &admission, free.max(1) + 1))
    } else {
        None
    };
    let shown = shown.as_ref().unwrap_or(&snap);
    if let Some(e) = held_back(insight_id, &snap, shown, &admission, agenda_id) {
        return Ok(Some(e));
    }
    let (state, _) = load_state(ctx, insight_id).await?;
    let costs = crate::costs::means(ctx, insight_id).await?;
    let view = view(&insight, shown, &admission, costs.as_ref(), ctx.now());
    let explained = match algorithm.explain(&view, &state, agenda_id) {
        Err(e @ Error::Corrupt { .. }) => {
            tracing::warn!(insight_id, error = %e, "scheduler state unreadable: explaining from a fresh state");
            algorithm.explain(&view, &AlgorithmState::new(), agenda_id)
        }
        other => other,
    }?;
    // Behind an insight at its limit, the algorithm's order holds but nothing moves until one finishes.
    Ok(explained.map(|mut e| {
        if let Some((limit, n)) = admission.insight.filter(|_| admission.insight_room() == Some(0)) {
            e.reason = format!(
                "{}; insight {insight_id} is at its execution limit ({n} of {limit} agendas queued or running): \
                 nothing more is queued until one finishes",
                e.reason
            );
        }
        e
    }))
}

/// `snap` as a refill that reads `per_run` entries per run shows it to an algorithm in run order,
/// for the customers its execution limit cuts: such a customer's list is the heads of its runs (the
/// view then shows the first `room` of them). The other customers keep their whole lists, which an
/// algorithm in run order treats as it treats their heads, so that an agenda deep in its run is
/// still explained.
fn limited_heads(snap: &Snapshot, admission: &Admission, per_run: usize) -> Snapshot {
    let mut entries = Vec::with_capacity(snap.entries.len());
    let mut groups = Vec::with_capacity(snap.groups.len());
    for (customer, weight, limit, range) in &snap.groups {
        let list = &snap.entries[range.clone()];
        let start = entries.len();
        if admission.customer_room(customer).is_some_and(|room| room < list.len()) {
            let mut in_run = 0;
            for (i, e) in list.iter().enumerate() {
                in_run = if i > 0 && list[i - 1].priority == e.priority { in_run + 1 } else { 1 };
                if in_run <= per_run {
                    entries.push(e.clone());
                }
            }
        } else {
            entries.extend_from_slice(list);
        }
        groups.push((customer.clone(), *weight, *limit, start..entries.len()));
    }
    let runs = ReadyRuns::new(groups.iter().map(|(_, _, _, r)| &entries[r.clone()]));
    Snapshot { entries, groups, runs }
}

/// The explanation of an agenda the execution limit of its customer keeps out of the algorithm's
/// view (the first `room` entries of its customer's list in `shown`), if it is one; `snap` is the
/// whole ready set, where its position is counted.
fn held_back(
    insight_id: &str,
    snap: &Snapshot,
    shown: &Snapshot,
    admission: &Admission,
    agenda_id: &str,
) -> Option<Explanation> {
    let (customer, _, _, range) =
        snap.groups.iter().find(|g| snap.entries[g.3.clone()].iter().any(|e| e.agenda_id == agenda_id))?;
    let (limit, n) = admission.customers.get(customer).copied()?;
    let room = admission.customer_room(customer)?;
    let index = snap.entries[range.clone()].iter().position(|e| e.agenda_id == agenda_id)?;
    let visible = shown
        .groups
        .iter()
        .find(|g| &g.0 == customer)
        .is_some_and(|(_, _, _, r)| shown.entries[r.clone()].iter().take(room).any(|e| e.agenda_id == agenda_id));
    if visible {
        return None;
    }
    let reason = if room == 0 {
        format!(
            "customer {customer} is at its execution limit ({n} of {limit} agendas queued or running in insight \
             {insight_id}): the scheduler skips it, serving other customers, until one of its agendas finishes"
        )
    } else {
        format!(
            "behind {index} earlier agendas of customer {customer}, which may have only {room} more queued or \
             running in insight {insight_id} (execution limit {limit}, {n} in use)"
        )
    };
    // At least its customer's earlier agendas go first.
    Some(Explanation { agenda_id: agenda_id.to_owned(), position: index, reason })
}

#[cfg(test)]
mod tests;
