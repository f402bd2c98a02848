//! [`Store`] conformance cases.
//!
//! Each case makes its own ids, so cases may share a backend. They panic with a message naming the
//! backend when the store breaks its contract.

use super::{join, unique, wall_clock};
use crate::error::{Error, Result};
use crate::model::{
    Agenda, AgendaProgress, AgendaTemplate, Conclusion, Customer, Insight, Millis, OperationProgress, ProcessingState,
    ReadyAgenda, ResourcePool,
};
use crate::store::{
    IndexField, Kind, Page, PageRequest, Phase, PhaseEntry, Record, Store, StoreExt, StoreObject, WriteOp, from_record,
    put_op, to_record, update_op,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

/// The most pages a listing may take before a case decides the cursor never ends.
const MAX_PAGES: usize = 1000;

fn name(store: &dyn Store) -> &'static str {
    store.backend_name()
}

#[track_caller]
fn ok<T>(store: &dyn Store, what: &str, r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("[{}] {what}: unexpected error: {e}", name(store)),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(store: &dyn Store, what: &str, r: Result<T>) {
    match r {
        Err(Error::Conflict(_)) => {}
        other => panic!("[{}] {what}: expected Error::Conflict, got {other:?}", name(store)),
    }
}

#[track_caller]
fn expect_not_found<T: Debug>(store: &dyn Store, what: &str, r: Result<T>) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("[{}] {what}: expected Error::NotFound, got {other:?}", name(store)),
    }
}

/// A typed object of kind `T` with `id` and the given JSON fields (e.g. indexed values).
fn object<T: StoreObject>(id: &str, fields: &[(&str, Value)]) -> T {
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!(id));
    for (k, v) in fields {
        doc.insert((*k).to_owned(), v.clone());
    }
    match serde_json::from_value(Value::Object(doc)) {
        Ok(obj) => obj,
        Err(e) => panic!("conformance suite bug: cannot build a {} from JSON: {e}", T::KIND),
    }
}

/// Every indexed field of `T` set to a fresh value.
fn with_indexes<T: StoreObject>(id: &str, tag: &str) -> T {
    let fields: Vec<(&str, Value)> =
        T::KIND.indexed_fields().iter().map(|f| (f.as_str(), json!(format!("{tag}-{}", f.as_str())))).collect();
    object(id, &fields)
}

fn sorted_indexes(r: &Record) -> Vec<(IndexField, String)> {
    let mut v = r.indexes.clone();
    v.sort();
    v
}

/// Creates `records` in batches no longer than the store allows (and at most 100).
async fn create_all(store: &dyn Store, records: Vec<Record>) {
    let chunk = store.max_batch().clamp(1, 100);
    let mut ops: Vec<WriteOp> = records.into_iter().map(WriteOp::Create).collect();
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(chunk));
        let batch = std::mem::replace(&mut ops, rest);
        ok(store, "create a batch of test objects", store.write(batch).await);
    }
}

/// Follows a listing's cursors to the end, checking the page size; returns every item and the page count.
async fn collect_pages<T, F, Fut>(store: &dyn Store, what: &str, limit: usize, mut page: F) -> (Vec<T>, usize)
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    for pages in 1..=MAX_PAGES {
        let p = ok(store, what, page(PageRequest { limit, cursor: cursor.take() }).await);
        assert!(
            p.items.len() <= limit,
            "[{}] {what}: a page of limit {limit} returned {} items",
            name(store),
            p.items.len()
        );
        out.extend(p.items);
        match p.next {
            Some(c) => cursor = Some(c),
            None => return (out, pages),
        }
    }
    panic!("[{}] {what}: still returning a cursor after {MAX_PAGES} pages", name(store));
}

/// Create, get, CAS update, stale update, delete and re-create of one typed object.
async fn crud<T>(store: &dyn Store, mut obj: T, change: fn(&mut T))
where
    T: StoreObject + Clone + PartialEq + Debug,
{
    let kind = T::KIND;
    let id = obj.object_id().unwrap_or_default().to_owned();
    let what = |step: &str| format!("{kind} {id}: {step}");

    assert!(ok(store, &what("get before create"), store.get(kind, &id).await).is_none());
    assert!(ok(store, &what("get_obj before create"), store.get_obj::<T>(&id).await).is_none());

    ok(store, &what("create"), store.create_obj(&mut obj).await);
    assert_eq!(obj.object_version(), 1, "[{}] {}", name(store), what("version after create"));

    let record = ok(store, &what("get after create"), store.get(kind, &id).await)
        .unwrap_or_else(|| panic!("[{}] {}", name(store), what("get after create returned None")));
    assert_eq!(record.kind, kind, "[{}] {}", name(store), what("record kind"));
    assert_eq!(record.id, id, "[{}] {}", name(store), what("record id"));
    assert_eq!(record.version, 1, "[{}] {}", name(store), what("record version after create"));
    let expected = ok(store, "to_record", to_record(&obj));
    assert_eq!(sorted_indexes(&record), sorted_indexes(&expected), "[{}] {}", name(store), what("record indexes"));
    assert_eq!(record.phase, expected.phase, "[{}] {}", name(store), what("record phase entry"));
    let fetched: T = ok(store, &what("decode"), from_record(&record));
    assert_eq!(fetched, obj, "[{}] {}", name(store), what("object read back after create"));

    let stale = obj.clone();
    change(&mut obj);
    ok(store, &what("update"), store.update_obj(&mut obj).await);
    assert_eq!(obj.object_version(), 2, "[{}] {}", name(store), what("version after update"));
    let fetched: T = ok(store, &what("fetch after update"), store.fetch::<T>(&id).await);
    assert_eq!(fetched, obj, "[{}] {}", name(store), what("object read back after update"));

    let mut stale = stale;
    expect_conflict(store, &what("update of a stale copy"), store.update_obj(&mut stale).await);
    assert_eq!(stale.object_version(), 1, "[{}] {}", name(store), what("a failed update keeps the caller's version"));
    let fetched: T = ok(store, &what("fetch after stale update"), store.fetch::<T>(&id).await);
    assert_eq!(fetched, obj, "[{}] {}", name(store), what("a stale update changed nothing"));

    ok(store, &what("delete"), store.delete_obj::<T>(&id).await);
    assert!(ok(store, &what("get after delete"), store.get(kind, &id).await).is_none());
    expect_not_found(store, &what("fetch after delete"), store.fetch::<T>(&id).await);
    expect_not_found(store, &what("delete of a deleted object"), store.delete_obj::<T>(&id).await);
    let mut gone = obj.clone();
    expect_not_found(store, &what("update of a deleted object"), store.update_obj(&mut gone).await);

    let mut again = obj.clone();
    ok(store, &what("create again after delete"), store.create_obj(&mut again).await);
    let record = ok(store, &what("get after re-create"), store.get(kind, &id).await);
    assert_eq!(
        record.map(|r| r.version),
        Some(1),
        "[{}] {}",
        name(store),
        what("a re-created object starts at version 1")
    );
    ok(store, &what("final delete"), store.delete_obj::<T>(&id).await);
}

/// Create/get/update/delete of an [`Agenda`].
pub async fn crud_agenda(store: &dyn Store) {
    let mut a: Agenda = with_indexes(&unique("agenda"), &unique("v"));
    a.operations = serde_json::from_value(json!([{"name": "probe", "type": "sample", "payload": {"file": "in.mp4"}}]))
        .unwrap_or_default();
    crud(store, a, |a| {
        a.title = Some("renamed".into());
        a.priority = 7;
    })
    .await;
}

/// Create/get/update/delete of an [`AgendaProgress`].
pub async fn crud_agenda_progress(store: &dyn Store) {
    crud(store, with_indexes::<AgendaProgress>(&unique("ap"), &unique("v")), |p| {
        p.title = Some("renamed".into());
        p.attempts_completed = 2;
    })
    .await;
}

/// Create/get/update/delete of an [`OperationProgress`].
pub async fn crud_operation_progress(store: &dyn Store) {
    crud(store, with_indexes::<OperationProgress>(&unique("op"), &unique("v")), |p| {
        p.processing_state_message = Some("half way".into());
        p.attempt_count = 3;
    })
    .await;
}

/// Create/get/update/delete of a [`Customer`].
pub async fn crud_customer(store: &dyn Store) {
    crud(store, with_indexes::<Customer>(&unique("customer"), &unique("v")), |c| {
        c.title = Some("renamed".into());
        c.weight = 3;
    })
    .await;
}

