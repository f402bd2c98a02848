//! [`DynamoStore`]: POP's [`Store`] on the `objects`, `ready` and `leases` tables.

use crate::client::{Db, no_extra};
use crate::codec::{At, Item, decode_cursor, encode_cursor, get_b, get_n, get_ready, get_s, n, opt_s, ready_json, s};
use crate::error::{BACKEND, DynamoError};
use crate::heads::Heads;
use crate::paging::QuerySpec;
use crate::tables::{BY_INSIGHT, BY_KIND, index_attr, index_name};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, Record, Store, WriteOp};
use pop_core::{Error, Problem, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

/// The most items of one `TransactWriteItems`, and so the most operations of one [`Store::write`].
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// DynamoDB's item size limit (400 KB), attribute names included.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Partition keys are at most 2048 bytes, sort keys 1024.
const MAX_SORT_KEY_BYTES: usize = 1024;
const MAX_PARTITION_KEY_BYTES: usize = 2048;

fn object_pk(kind: Kind, id: &str) -> String {
    format!("{kind}#{id}")
}

fn object_key(kind: Kind, id: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(object_pk(kind, id)))])
}

fn ready_key(agenda_id: &str) -> Item {
    HashMap::from([("a".to_owned(), s(agenda_id))])
}

fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn build_err(what: &str, e: impl std::fmt::Display) -> Error {
    DynamoError::other(format!("build {what}"), e.to_string()).into()
}

/// POP's [`Store`] on DynamoDB. Cheap to clone; see the crate docs for the table design.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) db: Arc<Db>,
}

/// One object write, checked and encoded.
struct ObjectWrite {
    op_index: usize,
    kind: Kind,
    id: String,
    shape: ObjectShape,
}

enum ObjectShape {
    Create(Item),
    Update(Item, u64),
    /// An upsert, as an update expression (the stored version is not known).
    Put(Upsert),
    Delete(Option<u64>),
}

/// An upsert of one item as an UpdateItem: every attribute set, the kind's optional attributes the
/// item lacks removed, the version incremented from what is stored (1 when new).
struct Upsert {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Upsert {
    fn of(kind: Kind, mut item: Item) -> Self {
        item.remove("pk");
        item.remove("v");
        let mut names = HashMap::from([("#v".to_owned(), "v".to_owned())]);
        let mut values = HashMap::from([(":zero".to_owned(), n(0u64)), (":one".to_owned(), n(1u64))]);
        let mut sets = vec!["#v = if_not_exists(#v, :zero) + :one".to_owned()];
        let mut optional: Vec<&str> = kind.indexed_fields().iter().map(|f| index_attr(*f)).collect();
        if kind.has_phase_index() {
            optional.extend([crate::phase::PHASE_ATTR, crate::phase::PHASE_SORT_ATTR]);
        }
        let mut removes = Vec::new();
        for (i, attr) in optional.into_iter().enumerate() {
            if !item.contains_key(attr) {
                names.insert(format!("#r{i}"), attr.to_owned());
                removes.push(format!("#r{i}"));
            }
        }
        let mut attrs: Vec<(String, AttributeValue)> = item.into_iter().collect();
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (attr, value)) in attrs.into_iter().enumerate() {
            names.insert(format!("#a{i}"), attr);
            values.insert(format!(":a{i}"), value);
            sets.push(format!("#a{i} = :a{i}"));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Self { expression, names, values }
    }
}

/// What a transaction item stands for, to map a cancellation reason back.
enum Tag {
    Object(usize),
    Ready,
}

impl DynamoStore {
    /// The ready entries listed by the keys-only index, read consistently: the index is, on AWS,
    /// eventually consistent, so only the entries still at their listed place are returned (a
    /// removed or moved entry is never handed out).
    async fn ready_entries(&self, listed: &[Item], what: &str) -> Result<Vec<ReadyAgenda>> {
        let listed: Vec<&Item> = listed.iter().collect();
        Ok(self.ready_current(&listed, what).await?.into_iter().map(|(_, e)| e).collect())
    }

