//! The phase index on DynamoDB: the `ph`/`pt` attributes, the sharded `by_phase` GSI, its merged
//! paged reads, and the one-time backfill of items written before the index existed.
//!
//! `ph` = `<kind>#<phase>#<shard>` (partition), `pt` = `<16 hex: time, sign bit flipped>#<id>` (sort),
//! shard = FNV-1a(id) mod [`PHASE_SHARDS`]. A listing queries every shard of the phase with
//! `ph = :p AND pt BETWEEN :from AND :before`, merges them by `pt` (so by (time, id)), and reads the
//! listed items with one consistent `BatchGetItem` per 100, keeping those still at the listed place.

use crate::client::no_extra;
use crate::codec::{Item, get_n, millis_key, n, opt_s, s};
use crate::error::DynamoError;
use crate::paging::QuerySpec;
use crate::store::DynamoStore;
use crate::tables::BY_PHASE;
use aws_sdk_dynamodb::error::SdkError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pop_core::model::Millis;
use pop_core::store::{Kind, Page, PageRequest, Phase, PhaseEntry, Record, Store, derive_phase};
use pop_core::{Error, Problem, Problems, Result};
use std::collections::HashMap;
use std::ops::Range;

/// How many partitions (`ph` values) each phase of a kind is spread over in `by_phase`.
///
/// DynamoDB serves about 1,000 writes per second per partition key value, GSIs included, and a GSI
/// that cannot keep up throttles the table's writes. Every agenda writes its unfinished entry when
/// submitted and moves it to a finished one when it completes, so one partition per phase would cap the
/// whole system near 500 agendas per second. Eight shards lift that cap eightfold; a listing pays
/// with one `Query` per shard (eight small requests per page, in parallel). Changing the number
/// would strand entries written under the old one: it is fixed.
pub const PHASE_SHARDS: u32 = 8;

/// The attribute holding the phase partition.
pub(crate) const PHASE_ATTR: &str = "ph";
/// The attribute holding the phase sort key.
pub(crate) const PHASE_SORT_ATTR: &str = "pt";

// The item of the objects table that records the data format (absent: written before the phase index).
use crate::shard::FORMAT_PK;
/// The attribute of [`FORMAT_PK`] holding the version.
const FORMAT_ATTR: &str = "fv";
/// The data format with the phase index.
pub(crate) const DATA_FORMAT: u32 = 2;

/// The shard of an id: FNV-1a (stable across builds and platforms, unlike std's hasher).
pub(crate) fn shard(id: &str) -> u32 {
    crate::shard::fnv1a(id) % PHASE_SHARDS
}

/// `ph` of an object.
pub(crate) fn partition(kind: Kind, phase: Phase, shard: u32) -> String {
    format!("{kind}#{phase}#{shard}")
}

/// `pt` of an object.
pub(crate) fn sort_key(at: Millis, id: &str) -> String {
    format!("{}#{id}", millis_key(at))
}

/// Reads the phase entry back from `ph` and `pt`, if the item has them.
pub(crate) fn decode(kind: Kind, id: &str, item: &Item) -> Result<Option<PhaseEntry>> {
    let (Some(ph), Some(pt)) = (opt_s(item, PHASE_ATTR), opt_s(item, PHASE_SORT_ATTR)) else {
        return Ok(None);
    };
    let bad = |why: &str| Error::Corrupt {
        kind: kind.to_string(),
        id: id.to_owned(),
        reason: format!("phase attributes ph = {ph:?}, pt = {pt:?}: {why}"),
    };
    let mut parts = ph.splitn(3, '#');
    if parts.next() != Some(kind.as_str()) {
        return Err(bad("ph does not start with the kind"));
    }
    let phase = parts.next().and_then(Phase::parse).ok_or_else(|| bad("unknown phase"))?;
    let at = pt
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(|v| (v ^ (1u64 << 63)) as Millis)
        .ok_or_else(|| bad("pt does not start with 16 hex digits"))?;
    Ok(Some(PhaseEntry { phase, at }))
}

/// Where a listing stands in one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShardPos {
    /// Nothing read yet: from the start of the range.
    Start,
    /// After this `pt`.
    After(String),
    /// Nothing more in the range.
    Done,
}