/// Create/get/update/delete of a [`ResourcePool`].
pub async fn crud_resource_pool(store: &dyn Store) {
    crud(store, with_indexes::<ResourcePool>(&unique("pool"), &unique("v")), |p| {
        p.title = Some("renamed".into());
        p.insight_ids.push("transcode".into());
    })
    .await;
}

/// Create/get/update/delete of an [`Insight`].
pub async fn crud_insight(store: &dyn Store) {
    crud(store, with_indexes::<Insight>(&unique("insight"), &unique("v")), |i| {
        i.title = Some("renamed".into());
        i.queue_size = Some(12);
    })
    .await;
}

/// Create/get/update/delete of an [`AgendaTemplate`].
pub async fn crud_agenda_template(store: &dyn Store) {
    crud(store, with_indexes::<AgendaTemplate>(&unique("template"), &unique("v")), |t| {
        t.title = Some("renamed".into());
        t.is_global = true;
    })
    .await;
}

fn body_json(store: &dyn Store, r: &Record) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!("[{}] {} {}: the stored body is not the JSON written: {e}", name(store), r.kind, r.id)
    })
}

/// Create/get/update/delete of a raw `InsightSchedule` [`Record`] (no indexes), with conditional deletes.
pub async fn crud_insight_schedule_record(store: &dyn Store) {
    let kind = Kind::InsightSchedule;
    let id = unique("schedule");
    let rec = |v: u64, counter: u64| Record {
        kind,
        id: id.clone(),
        version: v,
        indexes: Vec::new(),
        phase: None,
        body: json!({"insightId": id, "counter": counter}).to_string().into_bytes(),
    };
    ok(store, "create schedule record", store.write(vec![WriteOp::Create(rec(0, 1))]).await);
    let got = ok(store, "get schedule record", store.get(kind, &id).await)
        .unwrap_or_else(|| panic!("[{}] {kind} {id}: get after create returned None", name(store)));
    assert_eq!(
        got.version,
        1,
        "[{}] {kind} {id}: version after create (the record's own version is ignored)",
        name(store)
    );
    assert!(got.indexes.is_empty(), "[{}] {kind} {id}: indexes of an unindexed kind", name(store));
    assert_eq!(body_json(store, &got)["counter"], json!(1), "[{}] {kind} {id}: body after create", name(store));

    ok(
        store,
        "update schedule record",
        store.write(vec![WriteOp::Update { record: rec(99, 2), expected_version: 1 }]).await,
    );
    let got = ok(store, "get schedule record", store.get(kind, &id).await);
    assert_eq!(got.as_ref().map(|r| r.version), Some(2), "[{}] {kind} {id}: version after update", name(store));
    if let Some(got) = &got {
        assert_eq!(body_json(store, got)["counter"], json!(2), "[{}] {kind} {id}: body after update", name(store));
    }
    expect_conflict(
        store,
        "update schedule record with a stale version",
        store.write(vec![WriteOp::Update { record: rec(0, 3), expected_version: 1 }]).await,
    );
    expect_conflict(
        store,
        "delete schedule record with a stale version",
        store.write(vec![WriteOp::Delete { kind, id: id.clone(), expected_version: Some(1) }]).await,
    );
    ok(
        store,
        "delete schedule record with its version",
        store.write(vec![WriteOp::Delete { kind, id: id.clone(), expected_version: Some(2) }]).await,
    );
    assert!(ok(store, "get deleted schedule record", store.get(kind, &id).await).is_none());
}

/// Two writers read version 1; the first update wins, the second gets `Conflict`; an expected version
/// from the future is a `Conflict` too.
pub async fn cas_conflict_on_stale_version(store: &dyn Store) {
    let id = unique("customer");
    let mut c: Customer = with_indexes(&id, &unique("v"));
    ok(store, "create", store.create_obj(&mut c).await);
    let mut first = ok(store, "fetch", store.fetch::<Customer>(&id).await);
    let mut second = first.clone();
    first.title = Some("first".into());
    second.title = Some("second".into());
    ok(store, "first update", store.update_obj(&mut first).await);
    expect_conflict(store, "second update from the same version", store.update_obj(&mut second).await);
    let stored = ok(store, "fetch", store.fetch::<Customer>(&id).await);
    assert_eq!(stored.title.as_deref(), Some("first"), "[{}] the losing update must not be stored", name(store));
    assert_eq!(stored.version, 2, "[{}] version after one successful update", name(store));

    let mut future = stored.clone();
    future.version = 5;
    expect_conflict(store, "update expecting a version never stored", store.update_obj(&mut future).await);
    let record = ok(store, "to_record", to_record(&stored));
    expect_conflict(
        store,
        "update expecting version 0",
        store.write(vec![WriteOp::Update { record, expected_version: 0 }]).await,
    );
}

/// Creating an id that exists is a `Conflict` and leaves the stored object alone.
pub async fn duplicate_create_conflicts(store: &dyn Store) {
    let id = unique("pool");
    let mut p: ResourcePool = with_indexes(&id, "original");
    ok(store, "create", store.create_obj(&mut p).await);
    let mut dup: ResourcePool = with_indexes(&id, "duplicate");
    expect_conflict(store, "create of an existing id", store.create_obj(&mut dup).await);
    assert_eq!(dup.version, 0, "[{}] a failed create resets the caller's version", name(store));
    let stored = ok(store, "fetch", store.fetch::<ResourcePool>(&id).await);
    assert_eq!(stored, p, "[{}] a duplicate create must not overwrite", name(store));
    let (dups, _) = collect_pages(store, "query by the duplicate's title", 100, |page| {
        store.query(Kind::ResourcePool, IndexField::Title, "duplicate-title", page)
    })
    .await;
    assert!(!dups.iter().any(|r| r.id == id), "[{}] a failed create must not leave index entries", name(store));
    // The same id in another kind is a different object.
    let mut other: Insight = with_indexes(&id, "other-kind");
    ok(store, "create the same id in another kind", store.create_obj(&mut other).await);
}

/// Update and delete of a missing id are `NotFound`; get is `None`.
pub async fn missing_is_not_found(store: &dyn Store) {
    let id = unique("missing");
    assert!(ok(store, "get missing", store.get(Kind::Agenda, &id).await).is_none());
    expect_not_found(store, "fetch missing", store.fetch::<Agenda>(&id).await);
    let mut a: Agenda = with_indexes(&id, "x");
    a.version = 1;
    expect_not_found(store, "update missing", store.update_obj(&mut a).await);
    expect_not_found(store, "delete missing", store.delete_obj::<Agenda>(&id).await);
    expect_not_found(
        store,
        "conditional delete missing",
        store.write(vec![WriteOp::Delete { kind: Kind::Agenda, id: id.clone(), expected_version: Some(1) }]).await,
    );
    assert!(ok(store, "get missing after failed writes", store.get(Kind::Agenda, &id).await).is_none());
}

/// A delete with a stale expected version is a `Conflict` and deletes nothing; with the right one it deletes.
pub async fn conditional_delete(store: &dyn Store) {
    let id = unique("template");
    let mut t: AgendaTemplate = with_indexes(&id, &unique("v"));
    ok(store, "create", store.create_obj(&mut t).await);
    t.title = Some("v2".into());
    ok(store, "update", store.update_obj(&mut t).await);
    expect_conflict(
        store,
        "delete expecting version 1 of a version-2 object",
        store
            .write(vec![WriteOp::Delete { kind: Kind::AgendaTemplate, id: id.clone(), expected_version: Some(1) }])
            .await,
    );
    assert!(ok(store, "get", store.get(Kind::AgendaTemplate, &id).await).is_some());
    ok(
        store,
        "delete expecting version 2",
        store
            .write(vec![WriteOp::Delete { kind: Kind::AgendaTemplate, id: id.clone(), expected_version: Some(2) }])
            .await,
    );
    assert!(ok(store, "get after delete", store.get(Kind::AgendaTemplate, &id).await).is_none());
}

/// Ids of every object of `T` whose `field` equals `value`, following cursors in pages of `limit`.
async fn query_ids<T: StoreObject>(
    store: &dyn Store,
    field: IndexField,
    value: &str,
    limit: usize,
) -> (Vec<String>, usize) {
    let what = format!("query {} by {field} = {value}", T::KIND);
    let (items, pages) = collect_pages(store, &what, limit, |page| store.query(T::KIND, field, value, page)).await;
    for r in &items {
        assert_eq!(r.kind, T::KIND, "[{}] {what}: returned a record of another kind", name(store));
        assert!(
            r.indexes.iter().any(|(f, v)| *f == field && v == value),
            "[{}] {what}: returned {} whose indexes are {:?}",
            name(store),
            r.id,
            r.indexes
        );
        let _: T = ok(store, &what, from_record(r));
    }
    (items.into_iter().map(|r| r.id).collect(), pages)
}

