//! DynamoDB-specific behaviour beyond the conformance suite: 1 MB pages, the transaction limit,
//! concurrent CAS, error meanings, table management and request counts. Needs
//! `POP_DYNAMODB_ENDPOINT`; every test skips, saying why, when it is unset (except the ones that need
//! no server).

mod common;

use pop_core::Error;
use pop_core::model::ReadyAgenda;
use pop_core::queue::QueueBackend;
use pop_core::store::{IndexField, Kind, PageRequest, Phase, PhaseEntry, Record, Store, StoreExt, WriteOp};
use pop_core::testing::unique;
use pop_store_dynamo::{DynamoBackend, DynamoConfig, MAX_TRANSACTION_ITEMS, PHASE_SHARDS};
use std::sync::Arc;

fn now() -> i64 {
    pop_core::testing::wall_clock()
}

fn ready(insight: &str, agenda: &str, added: i64) -> ReadyAgenda {
    ReadyAgenda {
        id: agenda.to_owned(),
        insight_id: insight.to_owned(),
        agenda_id: agenda.to_owned(),
        customer_id: "c".to_owned(),
        added,
        priority: 0,
    }
}

/// An agenda record of about `size` bytes of body, indexed by `customer`.
fn agenda(id: &str, customer: &str, size: usize) -> Record {
    let body = serde_json::json!({"id": id, "customerId": customer, "pad": "x".repeat(size)});
    Record {
        kind: Kind::Agenda,
        id: id.to_owned(),
        version: 1,
        indexes: vec![(IndexField::CustomerId, customer.to_owned())],
        phase: None,
        body: serde_json::to_vec(&body).unwrap(),
    }
}