fn encode_cursor(kind: Kind, phase: Phase, pos: &[ShardPos]) -> Result<String> {
    let shards: Vec<serde_json::Value> = pos
        .iter()
        .map(|p| match p {
            ShardPos::Start => serde_json::Value::String(String::new()),
            ShardPos::After(pt) => serde_json::Value::String(pt.clone()),
            ShardPos::Done => serde_json::Value::Null,
        })
        .collect();
    let doc = serde_json::json!({"k": kind.as_str(), "p": phase.as_str(), "s": shards});
    let json = serde_json::to_vec(&doc).map_err(|e| Error::backend(crate::error::BACKEND, e))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

pub(crate) fn decode_cursor(kind: Kind, phase: Phase, cursor: &str) -> Result<Vec<ShardPos>> {
    let bad = |why: &str| {
        Error::Invalid(Problems(vec![
            Problem::new(format!(
                "page cursor {cursor:?} for {kind} in phase {phase} is not one this store issued: {why}"
            ))
            .field("cursor"),
        ]))
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad("not base64url"))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    if doc["k"] != kind.as_str() || doc["p"] != phase.as_str() {
        return Err(bad("it belongs to another listing"));
    }
    let shards = doc["s"].as_array().filter(|s| s.len() == PHASE_SHARDS as usize).ok_or_else(|| bad("shards"))?;
    shards
        .iter()
        .map(|v| match v {
            serde_json::Value::Null => Ok(ShardPos::Done),
            serde_json::Value::String(pt) if pt.is_empty() => Ok(ShardPos::Start),
            serde_json::Value::String(pt) => Ok(ShardPos::After(pt.clone())),
            _ => Err(bad("shards")),
        })
        .collect()
}

impl DynamoStore {
    /// [`Store::query_phase`]: every shard queried (in parallel) from its position, merged by `pt`.
    pub(crate) async fn query_phase_merged(
        &self,
        kind: Kind,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> Result<Page<Record>> {
        if !kind.has_phase_index() {
            return Err(Error::Unsupported(format!("query {kind} by phase: {kind} has no phase index")));
        }
        let mut pos = match &page.cursor {
            Some(c) => decode_cursor(kind, phase, c)?,
            None => vec![ShardPos::Start; PHASE_SHARDS as usize],
        };
        if at.start >= at.end {
            return Ok(Page { items: Vec::new(), next: None });
        }
        let limit = page.effective_limit();
        let (lo, hi) = (millis_key(at.start), millis_key(at.end));
        let what = format!("{kind} in phase {phase}, times {at:?}");
        let table = self.db.tables.objects.as_str();
        // A position outside the range (a cursor of another range) is the range's start or end.
        for p in &mut pos {
            if let ShardPos::After(pt) = p {
                if *pt < lo {
                    *p = ShardPos::Start;
                } else if *pt >= hi {
                    *p = ShardPos::Done;
                }
            }
        }
        let queries = pos.iter().enumerate().filter(|(_, p)| **p != ShardPos::Done).map(|(shard, p)| {
            let ph = partition(kind, phase, shard as u32);
            let start = match p {
                ShardPos::After(pt) => {
                    let id = pt.get(17..).unwrap_or_default();
                    Some(Item::from([
                        ("pk".to_owned(), s(format!("{kind}#{id}"))),
                        (PHASE_ATTR.to_owned(), s(&ph)),
                        (PHASE_SORT_ATTR.to_owned(), s(pt)),
                    ]))
                }
                _ => None,
            };
            let spec = QuerySpec {
                table,
                index: Some(BY_PHASE),
                key_condition: "ph = :p AND pt BETWEEN :lo AND :hi",
                filter: None,
                names: HashMap::new(),
                values: HashMap::from([
                    (":p".to_owned(), s(&ph)),
                    (":lo".to_owned(), s(&lo)),
                    (":hi".to_owned(), s(&hi)),
                ]),
                what: format!("{what}, shard {shard}"),
            };
            async move {
                let (items, more) = self.db.query_items(&spec, start, limit).await?;
                Ok::<_, Error>((shard, items, more.is_some()))
            }
        });
        let fetched = futures_util::future::try_join_all(queries).await?;
        // Merge: every listed key with its shard, by pt.
        let mut listed: Vec<(String, usize, String)> = Vec::new();
        let mut fetched_per_shard = vec![0usize; PHASE_SHARDS as usize];
        let mut more_in_shard = vec![false; PHASE_SHARDS as usize];
        for (shard, items, more) in fetched {
            fetched_per_shard[shard] = items.len();
            more_in_shard[shard] = more;
            for item in items {
                if let (Some(pt), Some(pk)) = (opt_s(&item, PHASE_SORT_ATTR), opt_s(&item, "pk")) {
                    listed.push((pt.to_owned(), shard, pk.to_owned()));
                }
            }
        }
        listed.sort();
        listed.truncate(limit);
        let mut taken_per_shard = vec![0usize; PHASE_SHARDS as usize];
        for (pt, shard, _) in &listed {
            taken_per_shard[*shard] += 1;
            pos[*shard] = ShardPos::After(pt.clone());
        }
        for shard in 0..PHASE_SHARDS as usize {
            // Everything the shard holds in the range was read and handed out.
            if !more_in_shard[shard] && taken_per_shard[shard] == fetched_per_shard[shard] {
                pos[shard] = ShardPos::Done;
            }
        }
        let next =
            if pos.iter().all(|p| *p == ShardPos::Done) { None } else { Some(encode_cursor(kind, phase, &pos)?) };
        // The index holds keys only (updates that keep the phase cost it nothing) and lags on AWS: read
        // the items themselves, consistently, and keep those still at the listed place.
        let keys: Vec<Item> = listed.iter().map(|(_, _, pk)| Item::from([("pk".to_owned(), s(pk))])).collect();
        let mut current: HashMap<String, Item> = self
            .db
            .batch_get(table, keys, &what)
            .await?
            .into_iter()
            .filter_map(|item| opt_s(&item, "pk").map(str::to_owned).map(|pk| (pk, item)))
            .collect();
        let mut items = Vec::with_capacity(listed.len());
        for (pt, _, pk) in &listed {
            let Some(item) = current.remove(pk) else { continue };
            if opt_s(&item, PHASE_SORT_ATTR) != Some(pt.as_str()) {
                continue;
            }
            let rec = Self::decode_record(kind, &item)?;
            if rec.phase.is_some_and(|p| p.phase == phase) {
                items.push(rec);
            }
        }
        Ok(Page { items, next })
    }

    /// The data format recorded in the objects table (1 when no format item exists).
    async fn data_format(&self) -> Result<u32> {
        let table = self.db.tables.objects.as_str();
        let action = || format!("GetItem the data format item in table {table}");
        let res = self
            .db
            .request(action, || {
                self.db.client.get_item().table_name(table).key("pk", s(FORMAT_PK)).consistent_read(true).send()
            })
            .await?;
        match res.item {
            // The item may hold only the shard count (recorded first on tables someone else created).
            Some(item) if item.contains_key(FORMAT_ATTR) => {
                get_n::<u32>(&item, FORMAT_ATTR, crate::codec::At { kind: "format", id: FORMAT_PK })
            }
            _ => Ok(1),
        }
    }

    /// Gives every object of a kind with a phase index that has no phase attributes (written by a
    /// build without the index) the ones its body calls for, then records data format 2. Unless
    /// `force`, a no-op (one `GetItem`) once that is recorded. Returns how many items it changed.
    pub(crate) async fn backfill_phases(&self, force: bool) -> Result<usize> {
        if !force && self.data_format().await? >= DATA_FORMAT {
            return Ok(0);
        }
        let mut changed = 0usize;
        for kind in Kind::ALL.into_iter().filter(|k| k.has_phase_index()) {
            let mut cursor = None;
            loop {
                let page = self.scan(kind, PageRequest { limit: 100, cursor }).await?;
                for rec in page.items {
                    if rec.phase.is_none() && self.backfill_one(rec).await? {
                        changed += 1;
                    }
                }
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        let table = self.db.tables.objects.as_str();
        let action = || format!("UpdateItem the data format item in table {table}");
        self.db
            .request(action, || {
                self.db
                    .client
                    .update_item()
                    .table_name(table)
                    .key("pk", s(FORMAT_PK))
                    // An update, not a put: the item also records the shard count.
                    .update_expression("SET #f = :f")
                    .expression_attribute_names("#f", FORMAT_ATTR)
                    .expression_attribute_values(":f", n(DATA_FORMAT))
                    .send()
            })
            .await?;
        tracing::info!(table, changed, "dynamodb: phase index backfilled, data format {DATA_FORMAT} recorded");
        Ok(changed)
    }

    /// Sets the phase attributes of one item written without them, under its version (re-reading and
    /// trying again when it changed meanwhile). `false` when there was nothing to do.
    async fn backfill_one(&self, mut rec: Record) -> Result<bool> {
        const ATTEMPTS: u32 = 10;
        let table = self.db.tables.objects.as_str();
        for _ in 0..ATTEMPTS {
            let entry = match derive_phase(&rec) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(e) => {
                    tracing::warn!(kind = %rec.kind, id = %rec.id, error = %e, "dynamodb backfill: an unreadable object stays out of the phase index");
                    return Ok(false);
                }
            };
            let action = || format!("UpdateItem phase attributes of {} {} in table {table}", rec.kind, rec.id);
            let r = self
                .db
                .call(action, no_extra, || {
                    self.db
                        .client
                        .update_item()
                        .table_name(table)
                        .key("pk", s(format!("{}#{}", rec.kind, rec.id)))
                        .update_expression("SET ph = :ph, pt = :pt")
                        .condition_expression("v = :v AND attribute_not_exists(ph)")
                        .expression_attribute_values(":ph", s(partition(rec.kind, entry.phase, shard(&rec.id))))
                        .expression_attribute_values(":pt", s(sort_key(entry.at, &rec.id)))
                        .expression_attribute_values(":v", n(rec.version))
                        .send()
                })
                .await;
            match r {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                    // Changed meanwhile: by a writer that sets the attributes itself, deleted, or by
                    // an old writer (no attributes yet): look again.
                    match self.get(rec.kind, &rec.id).await? {
                        Some(now) if now.phase.is_none() => rec = now,
                        _ => return Ok(false),
                    }
                }
                Err(e) => return Err(DynamoError::from_sdk(action(), &e).into()),
            }
        }
        Err(Error::Conflict(format!(
            "backfill of the phase index: {} {} kept changing under {ATTEMPTS} attempts; run ensure_tables again",
            rec.kind, rec.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change would strand every entry written before it.
        assert_eq!(shard(""), 0x811c_9dc5 % PHASE_SHARDS);
        let mut counts = [0usize; PHASE_SHARDS as usize];
        for i in 0..8000 {
            counts[shard(&format!("agenda-{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn sort_keys_sort_by_time_then_id_and_decode_back() {
        let keys = [sort_key(i64::MIN, "z"), sort_key(-1, "a"), sort_key(0, "a"), sort_key(0, "ab"), sort_key(7, "")];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(millis_key(0) <= keys[2] && keys[3] < millis_key(1));
        let item = Item::from([
            (PHASE_ATTR.to_owned(), s(partition(Kind::AgendaProgress, Phase::Retryable, 3))),
            (PHASE_SORT_ATTR.to_owned(), s(sort_key(-42, "p#1"))),
        ]);
        assert_eq!(
            decode(Kind::AgendaProgress, "p#1", &item).unwrap(),
            Some(PhaseEntry { phase: Phase::Retryable, at: -42 })
        );
        assert!(decode(Kind::Agenda, "p#1", &item).is_err(), "another kind's attributes are corrupt");
    }

    #[test]
    fn cursors_round_trip_and_reject_others() {
        let pos: Vec<ShardPos> = (0..PHASE_SHARDS)
            .map(|i| match i % 3 {
                0 => ShardPos::Start,
                1 => ShardPos::After(sort_key(5, "x")),
                _ => ShardPos::Done,
            })
            .collect();
        let c = encode_cursor(Kind::AgendaProgress, Phase::Finished, &pos).unwrap();
        assert_eq!(decode_cursor(Kind::AgendaProgress, Phase::Finished, &c).unwrap(), pos);
        assert!(decode_cursor(Kind::AgendaProgress, Phase::Unfinished, &c).is_err());
        assert!(decode_cursor(Kind::AgendaProgress, Phase::Finished, "%%").is_err());
    }
}
