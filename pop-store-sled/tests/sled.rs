//! sled-specific behaviour: persistence across reopen, the format version, corruption, integrity,
//! and concurrent submitters and receivers.

mod common;

use common::{now_ms, progress_id, submit_ops};
use pop_core::Error;
use pop_core::model::{AgendaProgress, OperationProgress};
use pop_core::queue::QueueBackend;
use pop_core::store::{IndexField, Kind, PageRequest, Store, StoreExt, WriteOp};
use pop_store_sled::{Config, FlushPolicy, SledStore, format};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

fn on_disk(dir: &std::path::Path, policy: FlushPolicy) -> SledStore {
    SledStore::open(Config::new(dir).flush_policy(policy)).expect("open sled database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_and_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    for policy in [FlushPolicy::FlushEveryWrite, FlushPolicy::GroupCommit { max_delay_ms: 1 }] {
        let _ = std::fs::remove_dir_all(dir.path());
        {
            let store = on_disk(dir.path(), policy);
            store.write(submit_ops("a-1", "acme", "ins", 10, now_ms())).await.unwrap();
            assert!(store.queue().push("ins", common::ready("a-1", "acme", "ins", now_ms()), now_ms()).await.unwrap());
        }
        let store = on_disk(dir.path(), policy);
        let report = store.check_integrity().unwrap();
        assert!(report.is_ok(), "{policy:?}: {:?}", report.problems);
        assert_eq!(report.objects, 12, "agenda + progress + 10 operation progresses");
        assert_eq!(
            report.index_entries,
            3 + 3 + 10 * 2,
            "agenda: customer, link, title; progress: customer, link, agenda"
        );
        let ops: Vec<OperationProgress> =
            store.query_all(IndexField::AgendaProgressId, &progress_id("a-1")).await.unwrap();
        assert_eq!(ops.len(), 10);
        assert_eq!(store.ready_get("a-1").await.unwrap().map(|r| r.agenda_id), Some("a-1".into()));
        assert_eq!(store.queue().len("ins").await.unwrap(), 1);
    }
}

/// A directory held by an open store cannot be opened a second time: after waiting for the lock, the
/// error says the database is in use; once the first store is dropped, it opens at once.
#[tokio::test]
async fn a_database_in_use_is_a_clear_error_and_opens_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = on_disk(dir.path(), FlushPolicy::GroupCommit { max_delay_ms: 1 });
    let err = SledStore::open(Config::new(dir.path())).unwrap_err();
    assert!(err.to_string().contains("in use by another process or another open store"), "{err}");
    drop(first);
    let again = SledStore::open(Config::new(dir.path()));
    assert!(again.is_ok(), "reopen after drop: {:?}", again.err());
}