/// Query of kind `T` by `field`: 250 matches paged by 100 in id order, neighbours with similar values
/// excluded, the index following updates (value changed or unset) and deletes, limit 0 meaning 100, and
/// a cursor still valid after its item was deleted.
pub async fn query_paging<T: StoreObject>(store: &dyn Store, field: IndexField) {
    const N: usize = 250;
    const LIMIT: usize = 100;
    let kind = T::KIND;
    let value = unique("value");
    let prefix = unique(kind.as_str());
    // `v` empty: the field is unset (null).
    let make = |id: &str, v: &str| -> Record {
        let mut obj: T = with_indexes(id, &unique("other"));
        let mut doc = match serde_json::to_value(&obj) {
            Ok(Value::Object(m)) => m,
            _ => panic!("conformance suite bug: {kind} does not serialize to an object"),
        };
        doc.insert(field.as_str().to_owned(), if v.is_empty() { Value::Null } else { json!(v) });
        obj = match serde_json::from_value(Value::Object(doc)) {
            Ok(o) => o,
            Err(e) => panic!("conformance suite bug: {kind}: {e}"),
        };
        obj.set_object_version(1);
        match to_record(&obj) {
            Ok(r) => r,
            Err(e) => panic!("conformance suite bug: {kind}: {e}"),
        }
    };
    // Insert in an order that is not the id order.
    let mut expected: Vec<String> = (0..N).map(|i| format!("{prefix}-{:04}", (i * 7919) % N)).collect();
    let mut records: Vec<Record> = expected.iter().map(|id| make(id, &value)).collect();
    // Neighbours: a value extending ours, a prefix of ours, and the same value in another field's slot.
    let longer = format!("{value}x");
    let shorter = value[..value.len() - 1].to_owned();
    records.push(make(&format!("{prefix}-n1"), &longer));
    records.push(make(&format!("{prefix}-n2"), &shorter));
    records.push(make(&format!("{prefix}-n3"), &longer));
    create_all(store, records).await;
    expected.sort();

    let (ids, pages) = query_ids::<T>(store, field, &value, LIMIT).await;
    assert_eq!(
        ids.len(),
        N,
        "[{}] query {kind} by {field}: expected {N} matches, got {} (neighbouring values must not match)",
        name(store),
        ids.len()
    );
    assert_eq!(ids, expected, "[{}] query {kind} by {field}: ids must come in ascending order, each once", name(store));
    assert!(pages >= 3, "[{}] query {kind} by {field}: {N} items in pages of {LIMIT} took {pages} pages", name(store));
    let (longer_ids, _) = query_ids::<T>(store, field, &longer, LIMIT).await;
    assert_eq!(longer_ids.len(), 2, "[{}] query {kind} by {field} = a neighbouring value", name(store));

    // Changing the indexed value moves the object between values.
    let moved_id = expected[0].clone();
    let moved_value = unique("moved");
    let current = ok(store, "get", store.get(kind, &moved_id).await)
        .unwrap_or_else(|| panic!("[{}] {kind} {moved_id} vanished", name(store)));
    let mut record = make(&moved_id, &moved_value);
    record.version = current.version + 1;
    ok(
        store,
        "update the indexed value",
        store.write(vec![WriteOp::Update { record, expected_version: current.version }]).await,
    );
    // Deleting removes the object from the index.
    let deleted_id = expected[1].clone();
    ok(
        store,
        "delete",
        store.write(vec![WriteOp::Delete { kind, id: deleted_id.clone(), expected_version: None }]).await,
    );
    // Unsetting the indexed value removes the object from the index.
    let unset_id = expected[2].clone();
    let current = ok(store, "get", store.get(kind, &unset_id).await)
        .unwrap_or_else(|| panic!("[{}] {kind} {unset_id} vanished", name(store)));
    let mut record = make(&unset_id, "");
    assert!(!record.indexes.iter().any(|(f, _)| *f == field), "conformance suite bug: {field} still set");
    record.version = current.version + 1;
    ok(
        store,
        "update unsetting the indexed value",
        store.write(vec![WriteOp::Update { record, expected_version: current.version }]).await,
    );
    let (ids, _) = query_ids::<T>(store, field, &value, LIMIT).await;
    assert_eq!(
        ids,
        expected[3..].to_vec(),
        "[{}] query {kind} by {field} after an update moved {moved_id} to another value, one unset it on {unset_id} \
         and {deleted_id} was deleted",
        name(store)
    );
    // Limit 0 means the default page of 100.
    let default_page = ok(store, "query with limit 0", store.query(kind, field, &value, PageRequest::default()).await);
    assert_eq!(
        default_page.items.len(),
        100,
        "[{}] query {kind} by {field} with limit 0 (the default, 100) over {} matches",
        name(store),
        N - 3
    );
    let (moved, _) = query_ids::<T>(store, field, &moved_value, LIMIT).await;
    assert_eq!(moved, vec![moved_id.clone()], "[{}] query {kind} by {field} = the updated value", name(store));

    // A cursor continues after its item even when that item is gone.
    let first = ok(store, "first page of 10", store.query(kind, field, &value, PageRequest::first(10)).await);
    assert_eq!(first.items.len(), 10, "[{}] query {kind} by {field}: a page of 10", name(store));
    let Some(cursor) = first.next else {
        panic!("[{}] query {kind} by {field}: a page of 10 out of {} has no cursor", name(store), N - 3)
    };
    if let Some(last) = first.items.last() {
        ok(
            store,
            "delete the last item of a page",
            store.write(vec![WriteOp::Delete { kind, id: last.id.clone(), expected_version: None }]).await,
        );
    }
    let second = ok(
        store,
        "page after a deleted item",
        store.query(kind, field, &value, PageRequest { limit: 10, cursor: Some(cursor) }).await,
    );
    let second_ids: Vec<&str> = second.items.iter().map(|r| r.id.as_str()).collect();
    let want: Vec<&str> = expected[13..23].iter().map(String::as_str).collect();
    assert_eq!(
        second_ids,
        want,
        "[{}] query {kind} by {field}: the page after a cursor whose item was deleted",
        name(store)
    );
}

macro_rules! query_cases {
    ($($case:ident: $ty:ty, $field:ident;)*) => {
        $(
            #[doc = concat!("[`query_paging`] of [`", stringify!($ty), "`] by `", stringify!($field), "`.")]
            pub async fn $case(store: &dyn Store) {
                query_paging::<$ty>(store, IndexField::$field).await;
            }
        )*
    };
}

query_cases! {
    query_agenda_by_customer_id: Agenda, CustomerId;
    query_agenda_by_link_id: Agenda, LinkId;
    query_agenda_by_title: Agenda, Title;
    query_agenda_progress_by_customer_id: AgendaProgress, CustomerId;
    query_agenda_progress_by_link_id: AgendaProgress, LinkId;
    query_agenda_progress_by_agenda_id: AgendaProgress, AgendaId;
    query_agenda_progress_by_title: AgendaProgress, Title;
    query_operation_progress_by_customer_id: OperationProgress, CustomerId;
    query_operation_progress_by_agenda_progress_id: OperationProgress, AgendaProgressId;
    query_customer_by_customer_id: Customer, CustomerId;
    query_customer_by_resource_pool_id: Customer, ResourcePoolId;
    query_customer_by_title: Customer, Title;
    query_resource_pool_by_customer_id: ResourcePool, CustomerId;
    query_resource_pool_by_title: ResourcePool, Title;
    query_insight_by_customer_id: Insight, CustomerId;
    query_insight_by_resource_pool_id: Insight, ResourcePoolId;
    query_insight_by_title: Insight, Title;
    query_agenda_template_by_customer_id: AgendaTemplate, CustomerId;
    query_agenda_template_by_title: AgendaTemplate, Title;
}

/// `scan` pages through every object of a kind by id ascending, each once.
pub async fn scan_pages_in_id_order(store: &dyn Store) {
    let prefix = unique("scan");
    let mut ours: Vec<String> = (0..150).map(|i| format!("{prefix}-{:03}", (i * 37) % 150)).collect();
    let records = ours
        .iter()
        .map(|id| {
            let mut p: ResourcePool = with_indexes(id, "scan");
            p.version = 1;
            ok(store, "to_record", to_record(&p))
        })
        .collect();
    create_all(store, records).await;
    ours.sort();
    let (all, pages) = collect_pages(store, "scan resourcePool", 50, |page| store.scan(Kind::ResourcePool, page)).await;
    assert!(pages >= 3, "[{}] scan: 150+ objects in pages of 50 took {pages} pages", name(store));
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "[{}] scan must return ids in strictly ascending order across pages",
        name(store)
    );
    assert!(all.iter().all(|r| r.kind == Kind::ResourcePool), "[{}] scan returned another kind", name(store));
    let seen: Vec<&str> = ids.into_iter().filter(|id| id.starts_with(&prefix)).collect();
    assert_eq!(seen, ours, "[{}] scan must return every object created", name(store));
}

