//! Behaviour of the in-memory backends beyond the conformance suite (which `tests/conformance.rs` runs):
//! input errors, batch staging, epochs across pushes.

use super::{MemoryQueue, MemoryStore};
use crate::error::Error;
use crate::model::ReadyAgenda;
use crate::queue::QueueBackend;
use crate::store::{IndexField, Kind, PageRequest, Record, Store, WriteOp};

fn record(kind: Kind, id: &str, indexes: Vec<(IndexField, String)>) -> Record {
    Record { kind, id: id.to_owned(), version: 1, indexes, phase: None, body: b"{}".to_vec() }
}

fn message(e: &Error) -> String {
    e.to_string()
}

#[tokio::test]
async fn bad_records_are_invalid_and_name_the_problem() {
    let store = MemoryStore::new();
    let e = store.write(vec![WriteOp::Create(record(Kind::Agenda, "", vec![]))]).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(message(&e).contains("empty id"), "{e}");

    let e = store
        .write(vec![WriteOp::Create(record(Kind::Agenda, "a-1", vec![(IndexField::InsightId, "x".into())]))])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    let text = message(&e);
    assert!(text.contains("a-1") && text.contains("insightId") && text.contains("customerId, linkId, title"), "{text}");

    let e = store
        .write(vec![WriteOp::ReadyInsert(ReadyAgenda { insight_id: "i".into(), ..Default::default() })])
        .await
        .unwrap_err();
    assert!(message(&e).contains("empty agendaId"), "{e}");
    let e = store
        .write(vec![WriteOp::ReadyInsert(ReadyAgenda { agenda_id: "a-1".into(), ..Default::default() })])
        .await
        .unwrap_err();
    assert!(message(&e).contains("a-1") && message(&e).contains("empty insightId"), "{e}");
}

#[tokio::test]
async fn querying_an_unindexed_field_is_unsupported() {
    let store = MemoryStore::new();
    let e = store.query(Kind::OperationProgress, IndexField::Title, "x", PageRequest::first(10)).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert!(message(&e).contains("customerId, agendaProgressId"), "{e}");
    let e = store.query(Kind::InsightSchedule, IndexField::CustomerId, "x", PageRequest::first(10)).await.unwrap_err();
    assert!(message(&e).contains("indexed: none"), "{e}");
}

#[tokio::test]
async fn a_foreign_ready_cursor_is_invalid() {
    let store = MemoryStore::new();
    let page = PageRequest { limit: 10, cursor: Some("not-a-cursor".into()) };
    let e = store.ready_list("transcode", page).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(message(&e).contains("transcode") && message(&e).contains("not-a-cursor"), "{e}");
}

#[tokio::test]
async fn an_oversized_batch_says_how_to_fix_it() {
    let store = MemoryStore::with_max_batch(2);
    let ops = (0..3).map(|i| WriteOp::Create(record(Kind::InsightSchedule, &format!("s{i}"), vec![]))).collect();
    let e = store.write(ops).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert!(message(&e).contains("at most 2 writes, this one has 3"), "{e}");
    assert_eq!(MemoryStore::with_max_batch(0).max_batch(), 1);
    assert_eq!(MemoryStore::new().max_batch(), MemoryStore::DEFAULT_MAX_BATCH);
}

