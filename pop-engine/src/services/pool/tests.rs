//! The resource-pool service: pulls, the one write path, fencing.

use crate::services::{AgendaLease, LeaseState};
use crate::{Engine as Pop, EngineParts, RuntimeRouter};
use pop_core::Result;
use pop_core::authz::Principal;
use pop_core::clock::ManualClock;
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::{Agenda, AgendaProgress, Insight, OperationProgress, ProcessingState};
use pop_core::queue::LeaseToken;
use pop_core::store::Kind;
use pop_core::store::StoreExt;
use serde_json::json;
use std::sync::Arc;

async fn version(pop: &Pop, kind: Kind, id: &str) -> u64 {
    pop.store().get(kind, id).await.unwrap().unwrap().version
}

/// An instance on `store` with an in-memory queue, pool `p` and insight `i` (operation type `t`,
/// queue size 100) for customer `c`.
async fn provisioned(store: Arc<dyn pop_core::store::Store>, clock: Arc<ManualClock>) -> Pop {
    let mut parts = EngineParts::new(store, Arc::new(MemoryQueue::new()), Arc::new(RuntimeRouter::new()));
    parts.clock = clock;
    let pop = Pop::new(parts);
    let insight = Insight {
        id: Some("i".into()),
        title: Some("i".into()),
        is_global: true,
        queue_size: Some(100),
        mappers: [("operationType".to_string(), vec!["t".to_string()])].into(),
        ..Default::default()
    };
    pop.objects().provision_pool(&Principal::superuser("t"), "p", "ops", insight, &["c"]).await.unwrap();
    pop
}

/// A pulled lease and what the tests need of it.
struct Leased {
    token: LeaseToken,
    state: LeaseState,
    report: AgendaProgress,
    rows: Vec<OperationProgress>,
    progress_id: String,
    agenda_id: String,
}

async fn submit_and_pull(pop: &Pop, ops: serde_json::Value) -> Leased {
    let su = Principal::superuser("t");
    let agenda: Agenda = serde_json::from_value(json!({"customerId": "c", "operations": ops})).unwrap();
    let agenda_id = pop.agendas().submit(&su, agenda).await.unwrap().id.unwrap();
    pop.schedule_once().await.unwrap();
    let AgendaLease { lease, mut progress, .. } = pop.pool().get_agendas(&su, "i", 1).await.unwrap().pop().unwrap();
    let rows = std::mem::take(&mut progress.operation_progress);
    Leased {
        token: lease.token.clone(),
        state: LeaseState::started(lease.deadline, progress.clone()),
        progress_id: progress.id.clone().unwrap(),
        report: progress,
        rows,
        agenda_id,
    }
}

fn row<'a>(l: &'a Leased, name: &str) -> &'a OperationProgress {
    l.rows.iter().find(|o| o.operation.as_deref() == Some(name)).unwrap()
}