fn ready(insight: &str, customer: &str, agenda: &str, priority: i32, added: Millis) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("ready-{agenda}"),
        insight_id: insight.to_owned(),
        agenda_id: agenda.to_owned(),
        customer_id: customer.to_owned(),
        added,
        priority,
    }
}

async fn ready_agenda_ids(store: &dyn Store, insight: &str, limit: usize) -> (Vec<ReadyAgenda>, usize) {
    collect_pages(store, &format!("ready list of {insight}"), limit, |page| store.ready_list(insight, page)).await
}

/// A batch whose last op fails (stale version, missing delete, duplicate create) writes nothing, ready
/// set included.
pub async fn batch_is_atomic(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let c_id = unique("customer");
    let d_id = unique("customer");
    let mut c: Customer = with_indexes(&c_id, "atomic");
    let mut d: Customer = with_indexes(&d_id, "atomic");
    ok(store, "create", store.create_obj(&mut c).await);
    ok(store, "create", store.create_obj(&mut d).await);
    let a_id = unique("agenda");
    let b_id = unique("agenda");
    let new_obj = |id: &str| {
        let mut a: Agenda = with_indexes(id, "atomic");
        a.version = 1;
        WriteOp::Create(ok(store, "to_record", to_record(&a)))
    };
    let mut c2 = c.clone();
    c2.title = Some("changed".into());
    c2.version = 2;
    let mut d2 = d.clone();
    d2.title = Some("changed".into());
    d2.version = 8;
    // Every op of a batch touches a different key (DynamoDB transactions require it).
    let last_ops: Vec<(&str, WriteOp)> = vec![
        (
            "an update with a stale version",
            WriteOp::Update { record: ok(store, "to_record", to_record(&d2)), expected_version: 7 },
        ),
        (
            "a delete of a missing id",
            WriteOp::Delete { kind: Kind::Agenda, id: unique("missing"), expected_version: None },
        ),
        ("a create of an existing id", {
            let mut dup: Customer = with_indexes(&d_id, "dup");
            dup.version = 1;
            WriteOp::Create(ok(store, "to_record", to_record(&dup)))
        }),
    ];
    for (what, last) in last_ops {
        let ops = vec![
            new_obj(&a_id),
            new_obj(&b_id),
            WriteOp::ReadyInsert(ready(&insight, &c_id, &a_id, 0, t0)),
            WriteOp::Update { record: ok(store, "to_record", to_record(&c2)), expected_version: 1 },
            last,
        ];
        let r = store.write(ops).await;
        assert!(
            matches!(r, Err(Error::Conflict(_)) | Err(Error::NotFound { .. })),
            "[{}] a batch ending with {what} must fail with Conflict or NotFound, got {r:?}",
            name(store)
        );
        for id in [&a_id, &b_id] {
            assert!(
                ok(store, "get", store.get(Kind::Agenda, id).await).is_none(),
                "[{}] a batch ending with {what} failed but its create of {id} was applied",
                name(store)
            );
        }
        assert!(
            ok(store, "ready_get", store.ready_get(&a_id).await).is_none(),
            "[{}] a batch ending with {what} failed but its ready insert was applied",
            name(store)
        );
        let stored = ok(store, "fetch", store.fetch::<Customer>(&c_id).await);
        assert_eq!(stored, c, "[{}] a batch ending with {what} failed but its update was applied", name(store));
        let stored = ok(store, "fetch", store.fetch::<Customer>(&d_id).await);
        assert_eq!(stored, d, "[{}] a batch ending with {what} failed but changed its last object", name(store));
        let (customer_index, _) = query_ids::<Agenda>(store, IndexField::CustomerId, "atomic-customerId", 100).await;
        assert!(
            !customer_index.contains(&a_id) && !customer_index.contains(&b_id),
            "[{}] a batch ending with {what} failed but left index entries",
            name(store)
        );
    }
}

/// An upsert creates at version 1 and replaces at the stored version + 1 whatever version it carries,
/// moving index entries; in a batch whose compare-and-set fails it changes nothing.
pub async fn put_upserts_and_follows_its_batch(store: &dyn Store) {
    let tag = unique("put");
    let id = unique("op");
    let mut row: OperationProgress = with_indexes(&id, &tag);
    row.version = 42;
    ok(store, "put a new object", store.write(vec![ok(store, "put_op", put_op(&row))]).await);
    let stored = ok(store, "fetch", store.fetch::<OperationProgress>(&id).await);
    assert_eq!(stored.version, 1, "[{}] a put of a new object stores version 1", name(store));
    row.customer_id = Some(format!("{tag}-moved"));
    row.version = 0;
    ok(store, "put over it", store.write(vec![ok(store, "put_op", put_op(&row))]).await);
    let stored = ok(store, "fetch", store.fetch::<OperationProgress>(&id).await);
    assert_eq!(stored.version, 2, "[{}] a put over version 1 stores version 2", name(store));
    assert_eq!(stored.customer_id, row.customer_id, "[{}] the put's body is stored", name(store));
    let (old, _) =
        query_ids::<OperationProgress>(store, IndexField::CustomerId, &format!("{tag}-customerId"), 100).await;
    assert!(!old.contains(&id), "[{}] a put that changed customerId left the old index entry", name(store));
    let (new, _) = query_ids::<OperationProgress>(store, IndexField::CustomerId, &format!("{tag}-moved"), 100).await;
    assert_eq!(new, vec![id.clone()], "[{}] a put that changed customerId is not indexed by it", name(store));

    // fenced: a put next to a failing compare-and-set is not applied
    let fence_id = unique("progress");
    let mut fence: AgendaProgress = with_indexes(&fence_id, &tag);
    ok(store, "create the fence", store.create_obj(&mut fence).await);
    let mut stale = fence.clone();
    stale.title = Some("stale".into());
    stale.version = 9;
    row.result_payload = Some("{\"fenced\":true}".into());
    let r = store
        .write(vec![
            WriteOp::Update { record: ok(store, "to_record", to_record(&stale)), expected_version: 9 },
            ok(store, "put_op", put_op(&row)),
        ])
        .await;
    expect_conflict(store, "a put beside a stale compare-and-set", r);
    let stored = ok(store, "fetch", store.fetch::<OperationProgress>(&id).await);
    assert_eq!(stored.version, 2, "[{}] a put in a failed batch was applied", name(store));
    assert_eq!(stored.result_payload, None, "[{}] a put in a failed batch was applied", name(store));
}

/// A batch of creates, an update, a delete, a ready insert and a ready remove applies every op.
pub async fn batch_applies_every_op(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let tag = unique("batch");
    let mut keep: Customer = with_indexes(&unique("customer"), &tag);
    let mut doomed: Customer = with_indexes(&unique("customer"), &tag);
    ok(store, "create", store.create_obj(&mut keep).await);
    ok(store, "create", store.create_obj(&mut doomed).await);
    let stale_ready = unique("agenda");
    ok(store, "ready insert", store.write(vec![WriteOp::ReadyInsert(ready(&insight, "c", &stale_ready, 0, t0))]).await);

    let mut fresh: Agenda = with_indexes(&unique("agenda"), &tag);
    let fresh_id = fresh.id.clone().unwrap_or_default();
    keep.title = Some("updated in a batch".into());
    let ops = vec![
        ok(store, "create_op", crate::store::create_op(&mut fresh)),
        ok(store, "update_op", crate::store::update_op(&mut keep)),
        WriteOp::Delete { kind: Kind::Customer, id: doomed.id.clone().unwrap_or_default(), expected_version: Some(1) },
        WriteOp::ReadyInsert(ready(&insight, "c", &fresh_id, 3, t0)),
        WriteOp::ReadyRemove { agenda_id: stale_ready.clone() },
    ];
    ok(store, "mixed batch", store.write(ops).await);
    assert_eq!(ok(store, "fetch", store.fetch::<Agenda>(&fresh_id).await), fresh, "[{}] batch create", name(store));
    let stored = ok(store, "fetch", store.fetch::<Customer>(keep.id.as_deref().unwrap_or_default()).await);
    assert_eq!(stored, keep, "[{}] batch update", name(store));
    assert_eq!(stored.version, 2, "[{}] batch update version", name(store));
    assert!(
        ok(store, "get", store.get(Kind::Customer, doomed.id.as_deref().unwrap_or_default()).await).is_none(),
        "[{}] batch delete",
        name(store)
    );
    let (entries, _) = ready_agenda_ids(store, &insight, 100).await;
    let ids: Vec<&str> = entries.iter().map(|r| r.agenda_id.as_str()).collect();
    assert_eq!(ids, vec![fresh_id.as_str()], "[{}] batch ready insert and remove", name(store));
    // An empty batch is fine.
    ok(store, "empty batch", store.write(Vec::new()).await);
}