#[tokio::test]
async fn batch_ops_see_the_ops_before_them() {
    let store = MemoryStore::new();
    // Create then update the same id in one batch: the update sees version 1.
    let mut updated = record(Kind::Customer, "c-1", vec![(IndexField::Title, "new".into())]);
    updated.version = 2;
    store
        .write(vec![
            WriteOp::Create(record(Kind::Customer, "c-1", vec![(IndexField::Title, "old".into())])),
            WriteOp::Update { record: updated, expected_version: 1 },
        ])
        .await
        .unwrap();
    let got = store.get(Kind::Customer, "c-1").await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    let old = store.query(Kind::Customer, IndexField::Title, "old", PageRequest::first(10)).await.unwrap();
    assert!(old.items.is_empty(), "the old index value is gone");

    // Delete then create again: version 1. Create twice: the second conflicts, naming its position.
    store
        .write(vec![
            WriteOp::Delete { kind: Kind::Customer, id: "c-1".into(), expected_version: Some(2) },
            WriteOp::Create(record(Kind::Customer, "c-1", vec![])),
        ])
        .await
        .unwrap();
    assert_eq!(store.get(Kind::Customer, "c-1").await.unwrap().unwrap().version, 1);
    let e = store
        .write(vec![
            WriteOp::Create(record(Kind::Customer, "c-2", vec![])),
            WriteOp::Create(record(Kind::Customer, "c-2", vec![])),
        ])
        .await
        .unwrap_err();
    assert!(e.is_conflict() && message(&e).contains("write 2 of 2"), "{e}");
    assert!(store.get(Kind::Customer, "c-2").await.unwrap().is_none());
}

#[tokio::test]
async fn lease_holder_must_be_named() {
    let store = MemoryStore::new();
    assert!(matches!(store.lease_acquire("scheduler/i", "", 10, 0).await, Err(Error::Invalid(_))));
    // A huge ttl saturates instead of overflowing.
    assert!(store.lease_acquire("scheduler/i", "h1", u64::MAX, i64::MAX - 5).await.unwrap());
    assert!(!store.lease_acquire("scheduler/i", "h2", 10, i64::MAX - 1).await.unwrap());
}

fn item(agenda: &str) -> ReadyAgenda {
    ReadyAgenda { agenda_id: agenda.into(), insight_id: "i".into(), ..Default::default() }
}

#[tokio::test]
async fn epochs_never_go_back_even_across_pushes() {
    let queue = MemoryQueue::new();
    assert!(queue.push("i", item("a"), 0).await.unwrap());
    let first = queue.receive("i", 1, 10, 0).await.unwrap();
    queue.ack(&first[0].token).await.unwrap();
    assert!(queue.push("i", item("a"), 1).await.unwrap());
    let second = queue.receive("i", 1, 10, 1).await.unwrap();
    assert!(second[0].token.epoch > first[0].token.epoch, "a re-pushed agenda gets a higher epoch (fencing)");
}

#[tokio::test]
async fn pushing_without_an_agenda_id_is_invalid() {
    let queue = MemoryQueue::new();
    let e = queue.push("transcode", ReadyAgenda::default(), 0).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)) && message(&e).contains("transcode"), "{e}");
    assert_eq!(queue.len("transcode").await.unwrap(), 0);
}

#[tokio::test]
async fn a_lost_lease_conflict_says_what_happened() {
    let queue = MemoryQueue::new();
    queue.push("transcode", item("a-7"), 0).await.unwrap();
    let lease = queue.receive("transcode", 1, 10, 0).await.unwrap();
    queue.release(&lease[0].token, 1).await.unwrap();
    let e = queue.ack(&lease[0].token).await.unwrap_err();
    let text = message(&e);
    assert!(
        e.is_conflict() && text.contains("a-7") && text.contains("transcode") && text.contains("no longer held"),
        "{text}"
    );
}

#[tokio::test]
async fn a_phase_entry_on_a_kind_without_a_phase_index_is_invalid_and_a_foreign_cursor_too() {
    use crate::store::{Phase, PhaseEntry};
    let store = MemoryStore::new();
    let mut r = record(Kind::Agenda, "a-1", vec![]);
    r.phase = Some(PhaseEntry::new(Phase::Finished, 5));
    let e = store.write(vec![WriteOp::Create(r)]).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(message(&e).contains("a-1") && message(&e).contains("no phase index"), "{e}");
    let page = PageRequest { limit: 10, cursor: Some("nope".into()) };
    let e = store.query_phase(Kind::AgendaProgress, Phase::Finished, PhaseEntry::ALL_TIMES, page).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
}