/// The one write path: a heartbeat with nothing to report writes nothing; a reported row is written
/// with the progress; a progress idle for half a lease is rewritten and the lease extended; a cancel
/// made meanwhile is seen through the progress compare-and-set, whether or not the lease state
/// caches the progress.
#[tokio::test]
async fn progress_is_written_once_per_report_and_a_cancel_is_seen() {
    let clock = Arc::new(ManualClock::default());
    let pop = provisioned(Arc::new(MemoryStore::new()), clock.clone()).await;
    let pool = pop.pool();
    let mut l = submit_and_pull(
        &pop,
        json!([
            {"name": "a", "type": "t", "payload": {}},
            {"name": "b", "type": "t", "payload": {"x": "@<a.out>"}}
        ]),
    )
    .await;
    let op_id = |name: &str| OperationProgress::make_id(&l.progress_id, name);
    let v0 = version(&pop, Kind::AgendaProgress, &l.progress_id).await;
    let a0 = version(&pop, Kind::OperationProgress, &op_id("a")).await;

    // nothing changed since the pull: no write (a read instead)
    pool.write_progress(&l.token, &mut l.state, &l.report, &[]).await.unwrap();
    assert_eq!(version(&pop, Kind::AgendaProgress, &l.progress_id).await, v0);

    // an operation starts: its row and the progress are written together
    let mut a = row(&l, "a").clone();
    a.processing_state = ProcessingState::Executing;
    a.started_time = Some(pop.clock().now());
    l.report.percent_complete = 10.0;
    pool.write_progress(&l.token, &mut l.state, &l.report, std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(version(&pop, Kind::AgendaProgress, &l.progress_id).await, v0 + 1);
    assert_eq!(version(&pop, Kind::OperationProgress, &op_id("a")).await, a0 + 1);
    let stored: OperationProgress = pop.store().fetch(&op_id("a")).await.unwrap();
    assert_eq!(stored.processing_state, ProcessingState::Executing);

    // half a lease later, an unchanged heartbeat rewrites the progress (its age is a liveness signal)
    // and extends the lease
    let deadline = l.state.deadline().unwrap();
    clock.advance(pop.config().lease_ttl.as_millis() as i64 / 2 + 1);
    pool.write_progress(&l.token, &mut l.state, &l.report, &[]).await.unwrap();
    assert_eq!(version(&pop, Kind::AgendaProgress, &l.progress_id).await, v0 + 2);
    assert!(l.state.deadline().unwrap() > deadline, "the lease was not extended");

    // a cancel in between is seen: a heartbeat re-reads the progress and refuses; a report with a
    // change fails its compare-and-set on the cached progress, re-reads and refuses
    pop.agendas().cancel(&Principal::superuser("t"), &l.agenda_id).await.unwrap();
    let err = pool.write_progress(&l.token, &mut l.state, &l.report, &[]).await.unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("cancelled"), "{err}");
    let mut stale = LeaseState::started(pop.clock().now() + 600_000, l.report.clone());
    let mut b = row(&l, "b").clone();
    b.processing_state = ProcessingState::Executing;
    let err = pool.write_progress(&l.token, &mut stale, &l.report, &[b]).await.unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("cancelled"), "{err}");
    let stored: OperationProgress = pop.store().fetch(&op_id("b")).await.unwrap();
    assert_eq!(stored.processing_state, ProcessingState::Waiting, "a refused batch writes no row");
}