/// A batch of `max_batch() + 1` writes is `Unsupported` and writes nothing; one of exactly
/// `max_batch()` succeeds.
pub async fn batch_over_max_batch_is_unsupported(store: &dyn Store) {
    let max = store.max_batch();
    assert!(max >= 1, "[{}] max_batch must be at least 1", name(store));
    let prefix = unique("max");
    let ops = |n: usize, tag: &str| -> Vec<WriteOp> {
        (0..n)
            .map(|i| {
                WriteOp::Create(Record {
                    kind: Kind::InsightSchedule,
                    id: format!("{prefix}-{tag}-{i:05}"),
                    version: 1,
                    indexes: Vec::new(),
                    phase: None,
                    body: b"{}".to_vec(),
                })
            })
            .collect()
    };
    match store.write(ops(max + 1, "over")).await {
        Err(Error::Unsupported(msg)) => {
            assert!(!msg.is_empty(), "[{}] the Unsupported error needs a message", name(store));
        }
        other => panic!(
            "[{}] a batch of max_batch()+1 = {} writes: expected Unsupported, got {other:?}",
            name(store),
            max + 1
        ),
    }
    for i in [0, max] {
        let id = format!("{prefix}-over-{i:05}");
        assert!(
            ok(store, "get", store.get(Kind::InsightSchedule, &id).await).is_none(),
            "[{}] a refused batch wrote {id}",
            name(store)
        );
    }
    ok(store, "a batch of exactly max_batch() writes", store.write(ops(max, "full")).await);
    for i in [0, max - 1] {
        let id = format!("{prefix}-full-{i:05}");
        assert!(
            ok(store, "get", store.get(Kind::InsightSchedule, &id).await).is_some(),
            "[{}] a batch of max_batch() writes did not write {id}",
            name(store)
        );
    }
}

/// The ready list of an insight: customer ascending, then priority descending, added ascending,
/// agenda id; other insights' entries excluded.
pub async fn ready_set_order(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let other = unique("insight");
    // (customer, agenda, priority, added), inserted out of order.
    let entries = [
        ("cust-b", "b-p0", 0, t0 + 10),
        ("cust-b", "b-p5-late", 5, t0 + 30),
        ("cust-a", "a-p1-late", 1, t0 + 100),
        ("cust-b", "b-p5-mid-2", 5, t0 + 20),
        ("cust-b", "b-neg", -1, t0 + 5),
        ("cust-b", "b-p5-mid-1", 5, t0 + 20),
        ("cust-a", "a-p1-early", 1, t0 + 50),
        ("cust-c", "c-big", 1_000_000, t0 + 1),
        ("cust-c", "c-very-neg", -1_000_000, t0),
    ];
    let tag = unique("r");
    let aid = |s: &str| format!("{tag}-{s}");
    let ops = entries.iter().map(|(c, a, p, t)| WriteOp::ReadyInsert(ready(&insight, c, &aid(a), *p, *t))).collect();
    ok(store, "ready inserts", store.write(ops).await);
    ok(
        store,
        "ready insert in another insight",
        store.write(vec![WriteOp::ReadyInsert(ready(&other, "cust-a", &aid("elsewhere"), 9, t0))]).await,
    );
    let (list, _) = ready_agenda_ids(store, &insight, 100).await;
    let got: Vec<String> = list.iter().map(|r| r.agenda_id.clone()).collect();
    let want: Vec<String> =
        ["a-p1-early", "a-p1-late", "b-p5-mid-1", "b-p5-mid-2", "b-p5-late", "b-p0", "b-neg", "c-big", "c-very-neg"]
            .iter()
            .map(|s| aid(s))
            .collect();
    assert_eq!(got, want, "[{}] ready list order (customer, priority desc, added asc, agenda id)", name(store));
    let first = ok(store, "ready_get", store.ready_get(&aid("b-neg")).await);
    assert_eq!(
        first,
        Some(ready(&insight, "cust-b", &aid("b-neg"), -1, t0 + 5)),
        "[{}] ready_get returns the entry as inserted",
        name(store)
    );
    assert!(list.iter().all(|r| r.insight_id == insight), "[{}] ready list of one insight only", name(store));
}

/// 250 ready entries of several customers paged by 100 give the same sequence as the full order.
pub async fn ready_set_paging(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let tag = unique("r");
    let mut all: Vec<ReadyAgenda> = (0..250)
        .map(|i| {
            let customer = format!("cust-{}", i % 3);
            let priority = ((i * 31) % 7) - 3;
            ready(&insight, &customer, &format!("{tag}-{i:03}"), priority, t0 + ((i * 17) % 50) as Millis)
        })
        .collect();
    let chunk = store.max_batch().clamp(1, 100);
    for part in all.chunks(chunk) {
        ok(store, "ready inserts", store.write(part.iter().cloned().map(WriteOp::ReadyInsert).collect()).await);
    }
    all.sort_by(|a, b| (a.customer_id.as_str(), a.order_key()).cmp(&(b.customer_id.as_str(), b.order_key())));
    let (got, pages) = ready_agenda_ids(store, &insight, 100).await;
    assert!(pages >= 3, "[{}] 250 ready entries in pages of 100 took {pages} pages", name(store));
    let got_ids: Vec<&str> = got.iter().map(|r| r.agenda_id.as_str()).collect();
    let want_ids: Vec<&str> = all.iter().map(|r| r.agenda_id.as_str()).collect();
    assert_eq!(got_ids, want_ids, "[{}] ready list paged by 100", name(store));
    assert_eq!(got, all, "[{}] ready entries read back as inserted", name(store));
    let (small, _) = ready_agenda_ids(store, &insight, 7).await;
    assert_eq!(small, all, "[{}] ready list paged by 7", name(store));
}

/// The heads of the ready set: the first `per_run` entries of each (customer, priority) run in
/// list order, at most `limit` in all, whatever the runs' lengths (including a customer id with a
/// NUL byte and the extreme priorities, whose keys end in `0x00` and `0xFF` bytes on the ordered
/// backends).
pub async fn ready_set_heads(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let other = unique("insight");
    let tag = unique("h");
    // (customer, priority, entries in the run)
    let runs: [(&str, i32, usize); 8] = [
        ("cust-a", 5, 9),
        ("cust-a", 0, 1),
        ("cust-a", i32::MIN, 4),
        ("cust-b", i32::MAX, 6),
        ("cust-b", -1, 2),
        ("cust\0nul", 3, 5),
        ("cust-c", 0, 12),
        ("cust-d", 7, 3),
    ];
    let mut all = Vec::new();
    for (r, (customer, priority, n)) in runs.iter().enumerate() {
        for i in 0..*n {
            // arrivals out of order within a run: the list sorts them; 100 s apart, so that a run
            // spans many 65,536 ms windows of `added` (a key's bytes after its priority)
            let added = t0 + ((i * 7 + r) % 11) as Millis * 100_000;
            all.push(ready(&insight, customer, &format!("{tag}-{r}-{i:02}"), *priority, added));
        }
    }
    let mut writes: Vec<WriteOp> = all.iter().cloned().map(WriteOp::ReadyInsert).collect();
    writes.push(WriteOp::ReadyInsert(ready(&other, "cust-a", &format!("{tag}-elsewhere"), 5, t0)));
    for part in writes.chunks(store.max_batch().clamp(1, 100)) {
        ok(store, "ready inserts", store.write(part.to_vec()).await);
    }
    all.sort_by(|a, b| (a.customer_id.as_str(), a.order_key()).cmp(&(b.customer_id.as_str(), b.order_key())));
    for per_run in [0, 1, 2, 3, 5, 100, usize::MAX] {
        for limit in [0, 1, 7, 20, usize::MAX] {
            let mut want: Vec<&ReadyAgenda> = Vec::new();
            let mut in_run = 0;
            for (i, e) in all.iter().enumerate() {
                let same = i > 0 && all[i - 1].customer_id == e.customer_id && all[i - 1].priority == e.priority;
                in_run = if same { in_run + 1 } else { 1 };
                if in_run <= per_run && want.len() < limit {
                    want.push(e);
                }
            }
            let got = ok(store, "ready_heads", store.ready_heads(&insight, per_run, limit).await);
            let got: Vec<&ReadyAgenda> = got.iter().collect();
            assert_eq!(got, want, "[{}] ready_heads per_run {per_run}, limit {limit}", name(store));
        }
    }
    let missing = ok(store, "ready_heads", store.ready_heads(&unique("insight"), 3, 100).await);
    assert!(missing.is_empty(), "[{}] ready_heads of an insight without entries", name(store));
}

