//! Hot-key sharding: each insight's queue partition (`q`, and `lq` while leased) and ready-index
//! partition (`ri`) are spread over [`DynamoConfig::shards`](crate::DynamoConfig::shards) values
//! `<insight id>#<shard>`, shard = FNV-1a(agenda id) mod the count. An agenda always lands in the
//! same shard, so per-agenda operations (push with its dedup, ack, extend, release, contains, remove,
//! a ready insert or removal) touch one shard; whole-insight reads query every shard in parallel and
//! merge them ([`Db::merged_page`]).
//!
//! The count is recorded once in the objects table (item `_pop#format`, attribute `qs`) and checked
//! by every process before it first touches a queue or a ready set ([`Db::shards`]). Tables written
//! by a build without sharding (no `qs` recorded) have their queue items and ready entries moved to
//! the sharded keys first ([`Db::adopt_layout`]).

use crate::client::{Db, no_extra};
use crate::codec::{At, Item, get_ready, n, opt_s, s};
use crate::error::DynamoError;
use crate::paging::QuerySpec;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pop_core::store::IndexField;
use pop_core::{Error, Problem, Problems, Result};
use std::collections::HashMap;

/// The item of the objects table that records the data format and the shard count.
pub(crate) const FORMAT_PK: &str = "_pop#format";
/// The attribute of [`FORMAT_PK`] holding the shard count.
const SHARDS_ATTR: &str = "qs";

/// The attribute every object item written since sharding carries: the shard count its `kd` and
/// shared index values were spread with (absent: written by an unsharded build).
pub(crate) const OBJECT_SHARDS_ATTR: &str = "sh";

/// The indexed fields whose values many objects share (a customer's agendas and progress, a link's,
/// a title's): their GSI partition values are spread over the shards by a hash of the object id.
/// The other fields have a value per agenda (`agendaId`, `agendaProgressId`) or are written rarely
/// (`resourcePoolId`, `insightId`: customers and insights) and stay one partition, one `Query`.
pub(crate) const SHARDED_FIELDS: [IndexField; 3] = [IndexField::CustomerId, IndexField::LinkId, IndexField::Title];

/// Whether a field's index partitions are sharded ([`SHARDED_FIELDS`]).
pub(crate) fn is_sharded(field: IndexField) -> bool {
    SHARDED_FIELDS.contains(&field)
}

/// FNV-1a of a string (stable across builds and platforms, unlike std's hasher).
pub(crate) fn fnv1a(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The shard of an agenda among `shards`.
pub(crate) fn of(agenda_id: &str, shards: u32) -> u32 {
    fnv1a(agenda_id) % shards.max(1)
}

/// The partition key value of one shard of an insight: `<insight>#<shard>`.
pub(crate) fn key(insight_id: &str, shard: u32) -> String {
    format!("{insight_id}#{shard}")
}

/// The partition key value of an agenda's shard of an insight.
pub(crate) fn key_of(insight_id: &str, agenda_id: &str, shards: u32) -> String {
    key(insight_id, of(agenda_id, shards))
}

/// Where a merged listing stands in one shard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pos {
    /// Nothing read yet.
    Start,
    /// After the item with this key (the `ExclusiveStartKey` of the shard's next query).
    After(Item),
    /// Nothing more.
    Done,
}

