//! The table design as data, and `ensure_tables`: idempotent creation, waiting until ACTIVE.

use crate::client::{Db, TableNames, no_extra};
use crate::error::DynamoError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus,
};
use pop_core::store::{IndexField, Kind};
use pop_core::{Error, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAttrType {
    /// String (`S`).
    S,
    /// Number (`N`).
    N,
}

impl KeyAttrType {
    fn sdk(self) -> ScalarAttributeType {
        match self {
            KeyAttrType::S => ScalarAttributeType::S,
            KeyAttrType::N => ScalarAttributeType::N,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            KeyAttrType::S => "S",
            KeyAttrType::N => "N",
        }
    }
}

/// A key attribute: name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    /// The attribute name.
    pub name: &'static str,
    /// Its type.
    pub ty: KeyAttrType,
}

const fn key(name: &'static str, ty: KeyAttrType) -> KeyAttr {
    KeyAttr { name, ty }
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name.
    pub name: String,
    /// Partition key.
    pub hash: KeyAttr,
    /// Sort key.
    pub range: KeyAttr,
    /// `true`: projects every attribute (`ALL`); `false`: keys only (`KEYS_ONLY`).
    pub project_all: bool,
}

/// One table: keys and global secondary indexes. Every table is on-demand (`PAY_PER_REQUEST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The full table name (prefix included).
    pub name: String,
    /// Partition key.
    pub hash: KeyAttr,
    /// Sort key, if any.
    pub range: Option<KeyAttr>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexSpec>,
}

/// The fields some kind is indexed by: each gets a GSI on the objects table.
pub(crate) fn indexed_fields() -> Vec<IndexField> {
    let set: BTreeSet<IndexField> = Kind::ALL.iter().flat_map(|k| k.indexed_fields().iter().copied()).collect();
    set.into_iter().collect()
}

/// The attribute holding an indexed field's value (`<kind>#<value>`).
pub(crate) fn index_attr(field: IndexField) -> &'static str {
    match field {
        IndexField::CustomerId => "x_customerId",
        IndexField::LinkId => "x_linkId",
        IndexField::AgendaId => "x_agendaId",
        IndexField::AgendaProgressId => "x_agendaProgressId",
        IndexField::ResourcePoolId => "x_resourcePoolId",
        IndexField::InsightId => "x_insightId",
        IndexField::Title => "x_title",
    }
}

/// The GSI serving queries by an indexed field.
pub(crate) fn index_name(field: IndexField) -> String {
    format!("by_{}", field.as_str())
}

/// The objects table's by-kind index (keys only), for `scan`.
pub(crate) const BY_KIND: &str = "by_kind";
/// The objects table's phase index (keys only), for `query_phase`: partition `ph`, sort `pt`.
pub(crate) const BY_PHASE: &str = "by_phase";
/// The ready table's index of entries by insight, in ready order (keys only).
pub(crate) const BY_INSIGHT: &str = "by_insight";
/// The queue table's index of items by push order.
pub(crate) const BY_PUSH: &str = "by_push";
/// The queue table's sparse index of leased items by deadline.
pub(crate) const BY_DEADLINE: &str = "by_deadline";

/// POP's four tables for these names.
pub fn table_specs(names: &TableNames) -> Vec<TableSpec> {
    use KeyAttrType::{N, S};
    let mut object_indexes =
        vec![IndexSpec { name: BY_KIND.to_owned(), hash: key("kd", S), range: key("id", S), project_all: false }];
    object_indexes.extend(indexed_fields().into_iter().map(|f| IndexSpec {
        name: index_name(f),
        hash: key(index_attr(f), S),
        range: key("id", S),
        project_all: true,
    }));
    object_indexes.push(IndexSpec {
        name: BY_PHASE.to_owned(),
        hash: key(crate::phase::PHASE_ATTR, S),
        range: key(crate::phase::PHASE_SORT_ATTR, S),
        project_all: false,
    });
    vec![
        TableSpec { name: names.objects.clone(), hash: key("pk", S), range: None, indexes: object_indexes },
        TableSpec {
            name: names.ready.clone(),
            hash: key("a", S),
            range: None,
            indexes: vec![IndexSpec {
                name: BY_INSIGHT.to_owned(),
                hash: key("ri", S),
                range: key("ro", S),
                project_all: false,
            }],
        },
        TableSpec {
            name: names.queue.clone(),
            hash: key("q", S),
            range: Some(key("a", S)),
            indexes: vec![
                IndexSpec { name: BY_PUSH.to_owned(), hash: key("q", S), range: key("o", S), project_all: true },
                IndexSpec { name: BY_DEADLINE.to_owned(), hash: key("lq", S), range: key("dl", N), project_all: true },
            ],
        },
        TableSpec { name: names.leases.clone(), hash: key("n", S), range: None, indexes: vec![] },
    ]
}