/// One entry per agenda: inserting again replaces (and re-orders, or moves to another insight);
/// removing twice is fine.
pub async fn ready_insert_replaces_and_remove_is_idempotent(store: &dyn Store) {
    let t0 = wall_clock();
    let insight = unique("insight");
    let other = unique("insight");
    let a = unique("agenda");
    let b = unique("agenda");
    let entry_a = ready(&insight, "cust", &a, 0, t0);
    let entry_b = ready(&insight, "cust", &b, 1, t0);
    let insert = |e: &ReadyAgenda| store.write(vec![WriteOp::ReadyInsert(e.clone())]);
    ok(store, "insert a", insert(&entry_a).await);
    ok(store, "insert a again", insert(&entry_a).await);
    ok(store, "insert b", insert(&entry_b).await);
    let ids = |v: Vec<ReadyAgenda>| v.into_iter().map(|r| r.agenda_id).collect::<Vec<_>>();
    let (list, _) = ready_agenda_ids(store, &insight, 100).await;
    assert_eq!(
        ids(list),
        vec![b.clone(), a.clone()],
        "[{}] a second insert of the same agenda must not add an entry",
        name(store)
    );

    let raised = ready(&insight, "cust", &a, 2, t0 + 1);
    ok(store, "insert a with a higher priority", insert(&raised).await);
    let (list, _) = ready_agenda_ids(store, &insight, 100).await;
    assert_eq!(
        ids(list),
        vec![a.clone(), b.clone()],
        "[{}] re-inserting with a new priority replaces the entry",
        name(store)
    );
    assert_eq!(
        ok(store, "ready_get", store.ready_get(&a).await),
        Some(raised),
        "[{}] ready_get after replace",
        name(store)
    );

    let moved = ready(&other, "cust", &a, 2, t0 + 2);
    ok(store, "insert a in another insight", insert(&moved).await);
    let (list, _) = ready_agenda_ids(store, &insight, 100).await;
    assert_eq!(
        ids(list),
        vec![b.clone()],
        "[{}] an agenda has one ready entry: moving it to another insight removes it here",
        name(store)
    );
    let (list, _) = ready_agenda_ids(store, &other, 100).await;
    assert_eq!(ids(list), vec![a.clone()], "[{}] the moved entry is in the other insight", name(store));

    let remove = |id: &str| store.write(vec![WriteOp::ReadyRemove { agenda_id: id.to_owned() }]);
    ok(store, "remove a", remove(&a).await);
    ok(store, "remove a again", remove(&a).await);
    ok(store, "remove an agenda never inserted", remove(&unique("agenda")).await);
    assert!(ok(store, "ready_get", store.ready_get(&a).await).is_none(), "[{}] ready_get after remove", name(store));
    let (list, _) = ready_agenda_ids(store, &other, 100).await;
    assert!(list.is_empty(), "[{}] ready list after remove", name(store));
    let (list, _) = ready_agenda_ids(store, &unique("insight"), 100).await;
    assert!(list.is_empty(), "[{}] ready list of an unknown insight is empty", name(store));
}

/// Named leases: acquire, a second holder refused, renew, expiry by `now`, release by the holder only.
pub async fn named_leases(store: &dyn Store) {
    let t0 = wall_clock();
    let lease = unique("scheduler");
    let other = unique("scheduler");
    let acquire = |holder: &'static str, ttl: u64, now: Millis| store.lease_acquire(&lease, holder, ttl, now);
    let yes = |what: &str, r: Result<bool>| {
        assert!(ok(store, what, r), "[{}] {what}: expected to hold the lease", name(store))
    };
    let no =
        |what: &str, r: Result<bool>| assert!(!ok(store, what, r), "[{}] {what}: expected to be refused", name(store));

    yes("h1 acquires a free lease", acquire("h1", 1000, t0).await);
    no("h2 while h1 holds it", acquire("h2", 1000, t0 + 1).await);
    yes("h1 acquires a lease of another name", store.lease_acquire(&other, "h1", 1000, t0).await);
    yes("h1 renews", acquire("h1", 1000, t0 + 500).await);
    no("h2 after h1's first term but within the renewal", acquire("h2", 1000, t0 + 1200).await);
    yes("h2 after the renewal expired", acquire("h2", 1000, t0 + 1501).await);
    no("h1 after h2 took over", acquire("h1", 1000, t0 + 1600).await);
    ok(store, "h1 releases a lease it does not hold", store.lease_release(&lease, "h1").await);
    no("h1 after releasing what it did not hold", acquire("h1", 1000, t0 + 1601).await);
    ok(store, "h2 releases", store.lease_release(&lease, "h2").await);
    yes("h1 at once after h2 released", acquire("h1", 1000, t0 + 1602).await);
    ok(store, "release of an unknown lease", store.lease_release(&unique("nothing"), "h1").await);
    no("h2 on the other name, still held by h1", store.lease_acquire(&other, "h2", 1000, t0 + 999).await);
}

/// 32 tasks each add 1 to one object's counter `N` times with CAS retries: the final counter is
/// `32 * N` and the version `32 * N + 1`.
pub async fn concurrent_cas_updates_lose_nothing(store: Arc<dyn Store>) {
    const TASKS: i32 = 32;
    const N: i32 = 5;
    let id = unique("agenda");
    let mut a: Agenda = with_indexes(&id, "cas");
    ok(&*store, "create", store.create_obj(&mut a).await);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..N {
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(
                        tries < 100_000,
                        "[{}] task {task}: no CAS update succeeded in 100000 tries",
                        name(&*store)
                    );
                    let mut cur = ok(&*store, "fetch", store.fetch::<Agenda>(&id).await);
                    cur.priority += 1;
                    match store.update_obj(&mut cur).await {
                        Ok(()) => break,
                        Err(Error::Conflict(_)) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("[{}] task {task}: CAS update failed: {e}", name(&*store)),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += join(h).await;
    }
    let fin = ok(&*store, "fetch", store.fetch::<Agenda>(&id).await);
    assert_eq!(
        fin.priority,
        TASKS * N,
        "[{}] {TASKS} tasks x {N} CAS increments ({conflicts} conflicts retried): updates were lost",
        name(&*store)
    );
    assert_eq!(fin.version, (TASKS * N) as u64 + 1, "[{}] version after {} updates", name(&*store), TASKS * N);
}

/// 16 tasks create the same id at once: exactly one succeeds, the others get `Conflict`.
pub async fn concurrent_creates_one_winner(store: Arc<dyn Store>) {
    let id = unique("customer");
    let mut handles = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            let mut c: Customer = with_indexes(&id, &format!("task{task}"));
            match store.create_obj(&mut c).await {
                Ok(()) => Some(task),
                Err(Error::Conflict(_)) => None,
                Err(e) => panic!("[{}] concurrent create: {e}", name(&*store)),
            }
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        winners.extend(join(h).await);
    }
    assert_eq!(winners.len(), 1, "[{}] concurrent creates of one id: winners {winners:?}", name(&*store));
    let stored = ok(&*store, "fetch", store.fetch::<Customer>(&id).await);
    let want = format!("task{}-title", winners[0]);
    assert_eq!(stored.title.as_deref(), Some(want.as_str()), "[{}] the stored object is the winner's", name(&*store));
}

/// 16 holders race for one named lease at the same `now`: exactly one gets it.
pub async fn concurrent_lease_acquire_one_winner(store: Arc<dyn Store>) {
    let lease = unique("lease");
    let t0 = wall_clock();
    let mut handles = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        let lease = lease.clone();
        handles.push(tokio::spawn(async move {
            let holder = format!("holder-{task}");
            ok(&*store, "lease_acquire", store.lease_acquire(&lease, &holder, 60_000, t0).await).then_some(holder)
        }));
    }
    let mut winners = BTreeSet::new();
    for h in handles {
        winners.extend(join(h).await);
    }
    assert_eq!(winners.len(), 1, "[{}] concurrent lease acquire: winners {winners:?}", name(&*store));
}

