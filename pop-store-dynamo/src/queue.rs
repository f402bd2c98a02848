//! [`DynamoQueue`]: POP's [`QueueBackend`] on the `queue` table.

use crate::client::{Db, no_extra};
use crate::codec::{At, Item, get_n, get_ready, get_s, millis_key, n, opt_s, ready_json, s};
use crate::error::{BACKEND, DynamoError};
use crate::paging::QuerySpec;
use crate::shard::Pos;
use crate::tables::{BY_DEADLINE, BY_PUSH};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures_util::future::join_all;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::queue::{Lease, LeaseToken, QueueBackend};
use pop_core::{Error, Problem, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// POP's [`QueueBackend`] on DynamoDB. Cheap to clone; see the crate docs for the table design.
#[derive(Debug, Clone)]
pub struct DynamoQueue {
    pub(crate) db: Arc<Db>,
}

/// A process-wide push sequence that also roughly follows wall time across processes, so that items
/// pushed with the same `now` keep their push order.
fn push_seq() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// The key of an agenda's item: its shard of the insight's queue, and the agenda id.
fn key(shard_key: &str, agenda_id: &str) -> Item {
    HashMap::from([("q".to_owned(), s(shard_key)), ("a".to_owned(), s(agenda_id))])
}

fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn deadline(now: Millis, ttl_ms: u64) -> Millis {
    now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

fn not_current(token: &LeaseToken, what: &str) -> Error {
    Error::Conflict(format!(
        "{what}: the lease of agenda {} in insight {}'s queue (epoch {}) is no longer current: the item was \
         delivered again, acked, released or removed",
        token.agenda_id, token.insight_id, token.epoch
    ))
}

impl DynamoQueue {
    /// A conditional `UpdateItem` of an item whose lease `token` still holds (same receipt and epoch);
    /// `update` may use `:t`, bound to `value`. A lease that moved on is `Conflict`.
    async fn update_held(&self, token: &LeaseToken, verb: &str, update: &str, value: AttributeValue) -> Result<()> {
        let q = self.shard_key(&token.insight_id, &token.agenda_id).await?;
        let table = self.table();
        let action = || format!("UpdateItem {verb} lease of agenda {} in table {table}", token.agenda_id);
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key(&q, &token.agenda_id)))
                    .update_expression(update)
                    .condition_expression("r = :r AND ep = :ep")
                    .set_expression_attribute_values(Some(values([
                        (":t", value.clone()),
                        (":r", s(&token.receipt)),
                        (":ep", n(token.epoch)),
                    ])))
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Err(not_current(token, verb))
            }
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }

    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    fn table(&self) -> &str {
        &self.db.tables.queue
    }

    /// The partition of an agenda's item: `<insight>#<shard>`.
    async fn shard_key(&self, insight_id: &str, agenda_id: &str) -> Result<String> {
        Ok(crate::shard::key_of(insight_id, agenda_id, self.db.shards().await?))
    }

    /// One partition value per shard of an insight's queue.
    async fn shard_keys(&self, insight_id: &str) -> Result<Vec<String>> {
        Ok((0..self.db.shards().await?).map(|i| crate::shard::key(insight_id, i)).collect())
    }

    /// A query of every shard of an insight's queue (`key_condition` on `:q`, plus `values`).
    async fn per_shard<'a>(
        &'a self,
        insight_id: &str,
        index: Option<&'a str>,
        key_condition: &'a str,
        filter: Option<&'a str>,
        values: &[(&str, AttributeValue)],
        what: &str,
    ) -> Result<Vec<QuerySpec<'a>>> {
        Ok(self
            .shard_keys(insight_id)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                let mut v: HashMap<String, AttributeValue> =
                    values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
                v.insert(":q".to_owned(), s(q));
                QuerySpec {
                    table: self.table(),
                    index,
                    key_condition,
                    filter,
                    names: HashMap::new(),
                    values: v,
                    what: format!("{what} of insight {insight_id}'s queue, shard {i}"),
                }
            })
            .collect())
    }

    /// Sums a count query over the shards (in parallel).
    async fn count_shards(&self, specs: &[QuerySpec<'_>]) -> Result<usize> {
        let counts = futures_util::future::try_join_all(specs.iter().map(|s| self.db.query_count(s))).await?;
        Ok(counts.into_iter().sum())
    }

    pub(crate) fn lease_from(item: &Item) -> Result<Lease> {
        // An item without a usable agenda id still names itself in the error.
        let agenda = opt_s(item, "a").filter(|a| !a.is_empty()).unwrap_or("(no agenda id)");
        let at = At { kind: "queueItem", id: agenda };
        Ok(Lease {
            token: LeaseToken {
                insight_id: get_s(item, "i", at)?.to_owned(),
                agenda_id: get_s(item, "a", at)?.to_owned(),
                receipt: get_s(item, "r", at)?.to_owned(),
                epoch: get_n(item, "ep", at)?,
            },
            item: get_ready(item, at)?,
            deadline: get_n(item, "dl", at)?,
        })
    }

    /// Leases one candidate seen by a query; `None` if another receiver was faster.
    async fn lease_one(&self, candidate: &Item, ttl_ms: u64, now: Millis) -> Result<Option<Lease>> {
        let agenda = opt_s(candidate, "a").unwrap_or("?").to_owned();
        let at = At { kind: "queueItem", id: &agenda };
        let q = get_s(candidate, "q", at)?.to_owned();
        let insight = get_s(candidate, "i", at)?.to_owned();
        let seen_epoch: u64 = get_n(candidate, "ep", at)?;
        let receipt = uuid::Uuid::new_v4().to_string();
        let table = self.table();
        let action = || format!("UpdateItem lease agenda {agenda} of insight {insight} in table {table}");
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key(&q, &agenda)))
                    .update_expression("SET ep = :ne, r = :r, dl = :dl, lq = :q")
                    .condition_expression("ep = :ep AND (attribute_not_exists(lq) OR dl <= :now)")
                    .set_expression_attribute_values(Some(values([
                        (":ne", n(seen_epoch + 1)),
                        (":ep", n(seen_epoch)),
                        (":r", s(&receipt)),
                        (":dl", n(deadline(now, ttl_ms))),
                        (":q", s(&q)),
                        (":now", n(now)),
                    ])))
                    .return_values(ReturnValue::AllNew)
                    .send()
            })
            .await;
        match r {
            Ok(out) => match out.attributes {
                Some(item) => Self::lease_from(&item).map(Some),
                None => Err(DynamoError::other(action(), "UpdateItem returned no attributes").into()),
            },
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => Ok(None),
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }
}

