//! # pop-store-dynamo: POP's state and queues on DynamoDB
//!
//! [`DynamoStore`] implements [`pop_core::store::Store`] and [`DynamoQueue`] implements
//! [`pop_core::queue::QueueBackend`] on four DynamoDB tables, so that several POP instances and pool
//! workers on different machines share one state. Every hot-path read is a `GetItem` or a `Query`;
//! only [`Store::scan`](pop_core::store::Store::scan) (administration, reapers) lists a whole kind,
//! and it does so through a keys-only index, not a `Scan`.
//!
//! ```no_run
//! use pop_core::store::{Kind, Store};
//! use pop_store_dynamo::{DynamoBackend, DynamoConfig};
//!
//! # async fn demo() -> pop_core::Result<()> {
//! let backend = DynamoBackend::connect(DynamoConfig::local("http://127.0.0.1:8000")).await?;
//! backend.ensure_tables().await?; // idempotent; or create the tables yourself (below)
//! let store = backend.store();
//! let _queue = backend.queue();
//! assert!(store.get(Kind::Agenda, "a-17").await?.is_none());
//! println!("{} DynamoDB requests so far", backend.request_counts().total);
//! # Ok(()) }
//! ```
//!
//! ## Capabilities
//!
//! | `Store` / `QueueBackend` operation | DynamoDB requests |
//! |---|---|
//! | `get` | 1 `GetItem` (consistent) |
//! | `write` of one create / update / delete | 1 conditional `PutItem` / `DeleteItem` |
//! | `write` of one ready insert / removal | 1 `PutItem` / `DeleteItem` |
//! | `write` of several operations | 1 `TransactWriteItems` |
//! | `query` by indexed field | 1 `Query` on the field's GSI per 1 MB; for the shared fields (`customerId`, `linkId`, `title`) 1 per shard (S = [`DynamoConfig::shards`], in parallel) |
//! | `scan` of a kind | 1 `Query` per shard on `by_kind` + 1 `BatchGetItem` per 100 objects |
//! | `query_phase` (recovery by index) | 1 `Query` per shard of `by_phase` ([`PHASE_SHARDS`], in parallel) + 1 `BatchGetItem` per 100 listed |
//! | `ready_get` | 1 `GetItem` |
//! | `ready_list` | 1 `Query` per shard on `by_insight` (in parallel) + 1 `BatchGetItem` per 100 entries |
//! | `lease_acquire` / `lease_release` | 1 conditional `PutItem` / `DeleteItem` |
//! | queue `push` | 1 conditional `PutItem` |
//! | queue `receive(n)` | 1 `Query` per shard on `by_push` (in parallel) + n conditional `UpdateItem` (in parallel) |
//! | queue `extend` / `ack` / `release` | 1 conditional `UpdateItem` / `DeleteItem` / `UpdateItem` |
//! | queue `expired` | 1 `Query` per shard on `by_deadline` |
//! | queue `len` / `waiting` / `leased` | 1 `Query` (`Select=COUNT`) per shard per 1 MB |
//! | queue `contains` / `remove` | 1 `GetItem` / `DeleteItem` |
//!
//! [`DynamoBackend::request_counts`] counts every request sent (retries included), per action.
//!
//! ## Table design
//!
//! Four tables, named `<prefix>objects`, `<prefix>ready`, `<prefix>queue`, `<prefix>leases` (prefix
//! `pop_` by default, [`DynamoConfig::table_prefix`]). All are on-demand (`PAY_PER_REQUEST`). Every
//! key attribute is a string (`S`) except `dl` (`N`). [`DynamoBackend::ensure_tables`] creates them;
//! [`TableSpec::aws_cli`] prints the equivalent `aws dynamodb create-table` commands.
//!
//! ### `<prefix>objects`: every stored object
//!
//! | attribute | meaning |
//! |---|---|
//! | `pk` (partition key) | `<kind>#<id>`, e.g. `agenda#a-17` |
//! | `kd`, `id` | `<kind>#<shard>` (`agenda#3`; see [Hot keys](#hot-keys-and-shards)) and the id |
//! | `sh` (N) | the shard count the item was written with (absent on items of an unsharded build) |
//! | `v` (N) | the version: 1 on create, +1 per update; CAS is `ConditionExpression: v = :expected` |
//! | `b` (B) | the object's JSON |
//! | `x_<field>` | `<kind>#<value>` for each indexed field the object has (`x_agendaId`, `x_agendaProgressId`, `x_resourcePoolId`, `x_insightId`); `<kind>#<value>#<shard>` for the fields many objects share (`x_customerId`, `x_linkId`, `x_title`) |
//! | `ph`, `pt` | the phase entry of an agenda progress: `<kind>#<phase>#<shard>` (`agendaProgress#finished#5`) and `<16 hex: time, sign bit flipped>#<id>` |
//!
//! Global secondary indexes:
//!
//! * `by_<field>` for each of those fields: partition `x_<field>`, sort `id`, projection `ALL`.
//!   `query(kind, field, value)` is one `Query` on `x_<field> = <kind>#<value>`, ids ascending (for a
//!   shared field, one per shard `<kind>#<value>#<s>`, merged by id). The
//!   kind in the value keeps kinds apart in a shared index; `ALL` costs index writes on updates but
//!   answers a query in one request.
//! * `by_kind`: partition `kd`, sort `id`, projection `KEYS_ONLY`, for `scan`. Keys-only means updates
//!   (which change neither `kd` nor `id`) never write to it; only creates and deletes do.
//! * `by_phase`: partition `ph`, sort `pt`, projection `KEYS_ONLY`: the phase index
//!   ([`Store::query_phase`](pop_core::store::Store::query_phase)) that the recovery processes read
//!   instead of every agenda (unfinished agendas by added time, retryable and finished ones by
//!   completion time). `query_phase(kind, phase, from..before)` queries each shard with
//!   `ph = :p AND pt BETWEEN hex(from) AND hex(before)` and merges the shards by `pt`, so pages come
//!   in (time, id) order; the cursor holds each shard's position. An agenda writes this index when
//!   submitted, when it completes (a move: delete + put) and when deleted; starting and heartbeats
//!   keep `ph`/`pt`, so (keys only) they cost it nothing. **Hot partitions**: one partition key value
//!   takes about 1,000 writes/s, and a GSI that falls behind throttles the table, so each phase is
//!   spread over [`PHASE_SHARDS`] (8) values by a hash of the id: about 4,000 completions per second
//!   before a phase partition throttles, against 500 unsharded. Reads pay one small `Query` per shard
//!   (eight per page, in parallel, and a page may read up to 8 × its limit index keys to merge them —
//!   keys only, a few bytes each); listed items are read once, consistently, and kept only if still
//!   in the listed phase at the listed time (the index lags on AWS).
//!
//! Why one table for all kinds: an atomic batch (an agenda, its progress objects and its ready entry)
//! is one `TransactWriteItems` over two tables at most, and there is one set of indexes to operate.
//!
//! ### `<prefix>ready`: the ready sets
//!
//! | attribute | meaning |
//! |---|---|
//! | `a` (partition key) | the agenda id: one entry per agenda, so `ready_get` is one `GetItem`, a ready insert one `PutItem` that replaces the agenda's entry wherever it was, a removal one `DeleteItem` |
//! | `ri` | `<insight id>#<shard>` |
//! | `ro` | `hex(customer id)#<8 hex: i32::MAX − priority>#<16 hex: added, sign bit flipped>#<agenda id>` |
//! | `b` | the `ReadyAgenda` JSON |
//!
//! Index `by_insight`: partition `ri`, sort `ro`, `KEYS_ONLY`. `ro` sorts an insight's entries exactly
//! as `ready_list` must — customer id, priority descending, added ascending, agenda id (the customer
//! id is hex-encoded so that an id that is a prefix of another cannot break the order). `ready_list`
//! is one `Query` per shard on it, merged by `ro` (so the order is the insight's, across shards; the
//! cursor keeps each shard's position), and one consistent `BatchGetItem` of the listed entries, keeping only those
//! still at the listed place: an index that lags (AWS updates GSIs asynchronously) can make a new
//! entry show up late, but never hands out a removed or moved one. Every ready change is one item, so
//! a batch of [`MAX_TRANSACTION_ITEMS`] operations of any kind fits one transaction.
//!
//! ### `<prefix>queue`: queue items
//!
//! | attribute | meaning |
//! |---|---|
//! | `q` (partition key), `a` (sort key) | `<insight id>#<shard>`, agenda id: `push` is a `PutItem` with `attribute_not_exists(a)`, which is the dedup by agenda id (an agenda always hashes to the same shard) |
//! | `i` | the insight id |
//! | `o` | push order: `<16 hex: now>` then a process sequence that follows wall time |
//! | `ep` (N), `r`, `dl` (N) | the delivery epoch, the current delivery's receipt, its deadline |
//! | `lq` | `q` while the item is leased (absent when visible) |
//! | `b`, `pt` | the `ReadyAgenda` JSON, the push time |
//!
//! Indexes: `by_push` (partition `q`, sort `o`, `ALL`) lists a shard's items in push order —
//! `receive` queries every shard, merges them by `o` (oldest push first across shards), with the filter `attribute_not_exists(lq) OR dl <= :now` and leases each
//! candidate with `UpdateItem SET ep = :ep + 1, r = :new_receipt, dl = :deadline, lq = :q` under
//! `ep = :seen AND (attribute_not_exists(lq) OR dl <= :now)`, so two receivers never both win.
//! `by_deadline` (partition `lq`, sort `dl`, `ALL`) is sparse — only leased items have `lq` — and
//! `expired` is one `Query` per shard on `lq = :q AND dl <= :now`, the earliest deadlines kept. `ack`, `extend` and `release` are conditional
//! on `r = :receipt AND ep = :epoch`: a lease that was delivered again fails with `Conflict`.
//!
//! ### `<prefix>leases`: named leases
//!
//! Partition key `n` (the lease name); `h` holder, `e` (N) expiry. `lease_acquire` is a `PutItem` under
//! `attribute_not_exists(n) OR h = :holder OR e <= :now`; `lease_release` a `DeleteItem` under
//! `h = :holder`.
//!
//! ### Hot keys and shards
//!
//! DynamoDB serves about 1,000 writes/s (and 3,000 reads/s) per partition key value, and a GSI that
//! falls behind throttles its table. Every key value that all agendas of one insight (or of one
//! customer, link or title) write is therefore spread over [`DynamoConfig::shards`] values (S,
//! default [`DEFAULT_SHARDS`] = 8) by shard = FNV-1a(id) mod S, the id being the agenda's (queue,
//! ready set) or the object's (objects): the queue partition `q` and its `by_push` / `by_deadline`
//! partitions (3 writes per agenda: push, lease, ack, plus one per lease extension), the ready
//! index `ri` (2: insert, removal), `by_kind` (`kd`: one per create and delete) and the
//! `by_customerId`, `by_linkId` and `by_title` partitions (every write of an agenda, its agenda
//! progress and operation progresses). With S shards one insight's cap rises from ≈ 330 agendas/s
//! (the queue partition) to ≈ S × 330. Choose S ≈ (one insight's agendas/s × 3) ÷ 800, at least 1:
//! reads that see a whole insight (`receive`, queue counts, `ready_list`, queries by a shared field,
//! `scan`) send one `Query` per shard, in parallel. The scheduler lease (`scheduler/<insight>`, leases
//! table) and the scheduler state (objects `insightSchedule#<insight>`) are written per scheduling
//! pass (at most one state write per pass, one lease renewal per half lease), not per agenda, and
//! stay single items; `by_phase` has its own fixed [`PHASE_SHARDS`].
//!
//! S is fixed for the tables' life: the first process to use them records it (attribute `qs` of
//! item `pk = _pop#format` in the objects table), and every process checks it before its first
//! queue or store write (one `GetItem`); a different configured count fails with
//! [`pop_core::Error::Unsupported`] naming both. To change it, re-create the tables (or use another
//! prefix).
//!
//! ### Upgrading tables of an unsharded build
//!
//! Tables written before sharding record no shard count. The first [`DynamoBackend::ensure_tables`]
//! (or first use) of this build reads all four tables once (`Scan`) and moves their data to the
//! sharded keys: object items get `kd`, the shared index values and `sh` (an `UpdateItem` under
//! their version), ready entries their sharded `ri`, queue items a new key `q = <insight>#<shard>`
//! (a transaction: put under the new key with lease, epoch and push order, delete the old one if
//! its epoch is unchanged); then the count is recorded. **Stop every process of the earlier build
//! first**: what it writes afterwards is not seen by this one. Or re-create the tables.
//!
//! ### Upgrading tables of an earlier build (phase index)
//!
//! Tables made before the phase index lack `by_phase`, and their agenda progress items lack `ph`/`pt`.
//! [`DynamoBackend::ensure_tables`] adds the index (`UpdateTable`, one new index at a time; the table
//! stays usable while DynamoDB builds it) and then, while the objects table records no data format,
//! runs [`DynamoBackend::backfill_phase_index`]: every agenda progress without `ph` gets the
//! attributes its body calls for (`UpdateItem` under its version, so a concurrent writer wins), and
//! the item `pk = _pop#format` records format 2, so later calls cost one `GetItem`. Upgrade every
//! process before relying on the index, or run `backfill_phase_index` again once the last process
//! of the earlier build has stopped. If you manage the tables yourself, add `by_phase` as
//! [`TableSpec::aws_cli`] prints it (`aws dynamodb update-table --attribute-definitions
//! AttributeName=ph,AttributeType=S AttributeName=pt,AttributeType=S --global-secondary-index-updates
//! '[{"Create":{"IndexName":"by_phase","KeySchema":[{"AttributeName":"ph","KeyType":"HASH"},{"AttributeName":"pt","KeyType":"RANGE"}],"Projection":{"ProjectionType":"KEYS_ONLY"}}}]'`)
//! and call `backfill_phase_index` once it is ACTIVE.
//!
//! ## Limits and consistency
//!
//! * An atomic [`Store::write`](pop_core::store::Store::write) is one `TransactWriteItems`: at most
//!   100 items ([`MAX_TRANSACTION_ITEMS`]), one per operation (several ready changes of one agenda in
//!   a batch fold into its last). Larger batches fail with [`pop_core::Error::Unsupported`] naming the
//!   count and the limit, before anything is written. One batch may not touch the same object twice
//!   (`Invalid`).
//! * An item holds at most 400 KB: larger objects are refused with `Invalid` naming kind and id.
//! * `get`, `ready_get`, queue `len`/`contains` read consistently. `query`, `ready_list`, queue
//!   `receive` and `expired` read GSIs, which AWS updates asynchronously (usually well within a
//!   second): a just-written object or ready entry may be missing from them for that long (the
//!   conformance suite's "read your writes" holds on moto, not strictly on AWS). Every write that
//!   depends on what was read is conditional, and `ready_list` re-reads the entries it lists, so
//!   staleness never breaks a version, a lease or a delivery, and never lists a removed entry.
//! * Throttling (`ProvisionedThroughputExceeded`, `ThrottlingException`, `RequestLimitExceeded`),
//!   transactions cancelled by concurrent ones (`TransactionConflict`), timeouts and 5xx are retried
//!   with jittered exponential backoff up to [`DynamoConfig::max_attempts`]; then the error is
//!   returned (a persistent transaction conflict as `Conflict`).
//! * Hot partitions: see [Hot keys and shards](#hot-keys-and-shards).
//! * An agenda progress id is at most 1007 bytes (`pt` holds it after 17 bytes of time).
//!
//! ## Testing against a local server
//!
//! The tests and the `dynamo` bench read `POP_DYNAMODB_ENDPOINT`; unset, they skip and say so.
//! `eval "$(bash .ci/dynamo.sh)"` installs and starts moto's server mode on loopback and sets it.