/// A time base of its own for a phase-index case: a random millisecond between 1e12 and 2e12, far
/// from the wall clock and from the times other cases use (cases may share a backend).
fn time_base() -> Millis {
    1_000_000_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000) as Millis
}

/// An agenda progress added at `added`, WAITING.
fn waiting(id: &str, added: Millis) -> AgendaProgress {
    AgendaProgress {
        id: Some(id.to_owned()),
        agenda_id: Some(format!("agenda-of-{id}")),
        customer_id: Some("phase-cust".into()),
        added_time: Some(added),
        updated_time: Some(added),
        ..Default::default()
    }
}

/// Marks `p` COMPLETE with `conclusion` at `at`, after `attempts` of `max` attempts.
fn complete(p: &mut AgendaProgress, conclusion: Conclusion, at: Millis, attempts: u32, max: u32) {
    p.processing_state = ProcessingState::Complete;
    p.processing_state_message = Some(conclusion.as_str().into());
    p.completed_time = Some(at);
    p.updated_time = Some(at);
    p.attempts_completed = attempts;
    p.maximum_attempts = max;
}

/// Marks `p` WAITING again (a rerun).
fn rewait(p: &mut AgendaProgress) {
    p.processing_state = ProcessingState::Waiting;
    p.processing_state_message = Some(crate::model::PENDING.into());
    p.completed_time = None;
}

/// Every (time, id) of `phase` in `at`, following cursors in pages of `limit`; checks that every
/// record is an agenda progress carrying that phase entry and that the order is (time, id) strictly
/// ascending.
async fn phase_listing(
    store: &dyn Store,
    phase: Phase,
    at: Range<Millis>,
    limit: usize,
) -> (Vec<(Millis, String)>, usize) {
    let what = format!("query_phase {phase} in {at:?}");
    let (items, pages) =
        collect_pages(store, &what, limit, |page| store.query_phase(Kind::AgendaProgress, phase, at.clone(), page))
            .await;
    let mut out = Vec::with_capacity(items.len());
    for r in &items {
        assert_eq!(r.kind, Kind::AgendaProgress, "[{}] {what}: returned a record of another kind", name(store));
        let Some(entry) = r.phase else { panic!("[{}] {what}: returned {} without a phase entry", name(store), r.id) };
        assert_eq!(entry.phase, phase, "[{}] {what}: returned {} of phase {}", name(store), r.id, entry.phase);
        assert!(
            at.contains(&entry.at),
            "[{}] {what}: returned {} at {} outside the range",
            name(store),
            r.id,
            entry.at
        );
        let _: AgendaProgress = ok(store, &what, from_record(r));
        out.push((entry.at, r.id.clone()));
    }
    assert!(
        out.windows(2).all(|w| w[0] < w[1]),
        "[{}] {what}: not in strictly ascending (time, id) order: {out:?}",
        name(store)
    );
    (out, pages)
}

/// The phases (and times) in which `id` is listed, looking at each of `times`.
async fn phases_of(store: &dyn Store, id: &str, times: &[Millis]) -> Vec<(Phase, Millis)> {
    let mut found = Vec::new();
    for phase in Phase::ALL {
        for t in times {
            let (list, _) = phase_listing(store, phase, *t..*t + 1, 100).await;
            if list.iter().any(|(_, i)| i == id) {
                found.push((phase, *t));
            }
        }
    }
    found
}

/// Where each of `ids` is listed, phase by phase, within `at`: (phase, time, id).
async fn phase_state(store: &dyn Store, ids: &[String], at: Range<Millis>) -> Vec<(Phase, Millis, String)> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        let (list, _) = phase_listing(store, phase, at.clone(), 100).await;
        out.extend(list.into_iter().filter(|(_, i)| ids.contains(i)).map(|(t, i)| (phase, t, i)));
    }
    out
}

#[track_caller]
fn update_progress(store: &dyn Store, what: &str, r: Result<()>) {
    ok(store, what, r)
}

/// The phase index follows an agenda progress through its life: created WAITING (unfinished, at its
/// added time), EXECUTING (still there: no move), COMPLETE failed with attempts left (retryable, at its
/// completion), rerun to WAITING (unfinished again), failed out of attempts (finished), succeeded
/// (finished, at the new completion time), deleted (gone); reads return the entry.
pub async fn phase_index_follows_state_changes(store: &dyn Store) {
    let base = time_base();
    let id = unique("ap");
    let times = [base, base + 10, base + 20, base + 30];
    let mut p = waiting(&id, base);
    update_progress(store, "create WAITING", store.create_obj(&mut p).await);
    assert_eq!(
        phases_of(store, &id, &times).await,
        vec![(Phase::Unfinished, base)],
        "[{}] a new WAITING agenda",
        name(store)
    );
    let rec = ok(store, "get", store.get(Kind::AgendaProgress, &id).await);
    assert_eq!(
        rec.and_then(|r| r.phase),
        Some(PhaseEntry::new(Phase::Unfinished, base)),
        "[{}] get returns the phase entry",
        name(store)
    );

    p.processing_state = ProcessingState::Executing;
    p.updated_time = Some(base + 5);
    update_progress(store, "update to EXECUTING", store.update_obj(&mut p).await);
    assert_eq!(
        phases_of(store, &id, &times).await,
        vec![(Phase::Unfinished, base)],
        "[{}] WAITING -> EXECUTING",
        name(store)
    );

    complete(&mut p, Conclusion::Failed, base + 10, 1, 3);
    update_progress(store, "update to COMPLETE failed, 1 of 3 attempts", store.update_obj(&mut p).await);
    assert_eq!(
        phases_of(store, &id, &times).await,
        vec![(Phase::Retryable, base + 10)],
        "[{}] EXECUTING -> COMPLETE failed with attempts left",
        name(store)
    );

    rewait(&mut p);
    update_progress(store, "update back to WAITING (rerun)", store.update_obj(&mut p).await);
    assert_eq!(
        phases_of(store, &id, &times).await,
        vec![(Phase::Unfinished, base)],
        "[{}] COMPLETE -> WAITING",
        name(store)
    );

    complete(&mut p, Conclusion::Failed, base + 20, 3, 3);
    update_progress(store, "update to COMPLETE failed, 3 of 3 attempts", store.update_obj(&mut p).await);
    assert_eq!(
        phases_of(store, &id, &times).await,
        vec![(Phase::Finished, base + 20)],
        "[{}] failed with no attempt left is finished",
        name(store)
    );

    rewait(&mut p);
    update_progress(store, "rerun", store.update_obj(&mut p).await);
    complete(&mut p, Conclusion::Succeeded, base + 30, 4, 3);
    update_progress(store, "update to COMPLETE succeeded", store.update_obj(&mut p).await);
    assert_eq!(phases_of(store, &id, &times).await, vec![(Phase::Finished, base + 30)], "[{}] succeeded", name(store));

    update_progress(store, "delete", store.delete_obj::<AgendaProgress>(&id).await);
    assert_eq!(phases_of(store, &id, &times).await, vec![], "[{}] a deleted agenda leaves the index", name(store));
}