#[async_trait::async_trait]
impl QueueBackend for DynamoQueue {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn push_many(&self, insight_id: &str, items: Vec<ReadyAgenda>, now: Millis) -> Result<Vec<bool>> {
        // Concurrent conditional puts; a duplicate agenda later in the batch is reported as not pushed
        // without a request.
        let mut seen = std::collections::HashSet::new();
        let first: Vec<bool> = items.iter().map(|i| seen.insert(i.agenda_id.clone())).collect();
        let pushes =
            items.into_iter().zip(&first).filter(|(_, f)| **f).map(|(item, _)| self.push(insight_id, item, now));
        let mut results = futures_util::future::join_all(pushes).await.into_iter();
        first.into_iter().map(|f| if f { results.next().unwrap_or(Ok(false)) } else { Ok(false) }).collect()
    }

    async fn push(&self, insight_id: &str, item: ReadyAgenda, now: Millis) -> Result<bool> {
        if item.agenda_id.is_empty() || insight_id.is_empty() {
            return Err(Error::problems(vec![
                Problem::new(format!(
                    "queue push needs an insight id and an agenda id (got insight {insight_id:?}, agenda {:?})",
                    item.agenda_id
                ))
                .field(if insight_id.is_empty() { "insightId" } else { "agendaId" }),
            ]));
        }
        let q = self.shard_key(insight_id, &item.agenda_id).await?;
        let order = format!("{}{:016x}", millis_key(now), push_seq());
        let record: Item = HashMap::from([
            ("q".to_owned(), s(&q)),
            ("i".to_owned(), s(insight_id)),
            ("a".to_owned(), s(&item.agenda_id)),
            ("o".to_owned(), s(order)),
            ("ep".to_owned(), n(0)),
            ("dl".to_owned(), n(now)),
            ("pt".to_owned(), n(now)),
            ("b".to_owned(), s(ready_json(&item)?)),
        ]);
        let table = self.table();
        let action = || format!("PutItem agenda {} in insight {insight_id}'s queue (table {table})", item.agenda_id);
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(record.clone()))
                    .condition_expression("attribute_not_exists(a)")
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }

    async fn receive(&self, insight_id: &str, max: usize, ttl_ms: u64, now: Millis) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let specs = self
            .per_shard(
                insight_id,
                Some(BY_PUSH),
                "q = :q",
                Some("attribute_not_exists(lq) OR dl <= :now"),
                &[(":now", n(now))],
                "visible items",
            )
            .await?;
        let mut pos = vec![Pos::Start; specs.len()];
        // Candidates beyond `max` absorb losses to concurrent receivers without another query.
        let want = max.saturating_mul(2).clamp(4, 1000);
        loop {
            // Every shard's oldest visible items, merged by push order.
            let candidates = self.db.merged_page(&specs, &mut pos, want, "o", &["q", "a", "o"]).await?;
            let mut pending = candidates.as_slice();
            while !pending.is_empty() && out.len() < max {
                let take = (max - out.len()).min(pending.len());
                let (now_batch, rest) = pending.split_at(take);
                pending = rest;
                for r in join_all(now_batch.iter().map(|c| self.lease_one(c, ttl_ms, now))).await {
                    if let Some(lease) = r? {
                        out.push(lease);
                    }
                }
            }
            if out.len() >= max || candidates.is_empty() || pos.iter().all(|p| *p == Pos::Done) {
                break;
            }
        }
        // `join_all` keeps input order: the leases are in push order.
        Ok(out)
    }

    async fn extend(&self, token: &LeaseToken, ttl_ms: u64, now: Millis) -> Result<Millis> {
        let dl = deadline(now, ttl_ms);
        self.update_held(token, "extend", "SET dl = :t", n(dl)).await?;
        Ok(dl)
    }

    async fn ack(&self, token: &LeaseToken) -> Result<()> {
        let q = self.shard_key(&token.insight_id, &token.agenda_id).await?;
        let table = self.table();
        let action = || format!("DeleteItem ack agenda {} in table {table}", token.agenda_id);
        let r = self
            .db
            .call(action, no_extra, || {
                self.db
                    .client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key(&q, &token.agenda_id)))
                    .condition_expression("r = :r AND ep = :ep")
                    .set_expression_attribute_values(Some(values([(":r", s(&token.receipt)), (":ep", n(token.epoch))])))
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Err(not_current(token, "ack"))
            }
            Err(e) => Err(DynamoError::from_sdk(action(), &e).into()),
        }
    }

    async fn release(&self, token: &LeaseToken, now: Millis) -> Result<()> {
        self.update_held(token, "release", "SET dl = :t REMOVE lq, r", n(now)).await
    }

    async fn len(&self, insight_id: &str) -> Result<usize> {
        let specs = self.per_shard(insight_id, None, "q = :q", None, &[], "items").await?;
        self.count_shards(&specs).await
    }

    async fn waiting(&self, insight_id: &str, now: Millis) -> Result<usize> {
        // One count per shard (the trait's default, len − leased, would send two).
        let specs = self
            .per_shard(
                insight_id,
                None,
                "q = :q",
                Some("attribute_not_exists(lq) OR dl <= :now"),
                &[(":now", n(now))],
                "waiting items",
            )
            .await?;
        self.count_shards(&specs).await
    }

    async fn count_by_customer(&self, insight_id: &str) -> Result<std::collections::BTreeMap<String, usize>> {
        let specs = self.per_shard(insight_id, None, "q = :q", None, &[], "items by customer").await?;
        let shards =
            futures_util::future::try_join_all(specs.iter().map(|s| self.db.query_items(s, None, usize::MAX))).await?;
        let mut out = std::collections::BTreeMap::new();
        for item in shards.iter().flat_map(|(items, _)| items) {
            let at = At { kind: "queueItem", id: opt_s(item, "a").unwrap_or("?") };
            *out.entry(get_ready(item, at)?.customer_id).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn leased(&self, insight_id: &str, now: Millis) -> Result<usize> {
        let specs = self
            .per_shard(insight_id, Some(BY_DEADLINE), "lq = :q AND dl > :now", None, &[(":now", n(now))], "live leases")
            .await?;
        self.count_shards(&specs).await
    }

    async fn expired(&self, insight_id: &str, now: Millis, limit: usize) -> Result<Vec<Lease>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let specs = self
            .per_shard(
                insight_id,
                Some(BY_DEADLINE),
                "lq = :q AND dl <= :now",
                None,
                &[(":now", n(now))],
                "expired leases",
            )
            .await?;
        let shards =
            futures_util::future::try_join_all(specs.iter().map(|s| self.db.query_items(s, None, limit))).await?;
        let mut leases = shards
            .iter()
            .flat_map(|(items, _)| items)
            .filter(|i| opt_s(i, "r").is_some())
            .map(Self::lease_from)
            .collect::<Result<Vec<_>>>()?;
        // Each shard's are by deadline; the earliest `limit` of all of them.
        leases.sort_by(|a, b| (a.deadline, &a.token.agenda_id).cmp(&(b.deadline, &b.token.agenda_id)));
        leases.truncate(limit);
        Ok(leases)
    }

    async fn contains(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        let q = self.shard_key(insight_id, agenda_id).await?;
        let table = self.table();
        let action = || format!("GetItem agenda {agenda_id} in insight {insight_id}'s queue (table {table})");
        let res = self
            .db
            .request(action, || {
                self.db
                    .client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(key(&q, agenda_id)))
                    .consistent_read(true)
                    .projection_expression("a")
                    .send()
            })
            .await?;
        Ok(res.item.is_some_and(|i| !i.is_empty()))
    }

    async fn remove(&self, insight_id: &str, agenda_id: &str) -> Result<bool> {
        let q = self.shard_key(insight_id, agenda_id).await?;
        let table = self.table();
        let action = || format!("DeleteItem agenda {agenda_id} from insight {insight_id}'s queue (table {table})");
        let res = self
            .db
            .request(action, || {
                self.db
                    .client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key(&q, agenda_id)))
                    .return_values(ReturnValue::AllOld)
                    .send()
            })
            .await?;
        Ok(res.attributes.is_some_and(|a| !a.is_empty()))
    }
}