impl Db {
    /// The next page of a listing over several shards: one `Query` per shard not yet done (in
    /// parallel), each for up to `limit` items from its position, merged by the string attribute
    /// `order` (ties by shard), the first `limit` kept. Correct because a shard's unread items all
    /// sort after its `limit` read ones. Moves `pos` past the items returned, keeping `keys` (the
    /// table's and the index's key attributes) as each shard's start key.
    pub(crate) async fn merged_page(
        &self,
        specs: &[QuerySpec<'_>],
        pos: &mut [Pos],
        limit: usize,
        order: &str,
        keys: &[&str],
    ) -> Result<Vec<Item>> {
        let queries = specs.iter().zip(pos.iter()).enumerate().filter(|(_, (_, p))| **p != Pos::Done).map(
            |(shard, (spec, p))| {
                let start = match p {
                    Pos::After(k) => Some(k.clone()),
                    _ => None,
                };
                async move {
                    let (items, more) = self.query_items(spec, start, limit).await?;
                    Ok::<_, Error>((shard, items, more.is_some()))
                }
            },
        );
        let fetched = futures_util::future::try_join_all(queries).await?;
        let mut listed: Vec<(String, usize, Item)> = Vec::new();
        let mut fetched_per_shard = vec![0usize; pos.len()];
        let mut more_in_shard = vec![false; pos.len()];
        for (shard, items, more) in fetched {
            fetched_per_shard[shard] = items.len();
            more_in_shard[shard] = more;
            for item in items {
                let o = opt_s(&item, order).unwrap_or_default().to_owned();
                listed.push((o, shard, item));
            }
        }
        listed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        listed.truncate(limit);
        let mut taken_per_shard = vec![0usize; pos.len()];
        for (_, shard, item) in &listed {
            taken_per_shard[*shard] += 1;
            pos[*shard] =
                Pos::After(keys.iter().filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone()))).collect());
        }
        for (shard, p) in pos.iter_mut().enumerate() {
            if *p != Pos::Done && !more_in_shard[shard] && taken_per_shard[shard] == fetched_per_shard[shard] {
                *p = Pos::Done;
            }
        }
        Ok(listed.into_iter().map(|(_, _, item)| item).collect())
    }

    /// The shard count of the tables, checked against the configuration once per process: the first
    /// call reads the recorded count (one `GetItem`), recording the configured one (and moving data of
    /// an unsharded build, [`Db::adopt_layout`]) when none is. A mismatch is `Unsupported`.
    pub(crate) async fn shards(&self) -> Result<u32> {
        self.layout.get_or_try_init(|| self.check_layout()).await.copied()
    }

    async fn read_format_item(&self) -> Result<Option<Item>> {
        let table = self.tables.objects.as_str();
        let action = || format!("GetItem the data format item in table {table}");
        let res = self
            .request(action, || {
                self.client.get_item().table_name(table).key("pk", s(FORMAT_PK)).consistent_read(true).send()
            })
            .await?;
        Ok(res.item)
    }

    fn mismatch(&self, recorded: u32) -> Error {
        Error::Unsupported(format!(
            "the DynamoDB tables with prefix {:?} spread each insight's queue and ready index over {recorded} \
             shards (recorded in item {FORMAT_PK} of table {}), but this process is configured with {}: set \
             DynamoConfig::shards({recorded}). The count is fixed for the tables' life; to change it, re-create \
             the tables (or use another table_prefix)",
            self.cfg.table_prefix, self.tables.objects, self.cfg.shards
        ))
    }

    async fn check_layout(&self) -> Result<u32> {
        let wanted = self.cfg.shards;
        let table = self.tables.objects.as_str();
        for _ in 0..3 {
            let recorded = match self.read_format_item().await? {
                Some(item) => match item.get(SHARDS_ATTR) {
                    Some(AttributeValue::N(v)) => Some(v.parse::<u32>().map_err(|_| Error::Corrupt {
                        kind: "format".to_owned(),
                        id: FORMAT_PK.to_owned(),
                        reason: format!("attribute {SHARDS_ATTR} = {v} is not a shard count"),
                    })?),
                    _ => None,
                },
                None => None,
            };
            match recorded {
                Some(r) if r == wanted => return Ok(r),
                Some(r) => return Err(self.mismatch(r)),
                None => {}
            }
            let moved = self.adopt_layout(wanted).await?;
            let action = || format!("UpdateItem record {wanted} shards in item {FORMAT_PK} of table {table}");
            let r = self
                .call(action, no_extra, || {
                    self.client
                        .update_item()
                        .table_name(table)
                        .key("pk", s(FORMAT_PK))
                        .update_expression("SET #qs = :qs")
                        .condition_expression("attribute_not_exists(#qs)")
                        .expression_attribute_names("#qs", SHARDS_ATTR)
                        .expression_attribute_values(":qs", n(wanted))
                        .send()
                })
                .await;
            match r {
                Ok(_) => {
                    tracing::info!(table, shards = wanted, moved, "dynamodb: shard count recorded");
                    return Ok(wanted);
                }
                // Another process recorded a count meanwhile: read it.
                Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => continue,
                Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
            }
        }
        Err(Error::Conflict(format!("the shard count in item {FORMAT_PK} of table {table} kept changing; retry")))
    }

    /// Moves what a build without sharding wrote to the sharded keys: every ready entry whose `ri` is
    /// the bare insight id gets `<insight>#<shard>`; every queue item without the `i` attribute is
    /// re-put under `q = <insight>#<shard>` (lease, epoch and push order kept) and deleted from its old
    /// key, in one transaction conditional on its epoch. Reads both tables with `Scan` (once per
    /// table's life; on new tables they are empty). Returns how many items moved.
    pub(crate) async fn adopt_layout(&self, shards: u32) -> Result<usize> {
        let mut moved = 0usize;
        let objects = self.tables.objects.as_str();
        for item in self.scan_all(objects).await? {
            if item.contains_key(OBJECT_SHARDS_ATTR) {
                continue;
            }
            let (Some(pk), Some(id), Some(kd), Some(version)) =
                (opt_s(&item, "pk"), opt_s(&item, "id"), opt_s(&item, "kd"), item.get("v").cloned())
            else {
                continue;
            };
            let mut sets = vec!["#kd = :kd".to_owned(), "#sh = :sh".to_owned()];
            let mut names =
                HashMap::from([("#kd".to_owned(), "kd".to_owned()), ("#sh".to_owned(), OBJECT_SHARDS_ATTR.to_owned())]);
            let mut values = HashMap::from([
                (":kd".to_owned(), s(key_of(kd, id, shards))),
                (":sh".to_owned(), n(shards)),
                (":v".to_owned(), version),
            ]);
            for (i, field) in SHARDED_FIELDS.iter().enumerate() {
                let attr = crate::tables::index_attr(*field);
                if let Some(value) = opt_s(&item, attr) {
                    sets.push(format!("#x{i} = :x{i}"));
                    names.insert(format!("#x{i}"), attr.to_owned());
                    values.insert(format!(":x{i}"), s(key_of(value, id, shards)));
                }
            }
            let update = format!("SET {}", sets.join(", "));
            let action = || format!("UpdateItem shard the index attributes of {pk} in table {objects}");
            let r = self
                .call(action, no_extra, || {
                    self.client
                        .update_item()
                        .table_name(objects)
                        .key("pk", s(pk))
                        .update_expression(&update)
                        .condition_expression("v = :v AND attribute_not_exists(#sh)")
                        .set_expression_attribute_names(Some(names.clone()))
                        .set_expression_attribute_values(Some(values.clone()))
                        .send()
                })
                .await;
            match r {
                Ok(_) => moved += 1,
                // Changed meanwhile: rewritten by this build (sharded), or by an earlier one (left).
                Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                    tracing::warn!(pk, "dynamodb: an object changed while being sharded; left in place");
                }
                Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
            }
        }
        for item in self.scan_all(&self.tables.ready).await? {
            let Some(agenda) = opt_s(&item, "a") else { continue };
            let Some(ri) = opt_s(&item, "ri") else { continue };
            let entry = get_ready(&item, At { kind: "readyAgenda", id: agenda })?;
            let new = key_of(&entry.insight_id, agenda, shards);
            if ri != entry.insight_id || ri == new {
                continue;
            }
            let table = self.tables.ready.as_str();
            let action = || format!("UpdateItem shard the ready entry of agenda {agenda} in table {table}");
            let r = self
                .call(action, no_extra, || {
                    self.client
                        .update_item()
                        .table_name(table)
                        .key("a", s(agenda))
                        .update_expression("SET ri = :new")
                        .condition_expression("ri = :old")
                        .expression_attribute_values(":new", s(&new))
                        .expression_attribute_values(":old", s(ri))
                        .send()
                })
                .await;
            match r {
                Ok(_) => moved += 1,
                Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
            }
        }
        let table = self.tables.queue.as_str();
        for item in self.scan_all(table).await? {
            if item.contains_key("i") {
                continue;
            }
            let (Some(q), Some(agenda)) = (opt_s(&item, "q"), opt_s(&item, "a")) else { continue };
            let Some(epoch) = item.get("ep").cloned() else { continue };
            let new_q = key_of(q, agenda, shards);
            let mut new_item = item.clone();
            new_item.insert("q".to_owned(), s(&new_q));
            new_item.insert("i".to_owned(), s(q));
            if new_item.contains_key("lq") {
                new_item.insert("lq".to_owned(), s(&new_q));
            }
            let action = || format!("TransactWriteItems shard queue item of agenda {agenda} of insight {q} in {table}");
            let build = |e: aws_sdk_dynamodb::error::BuildError| DynamoError::other(action(), e.to_string());
            let items = vec![
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(new_item))
                            .condition_expression("attribute_not_exists(a)")
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(table)
                            .key("q", s(q))
                            .key("a", s(agenda))
                            .condition_expression("ep = :ep AND attribute_not_exists(i)")
                            .expression_attribute_values(":ep", epoch)
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
            ];
            match self
                .call(action, no_extra, || {
                    self.client.transact_write_items().set_transact_items(Some(items.clone())).send()
                })
                .await
            {
                Ok(_) => moved += 1,
                // Changed meanwhile (a process of the earlier build acked or leased it): left as it is.
                Err(SdkError::ServiceError(se)) if se.err().is_transaction_canceled_exception() => {
                    tracing::warn!(
                        agenda,
                        insight = q,
                        "dynamodb: a queue item changed while being sharded; left in place"
                    );
                }
                Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
            }
        }
        if moved > 0 {
            tracing::info!(
                moved,
                shards,
                "dynamodb: queue items and ready entries of an unsharded build moved to shards"
            );
        }
        Ok(moved)
    }

    /// Every item of a table (`Scan`, all pages). Only for [`Db::adopt_layout`].
    async fn scan_all(&self, table: &str) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let action = || format!("Scan table {table}");
            let res = self
                .request(action, || {
                    self.client
                        .scan()
                        .table_name(table)
                        .consistent_read(true)
                        .set_exclusive_start_key(start.clone())
                        .send()
                })
                .await?;
            out.extend(res.items.unwrap_or_default());
            match res.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}