    /// [`Self::ready_entries`] with each entry's place in `listed`. An agenda listed twice (moved
    /// while the index was listed) is read once, and returned at most once: at the place it is at.
    async fn ready_current(&self, listed: &[&Item], what: &str) -> Result<Vec<(usize, ReadyAgenda)>> {
        let mut seen = HashSet::new();
        // (a BatchGetItem with a key twice is refused as a whole)
        let keys: Vec<Item> =
            listed.iter().filter_map(|i| opt_s(i, "a")).filter(|a| seen.insert(*a)).map(ready_key).collect();
        let current: HashMap<String, Item> = self
            .db
            .batch_get(&self.db.tables.ready, keys, what)
            .await?
            .into_iter()
            .filter_map(|item| opt_s(&item, "a").map(str::to_owned).map(|a| (a, item)))
            .collect();
        let mut out = Vec::with_capacity(listed.len());
        for (at, l) in listed.iter().enumerate() {
            let Some(agenda) = opt_s(l, "a") else { continue };
            let Some(item) = current.get(agenda) else { continue };
            if opt_s(item, "ri") != opt_s(l, "ri") || opt_s(item, "ro") != opt_s(l, "ro") {
                continue;
            }
            out.push((at, get_ready(item, At { kind: "readyAgenda", id: agenda })?));
        }
        Ok(out)
    }
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    fn table(&self) -> &str {
        &self.db.tables.objects
    }

