//! `Query` with DynamoDB's 1 MB pages folded into POP's pages.

use crate::client::Db;
use crate::codec::Item;
use crate::error::DynamoError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use pop_core::Result;
use std::collections::HashMap;

/// One `Query` description.
pub(crate) struct QuerySpec<'a> {
    pub(crate) table: &'a str,
    pub(crate) index: Option<&'a str>,
    pub(crate) key_condition: &'a str,
    pub(crate) filter: Option<&'a str>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
    /// For messages: what is listed.
    pub(crate) what: String,
}

impl<'a> QuerySpec<'a> {
    /// One `Query` per shard: `attr = <partition>` on `table` (through `index`) for each of
    /// `partitions`, described as `what, shard i`.
    pub(crate) fn per_shard(
        table: &'a str,
        index: Option<&'a str>,
        attr: &str,
        partitions: &[String],
        what: &str,
    ) -> Vec<Self> {
        partitions
            .iter()
            .enumerate()
            .map(|(i, p)| QuerySpec {
                table,
                index,
                key_condition: "#k = :k",
                filter: None,
                names: HashMap::from([("#k".to_owned(), attr.to_owned())]),
                values: HashMap::from([(":k".to_owned(), AttributeValue::S(p.clone()))]),
                what: format!("{what}, shard {i}"),
            })
            .collect()
    }
}

impl Db {
    /// Up to `want` items of a query from `start`, following `LastEvaluatedKey` across DynamoDB's
    /// 1 MB pages. Returns the items and the key to continue from, if DynamoDB has more.
    pub(crate) async fn query_items(
        &self,
        spec: &QuerySpec<'_>,
        mut start: Option<Item>,
        want: usize,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut out: Vec<Item> = Vec::new();
        loop {
            let remaining = want.saturating_sub(out.len()).clamp(1, i32::MAX as usize) as i32;
            let res = self
                .request(
                    || format!("Query {} in table {}", spec.what, spec.table),
                    || self.query(spec, start.clone()).limit(remaining).send(),
                )
                .await?;
            let lek = res.last_evaluated_key.filter(|k| !k.is_empty());
            out.extend(res.items.unwrap_or_default());
            match lek {
                Some(k) if out.len() < want => start = Some(k),
                other => return Ok((out, other)),
            }
        }
    }

    /// The request for one page of `spec` from `start`.
    fn query(
        &self,
        spec: &QuerySpec<'_>,
        start: Option<Item>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(spec.table)
            .set_index_name(spec.index.map(str::to_owned))
            .key_condition_expression(spec.key_condition)
            .set_filter_expression(spec.filter.map(str::to_owned))
            .set_expression_attribute_names((!spec.names.is_empty()).then(|| spec.names.clone()))
            .set_expression_attribute_values(Some(spec.values.clone()))
            .set_exclusive_start_key(start)
            // Base-table reads are strongly consistent; GSIs only offer eventual.
            .consistent_read(spec.index.is_none())
    }

    /// Counts the items of a query (all pages).
    pub(crate) async fn query_count(&self, spec: &QuerySpec<'_>) -> Result<usize> {
        let mut start: Option<Item> = None;
        let mut total = 0usize;
        loop {
            let res = self
                .request(
                    || format!("Query (count) {} in table {}", spec.what, spec.table),
                    || self.query(spec, start.clone()).select(aws_sdk_dynamodb::types::Select::Count).send(),
                )
                .await?;
            total += usize::try_from(res.count).unwrap_or(0);
            match res.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => return Ok(total),
            }
        }
    }
}

impl Db {
    /// Consistent reads of `keys` of `table` (any number: 100 per `BatchGetItem`, unprocessed keys
    /// retried with backoff up to `max_attempts`). Missing items are left out; the order is not kept.
    pub(crate) async fn batch_get(&self, table: &str, keys: Vec<Item>, what: &str) -> Result<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        let action = || format!("BatchGetItem {what} in table {table}");
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| DynamoError::other(action(), e.to_string()))?,
            );
            let mut rounds = 0u32;
            while let Some(ka) = pending.take() {
                rounds += 1;
                let res = self
                    .request(action, || self.client.batch_get_item().request_items(table, ka.clone()).send())
                    .await?;
                out.extend(res.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
                pending = res.unprocessed_keys.and_then(|mut u| u.remove(table)).filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    if rounds >= self.cfg.max_attempts {
                        return Err(DynamoError::other(
                            action(),
                            format!("keys still unprocessed after {rounds} attempts (throttled)"),
                        )
                        .into());
                    }
                    tokio::time::sleep(self.backoff(rounds)).await;
                }
            }
        }
        Ok(out)
    }
}