#[tokio::test]
async fn unknown_format_version_is_a_typed_error_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = on_disk(dir.path(), FlushPolicy::FlushEveryWrite);
        store.sled_db().open_tree(format::META_TREE).unwrap().insert(format::FORMAT_KEY, b"99").unwrap();
        store.sled_db().flush().unwrap();
    }
    let err = SledStore::open(Config::new(dir.path())).unwrap_err();
    match &err {
        Error::Unsupported(msg) => {
            assert!(msg.contains("format version 99"), "{msg}");
            assert!(msg.contains(&format!("format version {}", format::FORMAT_VERSION)), "{msg}");
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_with_data_but_no_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("something").unwrap().insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(Config::new(dir.path())).unwrap_err();
    assert!(matches!(&err, Error::Unsupported(m) if m.contains("no format version")), "{err}");
}

#[tokio::test]
async fn corrupt_values_are_typed_errors_naming_kind_and_key() {
    let store = SledStore::temporary().unwrap();
    let db = store.sled_db();
    // An object value that is not a record.
    db.open_tree(format::obj_tree(Kind::Agenda)).unwrap().insert(b"a-bad", &b"garbage!garbage!garbage"[..]).unwrap();
    match store.get(Kind::Agenda, "a-bad").await {
        Err(Error::Corrupt { kind, id, .. }) => assert_eq!((kind.as_str(), id.as_str()), ("agenda", "a-bad")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A well-formed record whose body is not JSON.
    let v = format::encode_record(1, &[], None, b"{not json");
    db.open_tree(format::obj_tree(Kind::Customer)).unwrap().insert(b"c-bad", v).unwrap();
    assert!(
        matches!(store.get(Kind::Customer, "c-bad").await, Err(Error::Corrupt { kind, id, .. }) if kind == "customer" && id == "c-bad")
    );
    // Updating a corrupt object aborts the batch with the same error.
    let mut c = pop_core::model::Customer { id: Some("c-bad".into()), version: 1, ..Default::default() };
    assert!(matches!(store.update_obj(&mut c).await, Err(Error::Corrupt { .. })));
    // A ready entry.
    store.write(submit_ops("a-2", "acme", "ins", 0, now_ms())).await.unwrap();
    let key = db.open_tree(format::READY_BY_AGENDA_TREE).unwrap().get(b"a-2").unwrap().unwrap();
    db.open_tree(format::READY_TREE).unwrap().insert(&key, &b"[1,2"[..]).unwrap();
    match store.ready_get("a-2").await {
        Err(Error::Corrupt { kind, id, .. }) => {
            assert_eq!(kind, "ready");
            assert!(id.starts_with("ins\\0acme\\0"), "the key is shown: {id}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.ready_list("ins", PageRequest::first(10)).await, Err(Error::Corrupt { .. })));
    // A queue item.
    let q = store.queue();
    q.push("ins", common::ready("a-3", "acme", "ins", 0), 0).await.unwrap();
    let entries = db.open_tree(format::Q_ENTRIES_TREE).unwrap();
    let (k, _) = entries.iter().next().unwrap().unwrap();
    entries.insert(&k, &b"nope"[..]).unwrap();
    match q.receive("ins", 1, 1000, now_ms()).await {
        Err(Error::Corrupt { kind, id, .. }) => {
            assert_eq!(kind, "q/entries");
            assert!(id.starts_with("ins\\0"), "{id}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A lease.
    db.open_tree(format::LEASES_TREE).unwrap().insert(b"sched", &b"x"[..]).unwrap();
    assert!(
        matches!(store.lease_acquire("sched", "me", 10, 0).await, Err(Error::Corrupt { kind, id, .. }) if kind == "leases" && id == "sched")
    );
    // The integrity check reports every one of them.
    let report = store.check_integrity().unwrap();
    assert!(report.problems.iter().any(|p| p.contains("a-bad")), "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.contains("c-bad")), "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.contains("q/entries")), "{:?}", report.problems);
}

#[tokio::test]
async fn integrity_check_finds_dangling_and_missing_index_entries() {
    let store = SledStore::temporary().unwrap();
    store.write(submit_ops("a-1", "acme", "ins", 2, now_ms())).await.unwrap();
    assert!(store.check_integrity().unwrap().is_ok());
    let idx = store.sled_db().open_tree(format::idx_tree(Kind::Agenda)).unwrap();
    idx.insert(format::index_key(IndexField::CustomerId, "acme", "ghost"), &[]).unwrap();
    idx.remove(format::index_key(IndexField::Title, "title of a-1", "a-1")).unwrap();
    let problems = store.check_integrity().unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("missing ghost")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("agenda a-1: no index entry for title")), "{problems:?}");
    // A query skips the dangling entry instead of failing.
    let page = store.query(Kind::Agenda, IndexField::CustomerId, "acme", PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a-1"]);
}

#[tokio::test]
async fn batch_failure_leaves_nothing_and_reports_the_first_failing_condition() {
    let store = SledStore::temporary().unwrap();
    store.write(submit_ops("a-1", "acme", "ins", 1, now_ms())).await.unwrap();
    let mut ops = submit_ops("a-2", "acme", "ins", 1, now_ms());
    ops.push(WriteOp::Update {
        record: store.get(Kind::AgendaProgress, &progress_id("a-1")).await.unwrap().unwrap(),
        expected_version: 7,
    });
    let err = store.write(ops).await.unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("expected version 7, stored version is 1"), "{err}");
    assert!(store.get(Kind::Agenda, "a-2").await.unwrap().is_none());
    assert!(store.ready_get("a-2").await.unwrap().is_none());
    assert!(store.check_integrity().unwrap().is_ok());
    let p: AgendaProgress = store.fetch(&progress_id("a-1")).await.unwrap();
    assert_eq!(p.version, 1);
}

/// 16 tasks submit (batch + push) while 8 receive and ack: every agenda is delivered exactly once
/// (leases are long, so no redelivery is allowed) and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_submitters_and_eight_receivers() {
    const SUBMITTERS: usize = 16;
    const PER: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let store = on_disk(dir.path(), FlushPolicy::GroupCommit { max_delay_ms: 1 });
    let q = Arc::new(store.queue());
    let delivered: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut submitters = Vec::new();
    for s in 0..SUBMITTERS {
        let (store, q) = (store.clone(), q.clone());
        submitters.push(tokio::spawn(async move {
            for i in 0..PER {
                let id = format!("a-{s}-{i}");
                store.write(submit_ops(&id, &format!("c{}", s % 4), "ins", 2, now_ms())).await.unwrap();
                assert!(q.push("ins", common::ready(&id, "c", "ins", now_ms()), now_ms()).await.unwrap());
                store.write(vec![WriteOp::ReadyRemove { agenda_id: id }]).await.unwrap();
            }
        }));
    }
    let mut receivers = Vec::new();
    for _ in 0..8 {
        let (q, delivered, done) = (q.clone(), delivered.clone(), done.clone());
        receivers.push(tokio::spawn(async move {
            loop {
                let leases = q.receive("ins", 3, 600_000, now_ms()).await.unwrap();
                if leases.is_empty() {
                    if done.load(std::sync::atomic::Ordering::SeqCst) && q.len("ins").await.unwrap() == 0 {
                        return;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for l in leases {
                    *delivered.lock().unwrap().entry(l.item.agenda_id.clone()).or_default() += 1;
                    q.ack(&l.token).await.unwrap();
                }
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in receivers {
        r.await.unwrap();
    }
    let delivered = delivered.lock().unwrap().clone();
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let want: HashSet<String> = (0..SUBMITTERS).flat_map(|s| (0..PER).map(move |i| format!("a-{s}-{i}"))).collect();
    let got: HashSet<String> = delivered.keys().cloned().collect();
    assert_eq!(got, want, "every pushed agenda is delivered");
    assert_eq!(q.len("ins").await.unwrap(), 0);
    let report = store.check_integrity().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.objects, SUBMITTERS * PER * 4);
    assert_eq!(report.ready_entries, 0);
}

#[tokio::test]
async fn expired_reads_only_lapsed_leases_and_epochs_grow_across_repush() {
    let store = SledStore::temporary().unwrap();
    let q = store.queue();
    for i in 0..5 {
        q.push("ins", common::ready(&format!("a{i}"), "c", "ins", 0), 0).await.unwrap();
    }
    let leases = q.receive("ins", 5, 100, 1_000).await.unwrap();
    assert_eq!(leases.len(), 5);
    q.extend(&leases[0].token, 10_000, 1_000).await.unwrap();
    let exp = q.expired("ins", 2_000, 10).await.unwrap();
    assert_eq!(exp.len(), 4, "the extended lease is not expired");
    assert!(exp.iter().all(|l| l.token.agenda_id != "a0"));
    assert_eq!(q.expired("ins", 2_000, 2).await.unwrap().len(), 2, "limit");
    // Ack then push again: the new delivery's epoch is higher than the old one.
    let old = leases[1].token.clone();
    q.ack(&old).await.unwrap();
    assert!(q.ack(&old).await.unwrap_err().is_conflict());
    q.push("ins", common::ready("a1", "c", "ins", 0), 0).await.unwrap();
    let again = q.receive("ins", 10, 100, 5_000).await.unwrap();
    let a1 = again.iter().find(|l| l.token.agenda_id == "a1").expect("a1 delivered again");
    assert!(a1.token.epoch > old.epoch);
    assert!(store.check_integrity().unwrap().is_ok());
}

/// A record value in format 1 (see `pop_store_sled::format`): version, index count, index values,
/// body — written by hand here, as the previous build wrote it.
fn v1_record(version: u64, indexes: &[(u8, &str)], body: &serde_json::Value) -> Vec<u8> {
    let mut v = version.to_be_bytes().to_vec();
    v.push(indexes.len() as u8);
    for (code, value) in indexes {
        v.push(*code);
        v.extend_from_slice(&(value.len() as u32).to_be_bytes());
        v.extend_from_slice(value.as_bytes());
    }
    v.extend_from_slice(&serde_json::to_vec(body).unwrap());
    v
}

/// A database written by the previous build (format 1: no phase index) is upgraded when opened, once:
/// every agenda progress lands in the phase its body calls for, other kinds are untouched, the format
/// becomes 3 (the queue upgrade follows), the next open does not rebuild, and writes keep the index from then on.
#[tokio::test]
async fn a_format_1_database_gets_its_phase_index_once_when_opened() {
    use pop_core::model::{Agenda, AgendaProgress, Conclusion, ProcessingState};
    use pop_core::store::{Phase, PhaseEntry};
    let dir = tempfile::tempdir().unwrap();
    {
        // What the previous build left on disk, through the raw sled API.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(format::META_TREE).unwrap().insert(format::FORMAT_KEY, b"1").unwrap();
        let progress = db.open_tree(format::obj_tree(Kind::AgendaProgress)).unwrap();
        let idx = db.open_tree(format::idx_tree(Kind::AgendaProgress)).unwrap();
        let docs = [
            (
                "p-wait",
                serde_json::json!({"id": "p-wait", "customerId": "acme", "processingState": "WAITING", "addedTime": 1000}),
            ),
            (
                "p-exec",
                serde_json::json!({"id": "p-exec", "customerId": "acme", "processingState": "EXECUTING", "addedTime": 1500, "updatedTime": 1600}),
            ),
            (
                "p-retry",
                serde_json::json!({"id": "p-retry", "customerId": "acme", "processingState": "COMPLETE",
                "processingStateMessage": "failed", "attemptsCompleted": 1, "maximumAttempts": 3, "completedTime": 2000}),
            ),
            (
                "p-done",
                serde_json::json!({"id": "p-done", "customerId": "acme", "processingState": "COMPLETE",
                "processingStateMessage": "succeeded", "attemptsCompleted": 1, "completedTime": 3000, "updatedTime": 3001}),
            ),
            (
                "p-null",
                serde_json::json!({"id": "p-null", "customerId": "acme", "processingState": null,
                "maximumAttempts": null, "updatedTime": 1200}),
            ),
        ];
        for (id, doc) in &docs {
            progress.insert(id.as_bytes(), v1_record(4, &[(1, "acme")], doc)).unwrap();
            idx.insert(format::index_key(IndexField::CustomerId, "acme", id), &[]).unwrap();
        }
        let agendas = db.open_tree(format::obj_tree(Kind::Agenda)).unwrap();
        agendas.insert(b"a-1", v1_record(2, &[], &serde_json::json!({"id": "a-1", "operations": []}))).unwrap();
        db.flush().unwrap();
    }
    let store = on_disk(dir.path(), FlushPolicy::FlushEveryWrite);
    let meta = store.sled_db().open_tree(format::META_TREE).unwrap();
    assert_eq!(meta.get(format::FORMAT_KEY).unwrap().as_deref(), Some(&b"3"[..]), "the format is now 3");
    let report = store.check_integrity().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.objects, report.index_entries, report.phase_entries), (6, 5, 5));
    let listed = |phase| {
        let store = store.clone();
        async move {
            let page = store
                .query_phase(Kind::AgendaProgress, phase, PhaseEntry::ALL_TIMES, PageRequest::first(10))
                .await
                .unwrap();
            page.items.into_iter().map(|r| (r.phase.map(|p| p.at), r.id, r.version)).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(Phase::Unfinished).await,
        vec![(Some(1000), "p-wait".into(), 4), (Some(1200), "p-null".into(), 4), (Some(1500), "p-exec".into(), 4)],
        "unfinished by added time (updated time when none), versions kept"
    );
    assert_eq!(listed(Phase::Retryable).await, vec![(Some(2000), "p-retry".into(), 4)]);
    assert_eq!(listed(Phase::Finished).await, vec![(Some(3000), "p-done".into(), 4)]);
    let a = store.get(Kind::Agenda, "a-1").await.unwrap().unwrap();
    assert_eq!((a.version, a.phase), (2, None), "other kinds are read as they were");
    let by_customer = store.query(Kind::AgendaProgress, IndexField::CustomerId, "acme", PageRequest::first(10));
    assert_eq!(by_customer.await.unwrap().items.len(), 5, "the field indexes still answer");

    // Writes through the store keep the index.
    let mut p: AgendaProgress = store.fetch("p-wait").await.unwrap();
    p.processing_state = ProcessingState::Complete;
    p.processing_state_message = Some(Conclusion::Cancelled.as_str().into());
    p.completed_time = Some(5000);
    store.update_obj(&mut p).await.unwrap();
    assert_eq!(
        store.get(Kind::AgendaProgress, "p-wait").await.unwrap().and_then(|r| r.phase),
        Some(PhaseEntry::new(Phase::Finished, 5000))
    );
    let mut agenda: Agenda = store.fetch("a-1").await.unwrap();
    store.update_obj(&mut agenda).await.unwrap();
    assert!(store.check_integrity().unwrap().is_ok());

    // Opened again: no second rebuild (an entry removed behind the store's back stays missing).
    let phases = store.sled_db().open_tree(format::phase_tree(Kind::AgendaProgress)).unwrap();
    assert!(phases.remove(format::phase_key(PhaseEntry::new(Phase::Finished, 3000), "p-done")).unwrap().is_some());
    store.flush().await.unwrap();
    drop((store, meta, phases));
    let store = on_disk(dir.path(), FlushPolicy::FlushEveryWrite);
    let report = store.check_integrity().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("p-done: no phase-index entry"), "{:?}", report.problems);
}

/// A format-1 record whose body is not an agenda progress stays out of the index (with a warning)
/// and does not stop the upgrade; the integrity check names it.
#[tokio::test]
async fn an_unreadable_record_does_not_stop_the_upgrade() {
    use pop_core::store::{Phase, PhaseEntry};
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(format::META_TREE).unwrap().insert(format::FORMAT_KEY, b"1").unwrap();
        let progress = db.open_tree(format::obj_tree(Kind::AgendaProgress)).unwrap();
        progress
            .insert(b"p-bad", v1_record(1, &[], &serde_json::json!({"id": "p-bad", "attemptsCompleted": "x"})))
            .unwrap();
        progress.insert(b"p-ok", v1_record(1, &[], &serde_json::json!({"id": "p-ok", "addedTime": 7}))).unwrap();
        db.flush().unwrap();
    }
    let store = on_disk(dir.path(), FlushPolicy::FlushEveryWrite);
    let page =
        store.query_phase(Kind::AgendaProgress, Phase::Unfinished, PhaseEntry::ALL_TIMES, PageRequest::first(10));
    let ids: Vec<String> = page.await.unwrap().items.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["p-ok"]);
    let report = store.check_integrity().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("p-bad"), "{:?}", report.problems);
}

/// A database written by the previous build (format 2: the queue in four trees, JSON entries) has
/// its queue rewritten when opened, once: visible items are received in push order, a lease held
/// across the upgrade is still current (its receipt and epoch fence as before) and expires as before,
/// counts are kept, the old trees are gone, and the format becomes 3.
#[tokio::test]
async fn a_format_2_queue_is_rewritten_once_and_its_leases_stay_current() {
    use pop_core::queue::LeaseToken;
    let dir = tempfile::tempdir().unwrap();
    let item = |a: &str| serde_json::to_value(common::ready(a, "acme", "ins", 10)).unwrap();
    {
        // What the previous build left on disk, through the raw sled API.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(format::META_TREE).unwrap().insert(format::FORMAT_KEY, b"2").unwrap();
        let items = db.open_tree(format::Q_ITEMS_TREE).unwrap();
        let visible = db.open_tree(format::Q_VISIBLE_TREE).unwrap();
        let deadline = db.open_tree(format::Q_DEADLINE_TREE).unwrap();
        let dedup = db.open_tree(format::Q_DEDUP_TREE).unwrap();
        let key = |seq: u64| [format::component("ins"), seq.to_be_bytes().to_vec()].concat();
        // a-2 and a-1 visible (pushed in that order), a-3 leased until 5000 with epoch 7
        for (seq, agenda) in [(4u64, "a-2"), (9, "a-1")] {
            items
                .insert(key(seq), serde_json::to_vec(&serde_json::json!({"item": item(agenda), "epoch": 0})).unwrap())
                .unwrap();
            visible.insert(key(seq), &[]).unwrap();
            dedup.insert([format::component("ins"), agenda.as_bytes().to_vec()].concat(), &seq.to_be_bytes()).unwrap();
        }
        let leased = serde_json::json!({"item": item("a-3"), "epoch": 7, "receipt": "r-3", "deadline": 5000});
        items.insert(key(2), serde_json::to_vec(&leased).unwrap()).unwrap();
        deadline
            .insert(
                [format::component("ins"), format::i64_key(5000).to_vec(), 2u64.to_be_bytes().to_vec()].concat(),
                &[],
            )
            .unwrap();
        dedup.insert([format::component("ins"), b"a-3".to_vec()].concat(), &2u64.to_be_bytes()).unwrap();
        db.open_tree(format::Q_COUNT_TREE).unwrap().insert(b"ins", &3u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = on_disk(dir.path(), FlushPolicy::FlushEveryWrite);
    let db = store.sled_db();
    assert_eq!(db.open_tree(format::META_TREE).unwrap().get(format::FORMAT_KEY).unwrap().as_deref(), Some(&b"3"[..]));
    let names: Vec<String> = db.tree_names().iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    for old in [format::Q_ITEMS_TREE, format::Q_VISIBLE_TREE, format::Q_DEADLINE_TREE, format::Q_DEDUP_TREE] {
        assert!(!names.iter().any(|n| n == old), "{old} is dropped: {names:?}");
    }
    let report = store.check_integrity().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.queue_items, 3);
    let q = store.queue();
    assert_eq!(q.len("ins").await.unwrap(), 3);
    assert_eq!(q.leased("ins", 1000).await.unwrap(), 1);
    assert!(q.contains("ins", "a-3").await.unwrap());
    // The lease held across the upgrade: a stale token is refused, the current one extends.
    let held = LeaseToken { insight_id: "ins".into(), agenda_id: "a-3".into(), receipt: "r-3".into(), epoch: 7 };
    let stale = LeaseToken { epoch: 6, ..held.clone() };
    assert!(q.ack(&stale).await.unwrap_err().is_conflict());
    assert_eq!(q.extend(&held, 1000, 4000).await.unwrap(), 5000);
    // Visible items come in push order, not the lease.
    let got = q.receive("ins", 10, 1000, 1000).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|l| l.token.agenda_id.as_str()).collect();
    assert_eq!(ids, ["a-2", "a-1"]);
    assert!(got.iter().all(|l| l.token.epoch > 7 && l.item.customer_id == "acme"));
    // After its deadline the old lease is delivered again, with a higher epoch (earliest deadline first).
    assert!(q.expired("ins", 4500, 10).await.unwrap().iter().all(|l| l.token.agenda_id != "a-3"));
    let expired = q.expired("ins", 6000, 10).await.unwrap();
    assert_eq!(expired.iter().map(|l| l.token.agenda_id.as_str()).collect::<Vec<_>>(), ["a-2", "a-1", "a-3"]);
    let again = q.receive("ins", 10, 1000, 6000).await.unwrap();
    assert_eq!(again.len(), 3, "every lease has lapsed at 6000");
    let a3 = again.iter().find(|l| l.token.agenda_id == "a-3").unwrap();
    assert!(a3.token.epoch > got.iter().map(|l| l.token.epoch).max().unwrap());
    assert!(q.ack(&held).await.unwrap_err().is_conflict(), "the old delivery is fenced");
    assert_eq!(q.ack_many(&again.iter().map(|l| l.token.clone()).collect::<Vec<_>>()).await.len(), 3);
    assert_eq!(q.len("ins").await.unwrap(), 0);
    assert!(store.check_integrity().unwrap().is_ok());
}

/// A fjall database's directory given to the sled store by mistake is refused, not filled with
/// sled's files beside fjall's.
#[test]
fn a_fjall_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("version"), b"FJL").unwrap();
    std::fs::create_dir(dir.path().join("journals")).unwrap();
    let err = SledStore::open(Config::new(dir.path())).unwrap_err().to_string();
    assert!(err.contains("holds a fjall database"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "sled wrote into the fjall directory");
}