mod client;
mod codec;
mod config;
mod error;
mod heads;
mod paging;
mod phase;
mod queue;
mod shard;
mod store;
mod tables;

#[cfg(test)]
mod fuzz;

pub use client::{RequestCounts, TableNames};
pub use config::{DEFAULT_SHARDS, DynamoConfig, MAX_SHARDS, StaticCredentials};
pub use error::{BACKEND, DynamoError};
pub use phase::PHASE_SHARDS;
pub use queue::DynamoQueue;
pub use store::{DynamoStore, MAX_TRANSACTION_ITEMS};
pub use tables::{IndexSpec, KeyAttr, KeyAttrType, TableSpec, table_specs};

use std::sync::Arc;

/// A connection to DynamoDB shared by a [`DynamoStore`] and a [`DynamoQueue`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoBackend {
    db: Arc<client::Db>,
    store: DynamoStore,
}

impl DynamoBackend {
    /// Connects (builds the SDK client; no request is sent). `Invalid` if the configuration is.
    pub async fn connect(config: DynamoConfig) -> pop_core::Result<Self> {
        Self::connect_with(config, |b| b).await
    }

    /// [`DynamoBackend::connect`], with the SDK client's configuration adjusted by `customize`
    /// before the client is built: add an interceptor (to trace or count requests), swap the HTTP
    /// client, set timeouts. POP's own settings (retries off: POP retries itself; its request
    /// counter) are already in the builder.
    pub async fn connect_with(
        config: DynamoConfig,
        customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
    ) -> pop_core::Result<Self> {
        let db = Arc::new(client::Db::connect(config, customize).await?);
        Ok(Self { store: DynamoStore::new(db.clone()), db })
    }