fn schedule(id: &str, n: u64) -> Record {
    Record {
        kind: Kind::InsightSchedule,
        id: id.to_owned(),
        version: 0,
        indexes: vec![],
        phase: None,
        body: serde_json::to_vec(&serde_json::json!({ "n": n })).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_and_scans_page_across_one_megabyte_responses() {
    let Some(b) = common::backend("queries_and_scans_page_across_one_megabyte_responses").await.unwrap() else {
        return;
    };
    let store = b.store();
    let customer = unique("big");
    // 30 items of ~100 KB: ~3 MB, so every listing needs at least 3 DynamoDB responses.
    let ids: Vec<String> = (0..30).map(|i| format!("{}-{i:02}", unique("a"))).collect();
    for chunk in ids.chunks(10) {
        store.write(chunk.iter().map(|id| WriteOp::Create(agenda(id, &customer, 100_000))).collect()).await.unwrap();
    }
    let mut sorted = ids.clone();
    sorted.sort();

    let before = b.request_counts();
    let page = store.query(Kind::Agenda, IndexField::CustomerId, &customer, PageRequest::first(100)).await.unwrap();
    let used = b.request_counts().since(&before);
    assert_eq!(page.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), sorted, "one POP page of all 30");
    assert!(page.next.is_none(), "the last page has no cursor");
    assert!(page.items.iter().all(|r| r.body.len() > 100_000), "bodies come back whole");
    let queries = used.by_action.get("Query").copied().unwrap_or(0);
    assert!(queries >= 3, "3 MB should take at least 3 DynamoDB Query responses, took {queries}");

    // Pages of 7 across the 1 MB boundaries: same sequence, each id once.
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let p = store
            .query(Kind::Agenda, IndexField::CustomerId, &customer, PageRequest { limit: 7, cursor })
            .await
            .unwrap();
        assert!(p.items.len() <= 7);
        got.extend(p.items.into_iter().map(|r| r.id));
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(got, sorted);

    // scan reads the kind through the keys-only index and fetches the items in batches.
    let mut scanned = Vec::new();
    let mut cursor = None;
    loop {
        let p = store.scan(Kind::Agenda, PageRequest { limit: 12, cursor }).await.unwrap();
        scanned.extend(p.items.into_iter().filter(|r| r.body.len() > 100_000).map(|r| r.id));
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(scanned, sorted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_over_the_transaction_limit_is_unsupported_and_writes_nothing() {
    let Some(b) = common::backend("a_batch_over_the_transaction_limit_is_unsupported").await.unwrap() else {
        return;
    };
    let store = b.store();
    assert_eq!(store.max_batch(), MAX_TRANSACTION_ITEMS);
    let prefix = unique("s");
    let ops: Vec<WriteOp> =
        (0..=MAX_TRANSACTION_ITEMS).map(|i| WriteOp::Create(schedule(&format!("{prefix}-{i}"), 0))).collect();
    let before = b.request_counts();
    match store.write(ops).await {
        Err(Error::Unsupported(msg)) => {
            assert!(msg.contains("101") && msg.contains("100"), "names the count and the limit: {msg}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(b.request_counts().since(&before).total, 0, "refused before any request");
    assert!(store.get(Kind::InsightSchedule, &format!("{prefix}-0")).await.unwrap().is_none());

    // Exactly 100 operations of mixed kinds (objects, ready inserts and removals) is one transaction.
    let insight = unique("insight");
    let mut ops: Vec<WriteOp> =
        (0..60).map(|i| WriteOp::Create(schedule(&format!("{prefix}-m{i}"), 0))).collect::<Vec<_>>();
    ops.extend((0..30).map(|i| WriteOp::ReadyInsert(ready(&insight, &format!("{prefix}-r{i}"), i))));
    ops.extend((0..10).map(|i| WriteOp::ReadyRemove { agenda_id: format!("{prefix}-gone{i}") }));
    let before = b.request_counts();
    store.write(ops).await.unwrap();
    let used = b.request_counts().since(&before);
    assert_eq!(used.by_action.get("TransactWriteItems"), Some(&1), "one transaction: {used:?}");
    assert_eq!(used.total, 1, "and nothing else: {used:?}");
    let listed = store.ready_list(&insight, PageRequest::first(100)).await.unwrap();
    assert_eq!(listed.items.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_batch_reports_the_first_failing_operation_and_writes_nothing() {
    let Some(b) = common::backend("a_failing_batch_reports_the_first_failing_operation").await.unwrap() else {
        return;
    };
    let store = b.store();
    let id = unique("s");
    store.write(vec![WriteOp::Create(schedule(&id, 1))]).await.unwrap();
    let fresh = unique("s");
    let insight = unique("insight");
    let stale = WriteOp::Update { record: schedule(&id, 2), expected_version: 7 };
    let r = store
        .write(vec![
            WriteOp::Create(schedule(&fresh, 1)),
            stale.clone(),
            WriteOp::ReadyInsert(ready(&insight, &fresh, 1)),
        ])
        .await;
    match r {
        Err(Error::Conflict(msg)) => assert!(msg.contains(&id) && msg.contains("version 1"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(store.get(Kind::InsightSchedule, &fresh).await.unwrap().is_none(), "the create was rolled back");
    assert!(store.ready_get(&fresh).await.unwrap().is_none(), "the ready insert was rolled back");

    let missing = unique("s");
    let r = store
        .write(vec![
            WriteOp::Create(schedule(&fresh, 1)),
            WriteOp::Update { record: schedule(&missing, 2), expected_version: 1 },
        ])
        .await;
    assert!(matches!(r, Err(Error::NotFound { ref id, .. }) if *id == missing), "{r:?}");
    let r = store
        .write(vec![WriteOp::Delete { kind: Kind::InsightSchedule, id: missing.clone(), expected_version: None }])
        .await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    let r = store.write(vec![WriteOp::Create(schedule(&id, 1)), WriteOp::Create(schedule(&fresh, 1))]).await;
    assert!(matches!(r, Err(Error::Conflict(ref m)) if m.contains("already exists")), "{r:?}");

    // Touching one object twice in a batch is the caller's mistake, named before any request.
    let r = store
        .write(vec![
            WriteOp::Create(schedule(&fresh, 1)),
            WriteOp::Delete { kind: Kind::InsightSchedule, id: fresh.clone(), expected_version: None },
        ])
        .await;
    assert!(matches!(r, Err(Error::Invalid(ref p)) if p.to_string().contains("twice")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_invalid_and_names_what() {
    let Some(b) = common::backend("bad_input_is_invalid_and_names_what").await.unwrap() else { return };
    let store = b.store();
    let id = unique("huge");
    let r = store.write(vec![WriteOp::Create(agenda(&id, "c", 500_000))]).await;
    match r {
        Err(Error::Invalid(p)) => {
            assert!(p.to_string().contains(&id) && p.to_string().contains("DynamoDB item"), "{p}")
        }
        other => panic!("expected Invalid for a 500 KB item, got {other:?}"),
    }
    let r = store.query(Kind::Agenda, IndexField::AgendaProgressId, "x", PageRequest::first(10)).await;
    assert!(matches!(r, Err(Error::Invalid(ref p)) if p.to_string().contains("not indexed")), "{r:?}");
    let r = store
        .query(Kind::Agenda, IndexField::CustomerId, "x", PageRequest { limit: 10, cursor: Some("garbage!".into()) })
        .await;
    assert!(matches!(r, Err(Error::Invalid(ref p)) if p.to_string().contains("cursor")), "{r:?}");
    // A cursor of another listing is refused too.
    let insight = unique("insight");
    store.write((0..3).map(|i| WriteOp::ReadyInsert(ready(&insight, &unique("a"), i))).collect()).await.unwrap();
    let p = store.ready_list(&insight, PageRequest::first(1)).await.unwrap();
    let r = store.ready_list(&unique("insight"), PageRequest { limit: 1, cursor: p.next }).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let r = store.write(vec![WriteOp::ReadyInsert(ready("", "a", 1))]).await;
    assert!(matches!(r, Err(Error::Invalid(ref p)) if p.to_string().contains("insight")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_from_many_tasks_loses_no_update() {
    let Some(b) = common::backend("concurrent_cas_from_many_tasks_loses_no_update").await.unwrap() else { return };
    let store = Arc::new(b.store());
    let id = unique("counter");
    store.write(vec![WriteOp::Create(schedule(&id, 0))]).await.unwrap();
    const TASKS: u64 = 16;
    const EACH: u64 = 8;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let (store, id) = (store.clone(), id.clone());
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            let mut done = 0;
            while done < EACH {
                let cur = store.get(Kind::InsightSchedule, &id).await.unwrap().unwrap();
                let n = serde_json::from_slice::<serde_json::Value>(&cur.body).unwrap()["n"].as_u64().unwrap();
                let next = WriteOp::Update { record: schedule(&id, n + 1), expected_version: cur.version };
                match store.write(vec![next]).await {
                    Ok(()) => done += 1,
                    Err(Error::Conflict(_)) => conflicts += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += h.await.unwrap();
    }
    let last = store.get(Kind::InsightSchedule, &id).await.unwrap().unwrap();
    let n = serde_json::from_slice::<serde_json::Value>(&last.body).unwrap()["n"].as_u64().unwrap();
    assert_eq!(n, TASKS * EACH, "every successful CAS counted once");
    assert_eq!(last.version, 1 + TASKS * EACH, "one version per successful CAS");
    eprintln!("{} CAS updates from {TASKS} tasks, {conflicts} conflicts retried", TASKS * EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_pages_past_leased_items() {
    let Some(b) = common::backend("receive_pages_past_leased_items").await.unwrap() else { return };
    let q = b.queue();
    let t0 = now();
    let insight = unique("insight");
    for i in 0..30 {
        assert!(q.push(&insight, ready(&insight, &format!("a{i:02}"), t0), t0).await.unwrap());
    }
    let first = q.receive(&insight, 20, 60_000, t0 + 1).await.unwrap();
    assert_eq!(first.len(), 20);
    let next = q.receive(&insight, 4, 60_000, t0 + 2).await.unwrap();
    let ids: Vec<&str> = next.iter().map(|l| l.token.agenda_id.as_str()).collect();
    assert_eq!(ids, ["a20", "a21", "a22", "a23"], "the oldest visible items, past 20 leased ones");
    let expired = q.expired(&insight, t0 + 60_001, 100).await.unwrap();
    assert_eq!(expired.len(), 20, "the first 20 leases lapse first (by_deadline index)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_per_operation_are_as_documented() {
    let Some(b) = common::backend("requests_per_operation_are_as_documented").await.unwrap() else { return };
    let (store, queue) = (b.store(), b.queue());
    let count = |before: &pop_store_dynamo::RequestCounts| b.request_counts().since(before).total;
    let id = unique("s");
    let t0 = now();
    let before = b.request_counts();
    store.write(vec![WriteOp::Create(schedule(&id, 0))]).await.unwrap();
    assert_eq!(count(&before), 1, "create = 1 PutItem");
    let before = b.request_counts();
    store.get(Kind::InsightSchedule, &id).await.unwrap();
    assert_eq!(count(&before), 1, "get = 1 GetItem");
    let insight = unique("insight");
    let before = b.request_counts();
    store.write(vec![WriteOp::ReadyInsert(ready(&insight, &id, t0))]).await.unwrap();
    assert_eq!(count(&before), 1, "ready insert = 1 PutItem");
    let before = b.request_counts();
    store.ready_list(&insight, PageRequest::first(10)).await.unwrap();
    let shards = u64::from(b.config().shards);
    assert_eq!(count(&before), shards + 1, "ready list = a Query per shard + BatchGetItem");
    let mut p = pop_core::model::AgendaProgress { id: Some(unique("p")), added_time: Some(t0), ..Default::default() };
    store.create_obj(&mut p).await.unwrap();
    let before = b.request_counts();
    let page = store.query_phase(Kind::AgendaProgress, Phase::Unfinished, t0..t0 + 1, PageRequest::first(10));
    assert_eq!(page.await.unwrap().items.len(), 1);
    let used = b.request_counts().since(&before);
    assert_eq!(
        (used.by_action.get("Query"), used.by_action.get("BatchGetItem"), used.total),
        (Some(&u64::from(PHASE_SHARDS)), Some(&1), u64::from(PHASE_SHARDS) + 1),
        "query_phase = a Query per shard + BatchGetItem: {used:?}"
    );
    let before = b.request_counts();
    assert!(queue.push(&insight, ready(&insight, &id, t0), t0).await.unwrap());
    let leases = queue.receive(&insight, 1, 1000, t0).await.unwrap();
    queue.ack(&leases[0].token).await.unwrap();
    assert_eq!(count(&before), 3 + shards, "push + receive(1) (a Query per shard + UpdateItem) + ack");
    let before = b.request_counts();
    assert_eq!(queue.waiting(&insight, t0).await.unwrap(), 0);
    assert_eq!(count(&before), shards, "waiting = a count Query per shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_tables_is_idempotent_and_refuses_foreign_tables() {
    let Some(b) = common::backend("ensure_tables_is_idempotent").await.unwrap() else { return };
    let before = b.request_counts();
    b.ensure_tables().await.unwrap();
    let used = b.request_counts().since(&before);
    assert_eq!(used.by_action.get("DescribeTable"), Some(&4), "{used:?}");
    assert_eq!(used.by_action.get("GetItem"), Some(&1), "the data format is read: {used:?}");
    assert_eq!(used.total, 5, "no create and no backfill when everything exists: {used:?}");
    let specs = b.table_specs();
    assert_eq!(specs.len(), 4);
    assert!(specs[0].aws_cli().contains("by_customerId"));

    // A table of the same name with other keys: an error naming it, not silent misuse.
    let prefix = common::prefix();
    let Some(endpoint) = common::endpoint("ensure_tables refuses foreign tables") else { return };
    let other = DynamoBackend::connect(DynamoConfig::local(endpoint).table_prefix(&prefix)).await.unwrap();
    other
        .client()
        .create_table()
        .table_name(format!("{prefix}leases"))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("name")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("name")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    match other.ensure_tables().await {
        Err(Error::Unsupported(msg)) => assert!(msg.contains(&format!("{prefix}leases")), "{msg}"),
        r => panic!("expected Unsupported, got {r:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_backend_error_with_a_hint() {
    // No server needed: a closed loopback port.
    let cfg = DynamoConfig::local("http://127.0.0.1:9").max_attempts(2);
    let b = DynamoBackend::connect(cfg).await.unwrap();
    let r = b.store().get(Kind::Agenda, "a-1").await;
    match r {
        Err(Error::Backend { backend, source }) => {
            assert_eq!(backend, "dynamodb");
            let msg = source.to_string();
            assert!(msg.contains("GetItem agenda a-1") && msg.contains("endpoint"), "{msg}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(b.request_counts().total, 2, "attempts are bounded by max_attempts");
}

#[tokio::test]
async fn bad_configuration_is_invalid() {
    let cfg = DynamoConfig::local("127.0.0.1:8000").table_prefix("pop tables/").max_attempts(0);
    match DynamoBackend::connect(cfg).await {
        Err(Error::Invalid(p)) => {
            let fields: Vec<_> = p.0.iter().filter_map(|p| p.field.clone()).collect();
            assert_eq!(fields, ["max_attempts", "table_prefix", "endpoint"], "{p}");
        }
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    }
}

/// Tables made by a build without the phase index: `ensure_tables` adds `by_phase` (UpdateTable) and
/// backfills the phase attributes of the agenda progress already there, once; versions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_an_earlier_build_get_the_phase_index_and_a_backfill() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    let Some(endpoint) = common::endpoint("tables_of_an_earlier_build_get_the_phase_index") else { return };
    let prefix = common::prefix();
    let b = DynamoBackend::connect(DynamoConfig::local(endpoint).table_prefix(&prefix)).await.unwrap();
    // The objects table as the previous ensure_tables made it: every index but by_phase.
    let spec = b.table_specs().into_iter().next().unwrap();
    let old_indexes: Vec<_> = spec.indexes.iter().filter(|i| i.name != "by_phase").collect();
    assert_eq!(old_indexes.len() + 1, spec.indexes.len(), "the spec has by_phase");
    let attr = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build().unwrap();
    let mut defs = vec![attr("pk")];
    let mut gsis = Vec::new();
    for i in &old_indexes {
        for a in [i.hash.name, i.range.name] {
            if !defs.iter().any(|d| d.attribute_name() == a) {
                defs.push(attr(a));
            }
        }
        let projection = if i.project_all { ProjectionType::All } else { ProjectionType::KeysOnly };
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .key_schema(key(i.hash.name, KeyType::Hash))
                .key_schema(key(i.range.name, KeyType::Range))
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .unwrap(),
        );
    }
    b.client()
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(defs))
        .key_schema(key("pk", KeyType::Hash))
        .set_global_secondary_indexes(Some(gsis))
        .send()
        .await
        .unwrap();
    // Items as the previous build wrote them: no ph / pt.
    let docs = [
        ("p-wait", 3, serde_json::json!({"id": "p-wait", "processingState": "WAITING", "addedTime": 1000})),
        (
            "p-retry",
            5,
            serde_json::json!({"id": "p-retry", "processingState": "COMPLETE", "processingStateMessage": "failed",
            "attemptsCompleted": 1, "maximumAttempts": 3, "completedTime": 2000}),
        ),
        (
            "p-done",
            7,
            serde_json::json!({"id": "p-done", "processingState": "COMPLETE", "processingStateMessage": "succeeded",
            "completedTime": 3000}),
        ),
    ];
    for (id, v, doc) in &docs {
        b.client()
            .put_item()
            .table_name(&spec.name)
            .item("pk", AttributeValue::S(format!("agendaProgress#{id}")))
            .item("kd", AttributeValue::S("agendaProgress".into()))
            .item("id", AttributeValue::S((*id).into()))
            .item("v", AttributeValue::N(v.to_string()))
            .item("x_customerId", AttributeValue::S("agendaProgress#acme".into()))
            .item("b", AttributeValue::B(serde_json::to_vec(doc).unwrap().into()))
            .send()
            .await
            .unwrap();
    }
    let store = b.store();
    assert!(store.get(Kind::AgendaProgress, "p-wait").await.unwrap().unwrap().phase.is_none());

    b.ensure_tables().await.unwrap();
    let described = b.client().describe_table().table_name(&spec.name).send().await.unwrap();
    let names: Vec<&str> =
        described.table().unwrap().global_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
    assert!(names.contains(&"by_phase"), "ensure_tables added by_phase: {names:?}");
    let listed = |phase| {
        let store = store.clone();
        async move {
            let page =
                store.query_phase(Kind::AgendaProgress, phase, PhaseEntry::ALL_TIMES, PageRequest::first(10)).await;
            page.unwrap().items.into_iter().map(|r| (r.id, r.version, r.phase.map(|p| p.at))).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(Phase::Unfinished).await, vec![("p-wait".to_owned(), 3, Some(1000))]);
    assert_eq!(listed(Phase::Retryable).await, vec![("p-retry".to_owned(), 5, Some(2000))]);
    assert_eq!(listed(Phase::Finished).await, vec![("p-done".to_owned(), 7, Some(3000))]);

    // Once: the next ensure_tables reads the recorded format and backfills nothing; a forced pass
    // finds nothing to do; writes keep the index.
    let before = b.request_counts();
    b.ensure_tables().await.unwrap();
    let used = b.request_counts().since(&before);
    assert_eq!(used.total, 5, "4 DescribeTable + the format GetItem: {used:?}");
    assert_eq!(b.backfill_phase_index().await.unwrap(), 0);
    let mut p: pop_core::model::AgendaProgress = store.fetch("p-wait").await.unwrap();
    p.processing_state = pop_core::model::ProcessingState::Executing;
    store.update_obj(&mut p).await.unwrap();
    assert_eq!(listed(Phase::Unfinished).await, vec![("p-wait".to_owned(), 4, Some(1000))]);
}

/// Tables an unsharded build wrote (no shard count recorded): `ensure_tables` moves their queue
/// items, ready entries and shared index values to the sharded keys, once, keeping versions, and
/// records the count; a process configured with another count is then refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_an_unsharded_build_move_to_shards_and_the_count_is_fixed() {
    use aws_sdk_dynamodb::types::AttributeValue::{B, N, S};
    let Some(endpoint) = common::endpoint("tables_of_an_unsharded_build_move_to_shards") else { return };
    let prefix = common::prefix();
    let cfg = DynamoConfig::local(endpoint).table_prefix(&prefix);
    let old = DynamoBackend::connect(cfg.clone()).await.unwrap();
    old.ensure_tables().await.unwrap();
    let names = old.table_names().clone();
    // What an unsharded build leaves: a format item without a shard count, items without `sh`,
    // bare insight ids in `q` and `ri`, bare `kd` and index values.
    let client = old.client();
    client
        .update_item()
        .table_name(&names.objects)
        .key("pk", S("_pop#format".into()))
        .update_expression("REMOVE qs")
        .send()
        .await
        .unwrap();
    let t0 = now();
    client
        .put_item()
        .table_name(&names.objects)
        .item("pk", S("agenda#a-old".into()))
        .item("kd", S("agenda".into()))
        .item("id", S("a-old".into()))
        .item("v", N("2".into()))
        .item("x_customerId", S("agenda#acme".into()))
        .item("b", B(br#"{"id":"a-old","customerId":"acme"}"#.to_vec().into()))
        .send()
        .await
        .unwrap();
    let entry = ReadyAgenda { customer_id: "acme".into(), ..ready("ins", "a-old", 5) };
    let json = serde_json::to_string(&entry).unwrap();
    let ro = format!("61636d65#{:08x}#{:016x}#a-old", i32::MAX, 5u64 ^ (1 << 63));
    client
        .put_item()
        .table_name(&names.ready)
        .item("a", S("a-old".into()))
        .item("ri", S("ins".into()))
        .item("ro", S(ro))
        .item("b", S(json.clone()))
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name(&names.queue)
        .item("q", S("ins".into()))
        .item("a", S("a-old".into()))
        .item("o", S(format!("{:016x}0000000000000001", (t0 as u64) ^ (1 << 63))))
        .item("ep", N("0".into()))
        .item("dl", N(t0.to_string()))
        .item("pt", N(t0.to_string()))
        .item("b", S(json))
        .send()
        .await
        .unwrap();

    let b = DynamoBackend::connect(cfg.clone()).await.unwrap();
    b.ensure_tables().await.unwrap();
    let (store, queue) = (b.store(), b.queue());
    let by_customer = store.query(Kind::Agenda, IndexField::CustomerId, "acme", PageRequest::first(10)).await.unwrap();
    let found: Vec<_> = by_customer.items.iter().map(|r| (r.id.as_str(), r.version, r.indexes.clone())).collect();
    assert_eq!(found, vec![("a-old", 2, vec![(IndexField::CustomerId, "acme".to_owned())])]);
    let all = store.scan(Kind::Agenda, PageRequest::first(10)).await.unwrap();
    assert_eq!(all.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a-old"]);
    let listed = store.ready_list("ins", PageRequest::first(10)).await.unwrap();
    assert_eq!(listed.items, vec![entry.clone()]);
    assert_eq!(queue.len("ins").await.unwrap(), 1);
    let leases = queue.receive("ins", 5, 1000, now()).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].token.insight_id.as_str(), leases[0].item.clone()), ("ins", entry));
    queue.ack(&leases[0].token).await.unwrap();
    assert_eq!(queue.len("ins").await.unwrap(), 0);
    // The scan of the old data ran once: the next process reads the recorded count only.
    let again = DynamoBackend::connect(cfg.clone()).await.unwrap();
    again.ensure_tables().await.unwrap();
    let used = again.request_counts();
    assert_eq!(used.by_action.get("Scan"), None, "{used:?}");

    // Another shard count on these tables: refused, naming both and the fix.
    let other = DynamoBackend::connect(cfg.clone().shards(4)).await.unwrap();
    for r in [other.ensure_tables().await.map(|_| ()), other.queue().len("ins").await.map(|_| ())] {
        match r {
            Err(Error::Unsupported(msg)) => {
                assert!(msg.contains("over 8 shards") && msg.contains("shards(8)") && msg.contains("with 4"), "{msg}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
    let invalid = DynamoBackend::connect(cfg.shards(0)).await;
    assert!(
        matches!(invalid, Err(Error::Invalid(ref p)) if p.to_string().contains("shards")),
        "{:?}",
        invalid.map(|_| ())
    );
}

/// `ready_heads` reads (consistently) only the heads it returns: a run of 250 entries costs one
/// `BatchGetItem` for its first three, where the whole list takes three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_heads_reads_only_the_heads() {
    let Some(b) = common::backend("ready_heads_reads_only_the_heads").await.unwrap() else {
        return;
    };
    let store = b.store();
    let insight = unique("heads");
    let t0 = now();
    let mut all: Vec<ReadyAgenda> = (0..250).map(|i| ready(&insight, &format!("{insight}-{i:03}"), t0 + i)).collect();
    all.push(ReadyAgenda { customer_id: "d".into(), ..ready(&insight, &format!("{insight}-d"), t0) });
    for chunk in all.chunks(25) {
        store.write(chunk.iter().cloned().map(WriteOp::ReadyInsert).collect()).await.unwrap();
    }
    let before = b.request_counts();
    let heads = store.ready_heads(&insight, 3, 100).await.unwrap();
    let used = b.request_counts().since(&before);
    let ids: Vec<&str> = heads.iter().map(|r| r.agenda_id.as_str()).collect();
    let want: Vec<String> = (0..3).map(|i| format!("{insight}-{i:03}")).chain([format!("{insight}-d")]).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>(), "the first three of c, the one of d");
    assert_eq!(used.by_action.get("BatchGetItem").copied().unwrap_or(0), 1, "heads only: {used:?}");

    let before = b.request_counts();
    let mut listed = 0;
    let mut cursor = None;
    loop {
        let page = store.ready_list(&insight, PageRequest { limit: 1000, cursor }).await.unwrap();
        listed += page.items.len();
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let used = b.request_counts().since(&before);
    assert_eq!(listed, 251);
    assert!(used.by_action.get("BatchGetItem").copied().unwrap_or(0) >= 3, "the whole list: {used:?}");
}
