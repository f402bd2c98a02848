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

use crate::instance::Inner;
use pop_core::model::{Customer, Insight, ReadyAgenda};
use pop_core::sched::{AlgorithmState, CustomerReady, Explanation, ReadyView, SchedulingAlgorithm};
use pop_core::store::{Kind, PageRequest, Record, StoreExt, WriteOp};
use pop_core::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(inner.config.scheduler_interval) => {}
            _ = inner.wake.notified() => {}
        }
        if let Err(e) = run_once(&inner).await {
            tracing::warn!(error = %e, "scheduler pass failed");
        }
    }
}

/// One pass over every insight; returns the agendas queued.
pub(crate) async fn run_once(inner: &Inner) -> Result<usize> {
    let mut queued = 0;
    for insight in all_insights(inner).await? {
        let span = tracing::debug_span!("schedule", insight_id = insight.id.as_deref().unwrap_or_default());
        match tracing::Instrument::instrument(schedule_insight(inner, &insight), span).await {
            Ok(n) => queued += n,
            Err(e) => tracing::warn!(insight = ?insight.id, error = %e, "scheduling an insight failed"),
        }
    }
    Ok(queued)
}

pub(crate) async fn all_insights(inner: &Inner) -> Result<Vec<Insight>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = inner.store.scan(Kind::Insight, PageRequest { limit: 500, cursor }).await?;
        for r in &page.items {
            out.push(pop_core::store::from_record::<Insight>(r)?);
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

struct Snapshot {
    entries: Vec<ReadyAgenda>,
    groups: Vec<(String, u32, std::ops::Range<usize>)>,
}

async fn read_ready(inner: &Inner, insight_id: &str) -> Result<Snapshot> {
    let mut entries = Vec::new();
    let mut cursor = None;
    while entries.len() < inner.config.ready_read_limit {
        let page = inner.store.ready_list(insight_id, PageRequest { limit: 1000, cursor }).await?;
        entries.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut groups: Vec<(String, u32, std::ops::Range<usize>)> = Vec::new();
    let mut weights: HashMap<String, u32> = HashMap::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || entries[i].customer_id != entries[start].customer_id {
            let customer = entries[start].customer_id.clone();
            let weight = match weights.get(&customer) {
                Some(w) => *w,
                None => {
                    let w = customer_weight(inner, &customer).await?;
                    weights.insert(customer.clone(), w);
                    w
                }
            };
            groups.push((customer, weight, start..i));
            start = i;
        }
    }
    Ok(Snapshot { entries, groups })
}

/// A customer's weight, cached for [`WEIGHT_CACHE_MS`].
async fn customer_weight(inner: &Inner, customer: &str) -> Result<u32> {
    let now = inner.now();
    if let Some((w, at)) = inner.weights.lock().ok().and_then(|c| c.get(customer).copied()) {
        if now - at < WEIGHT_CACHE_MS {
            return Ok(w);
        }
    }
    let w = inner.store.get_obj::<Customer>(customer).await?.map(|c| c.weight.max(1)).unwrap_or(1);
    if let Ok(mut c) = inner.weights.lock() {
        c.insert(customer.to_owned(), (w, now));
    }
    Ok(w)
}

/// How long a customer's weight is cached by the scheduler.
const WEIGHT_CACHE_MS: i64 = 10_000;

fn view<'a>(insight: &'a Insight, snap: &'a Snapshot, now: i64) -> ReadyView<'a> {
    ReadyView {
        insight,
        customers: snap
            .groups
            .iter()
            .map(|(c, w, r)| CustomerReady { customer_id: c, weight: *w, entries: &snap.entries[r.clone()] })
            .collect(),
        costs: None,
        now,
    }
}

async fn load_state(inner: &Inner, insight_id: &str) -> Result<(AlgorithmState, Option<u64>)> {
    match inner.store.get(Kind::InsightSchedule, insight_id).await? {
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
    inner: &Inner,
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
    let copy = Record { kind: Kind::InsightSchedule, id: copy_id.clone(), version: 1, indexes: vec![], body };
    match inner.store.write(vec![WriteOp::Create(copy)]).await {
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

async fn schedule_insight(inner: &Inner, insight: &Insight) -> Result<usize> {
    let Some(insight_id) = insight.id.as_deref() else { return Ok(0) };
    let now = inner.now();
    let len = inner.queue.len(insight_id).await?;
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
    if !hold_lease(inner, insight_id, now).await? {
        return Ok(0);
    }
    // the queue may have been refilled by the previous holder since it was measured
    let len = inner.queue.len(insight_id).await?;
    let free = pop_sched::refill_count(len, size);
    if free == 0 {
        return Ok(0);
    }
    let algorithm = inner.algorithms.for_insight(insight)?;
    let snap = read_ready(inner, insight_id).await?;
    if snap.entries.is_empty() {
        return Ok(0);
    }
    let (mut state, version) = load_state(inner, insight_id).await?;
    let view = view(insight, &snap, now);
    let picks = pick(inner, algorithm.as_ref(), &view, insight_id, &mut state, version, free).await?;
    if let Some(from) = state.discarded_from() {
        tracing::info!(
            insight_id,
            algorithm = algorithm.name(),
            previous = from,
            "the insight's algorithm changed and the previous one's state does not fit it: starting afresh"
        );
    }
    // One push of the whole refill (one transaction on sled, concurrent requests on DynamoDB).
    inner.queue.push_many(insight_id, picks.clone(), now).await?;
    let mut removals = Vec::with_capacity(picks.len());
    for pick in &picks {
        metrics::histogram!("pop_ready_wait_seconds", "insight" => insight_id.to_owned())
            .record((now - pick.added).max(0) as f64 / 1000.0);
        tracing::debug!(agenda_id = %pick.agenda_id, customer = %pick.customer_id, "queued");
        removals.push(WriteOp::ReadyRemove { agenda_id: pick.agenda_id.clone() });
    }
    if !removals.is_empty() {
        inner.store.write(removals).await?;
    }
    let body = state.to_json()?;
    let record = Record { kind: Kind::InsightSchedule, id: insight_id.to_owned(), version: 1, indexes: vec![], body };
    let op = match version {
        Some(v) => WriteOp::Update { record, expected_version: v },
        None => WriteOp::Create(record),
    };
    if let Err(e) = inner.store.write(vec![op]).await {
        tracing::warn!(insight_id, error = %e, "scheduler state not saved; the next pass starts from the last saved one");
    }
    if !picks.is_empty() {
        tracing::debug!(insight_id, queued = picks.len(), algorithm = algorithm.name(), "queue refilled");
    }
    Ok(picks.len())
}

/// Whether this instance holds the insight's scheduler lease, acquiring or renewing it in the store
/// once less than half of it is left (a held lease is not rewritten on every pass).
async fn hold_lease(inner: &Inner, insight_id: &str, now: i64) -> Result<bool> {
    let lease_ms = inner.config.scheduler_lease.as_millis() as u64;
    let held_until = inner.sched_leases.lock().ok().and_then(|l| l.get(insight_id).copied());
    if held_until.is_some_and(|until| now + ((lease_ms / 2) as i64) < until) {
        return Ok(true);
    }
    let got =
        inner.store.lease_acquire(&format!("scheduler/{insight_id}"), &inner.config.instance_id, lease_ms, now).await?;
    if let Ok(mut leases) = inner.sched_leases.lock() {
        if got {
            leases.insert(insight_id.to_owned(), now + lease_ms as i64);
        } else {
            leases.remove(insight_id);
        }
    }
    Ok(got)
}

/// The algorithm's explanation of a ready agenda's position.
pub(crate) async fn explain(inner: &Inner, insight_id: &str, agenda_id: &str) -> Result<Option<Explanation>> {
    let Some(insight) = inner.store.get_obj::<Insight>(insight_id).await? else { return Ok(None) };
    let algorithm = inner.algorithms.for_insight(&insight)?;
    let snap = read_ready(inner, insight_id).await?;
    let (state, _) = load_state(inner, insight_id).await?;
    let view = view(&insight, &snap, inner.now());
    match algorithm.explain(&view, &state, agenda_id) {
        Err(e @ Error::Corrupt { .. }) => {
            tracing::warn!(insight_id, error = %e, "scheduler state unreadable: explaining from a fresh state");
            algorithm.explain(&view, &AlgorithmState::new(), agenda_id)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::{Pop, RuntimeRouter};
    use pop_core::authz::Principal;
    use pop_core::memory::{MemoryQueue, MemoryStore};
    use pop_core::model::Agenda;
    use pop_sched::FairState;
    use serde_json::json;

    /// An instance with insight `i` (round robin, queue size 100) for customers `c1` and `c2`, each
    /// with `n` ready agendas; returns the agenda ids.
    async fn with_ready(n: usize) -> (Pop, Vec<String>) {
        let pop = Pop::builder()
            .store(Arc::new(MemoryStore::new()))
            .queue(Arc::new(MemoryQueue::new()))
            .runtime(Arc::new(RuntimeRouter::new()))
            .clock(Arc::new(ManualClock::default()))
            .build()
            .unwrap();
        let insight = Insight {
            id: Some("i".into()),
            title: Some("i".into()),
            is_global: true,
            queue_size: Some(100),
            scheduling_algorithm: Some("Fairness".into()),
            mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
            ..Default::default()
        };
        let su = Principal::superuser("t");
        pop.objects().provision_pool(&su, "p", "ops", insight, &["c1", "c2"]).await.unwrap();
        let mut ids = Vec::new();
        for c in ["c1", "c2"] {
            for _ in 0..n {
                let agenda: Agenda = serde_json::from_value(
                    json!({"customerId": c, "operations": [{"name": "a", "type": "t", "payload": {}}]}),
                )
                .unwrap();
                ids.push(pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap());
            }
        }
        (pop, ids)
    }

    /// A stored state the algorithm cannot read: explain still answers, and the scheduler keeps a
    /// copy of the document under another key, schedules from a fresh state and replaces the stored
    /// one with it.
    #[tokio::test]
    async fn a_corrupt_state_is_kept_aside_and_scheduling_goes_on() {
        let (pop, ids) = with_ready(2).await;
        let corrupt = br#"{"algorithm":"RoundRobin","state":{"v":1,"used":{"c1":[1000,1,7,1]}}}"#.to_vec();
        let record =
            Record { kind: Kind::InsightSchedule, id: "i".into(), version: 1, indexes: vec![], body: corrupt.clone() };
        pop.store().write(vec![WriteOp::Create(record)]).await.unwrap();
        let version = pop.store().get(Kind::InsightSchedule, "i").await.unwrap().unwrap().version;

        let mut positions = Vec::new();
        for id in &ids {
            positions.push(explain(&pop.inner, "i", id).await.unwrap().expect("explained from a fresh state").position);
        }
        positions.sort_unstable();
        assert_eq!(positions, [0, 1, 2, 3]);

        assert_eq!(run_once(&pop.inner).await.unwrap(), 4, "scheduling went on");
        let copy = pop.store().get(Kind::InsightSchedule, &format!("i#corrupt-v{version}")).await.unwrap();
        assert_eq!(copy.map(|r| r.body), Some(corrupt), "the unreadable document is kept");
        let saved = pop.store().get(Kind::InsightSchedule, "i").await.unwrap().unwrap();
        let state = AlgorithmState::from_json(saved.body);
        let insight = Insight { id: Some("i".into()), ..Insight::default() };
        let fair = state.state::<FairState>("RoundRobin", &insight).expect("the fresh state was saved");
        assert_eq!(fair.customers().len(), 0, "both customers drained: {fair:?}");
    }

    /// Each pass stores the algorithm's state (its typed form in the envelope) for the next one.
    #[tokio::test]
    async fn the_state_is_stored_for_the_next_pass() {
        let (pop, _) = with_ready(1).await;
        let (state, version) = load_state(&pop.inner, "i").await.unwrap();
        assert!(state.is_fresh() && version.is_none());
        assert_eq!(run_once(&pop.inner).await.unwrap(), 2);
        let (state, version) = load_state(&pop.inner, "i").await.unwrap();
        assert!(version.is_some());
        let doc = String::from_utf8(state.to_json().unwrap()).unwrap();
        assert!(doc.starts_with(r#"{"algorithm":"RoundRobin","state":{"v":1,"#), "{doc}");
        let insight = Insight { id: Some("i".into()), ..Insight::default() };
        assert!(state.state::<FairState>("RoundRobin", &insight).is_ok(), "{doc}");
    }
}