/// Encodes per-shard positions of the listing named `listing` as an opaque cursor (`None` when every
/// shard is done).
pub(crate) fn encode_cursor(listing: &str, pos: &[Pos]) -> Result<Option<String>> {
    if pos.iter().all(|p| *p == Pos::Done) {
        return Ok(None);
    }
    let shards: Vec<serde_json::Value> = pos
        .iter()
        .map(|p| match p {
            Pos::Start => serde_json::Value::String(String::new()),
            Pos::Done => serde_json::Value::Null,
            Pos::After(k) => serde_json::Value::Object(
                k.iter()
                    .filter_map(|(name, v)| match v {
                        AttributeValue::S(v) => Some((name.clone(), serde_json::Value::String(v.clone()))),
                        _ => None,
                    })
                    .collect(),
            ),
        })
        .collect();
    let json = serde_json::to_vec(&serde_json::json!({ "l": listing, "s": shards }))
        .map_err(|e| Error::backend(crate::error::BACKEND, e))?;
    Ok(Some(URL_SAFE_NO_PAD.encode(json)))
}

/// Decodes a cursor of [`encode_cursor`] for the listing `listing` over `partitions` (one value per
/// shard, held in attribute `partition_attr`) whose start keys have exactly the string attributes
/// `keys`.
pub(crate) fn decode_cursor(
    listing: &str,
    cursor: &str,
    keys: &[&str],
    partition_attr: &str,
    partitions: &[String],
    what: &str,
) -> Result<Vec<Pos>> {
    let bad = |why: &str| {
        Error::Invalid(Problems(vec![
            Problem::new(format!("page cursor {cursor:?} for {what} is not one this store issued: {why}"))
                .field("cursor"),
        ]))
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad("not base64url"))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    if doc["l"].as_str() != Some(listing) {
        return Err(bad("it belongs to another listing"));
    }
    let shards = doc["s"].as_array().ok_or_else(|| bad("no shard positions"))?;
    if shards.len() != partitions.len() {
        return Err(bad(&format!(
            "it has {} shard positions, the tables {} shards (cursors do not survive a change of the shard count)",
            shards.len(),
            partitions.len()
        )));
    }
    shards
        .iter()
        .zip(partitions)
        .map(|(v, partition)| match v {
            serde_json::Value::Null => Ok(Pos::Done),
            serde_json::Value::String(s) if s.is_empty() => Ok(Pos::Start),
            serde_json::Value::Object(map) => {
                if map.len() != keys.len()
                    || !keys.iter().all(|k| map.get(*k).is_some_and(serde_json::Value::is_string))
                {
                    return Err(bad("it belongs to another listing"));
                }
                if map.get(partition_attr).and_then(|v| v.as_str()) != Some(partition.as_str()) {
                    return Err(bad("it belongs to another listing"));
                }
                Ok(Pos::After(
                    map.iter().map(|(k, v)| (k.clone(), s(v.as_str().unwrap_or_default()))).collect::<HashMap<_, _>>(),
                ))
            }
            _ => Err(bad("a shard position is neither a key, empty nor null")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change would strand every item written before it.
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(key_of("ins#1", "a", 8), format!("ins#1#{}", 0xe40c_292cu32 % 8));
        for shards in [1u32, 3, 8, 64] {
            let mut counts = vec![0usize; shards as usize];
            for i in 0..(1000 * shards) {
                counts[of(&format!("agenda-{i}"), shards) as usize] += 1;
            }
            assert!(counts.iter().all(|c| (800..1200).contains(c)), "{shards}: {counts:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_others() {
        let parts: Vec<String> = (0..3).map(|i| key("ins", i)).collect();
        let after = Item::from([("a".to_owned(), s("x")), ("ri".to_owned(), s(&parts[1])), ("ro".to_owned(), s("k"))]);
        let pos = vec![Pos::Start, Pos::After(after), Pos::Done];
        let c = encode_cursor("ins", &pos).unwrap().unwrap();
        assert_eq!(decode_cursor("ins", &c, &["a", "ri", "ro"], "ri", &parts, "t").unwrap(), pos);
        let other: Vec<String> = (0..3).map(|i| key("other", i)).collect();
        assert!(decode_cursor("ins", &c, &["a", "ri", "ro"], "ri", &other, "t").is_err(), "another insight's keys");
        let starts = encode_cursor("ins", &[Pos::Start, Pos::Done, Pos::Start]).unwrap().unwrap();
        assert!(decode_cursor("other", &starts, &["a", "ri", "ro"], "ri", &other, "t").is_err(), "another insight");
        assert!(decode_cursor("ins", &c, &["a", "ri", "ro"], "ri", &parts[..2], "t").is_err(), "another shard count");
        assert!(decode_cursor("ins", &c, &["q", "a", "o"], "q", &parts, "t").is_err(), "another listing");
        assert!(decode_cursor("ins", "%%", &["a"], "a", &parts, "t").is_err());
        assert_eq!(encode_cursor("ins", &[Pos::Done, Pos::Done]).unwrap(), None);
    }
}