/// A remote pool's writes (no cached progress, only the deadline it was given) take the same path;
/// rows of another agenda and a stale epoch are refused; the final write acknowledges the lease.
#[tokio::test]
async fn remote_style_writes_are_fenced_checked_and_finish_acks() {
    let clock = Arc::new(ManualClock::default());
    let pop = provisioned(Arc::new(MemoryStore::new()), clock.clone()).await;
    let pool = pop.pool();
    let su = Principal::superuser("t");
    let first = submit_and_pull(&pop, json!([{"name": "a", "type": "t", "payload": {}}])).await;
    let other = submit_and_pull(&pop, json!([{"name": "a", "type": "t", "payload": {}}])).await;
    let mut remote = LeaseState::with_deadline(first.state.deadline());

    // a row of the other agenda under this lease: Invalid, naming the field; nothing written
    let err = pool.update_progress(&su, &first.token, &mut remote, &first.report, &other.rows).await.unwrap_err();
    assert!(err.problem_list().iter().any(|p| p.field.as_deref() == Some("agendaProgressId")), "{err}");

    // a final report must be COMPLETE
    let err = pool.complete(&su, &first.token, &mut remote, &first.report, &[]).await.unwrap_err();
    assert!(err.to_string().contains("COMPLETE"), "{err}");

    // a zombie: an older epoch than the progress was last written with
    let mut zombie = first.token.clone();
    zombie.epoch = 0;
    let err = pool.update_progress(&su, &zombie, &mut remote, &first.report, &[]).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // the final write: rows and progress, then the ack (the queue no longer holds it)
    let mut done = first.report.clone();
    done.processing_state = ProcessingState::Complete;
    done.processing_state_message = Some("succeeded".into());
    done.percent_complete = 100.0;
    let mut a = row(&first, "a").clone();
    a.processing_state = ProcessingState::Complete;
    a.processing_state_message = Some("succeeded".into());
    a.result_payload = Some(r#"{"ok":true}"#.into());
    pool.complete(&su, &first.token, &mut remote, &done, &[a]).await.unwrap();
    let p = pop.progress().agenda_progress(&su, &first.agenda_id).await.unwrap();
    assert_eq!((p.processing_state, p.attempts_completed), (ProcessingState::Complete, 1));
    assert_eq!(p.operation_progress[0].result_payload.as_deref(), Some(r#"{"ok":true}"#));
    assert!(!pop.queue().contains("i", &first.agenda_id).await.unwrap(), "acknowledged");
    // and nothing more is accepted
    let err = pool.update_progress(&su, &first.token, &mut remote, &done, &[]).await.unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("complete"), "{err}");
}

/// A pull starts its agendas in one batch write; when that batch is refused, each agenda is
/// started on its own; an agenda cancelled while queued is dropped, and the rest still start.
#[tokio::test]
async fn a_pull_starts_its_agendas_in_one_batch_and_falls_back_one_by_one() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(crate::observed::Observed::default());
    let pop = provisioned(store.clone(), Arc::new(ManualClock::default())).await;
    let su = Principal::superuser("t");
    let agenda = || -> Agenda {
        serde_json::from_value(json!({"customerId": "c", "operations": [{"name": "a", "type": "t", "payload": {}}]}))
            .unwrap()
    };
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(pop.agendas().submit(&su, agenda()).await.unwrap().id.unwrap());
    }
    pop.schedule_once().await.unwrap();
    let pool = pop.pool();
    let executing = |leases: &[AgendaLease]| {
        leases.iter().all(|l| {
            l.progress.processing_state == ProcessingState::Executing
                && l.progress.lease_epoch == Some(l.lease.token.epoch)
                && l.progress.operation_progress.len() == 1
        })
    };

    // three in one batch write
    let mut pulled = std::collections::HashSet::new();
    let before = store.batches.load(SeqCst);
    let leases = pool.pull("i", 3).await.unwrap();
    pulled.extend(leases.iter().map(|l| l.lease.token.agenda_id.clone()));
    assert_eq!(leases.len(), 3);
    assert!(executing(&leases));
    assert_eq!(store.batches.load(SeqCst) - before, 1, "one batch for the pull");
    for l in &leases {
        let p: AgendaProgress = pop.store().fetch(l.progress.id.as_deref().unwrap()).await.unwrap();
        assert_eq!(p.processing_state, ProcessingState::Executing);
        assert_eq!(p.version, l.progress.version, "the lease carries the stored version");
    }

    // the batch is refused: each starts on its own
    store.refuse_next_batch.store(true, SeqCst);
    let leases = pool.pull("i", 2).await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(executing(&leases));
    pulled.extend(leases.iter().map(|l| l.lease.token.agenda_id.clone()));

    // one of the last two is cancelled while queued: the other starts, the cancelled one is dropped
    let rest: Vec<&String> = ids.iter().filter(|id| !pulled.contains(id.as_str())).collect();
    assert_eq!(rest.len(), 2);
    pop.agendas().cancel(&su, rest[0]).await.unwrap();
    let leases = pool.pull("i", 2).await.unwrap();
    let started: Vec<&str> = leases.iter().map(|l| l.lease.token.agenda_id.as_str()).collect();
    assert_eq!(started, vec![rest[1].as_str()]);
    assert!(executing(&leases));
    assert!(pool.pull("i", 2).await.unwrap().is_empty(), "the cancelled agenda must not come back");
}