impl TableSpec {
    fn attribute_definitions(&self, only_indexes: Option<&[&IndexSpec]>) -> Result<Vec<AttributeDefinition>> {
        let mut attrs: Vec<KeyAttr> = vec![self.hash];
        attrs.extend(self.range);
        match only_indexes {
            Some(ix) => ix.iter().for_each(|i| attrs.extend([i.hash, i.range])),
            None => self.indexes.iter().for_each(|i| attrs.extend([i.hash, i.range])),
        }
        let mut seen = BTreeSet::new();
        attrs
            .into_iter()
            .filter(|a| seen.insert(a.name))
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(a.name)
                    .attribute_type(a.ty.sdk())
                    .build()
                    .map_err(|e| build_error(&self.name, e))
            })
            .collect()
    }

    fn key_schema(&self) -> Result<Vec<KeySchemaElement>> {
        key_schema(&self.name, self.hash, self.range)
    }

    /// The AWS CLI command that creates this table, for operators who create tables themselves.
    pub fn aws_cli(&self) -> String {
        let mut attrs: Vec<KeyAttr> = vec![self.hash];
        attrs.extend(self.range);
        self.indexes.iter().for_each(|i| attrs.extend([i.hash, i.range]));
        let mut seen = BTreeSet::new();
        let defs: Vec<String> = attrs
            .into_iter()
            .filter(|a| seen.insert(a.name))
            .map(|a| format!("AttributeName={},AttributeType={}", a.name, a.ty.letter()))
            .collect();
        let mut cmd = format!(
            "aws dynamodb create-table --table-name {} --billing-mode PAY_PER_REQUEST \\\n  --attribute-definitions {} \\\n  --key-schema AttributeName={},KeyType=HASH",
            self.name,
            defs.join(" "),
            self.hash.name
        );
        if let Some(r) = self.range {
            let _ = write!(cmd, " AttributeName={},KeyType=RANGE", r.name);
        }
        if !self.indexes.is_empty() {
            let ix: Vec<String> = self
                .indexes
                .iter()
                .map(|i| {
                    format!(
                        r#"{{"IndexName":"{}","KeySchema":[{{"AttributeName":"{}","KeyType":"HASH"}},{{"AttributeName":"{}","KeyType":"RANGE"}}],"Projection":{{"ProjectionType":"{}"}}}}"#,
                        i.name,
                        i.hash.name,
                        i.range.name,
                        if i.project_all { "ALL" } else { "KEYS_ONLY" }
                    )
                })
                .collect();
            let _ = write!(cmd, " \\\n  --global-secondary-indexes '[{}]'", ix.join(","));
        }
        cmd
    }
}

fn key_schema(table: &str, hash: KeyAttr, range: Option<KeyAttr>) -> Result<Vec<KeySchemaElement>> {
    let mut out = vec![
        KeySchemaElement::builder()
            .attribute_name(hash.name)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| build_error(table, e))?,
    ];
    if let Some(r) = range {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(r.name)
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| build_error(table, e))?,
        );
    }
    Ok(out)
}

fn projection(i: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(if i.project_all { ProjectionType::All } else { ProjectionType::KeysOnly })
        .build()
}

fn build_error(table: &str, e: impl std::fmt::Display) -> Error {
    DynamoError::other(format!("build the definition of table {table}"), e.to_string()).into()
}

impl Db {
    /// Creates missing tables and indexes, then waits until all are ACTIVE.
    pub(crate) async fn ensure_tables(&self) -> Result<()> {
        for spec in table_specs(&self.tables) {
            self.ensure_table(&spec).await?;
        }
        Ok(())
    }