    /// Creates POP's tables and indexes where missing (on tables of an earlier build: adds the
    /// `by_phase` index with `UpdateTable`), waits until they are ACTIVE, checks (or, on new tables,
    /// records) the shard count ([`DynamoConfig::shards`]; data of an unsharded build is moved to the
    /// shards first, see the crate docs), then backfills the phase index of data written before it
    /// ([`DynamoBackend::backfill_phase_index`]). Idempotent, safe to call from several processes at
    /// once. A table that exists with other keys, or tables set up with another shard count, are an
    /// `Unsupported` error naming them.
    pub async fn ensure_tables(&self) -> pop_core::Result<()> {
        self.db.ensure_tables().await?;
        // The layout first: on tables of an unsharded build it moves `kd`, which the backfill lists by.
        self.db.shards().await?;
        self.store.backfill_phases(false).await?;
        Ok(())
    }

    /// Gives every agenda progress written by a build without the phase index its `ph`/`pt`
    /// attributes (so that `by_phase` lists it), then records data format 2 in the objects table
    /// (item `_pop#format`). Returns how many items it changed. It reads every agenda progress (a
    /// `scan`), so [`DynamoBackend::ensure_tables`] runs it only while no format is recorded; call it
    /// yourself if you create the tables with other tooling (after adding `by_phase`), or again once
    /// the last process of an earlier build has stopped if some were still writing during the first
    /// pass (what they wrote lacks the attributes until its next update).
    pub async fn backfill_phase_index(&self) -> pop_core::Result<usize> {
        self.store.backfill_phases(true).await
    }

    /// The table design for this configuration's prefix (to create the tables with other tooling).
    pub fn table_specs(&self) -> Vec<TableSpec> {
        table_specs(&self.db.tables)
    }

    /// The table names in use.
    pub fn table_names(&self) -> &TableNames {
        &self.db.tables
    }

    /// The configuration.
    pub fn config(&self) -> &DynamoConfig {
        &self.db.cfg
    }

    /// The store.
    pub fn store(&self) -> DynamoStore {
        self.store.clone()
    }

    /// The queue backend.
    pub fn queue(&self) -> DynamoQueue {
        DynamoQueue::new(self.db.clone())
    }

    /// DynamoDB requests sent so far through this connection (every attempt counts).
    pub fn request_counts(&self) -> RequestCounts {
        self.db.counter.snapshot()
    }

    /// The underlying SDK client, for operations POP does not wrap.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.db.client
    }
}