/// The final report of a pulled agenda: every row and the agenda COMPLETE, succeeded.
fn completed(pop: &Pop, l: &Leased) -> crate::services::Finish {
    let now = pop.clock().now();
    let mut progress = l.report.clone();
    progress.processing_state = ProcessingState::Complete;
    progress.processing_state_message = Some("succeeded".into());
    progress.completed_time = Some(now);
    progress.percent_complete = 100.0;
    let rows = l
        .rows
        .iter()
        .map(|r| OperationProgress {
            processing_state: ProcessingState::Complete,
            processing_state_message: Some("succeeded".into()),
            started_time: Some(now),
            completed_time: Some(now),
            ..r.clone()
        })
        .collect();
    crate::services::Finish { token: l.token.clone(), state: l.state.clone(), progress, rows }
}

/// Group completion: the final writes of several agendas go in one store batch and their leases
/// are acked together; when an agenda of the batch was cancelled since its last write, the batch is
/// refused and each agenda finishes on its own: the cancelled one fails alone (`Conflict`), the others
/// complete and leave the queue. Outcomes come back in the batch's order.
#[tokio::test]
async fn finishes_are_grouped_and_a_fenced_agenda_fails_alone() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(crate::observed::Observed::default());
    let pop = provisioned(store.clone(), Arc::new(ManualClock::default())).await;
    let pool = pop.pool();
    let one = json!([{"name": "a", "type": "t", "payload": {}}]);

    // three agendas finished in one batch write
    let mut leased = Vec::new();
    for _ in 0..3 {
        leased.push(submit_and_pull(&pop, one.clone()).await);
    }
    let before = store.batches.load(SeqCst);
    let results = pool.finish_many(leased.iter().map(|l| completed(&pop, l)).collect()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(store.batches.load(SeqCst) - before, 1, "one store batch for the three final writes");
    for l in &leased {
        let p: AgendaProgress = pop.store().fetch(&l.progress_id).await.unwrap();
        assert_eq!(p.processing_state, ProcessingState::Complete);
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"));
        let row: OperationProgress = pop.store().fetch(&OperationProgress::make_id(&l.progress_id, "a")).await.unwrap();
        assert_eq!(row.processing_state, ProcessingState::Complete, "the rows are written with the progress");
    }
    assert_eq!(pop.queue().len("i").await.unwrap(), 0, "every lease acked");

    // the middle one is cancelled after its last write: it fails alone
    let mut leased = Vec::new();
    for _ in 0..3 {
        leased.push(submit_and_pull(&pop, one.clone()).await);
    }
    pop.agendas().cancel(&Principal::superuser("t"), &leased[1].agenda_id).await.unwrap();
    let results = pool.finish_many(leased.iter().map(|l| completed(&pop, l)).collect()).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("cancelled"), "{err}");
    let cancelled: AgendaProgress = pop.store().fetch(&leased[1].progress_id).await.unwrap();
    assert_eq!(cancelled.processing_state_message.as_deref(), Some("cancelled"), "the cancel stands");
    for l in [&leased[0], &leased[2]] {
        let p: AgendaProgress = pop.store().fetch(&l.progress_id).await.unwrap();
        assert_eq!(p.processing_state_message.as_deref(), Some("succeeded"));
    }
    assert_eq!(pop.queue().len("i").await.unwrap(), 0, "the others acked, the cancelled one removed by the cancel");

    // a stale lease (delivered again since) fails alone too, before any write
    let a = submit_and_pull(&pop, one.clone()).await;
    let b = submit_and_pull(&pop, one.clone()).await;
    let stale = crate::services::Finish {
        token: LeaseToken { epoch: 0, receipt: "old".into(), ..b.token.clone() },
        state: LeaseState::default(),
        ..completed(&pop, &b)
    };
    let results = pool.finish_many(vec![completed(&pop, &a), stale]).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(results[1].as_ref().unwrap_err().is_conflict(), "{results:?}");
    let p: AgendaProgress = pop.store().fetch(&b.progress_id).await.unwrap();
    assert_eq!(p.processing_state, ProcessingState::Executing, "a stale lease writes nothing");
}