    async fn ensure_table(&self, spec: &TableSpec) -> Result<()> {
        let started = Instant::now();
        loop {
            let described = self
                .call(
                    || format!("DescribeTable {}", spec.name),
                    no_extra,
                    || self.client.describe_table().table_name(&spec.name).send(),
                )
                .await;
            let table = match described {
                Ok(out) => out.table,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
                Err(e) => return Err(DynamoError::from_sdk(format!("DescribeTable {}", spec.name), &e).into()),
            };
            let Some(table) = table else {
                self.create_table(spec).await?;
                continue;
            };
            check_keys(spec, &table)?;
            let existing: Vec<&aws_sdk_dynamodb::types::GlobalSecondaryIndexDescription> =
                table.global_secondary_indexes().iter().collect();
            let missing: Vec<&IndexSpec> = spec
                .indexes
                .iter()
                .filter(|i| !existing.iter().any(|e| e.index_name() == Some(i.name.as_str())))
                .collect();
            let table_active = table.table_status() == Some(&TableStatus::Active);
            let indexes_active = existing.iter().all(|e| e.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                match missing.first() {
                    // DynamoDB builds one new index per UpdateTable; add them one by one.
                    Some(index) => self.add_index(spec, index).await?,
                    None => return Ok(()),
                }
            }
            if started.elapsed() > self.cfg.table_wait {
                return Err(DynamoError::other(
                    format!("ensure table {}", spec.name),
                    format!(
                        "not ACTIVE with all its indexes after {:?} (table {:?}, indexes missing: {:?})",
                        self.cfg.table_wait,
                        table.table_status(),
                        missing.iter().map(|i| &i.name).collect::<Vec<_>>()
                    ),
                )
                .into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(if table_active { 500 } else { 200 })).await;
        }
    }

    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        let mut indexes = Vec::new();
        for i in &spec.indexes {
            indexes.push(
                GlobalSecondaryIndex::builder()
                    .index_name(&i.name)
                    .set_key_schema(Some(key_schema(&spec.name, i.hash, Some(i.range))?))
                    .projection(projection(i))
                    .build()
                    .map_err(|e| build_error(&spec.name, e))?,
            );
        }
        let defs = spec.attribute_definitions(None)?;
        let schema = spec.key_schema()?;
        tracing::info!(table = %spec.name, "dynamodb: creating table");
        let created = self
            .call(
                || format!("CreateTable {}", spec.name),
                no_extra,
                || {
                    self.client
                        .create_table()
                        .table_name(&spec.name)
                        .billing_mode(BillingMode::PayPerRequest)
                        .set_attribute_definitions(Some(defs.clone()))
                        .set_key_schema(Some(schema.clone()))
                        .set_global_secondary_indexes((!indexes.is_empty()).then(|| indexes.clone()))
                        .send()
                },
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it meanwhile: fine, the caller describes it again.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(DynamoError::from_sdk(format!("CreateTable {}", spec.name), &e).into()),
        }
    }

    async fn add_index(&self, spec: &TableSpec, index: &IndexSpec) -> Result<()> {
        let action = CreateGlobalSecondaryIndexAction::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&spec.name, index.hash, Some(index.range))?))
            .projection(projection(index))
            .build()
            .map_err(|e| build_error(&spec.name, e))?;
        let defs = spec.attribute_definitions(Some(&[index]))?;
        tracing::info!(table = %spec.name, index = %index.name, "dynamodb: adding index");
        let updated = self
            .call(
                || format!("UpdateTable {} (add index {})", spec.name, index.name),
                no_extra,
                || {
                    self.client
                        .update_table()
                        .table_name(&spec.name)
                        .set_attribute_definitions(Some(defs.clone()))
                        .global_secondary_index_updates(
                            GlobalSecondaryIndexUpdate::builder().create(action.clone()).build(),
                        )
                        .send()
                },
            )
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => Ok(()),
            Err(e) => {
                Err(DynamoError::from_sdk(format!("UpdateTable {} (add index {})", spec.name, index.name), &e).into())
            }
        }
    }
}

/// A table that exists with other keys than POP's cannot be used: say which.
fn check_keys(spec: &TableSpec, table: &aws_sdk_dynamodb::types::TableDescription) -> Result<()> {
    let found: Vec<(String, String)> =
        table.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned())).collect();
    let mut wanted = vec![(spec.hash.name.to_owned(), "HASH".to_owned())];
    if let Some(r) = spec.range {
        wanted.push((r.name.to_owned(), "RANGE".to_owned()));
    }
    let mut sorted_found = found.clone();
    sorted_found.sort();
    wanted.sort();
    if sorted_found != wanted {
        return Err(Error::Unsupported(format!(
            "dynamodb table {} exists with key schema {found:?}, but POP needs {wanted:?}; \
             use another table_prefix or recreate the table",
            spec.name
        )));
    }
    Ok(())
}