    fn encode_record(&self, rec: &Record, version: u64, op: &str, shards: u32) -> Result<Item> {
        let where_ = || format!("{op} of {} {:?}", rec.kind, rec.id);
        let mut problems = Vec::new();
        if rec.id.is_empty() {
            problems.push(Problem::new(format!("{}: the id is empty", where_())).field("id"));
        }
        if rec.id.len() > MAX_SORT_KEY_BYTES - 1 {
            problems.push(
                Problem::new(format!(
                    "{}: the id is {} bytes; DynamoDB allows {}",
                    where_(),
                    rec.id.len(),
                    MAX_SORT_KEY_BYTES - 1
                ))
                .field("id"),
            );
        }
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(object_pk(rec.kind, &rec.id))),
            ("kd".to_owned(), s(crate::shard::key_of(rec.kind.as_str(), &rec.id, shards))),
            (crate::shard::OBJECT_SHARDS_ATTR.to_owned(), n(shards)),
            ("id".to_owned(), s(&rec.id)),
            ("v".to_owned(), n(version)),
            ("b".to_owned(), AttributeValue::B(Blob::new(rec.body.clone()))),
        ]);
        let mut size = 2 + rec.kind.as_str().len() * 2 + rec.id.len() * 2 + 40 + rec.body.len();
        for (field, value) in &rec.indexes {
            // Only the kind's indexed fields are stored (and have a GSI); other values are ignored.
            if !rec.kind.indexed_fields().contains(field) {
                continue;
            }
            let attr = index_attr(*field);
            let mut v = format!("{}#{}", rec.kind, value);
            if crate::shard::is_sharded(*field) {
                v = crate::shard::key_of(&v, &rec.id, shards);
            }
            if v.len() > MAX_PARTITION_KEY_BYTES {
                problems.push(
                    Problem::new(format!(
                        "{}: the {field} value is {} bytes; DynamoDB index keys allow {}",
                        where_(),
                        value.len(),
                        MAX_PARTITION_KEY_BYTES - rec.kind.as_str().len() - 1
                    ))
                    .field(field.as_str()),
                );
            }
            size += attr.len() + v.len();
            item.insert(attr.to_owned(), s(v));
        }
        if let Some(p) = rec.phase.filter(|_| rec.kind.has_phase_index()) {
            let ph = crate::phase::partition(rec.kind, p.phase, crate::phase::shard(&rec.id));
            let pt = crate::phase::sort_key(p.at, &rec.id);
            if pt.len() > MAX_SORT_KEY_BYTES {
                problems.push(
                    Problem::new(format!(
                        "{}: the id is {} bytes; an object in the phase index allows {} in DynamoDB",
                        where_(),
                        rec.id.len(),
                        MAX_SORT_KEY_BYTES - (pt.len() - rec.id.len())
                    ))
                    .field("id"),
                );
            }
            size += ph.len() + pt.len() + 4;
            item.insert(crate::phase::PHASE_ATTR.to_owned(), s(ph));
            item.insert(crate::phase::PHASE_SORT_ATTR.to_owned(), s(pt));
        }
        if size > MAX_ITEM_BYTES {
            problems.push(
                Problem::new(format!(
                    "{}: the stored item would be about {size} bytes; a DynamoDB item holds at most {MAX_ITEM_BYTES}",
                    where_()
                ))
                .field("body"),
            );
        }
        if problems.is_empty() { Ok(item) } else { Err(Error::problems(problems)) }
    }

    pub(crate) fn decode_record(kind: Kind, item: &Item) -> Result<Record> {
        let pk = opt_s(item, "pk").unwrap_or("?");
        let id_hint = pk.split_once('#').map(|(_, id)| id).unwrap_or(pk);
        // An item without a usable key still names itself in the error.
        let id_hint = if id_hint.is_empty() { "(no id)" } else { id_hint };
        let at = At { kind: kind.as_str(), id: id_hint };
        let id = get_s(item, "id", at)?.to_owned();
        // The id errors name: the stored id, else the key's.
        let who = if id.is_empty() { id_hint.to_owned() } else { id.clone() };
        let version = get_n::<u64>(item, "v", at)?;
        let body = get_b(item, "b", at)?.to_vec();
        let prefix = format!("{kind}#");
        let mut indexes = Vec::new();
        // Items written since sharding record their shard count; their shared fields end in `#<shard>`.
        let sharded_item = item.contains_key(crate::shard::OBJECT_SHARDS_ATTR);
        for field in kind.indexed_fields() {
            if let Some(v) = opt_s(item, index_attr(*field)) {
                let corrupt = |why: &str| Error::Corrupt {
                    kind: kind.to_string(),
                    id: who.clone(),
                    reason: format!("index attribute {} = {v:?} {why}", index_attr(*field)),
                };
                let mut value =
                    v.strip_prefix(&prefix).ok_or_else(|| corrupt(&format!("lacks the prefix {prefix:?}")))?;
                if sharded_item && crate::shard::is_sharded(*field) {
                    value = value.rsplit_once('#').map(|(v, _)| v).ok_or_else(|| corrupt("lacks its shard"))?;
                }
                indexes.push((*field, value.to_owned()));
            }
        }
        let phase = crate::phase::decode(kind, &who, item)?;
        Ok(Record { kind, id, version, indexes, phase, body })
    }

    /// Checks and encodes the object operations; collapses the ready operations to one final state
    /// per agenda.
    #[allow(clippy::type_complexity, reason = "a private helper's tuple of the two halves of a batch")]
    fn plan(
        &self,
        ops: Vec<WriteOp>,
        shards: u32,
    ) -> Result<(Vec<ObjectWrite>, BTreeMap<String, Option<ReadyAgenda>>)> {
        let mut objects = Vec::new();
        let mut ready: BTreeMap<String, Option<ReadyAgenda>> = BTreeMap::new();
        let mut seen: BTreeSet<(Kind, String)> = BTreeSet::new();
        let mut problems = Vec::new();
        for (op_index, op) in ops.into_iter().enumerate() {
            let (kind, id, shape) = match op {
                WriteOp::Create(rec) => match self.encode_record(&rec, 1, "create", shards) {
                    Ok(item) => (rec.kind, rec.id, ObjectShape::Create(item)),
                    Err(e) => {
                        problems.extend(e.problem_list().iter().cloned());
                        continue;
                    }
                },
                WriteOp::Update { record, expected_version } => {
                    match self.encode_record(&record, expected_version.saturating_add(1), "update", shards) {
                        Ok(item) => (record.kind, record.id, ObjectShape::Update(item, expected_version)),
                        Err(e) => {
                            problems.extend(e.problem_list().iter().cloned());
                            continue;
                        }
                    }
                }
                WriteOp::Put(record) => match self.encode_record(&record, 1, "put", shards) {
                    Ok(item) => (record.kind, record.id.clone(), ObjectShape::Put(Upsert::of(record.kind, item))),
                    Err(e) => {
                        problems.extend(e.problem_list().iter().cloned());
                        continue;
                    }
                },
                WriteOp::Delete { kind, id, expected_version } => {
                    if id.is_empty() {
                        problems.push(Problem::new(format!("delete of {kind}: the id is empty")).field("id"));
                        continue;
                    }
                    (kind, id, ObjectShape::Delete(expected_version))
                }
                WriteOp::ReadyInsert(entry) => {
                    if entry.agenda_id.is_empty() {
                        problems.push(Problem::new("ready insert: the agenda id is empty").field("agendaId"));
                        continue;
                    }
                    if entry.insight_id.is_empty() {
                        problems.push(
                            Problem::new(format!(
                                "ready insert of agenda {}: the insight id is empty",
                                entry.agenda_id
                            ))
                            .field("insightId"),
                        );
                        continue;
                    }
                    let sort_len = crate::codec::ready_sort_key(&entry).len();
                    if sort_len > MAX_SORT_KEY_BYTES
                        || entry.insight_id.len() > MAX_PARTITION_KEY_BYTES
                        || entry.agenda_id.len() > MAX_PARTITION_KEY_BYTES
                    {
                        problems.push(
                            Problem::new(format!(
                                "ready insert of agenda {}: customer and agenda ids are too long for a DynamoDB \
                                 sort key ({sort_len} of {MAX_SORT_KEY_BYTES} bytes)",
                                entry.agenda_id
                            ))
                            .field("agendaId"),
                        );
                        continue;
                    }
                    ready.insert(entry.agenda_id.clone(), Some(entry));
                    continue;
                }
                WriteOp::ReadyRemove { agenda_id } => {
                    ready.insert(agenda_id, None);
                    continue;
                }
            };
            if !seen.insert((kind, id.clone())) {
                problems.push(
                    Problem::new(format!(
                        "{kind} {id} appears twice in one atomic write; DynamoDB transactions touch an item once"
                    ))
                    .field("id"),
                );
                continue;
            }
            objects.push(ObjectWrite { op_index, kind, id, shape });
        }
        if problems.is_empty() { Ok((objects, ready)) } else { Err(Error::problems(problems)) }
    }

    fn object_transact_item(&self, w: &ObjectWrite) -> Result<TransactWriteItem> {
        let table = self.table().to_owned();
        let all_old = ReturnValuesOnConditionCheckFailure::AllOld;
        Ok(match &w.shape {
            ObjectShape::Create(item) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| build_err("a create", e))?,
                )
                .build(),
            ObjectShape::Update(item, expected) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()))
                        .condition_expression("v = :ev")
                        .set_expression_attribute_values(Some(values([(":ev", n(expected))])))
                        .return_values_on_condition_check_failure(all_old)
                        .build()
                        .map_err(|e| build_err("an update", e))?,
                )
                .build(),
            ObjectShape::Put(u) => TransactWriteItem::builder()
                .update(
                    aws_sdk_dynamodb::types::Update::builder()
                        .table_name(table)
                        .set_key(Some(object_key(w.kind, &w.id)))
                        .update_expression(&u.expression)
                        .set_expression_attribute_names(Some(u.names.clone()))
                        .set_expression_attribute_values(Some(u.values.clone()))
                        .build()
                        .map_err(|e| build_err("an upsert", e))?,
                )
                .build(),
            ObjectShape::Delete(expected) => {
                let mut d = Delete::builder()
                    .table_name(table)
                    .set_key(Some(object_key(w.kind, &w.id)))
                    .return_values_on_condition_check_failure(all_old);
                d = match expected {
                    Some(v) => {
                        d.condition_expression("v = :ev").set_expression_attribute_values(Some(values([(":ev", n(v))])))
                    }
                    None => d.condition_expression("attribute_exists(pk)"),
                };
                TransactWriteItem::builder().delete(d.build().map_err(|e| build_err("a delete", e))?).build()
            }
        })
    }

    /// The error of an object write whose condition failed; `old` is the item DynamoDB returned with
    /// the failure, if it did (`None` may also mean the server does not return items).
    async fn condition_error(&self, w: &ObjectWrite, old: Option<&Item>) -> Error {
        let stored_version = match old {
            Some(item) => Some(get_n::<u64>(item, "v", At { kind: w.kind.as_str(), id: &w.id }).ok()),
            None => match &w.shape {
                ObjectShape::Create(_) => Some(None),
                _ => match self.get(w.kind, &w.id).await {
                    Ok(r) => r.map(|r| Some(r.version)),
                    Err(e) => return e,
                },
            },
        };
        match (&w.shape, stored_version) {
            (ObjectShape::Put(_), _) => {
                Error::Conflict(format!("{} {}: the upsert was refused (its condition cannot fail)", w.kind, w.id))
            }
            (ObjectShape::Create(_), _) => Error::Conflict(format!("{} {} already exists", w.kind, w.id)),
            (ObjectShape::Update(_, expected) | ObjectShape::Delete(Some(expected)), Some(v)) => {
                Error::Conflict(format!(
                    "{} {} is at version {}, not the expected {expected}: it was changed meanwhile; read it again",
                    w.kind,
                    w.id,
                    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
                ))
            }
            (ObjectShape::Delete(None), Some(_)) => {
                Error::Conflict(format!("{} {} changed while it was being deleted", w.kind, w.id))
            }
            (_, None) => Error::not_found(w.kind, &w.id),
        }
    }

    /// One object write without a transaction (half the write cost of a one-item transaction).
    async fn write_single(&self, w: &ObjectWrite) -> Result<()> {
        let table = self.table();
        let all_old = ReturnValuesOnConditionCheckFailure::AllOld;
        let action = || format!("write {} {} in table {table}", w.kind, w.id);
        let failed: Option<Option<Item>> = match &w.shape {
            ObjectShape::Create(item) | ObjectShape::Update(item, _) => {
                let (cond, vals) = match &w.shape {
                    ObjectShape::Update(_, ev) => ("v = :ev", Some(values([(":ev", n(ev))]))),
                    _ => ("attribute_not_exists(pk)", None),
                };
                let r = self
                    .db
                    .call(action, no_extra, || {
                        self.db
                            .client
                            .put_item()
                            .table_name(table)
                            .set_item(Some(item.clone()))
                            .condition_expression(cond)
                            .set_expression_attribute_values(vals.clone())
                            .return_values_on_condition_check_failure(all_old.clone())
                            .send()
                    })
                    .await;
                match r {
                    Ok(_) => None,
                    Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                        Some(match se.err() {
                            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                                c.item().cloned()
                            }
                            _ => None,
                        })
                    }
                    Err(e) => return Err(self.write_error(&action(), &e)),
                }
            }
            ObjectShape::Put(u) => {
                self.db
                    .call(action, no_extra, || {
                        self.db
                            .client
                            .update_item()
                            .table_name(table)
                            .set_key(Some(object_key(w.kind, &w.id)))
                            .update_expression(&u.expression)
                            .set_expression_attribute_names(Some(u.names.clone()))
                            .set_expression_attribute_values(Some(u.values.clone()))
                            .send()
                    })
                    .await
                    .map_err(|e| self.write_error(&action(), &e))?;
                None
            }
            ObjectShape::Delete(expected) => {
                let (cond, vals) = match expected {
                    Some(v) => ("v = :ev", Some(values([(":ev", n(v))]))),
                    None => ("attribute_exists(pk)", None),
                };
                let r = self
                    .db
                    .call(action, no_extra, || {
                        self.db
                            .client
                            .delete_item()
                            .table_name(table)
                            .set_key(Some(object_key(w.kind, &w.id)))
                            .condition_expression(cond)
                            .set_expression_attribute_values(vals.clone())
                            .return_values_on_condition_check_failure(all_old.clone())
                            .send()
                    })
                    .await;
                match r {
                    Ok(_) => None,
                    Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                        Some(match se.err() {
                            aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(
                                c,
                            ) => c.item().cloned(),
                            _ => None,
                        })
                    }
                    Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
                }
            }
        };
        match failed {
            None => Ok(()),
            Some(old) => Err(self.condition_error(w, old.as_ref()).await),
        }
    }

    /// A failed write: an oversized item is the caller's input, the rest the backend's.
    fn write_error<E, R>(&self, action: &str, e: &SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if e.code() == Some("ValidationException") && e.message().is_some_and(|m| m.contains("size")) {
            return Error::problems(vec![
                Problem::new(format!("{action}: {}", e.message().unwrap_or("item too large"))).field("body"),
            ]);
        }
        DynamoError::from_sdk(action, e).into()
    }

    /// The ready entry item of an agenda.
    fn ready_item(entry: &ReadyAgenda, shards: u32) -> Result<Item> {
        let mut item = ready_key(&entry.agenda_id);
        item.insert("ri".to_owned(), s(crate::shard::key_of(&entry.insight_id, &entry.agenda_id, shards)));
        item.insert("ro".to_owned(), s(crate::codec::ready_sort_key(entry)));
        item.insert("b".to_owned(), s(ready_json(entry)?));
        Ok(item)
    }

    /// The transaction item of an agenda's final ready state in a batch: put (replacing any entry
    /// of the agenda, wherever it was) or delete (a no-op when there is none).
    fn ready_transact_item(
        &self,
        agenda_id: &str,
        target: Option<&ReadyAgenda>,
        shards: u32,
    ) -> Result<TransactWriteItem> {
        let table = self.db.tables.ready.clone();
        Ok(match target {
            Some(entry) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(Self::ready_item(entry, shards)?))
                        .build()
                        .map_err(|e| build_err("a ready insert", e))?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(ready_key(agenda_id)))
                        .build()
                        .map_err(|e| build_err("a ready removal", e))?,
                )
                .build(),
        })
    }

    /// One ready change without a transaction.
    async fn write_ready_single(&self, agenda_id: &str, target: Option<&ReadyAgenda>) -> Result<()> {
        let table = &self.db.tables.ready;
        match target {
            Some(entry) => {
                let item = Self::ready_item(entry, self.db.shards().await?)?;
                let action = || format!("PutItem ready entry of agenda {agenda_id} in table {table}");
                self.db
                    .request(action, || self.db.client.put_item().table_name(table).set_item(Some(item.clone())).send())
                    .await?;
            }
            None => {
                let action = || format!("DeleteItem ready entry of agenda {agenda_id} in table {table}");
                self.db
                    .request(action, || {
                        self.db.client.delete_item().table_name(table).set_key(Some(ready_key(agenda_id))).send()
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// Reasons DynamoDB gives per item of a cancelled transaction that another attempt may clear.
fn transient_cancel<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
    match e {
        SdkError::ServiceError(se) => match se.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => {
                let codes: Vec<&str> = c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                codes.iter().any(|c| *c != "None")
                    && codes.iter().all(|c| {
                        matches!(
                            *c,
                            "None" | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                        )
                    })
            }
            TransactWriteItemsError::TransactionInProgressException(_) => true,
            _ => false,
        },
        _ => false,
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn max_batch(&self) -> usize {
        MAX_TRANSACTION_ITEMS
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        let table = self.table();
        let action = || format!("GetItem {kind} {id} in table {table}");
        let res = self
            .db
            .request(action, || {
                self.db
                    .client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(object_key(kind, id)))
                    .consistent_read(true)
                    .send()
            })
            .await?;
        res.item.map(|item| Self::decode_record(kind, &item)).transpose()
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.len() > MAX_TRANSACTION_ITEMS {
            return Err(Error::Unsupported(format!(
                "an atomic write of {} operations exceeds DynamoDB's limit of {MAX_TRANSACTION_ITEMS} items per \
                 TransactWriteItems (Store::max_batch); split it into smaller batches",
                ops.len()
            )));
        }
        if ops.is_empty() {
            return Ok(());
        }
        let shards = self.db.shards().await?;
        let (objects, ready) = self.plan(ops, shards)?;
        // Every operation is one item (ready changes of one agenda were folded into one).
        match (objects.as_slice(), ready.len()) {
            ([w], 0) => return self.write_single(w).await,
            ([], 1) => {
                if let Some((agenda, target)) = ready.iter().next() {
                    return self.write_ready_single(agenda, target.as_ref()).await;
                }
            }
            _ => {}
        }
        let mut items: Vec<TransactWriteItem> = Vec::with_capacity(objects.len() + ready.len());
        let mut tags: Vec<Tag> = Vec::with_capacity(items.capacity());
        for w in &objects {
            items.push(self.object_transact_item(w)?);
            tags.push(Tag::Object(w.op_index));
        }
        for (agenda, target) in &ready {
            items.push(self.ready_transact_item(agenda, target.as_ref(), shards)?);
            tags.push(Tag::Ready);
        }
        // The same token on every attempt makes a retried transaction idempotent (for 10 minutes).
        let token = uuid::Uuid::new_v4().to_string();
        let table = self.table();
        let action = || format!("TransactWriteItems of {} items (objects in table {table})", items.len());
        let res = self
            .db
            .call(action, transient_cancel, || {
                self.db
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .client_request_token(&token)
                    .send()
            })
            .await;
        let err = match res {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let reasons = match &err {
            SdkError::ServiceError(se) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => c.cancellation_reasons().to_vec(),
                _ => return Err(self.write_error(&action(), &err)),
            },
            _ => return Err(self.write_error(&action(), &err)),
        };
        // Reasons come in item order, which is operation order for the objects: the first failing
        // condition is the one reported.
        for (reason, tag) in reasons.iter().zip(&tags) {
            match (reason.code().unwrap_or("None"), tag) {
                ("ConditionalCheckFailed", Tag::Object(op_index)) => {
                    if let Some(w) = objects.iter().find(|w| w.op_index == *op_index) {
                        return Err(self.condition_error(w, reason.item()).await);
                    }
                }
                ("ValidationError", _) => {
                    return Err(Error::problems(vec![Problem::new(format!(
                        "{}: DynamoDB rejected an item: {}",
                        action(),
                        reason.message().unwrap_or("validation error")
                    ))]));
                }
                _ => {}
            }
        }
        if transient_cancel(&err) {
            return Err(Error::Conflict(format!(
                "{}: concurrent transactions on the same items kept cancelling this one after {} attempts; retry",
                action(),
                self.db.cfg.max_attempts
            )));
        }
        Err(DynamoError::from_sdk(action(), &err).into())
    }

    async fn query(&self, kind: Kind, field: IndexField, value: &str, page: PageRequest) -> Result<Page<Record>> {
        if !kind.indexed_fields().contains(&field) {
            return Err(Error::problems(vec![
                Problem::new(format!(
                    "{kind} is not indexed by {field}; its indexed fields are {}",
                    kind.indexed_fields().iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                ))
                .field(field.as_str()),
            ]));
        }
        let attr = index_attr(field);
        let partition = format!("{kind}#{value}");
        let what = format!("{kind} by {field} = {value:?}");
        let keys = ["pk", "id", attr];
        let index = index_name(field);
        let limit = page.effective_limit();
        if crate::shard::is_sharded(field) {
            // Spread over the shards by a hash of the object id: a Query per shard, merged by id.
            let shards = self.db.shards().await?;
            let partitions: Vec<String> = (0..shards).map(|i| crate::shard::key(&partition, i)).collect();
            let listing = format!("{kind}#{field}#{value}");
            let mut pos = match page.cursor.as_deref() {
                Some(c) => crate::shard::decode_cursor(&listing, c, &keys, attr, &partitions, &what)?,
                None => vec![crate::shard::Pos::Start; partitions.len()],
            };
            let specs = QuerySpec::per_shard(self.table(), Some(&index), attr, &partitions, &what);
            let items = self.db.merged_page(&specs, &mut pos, limit, "id", &keys).await?;
            let next = crate::shard::encode_cursor(&listing, &pos)?;
            let items = items.iter().map(|i| Self::decode_record(kind, i)).collect::<Result<Vec<_>>>()?;
            return Ok(Page { items, next });
        }
        let start = page.cursor.as_deref().map(|c| decode_cursor(c, &keys, (attr, &partition), &what)).transpose()?;
        let spec = QuerySpec {
            table: self.table(),
            index: Some(&index),
            key_condition: "#k = :k",
            filter: None,
            names: HashMap::from([("#k".to_owned(), attr.to_owned())]),
            values: values([(":k", s(&partition))]),
            what,
        };
        let (mut items, _) = self.db.query_items(&spec, start, limit.saturating_add(1)).await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| encode_cursor(i, &keys)).transpose()?
        } else {
            None
        };
        let items = items.iter().map(|i| Self::decode_record(kind, i)).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn scan(&self, kind: Kind, page: PageRequest) -> Result<Page<Record>> {
        let keys = ["pk", "kd", "id"];
        let what = format!("every {kind}");
        // `kd` is spread over the shards by a hash of the id: a Query per shard, merged by id.
        let shards = self.db.shards().await?;
        let partitions: Vec<String> = (0..shards).map(|i| crate::shard::key(kind.as_str(), i)).collect();
        let mut pos = match page.cursor.as_deref() {
            Some(c) => crate::shard::decode_cursor(kind.as_str(), c, &keys, "kd", &partitions, &what)?,
            None => vec![crate::shard::Pos::Start; partitions.len()],
        };
        let specs = QuerySpec::per_shard(self.table(), Some(BY_KIND), "kd", &partitions, &what);
        let key_items = self.db.merged_page(&specs, &mut pos, page.effective_limit(), "id", &keys).await?;
        let next = crate::shard::encode_cursor(kind.as_str(), &pos)?;
        // The index holds keys only (so updates cost it nothing): fetch the items, consistently.
        let keys: Vec<Item> = key_items
            .iter()
            .filter_map(|i| opt_s(i, "pk").map(|pk| HashMap::from([("pk".to_owned(), s(pk))])))
            .collect();
        let by_pk: HashMap<String, Item> = self
            .db
            .batch_get(self.table(), keys, &format!("every {kind}"))
            .await?
            .into_iter()
            .filter_map(|item| opt_s(&item, "pk").map(str::to_owned).map(|pk| (pk, item)))
            .collect();
        let mut items = Vec::with_capacity(key_items.len());
        for k in &key_items {
            // Deleted between the index read and the fetch: skipped.
            if let Some(item) = opt_s(k, "pk").and_then(|pk| by_pk.get(pk)) {
                items.push(Self::decode_record(kind, item)?);
            }
        }
        Ok(Page { items, next })
    }

    async fn query_phase(
        &self,
        kind: Kind,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> Result<Page<Record>> {
        self.query_phase_merged(kind, phase, at, page).await
    }

    async fn ready_get(&self, agenda_id: &str) -> Result<Option<ReadyAgenda>> {
        let table = &self.db.tables.ready;
        let action = || format!("GetItem ready entry of agenda {agenda_id} in table {table}");
        let res = self
            .db
            .request(action, || {
                self.db
                    .client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(ready_key(agenda_id)))
                    .consistent_read(true)
                    .send()
            })
            .await?;
        res.item.map(|item| get_ready(&item, At { kind: "readyAgenda", id: agenda_id })).transpose()
    }

    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>> {
        let keys = ["a", "ri", "ro"];
        let what = format!("the ready set of insight {insight_id}");
        let shards = self.db.shards().await?;
        let partitions: Vec<String> = (0..shards).map(|i| crate::shard::key(insight_id, i)).collect();
        let mut pos = match page.cursor.as_deref() {
            Some(c) => crate::shard::decode_cursor(insight_id, c, &keys, "ri", &partitions, &what)?,
            None => vec![crate::shard::Pos::Start; partitions.len()],
        };
        let table = &self.db.tables.ready;
        let specs = QuerySpec::per_shard(table, Some(BY_INSIGHT), "ri", &partitions, &what);
        // Every shard's next entries, merged by `ro` (the ready order).
        let listed = self.db.merged_page(&specs, &mut pos, page.effective_limit(), "ro", &keys).await?;
        let next = crate::shard::encode_cursor(insight_id, &pos)?;
        Ok(Page { items: self.ready_entries(&listed, &what).await?, next })
    }

    /// Lists the keys-only index as `ready_list` does, keeps each run's first `per_run` (by the run
    /// prefix of the sort key `ro`: the customer and the priority) and a few spare entries, and reads
    /// only those: the index pages still cover the backlog (small items, many per read unit), the
    /// consistent reads and the decoding only the heads. A run whose listed heads are gone or moved
    /// (the index lags on AWS: a refill's picks may still be listed at the next) is topped up from its
    /// spare entries (see `heads`).
    async fn ready_heads(&self, insight_id: &str, per_run: usize, limit: usize) -> Result<Vec<ReadyAgenda>> {
        if per_run == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let keys = ["a", "ri", "ro"];
        let what = format!("the heads of the ready set of insight {insight_id}");
        let shards = self.db.shards().await?;
        let partitions: Vec<String> = (0..shards).map(|i| crate::shard::key(insight_id, i)).collect();
        let mut pos = vec![crate::shard::Pos::Start; partitions.len()];
        let specs = QuerySpec::per_shard(&self.db.tables.ready, Some(BY_INSIGHT), "ri", &partitions, &what);
        let mut heads = Heads::new(per_run);
        'pages: while pos.iter().any(|p| *p != crate::shard::Pos::Done) {
            let listed = self.db.merged_page(&specs, &mut pos, 1000, "ro", &keys).await?;
            if listed.is_empty() {
                break;
            }
            for l in listed {
                let prefix = crate::codec::ready_run_prefix(opt_s(&l, "ro").unwrap_or_default()).to_owned();
                if heads.list(&prefix, l) == limit {
                    break 'pages;
                }
            }
        }
        loop {
            let (runs, batch): (Vec<usize>, Vec<&Item>) = heads.batch().into_iter().unzip();
            if batch.is_empty() {
                break;
            }
            let current = self.ready_current(&batch, &what).await?;
            for (at, entry) in current {
                heads.found(runs[at], entry);
            }
        }
        Ok(heads.into_heads(limit))
    }

    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool> {
        if name.is_empty() || holder.is_empty() {
            return Err(Error::problems(vec![
                Problem::new("a named lease needs a non-empty name and holder").field(if name.is_empty() {
                    "name"
                } else {
                    "holder"
                }),
            ]));
        }
        let table = &self.db.tables.leases;
        let expires = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        let item: Item =
            HashMap::from([("n".to_owned(), s(name)), ("h".to_owned(), s(holder)), ("e".to_owned(), n(expires))]);
        let action = || format!("PutItem lease {name} for {holder} in table {table}");
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(n) OR h = :h OR e <= :now")
                    .set_expression_attribute_values(Some(values([(":h", s(holder)), (":now", n(now))])))
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        let table = &self.db.tables.leases;
        let action = || format!("DeleteItem lease {name} of {holder} in table {table}");
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .delete_item()
                    .table_name(table)
                    .key("n", s(name))
                    .condition_expression("h = :h")
                    .expression_attribute_values(":h", s(holder))
                    .return_values(ReturnValue::None)
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }
}