/// Atomic batches keep the phase index: creates, updates and deletes of one batch all show; a batch
/// that fails (stale version, duplicate create) changes no entry.
pub async fn phase_index_follows_batches(store: &dyn Store) {
    let base = time_base();
    let tag = unique("apb");
    let id = |s: &str| format!("{tag}-{s}");
    let mut a = waiting(&id("a"), base);
    let mut b = waiting(&id("b"), base - 100);
    complete(&mut b, Conclusion::Succeeded, base + 1, 1, 3);
    let mut c = waiting(&id("c"), base - 100);
    complete(&mut c, Conclusion::Failed, base + 2, 0, 3);
    let ops = vec![
        ok(store, "create op", crate::store::create_op(&mut a)),
        ok(store, "create op", crate::store::create_op(&mut b)),
        ok(store, "create op", crate::store::create_op(&mut c)),
        WriteOp::ReadyInsert(ready(&unique("insight"), "cust", &id("a"), 0, base)),
    ];
    ok(store, "batch of three creates", store.write(ops).await);
    let ids = [id("a"), id("b"), id("c"), id("d"), id("e")];
    assert_eq!(
        phase_state(store, &ids, base..base + 6).await,
        vec![
            (Phase::Unfinished, base, id("a")),
            (Phase::Retryable, base + 2, id("c")),
            (Phase::Finished, base + 1, id("b"))
        ],
        "[{}] after a batch of creates",
        name(store)
    );

    complete(&mut a, Conclusion::Succeeded, base + 3, 1, 3);
    let mut d = waiting(&id("d"), base + 4);
    let ops = vec![
        ok(store, "update op", update_op(&mut a)),
        WriteOp::Delete { kind: Kind::AgendaProgress, id: id("b"), expected_version: Some(1) },
        ok(store, "create op", crate::store::create_op(&mut d)),
    ];
    ok(store, "batch of update, delete, create", store.write(ops).await);
    let after = vec![
        (Phase::Unfinished, base + 4, id("d")),
        (Phase::Retryable, base + 2, id("c")),
        (Phase::Finished, base + 3, id("a")),
    ];
    assert_eq!(
        phase_state(store, &ids, base..base + 6).await,
        after,
        "[{}] after a batch of update, delete and create",
        name(store)
    );

    // Failing batches: the first ops would move c and create e; the last one fails.
    let mut c2 = c.clone();
    complete(&mut c2, Conclusion::Succeeded, base + 5, 1, 3);
    let mut e = waiting(&id("e"), base + 5);
    let mut stale_d = d.clone();
    stale_d.version = 7;
    stale_d.processing_state = ProcessingState::Complete;
    let ops = vec![
        ok(store, "update op", update_op(&mut c2)),
        ok(store, "create op", crate::store::create_op(&mut e)),
        ok(store, "update op", update_op(&mut stale_d)),
    ];
    expect_conflict(store, "a batch whose last update is stale", store.write(ops).await);
    assert_eq!(
        phase_state(store, &ids, base..base + 6).await,
        after,
        "[{}] a failed batch (stale version) changed the index",
        name(store)
    );
    let mut c3 = c.clone();
    complete(&mut c3, Conclusion::Cancelled, base + 5, 1, 3);
    let mut dup = waiting(&id("a"), base + 5);
    let ops =
        vec![ok(store, "update op", update_op(&mut c3)), ok(store, "create op", crate::store::create_op(&mut dup))];
    expect_conflict(store, "a batch with a duplicate create", store.write(ops).await);
    assert_eq!(
        phase_state(store, &ids, base..base + 6).await,
        after,
        "[{}] a failed batch (duplicate create) changed the index",
        name(store)
    );
}

/// A phase lists by (time, id) ascending within its time range — start included, end excluded —
/// across pages of 7 and 100 (limit 0 meaning 100), never another phase's entries; a cursor continues
/// after its item when that item was deleted or left the phase; the unfinished phase lists every
/// WAITING and EXECUTING agenda once.
pub async fn phase_index_pages_in_time_order(store: &dyn Store) {
    const N: usize = 250;
    let base = time_base();
    let tag = unique("app");
    let cutoff = base + 100;
    let mut records = Vec::new();
    let mut expected: Vec<(Millis, String)> = Vec::new();
    let mut make = |id: String, state: Option<Millis>, added: Millis| {
        let mut p = waiting(&id, added);
        if let Some(at) = state {
            complete(&mut p, Conclusion::Succeeded, at, 1, 3);
        }
        p.version = 1;
        records.push(ok(store, "to_record", to_record(&p)));
    };
    // Many share a time (ids break the tie); inserted out of order.
    for i in 0..N {
        let at = base + ((i * 37) % 100) as Millis;
        let id = format!("{tag}-f{:03}", (i * 101) % N);
        expected.push((at, id.clone()));
        make(id, Some(at), base - 1000);
    }
    // Outside the range: at the cutoff, after it, just before the start.
    let outside: Vec<(Millis, String)> = vec![
        (cutoff, format!("{tag}-late-a")),
        (cutoff + 100, format!("{tag}-late-b")),
        (base - 1, format!("{tag}-early")),
    ];
    for (at, id) in &outside {
        make(id.clone(), Some(*at), base - 1000);
    }
    // Another phase at the same times.
    let unfinished: Vec<String> = (0..10).map(|i| format!("{tag}-u{i:02}")).collect();
    for u in &unfinished {
        make(u.clone(), None, base + 50);
    }
    create_all(store, records).await;
    expected.sort();

    let ours =
        |list: Vec<(Millis, String)>| list.into_iter().filter(|(_, id)| id.starts_with(&tag)).collect::<Vec<_>>();
    let (got, pages) = phase_listing(store, Phase::Finished, base..cutoff, 7).await;
    assert!(pages >= N / 7, "[{}] {N} entries in pages of 7 took {pages} pages", name(store));
    assert_eq!(ours(got), expected, "[{}] finished in [base, cutoff) in pages of 7", name(store));
    let (got, _) = phase_listing(store, Phase::Finished, base..cutoff, 100).await;
    assert_eq!(ours(got), expected, "[{}] finished in [base, cutoff) in pages of 100", name(store));
    let (got, _) = phase_listing(store, Phase::Finished, Millis::MIN..cutoff, 100).await;
    let mut oldest_first = vec![outside[2].clone()];
    oldest_first.extend(expected.iter().cloned());
    assert_eq!(ours(got), oldest_first, "[{}] finished before the cutoff, oldest first", name(store));
    let default_page = ok(
        store,
        "query_phase with limit 0",
        store.query_phase(Kind::AgendaProgress, Phase::Finished, base..cutoff, PageRequest::default()).await,
    );
    assert_eq!(default_page.items.len(), 100, "[{}] query_phase with limit 0 (100) over {N} entries", name(store));

    let (got, _) = phase_listing(store, Phase::Unfinished, PhaseEntry::ALL_TIMES, 3).await;
    assert_eq!(
        ours(got).into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
        unfinished,
        "[{}] every unfinished agenda once, in pages of 3",
        name(store)
    );
    let (got, _) = phase_listing(store, Phase::Retryable, base - 1000..cutoff + 1000, 100).await;
    assert_eq!(ours(got), vec![], "[{}] no retryable agenda was written", name(store));
    for (what, range) in [("an empty", base..base), ("an inverted", cutoff..base)] {
        let page = ok(
            store,
            &format!("query_phase of {what} range"),
            store.query_phase(Kind::AgendaProgress, Phase::Finished, range, PageRequest::first(10)).await,
        );
        assert!(page.items.is_empty() && page.next.is_none(), "[{}] {what} time range lists nothing", name(store));
    }

    // A cursor continues after its item when that item is deleted, and the next item may leave the phase.
    let first = ok(
        store,
        "a first page of 10",
        store.query_phase(Kind::AgendaProgress, Phase::Finished, base..cutoff, PageRequest::first(10)).await,
    );
    let first_ids: Vec<&str> = first.items.iter().map(|r| r.id.as_str()).collect();
    let want: Vec<&str> = expected[..10].iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(first_ids, want, "[{}] the first page of 10", name(store));
    let Some(cursor) = first.next else { panic!("[{}] a page of 10 out of {N} has no cursor", name(store)) };
    ok(
        store,
        "delete the last item of the page",
        store
            .write(vec![WriteOp::Delete {
                kind: Kind::AgendaProgress,
                id: expected[9].1.clone(),
                expected_version: None,
            }])
            .await,
    );
    let mut moved: AgendaProgress = ok(store, "fetch", store.fetch(&expected[10].1).await);
    rewait(&mut moved);
    ok(store, "move the next item to another phase", store.update_obj(&mut moved).await);
    let second = ok(
        store,
        "the page after a deleted item",
        store
            .query_phase(
                Kind::AgendaProgress,
                Phase::Finished,
                base..cutoff,
                PageRequest { limit: 10, cursor: Some(cursor) },
            )
            .await,
    );
    let second_ids: Vec<&str> = second.items.iter().map(|r| r.id.as_str()).collect();
    let want: Vec<&str> = expected[11..21].iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(second_ids, want, "[{}] the page after a deleted item and a moved one", name(store));
}

/// `query_phase` of a kind without a phase index is `Unsupported`; typed objects of other kinds carry
/// no phase entry.
pub async fn phase_query_needs_a_phase_index(store: &dyn Store) {
    for kind in Kind::ALL.into_iter().filter(|k| !k.has_phase_index()) {
        match store.query_phase(kind, Phase::Finished, PhaseEntry::ALL_TIMES, PageRequest::first(10)).await {
            Err(Error::Unsupported(msg)) => {
                assert!(msg.contains(kind.as_str()), "[{}] the Unsupported error names {kind}: {msg}", name(store))
            }
            other => panic!("[{}] query_phase of {kind}: expected Unsupported, got {other:?}", name(store)),
        }
    }
    let a: Agenda = with_indexes(&unique("agenda"), "x");
    assert!(ok(store, "to_record", to_record(&a)).phase.is_none(), "conformance suite bug: an agenda with a phase");
}
