//! The `Store` trait: objects with versions, indexes, an atomic batch write, the ready set and named
//! leases.
//!
//! The trait is deliberately small and byte-oriented so that every backend can implement it with its
//! own primitives:
//!
//! | operation | sled | DynamoDB |
//! |---|---|---|
//! | `get` | tree get | `GetItem` (consistent) |
//! | `write` (atomic batch) | multi-tree transaction | `TransactWriteItems` (≤ 100 items: [`Store::max_batch`]) |
//! | create / CAS update | transaction with version check | `attribute_not_exists(id)` / `version = :v` conditions |
//! | `query` by indexed field | index tree range scan | `Query` on a GSI, `LastEvaluatedKey` as cursor |
//! | ready set by insight | range scan on `(insight, customer, priority desc, added)` | `Query` on the insight partition |
//! | named lease | transaction on the lease tree | conditional `PutItem` on `expires < :now` |
//! | `query_phase` (recovery by index) | phase tree range scan on `(phase, time, id)` | `Query` per shard of the `by_phase` GSI, merged |
//!
//! Typed access lives in [`StoreExt`], implemented for every `Store`.
//!
//! # The phase index: recovery by index
//!
//! The recovery processes (automatic retry, data reaper, repair) must not read every agenda ever
//! run on every pass: their cost would grow with history instead of with live work. So every
//! [`AgendaProgress`] is in exactly one **phase**, kept by the backend as an ordered index next to the
//! record ([`Record::phase`], computed by [`to_record`] from [`StoreObject::phase_entry`], written and
//! removed in the same atomic write as the record, so the index can never disagree with the data):
//!
//! | [`Phase`] | which agendas | sorted by | read by |
//! |---|---|---|---|
//! | `Unfinished` | WAITING or EXECUTING | `addedTime` | repair (lost WAITING, silent EXECUTING) |
//! | `Retryable` | COMPLETE, `failed`, attempts left | completion time | automatic retry: `completed ≤ now − backoff` |
//! | `Finished` | every other COMPLETE | completion time | data reaper: `completed < now − TTL`, oldest first |
//!
//! [`Store::query_phase`] lists one phase within a time range, by (time, id) ascending, paged like
//! every other listing. WAITING and EXECUTING share a phase on purpose: an agenda starting (the most
//! frequent transition) keeps its index entry, so it costs no index write (on DynamoDB, no GSI write).
//!
//! Why failed agendas with attempts left have their own phase instead of the retry reading
//! `Finished` within the longest backoff (24 h): a retry pass runs every few seconds, and that window
//! holds a day of completions — the cost would grow with throughput, and a failed agenda whose retry
//! fell due while no retry process ran for longer than the window would never be retried. As its own
//! phase, the retry reads only agendas that are waiting for a retry, at no extra cost: an agenda is in
//! one phase at a time, whichever it is.

use crate::error::{Error, Result};
use crate::model::ProcessingState;
use crate::model::{
    Agenda, AgendaProgress, AgendaTemplate, Customer, Insight, Millis, OperationProgress, ReadyAgenda, ResourcePool,
};
use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt;
use std::future::Future;
use std::ops::Range;

/// The kinds of stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// [`Agenda`]
    Agenda,
    /// [`AgendaProgress`]
    AgendaProgress,
    /// [`OperationProgress`]
    OperationProgress,
    /// [`Customer`]
    Customer,
    /// [`ResourcePool`]
    ResourcePool,
    /// [`Insight`]
    Insight,
    /// [`AgendaTemplate`]
    AgendaTemplate,
    /// Per-insight scheduler state (`InsightScheduleInfo`): the JSON document of
    /// [`AlgorithmState::to_json`](crate::sched::AlgorithmState::to_json), no indexes.
    InsightSchedule,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Agenda,
        Kind::AgendaProgress,
        Kind::OperationProgress,
        Kind::Customer,
        Kind::ResourcePool,
        Kind::Insight,
        Kind::AgendaTemplate,
        Kind::InsightSchedule,
    ];

    /// A stable, lower-case name, used in keys, table names and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agenda => "agenda",
            Kind::AgendaProgress => "agendaProgress",
            Kind::OperationProgress => "operationProgress",
            Kind::Customer => "customer",
            Kind::ResourcePool => "resourcePool",
            Kind::Insight => "insight",
            Kind::AgendaTemplate => "agendaTemplate",
            Kind::InsightSchedule => "insightSchedule",
        }
    }

    /// The fields this kind is indexed (queryable) by.
    pub fn indexed_fields(self) -> &'static [IndexField] {
        use IndexField::*;
        match self {
            Kind::Agenda => &[CustomerId, LinkId, Title],
            Kind::AgendaProgress => &[CustomerId, LinkId, AgendaId, Title],
            Kind::OperationProgress => &[CustomerId, AgendaProgressId],
            Kind::Customer => &[CustomerId, ResourcePoolId, Title],
            Kind::ResourcePool => &[CustomerId, Title],
            Kind::Insight => &[CustomerId, ResourcePoolId, Title],
            Kind::AgendaTemplate => &[CustomerId, Title],
            Kind::InsightSchedule => &[],
        }
    }

    /// Whether this kind is in the phase index ([`Store::query_phase`]): only
    /// [`Kind::AgendaProgress`].
    pub fn has_phase_index(self) -> bool {
        matches!(self, Kind::AgendaProgress)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queryable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexField {
    /// `customerId`
    CustomerId,
    /// `linkId`
    LinkId,
    /// `agendaId`
    AgendaId,
    /// `agendaProgressId`
    AgendaProgressId,
    /// `resourcePoolId`
    ResourcePoolId,
    /// `insightId`
    InsightId,
    /// `title`
    Title,
}

impl IndexField {
    /// The JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexField::CustomerId => "customerId",
            IndexField::LinkId => "linkId",
            IndexField::AgendaId => "agendaId",
            IndexField::AgendaProgressId => "agendaProgressId",
            IndexField::ResourcePoolId => "resourcePoolId",
            IndexField::InsightId => "insightId",
            IndexField::Title => "title",
        }
    }

    /// Parses a JSON field name (case-insensitive), as in the original's `by<field>` queries.
    pub fn parse(s: &str) -> Option<Self> {
        [
            IndexField::CustomerId,
            IndexField::LinkId,
            IndexField::AgendaId,
            IndexField::AgendaProgressId,
            IndexField::ResourcePoolId,
            IndexField::InsightId,
            IndexField::Title,
        ]
        .into_iter()
        .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for IndexField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase of the phase index (see the [module docs](self#the-phase-index-recovery-by-index)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// WAITING or EXECUTING; sorted by when the agenda was added.
    Unfinished,
    /// COMPLETE with conclusion `failed` and attempts left: an automatic retry may be due; sorted by
    /// completion time.
    Retryable,
    /// COMPLETE otherwise (succeeded, cancelled, failed with no attempt left); sorted by completion time.
    Finished,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 3] = [Phase::Unfinished, Phase::Retryable, Phase::Finished];

    /// A stable, lower-case name, used in keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unfinished => "unfinished",
            Phase::Retryable => "retryable",
            Phase::Finished => "finished",
        }
    }

    /// The inverse of [`Phase::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object's entry in the phase index: its phase and the time it sorts by within the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhaseEntry {
    /// The phase.
    pub phase: Phase,
    /// The time (epoch ms) it sorts by: added time for [`Phase::Unfinished`], completion time otherwise.
    pub at: Millis,
}

impl PhaseEntry {
    /// Every time: the range that lists a whole phase. (An entry at `Millis::MAX` would fall outside;
    /// [`PhaseEntry::new`] never makes one.)
    pub const ALL_TIMES: Range<Millis> = Millis::MIN..Millis::MAX;

    /// An entry; `at` is capped at `Millis::MAX - 1` so that [`PhaseEntry::ALL_TIMES`] lists it.
    pub fn new(phase: Phase, at: Millis) -> Self {
        Self { phase, at: at.min(Millis::MAX - 1) }
    }
}

/// The phase entry of an agenda progress (the rule of the phase index).
fn agenda_progress_phase(p: &AgendaProgress) -> Option<PhaseEntry> {
    Some(match p.processing_state {
        ProcessingState::Waiting | ProcessingState::Executing => {
            PhaseEntry::new(Phase::Unfinished, p.added_time.or(p.updated_time).unwrap_or(0))
        }
        ProcessingState::Complete if p.retryable() => PhaseEntry::new(Phase::Retryable, p.finished_at()),
        ProcessingState::Complete => PhaseEntry::new(Phase::Finished, p.finished_at()),
    })
}

/// The phase entry a record's body calls for: for a kind with a phase index, the body decoded as its
/// typed object; `None` for other kinds. Backends use it to rebuild the index of data written before
/// they had one; a body that does not decode is `Error::Corrupt` naming the kind and id.
pub fn derive_phase(record: &Record) -> Result<Option<PhaseEntry>> {
    match record.kind {
        Kind::AgendaProgress => Ok(from_record::<AgendaProgress>(record)?.phase_entry()),
        _ => Ok(None),
    }
}

/// A stored object as the backends see it: key, version, index values and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The kind.
    pub kind: Kind,
    /// The id (unique within the kind).
    pub id: String,
    /// The version: 1 after create, +1 on every update. Backends own it; the body's copy is ignored.
    pub version: u64,
    /// The values of the kind's indexed fields that are set.
    pub indexes: Vec<(IndexField, String)>,
    /// Its entry in the phase index, for a kind that has one ([`Kind::has_phase_index`]); backends
    /// keep the index from this value on every write and return it on reads.
    pub phase: Option<PhaseEntry>,
    /// The object as JSON.
    pub body: Vec<u8>,
}

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create; `Conflict` if the id exists. Stored with version 1.
    Create(Record),
    /// Compare-and-swap update; `Conflict` if the stored version is not `expected_version`, `NotFound` if
    /// absent. Stored with version `expected_version + 1`.
    Update {
        /// The new value.
        record: Record,
        /// The version the caller read.
        expected_version: u64,
    },
    /// Create or replace whatever the stored version (an upsert): stored with version 1 when new, the
    /// stored version + 1 otherwise. For rows whose consistency another write of the same batch guards
    /// (an operation's progress row, fenced by its agenda progress's compare-and-set).
    Put(Record),
    /// Delete; `NotFound` if absent, `Conflict` if `expected_version` is given and differs.
    Delete {
        /// The kind.
        kind: Kind,
        /// The id.
        id: String,
        /// The version the caller read, if the delete is conditional.
        expected_version: Option<u64>,
    },
    /// Put an agenda in its insight's ready set; replaces an existing entry of the same agenda.
    ReadyInsert(ReadyAgenda),
    /// Remove an agenda's ready entry; a no-op if there is none.
    ReadyRemove {
        /// The agenda.
        agenda_id: String,
    },
}

/// Paging input: at most `limit` items after `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// Maximum items to return (0 means the backend's default of 100).
    pub limit: usize,
    /// Where the previous page ended (opaque).
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { limit, cursor: None }
    }

    /// The effective limit (`limit`, or 100 when 0).
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 { 100 } else { self.limit }
    }
}

/// One page of results and the cursor of the next, if there may be more.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page<T> {
    /// The items, in the backend's stable order (id ascending for queries).
    pub items: Vec<T>,
    /// Pass as `PageRequest::cursor` to continue; `None` at the end.
    pub next: Option<String>,
}

/// The stored state of objects, the ready set and named leases.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for messages (`memory`, `sled`, `dynamodb`).
    fn backend_name(&self) -> &'static str;

    /// The most writes one atomic [`Store::write`] accepts (DynamoDB: 100).
    fn max_batch(&self) -> usize;

    /// `Err` when the store has failed in a way it cannot recover from in this process, so that
    /// the embedding application (or `pop serve` / `pop worker`, which exit) restarts it: e.g. sled
    /// after an IO error in its log (a full disk) or with a flush stuck past its stall timeout.
    /// Transient failures (a network error to DynamoDB) are not reported here. Cheap: no IO.
    fn health(&self) -> Result<()> {
        Ok(())
    }

    /// One object, or `None`.
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>>;

    /// Applies every write or none. Errors: `Conflict`/`NotFound` from the first failing condition,
    /// `Unsupported` when `ops.len() > max_batch()`.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<()>;

    /// Objects of `kind` whose indexed `field` equals `value`, by id ascending.
    async fn query(&self, kind: Kind, field: IndexField, value: &str, page: PageRequest) -> Result<Page<Record>>;

    /// Every object of `kind`, by id ascending (administration and tools; not for hot paths: the
    /// recovery processes use [`Store::query_phase`]).
    async fn scan(&self, kind: Kind, page: PageRequest) -> Result<Page<Record>>;

    /// Objects of `kind` whose phase entry ([`Record::phase`]) is in `phase` with a time in `at`
    /// (start inclusive, end exclusive; [`PhaseEntry::ALL_TIMES`] for all), by (time, id) ascending.
    /// A cursor continues after its item even if that item was deleted or left the phase meanwhile.
    /// `Unsupported` for a kind without a phase index ([`Kind::has_phase_index`]).
    async fn query_phase(&self, kind: Kind, phase: Phase, at: Range<Millis>, page: PageRequest)
    -> Result<Page<Record>>;

    /// The ready entry of an agenda, if it has one.
    async fn ready_get(&self, agenda_id: &str) -> Result<Option<ReadyAgenda>>;

    /// An insight's ready entries ordered by customer id, then priority descending, added ascending,
    /// agenda id.
    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>>;

    /// The heads of an insight's ready set: in [`Store::ready_list`] order, the first `per_run`
    /// entries of each *priority run* (a customer's entries of one priority), at most `limit` in
    /// all. What a scheduler refilling at most `per_run` agendas needs of the ready set when its
    /// algorithm takes each run's entries in order ([`crate::sched::Algorithm::in_run_order`]).
    ///
    /// The default reads the **whole** list with [`Store::ready_list`] on every call and keeps the
    /// heads: right, but a store that keeps long backlogs should override it. The memory store, sled
    /// and fjall seek from run to run (about `per_run` entries read per run, however long the
    /// backlog); DynamoDB lists its keys-only index and reads only the heads.
    async fn ready_heads(&self, insight_id: &str, per_run: usize, limit: usize) -> Result<Vec<ReadyAgenda>> {
        let mut out: Vec<ReadyAgenda> = Vec::new();
        let mut in_run = 0usize;
        let mut cursor = None;
        while out.len() < limit {
            let page = self.ready_list(insight_id, PageRequest { limit: 1000, cursor }).await?;
            for entry in page.items {
                let same_run =
                    out.last().is_some_and(|l| l.customer_id == entry.customer_id && l.priority == entry.priority);
                in_run = if same_run { in_run + 1 } else { 1 };
                if in_run <= per_run && out.len() < limit {
                    out.push(entry);
                }
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// Acquires or renews the named lease for `holder` until `now + ttl_ms`: `true` if `holder` has it
    /// now, `false` if another holder's lease has not expired.
    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool>;

    /// Releases the named lease if `holder` has it; otherwise a no-op.
    async fn lease_release(&self, name: &str, holder: &str) -> Result<()>;
}

/// A typed object kept in a [`Store`].
pub trait StoreObject: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its kind.
    const KIND: Kind;
    /// Its id, if set.
    fn object_id(&self) -> Option<&str>;
    /// Its version.
    fn object_version(&self) -> u64;
    /// Sets its version.
    fn set_object_version(&mut self, version: u64);
    /// The value of an indexed field.
    fn index_value(&self, field: IndexField) -> Option<&str>;
    /// Its entry in the phase index, for a kind that has one ([`Kind::has_phase_index`]).
    fn phase_entry(&self) -> Option<PhaseEntry> {
        None
    }
}

macro_rules! store_object {
    ($ty:ty, $kind:expr, { $($field:ident => $value:ident),* $(,)? } $(, phase: $phase:path)?) => {
        impl StoreObject for $ty {
            const KIND: Kind = $kind;
            fn object_id(&self) -> Option<&str> {
                self.id.as_deref()
            }
            fn object_version(&self) -> u64 {
                self.version
            }
            fn set_object_version(&mut self, version: u64) {
                self.version = version;
            }
            fn index_value(&self, field: IndexField) -> Option<&str> {
                match field {
                    $(IndexField::$field => self.$value.as_deref(),)*
                    #[allow(unreachable_patterns, reason = "not every kind is indexed by every field")]
                    _ => None,
                }
            }
            $(
                fn phase_entry(&self) -> Option<PhaseEntry> {
                    $phase(self)
                }
            )?
        }
    };
}

store_object!(Agenda, Kind::Agenda, { CustomerId => customer_id, LinkId => link_id, Title => title });
store_object!(AgendaProgress, Kind::AgendaProgress, {
    CustomerId => customer_id, LinkId => link_id, AgendaId => agenda_id, Title => title
}, phase: agenda_progress_phase);
store_object!(OperationProgress, Kind::OperationProgress, {
    CustomerId => customer_id, AgendaProgressId => agenda_progress_id
});
store_object!(Customer, Kind::Customer, {
    CustomerId => customer_id, ResourcePoolId => resource_pool_id, Title => title
});
store_object!(ResourcePool, Kind::ResourcePool, { CustomerId => customer_id, Title => title });
store_object!(Insight, Kind::Insight, {
    CustomerId => customer_id, ResourcePoolId => resource_pool_id, Title => title
});
store_object!(AgendaTemplate, Kind::AgendaTemplate, { CustomerId => customer_id, Title => title });

/// Encodes a typed object as a [`Record`] (its id must be set).
pub fn to_record<T: StoreObject>(obj: &T) -> Result<Record> {
    let id = obj
        .object_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::invalid(format!("a {} to store needs an id", T::KIND)))?
        .to_owned();
    let body = serde_json::to_vec(obj).map_err(|e| Error::backend("codec", e))?;
    let indexes =
        T::KIND.indexed_fields().iter().filter_map(|f| obj.index_value(*f).map(|v| (*f, v.to_owned()))).collect();
    let phase = if T::KIND.has_phase_index() { obj.phase_entry() } else { None };
    Ok(Record { kind: T::KIND, id, version: obj.object_version(), indexes, phase, body })
}

/// Decodes a [`Record`] into a typed object; a body that does not decode is `Error::Corrupt` naming the
/// kind and id.
pub fn from_record<T: StoreObject>(record: &Record) -> Result<T> {
    if record.kind != T::KIND {
        return Err(Error::Corrupt {
            kind: record.kind.to_string(),
            id: record.id.clone(),
            reason: format!("expected a {}", T::KIND),
        });
    }
    let mut obj: T = serde_json::from_slice(&record.body).map_err(|e| Error::Corrupt {
        kind: record.kind.to_string(),
        id: record.id.clone(),
        reason: e.to_string(),
    })?;
    obj.set_object_version(record.version);
    Ok(obj)
}

/// Typed access to any [`Store`].
pub trait StoreExt: Store {
    /// A typed object, or `None`.
    fn get_obj<T: StoreObject>(&self, id: &str) -> impl Future<Output = Result<Option<T>>> + Send {
        async move {
            match self.get(T::KIND, id).await? {
                Some(r) => from_record(&r).map(Some),
                None => Ok(None),
            }
        }
    }

    /// A typed object, or `NotFound`.
    fn fetch<T: StoreObject>(&self, id: &str) -> impl Future<Output = Result<T>> + Send {
        async move { self.get_obj::<T>(id).await?.ok_or_else(|| Error::not_found(T::KIND, id)) }
    }

    /// Creates `obj` (version becomes 1).
    fn create_obj<'a, T: StoreObject>(&'a self, obj: &'a mut T) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            obj.set_object_version(1);
            let rec = to_record(&*obj)?;
            let r = self.write(vec![WriteOp::Create(rec)]).await;
            if r.is_err() {
                obj.set_object_version(0);
            }
            r
        }
    }

    /// Compare-and-swap update of `obj` against its current version (which is then incremented).
    fn update_obj<'a, T: StoreObject>(&'a self, obj: &'a mut T) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            let expected_version = obj.object_version();
            obj.set_object_version(expected_version + 1);
            let r = match to_record(&*obj) {
                Ok(record) => self.write(vec![WriteOp::Update { record, expected_version }]).await,
                Err(e) => Err(e),
            };
            if r.is_err() {
                obj.set_object_version(expected_version);
            }
            r
        }
    }

    /// Deletes an object unconditionally.
    fn delete_obj<T: StoreObject>(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        async move { self.write(vec![WriteOp::Delete { kind: T::KIND, id: id.to_owned(), expected_version: None }]).await }
    }

    /// One page of typed objects whose `field` equals `value`.
    fn query_obj<T: StoreObject>(
        &self,
        field: IndexField,
        value: &str,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<T>>> + Send {
        async move {
            let p = self.query(T::KIND, field, value, page).await?;
            let items = p.items.iter().map(from_record).collect::<Result<Vec<T>>>()?;
            Ok(Page { items, next: p.next })
        }
    }

    /// Every typed object whose `field` equals `value`, following cursors (use for bounded sets such as
    /// the operation progress of one agenda).
    fn query_all<T: StoreObject>(&self, field: IndexField, value: &str) -> impl Future<Output = Result<Vec<T>>> + Send {
        async move {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let p = self.query_obj::<T>(field, value, PageRequest { limit: 1000, cursor }).await?;
                out.extend(p.items);
                match p.next {
                    Some(c) => cursor = Some(c),
                    None => return Ok(out),
                }
            }
        }
    }

    /// One page of typed objects in `phase` with a time in `at` ([`Store::query_phase`]).
    fn query_phase_obj<T: StoreObject>(
        &self,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<T>>> + Send {
        async move {
            let p = self.query_phase(T::KIND, phase, at, page).await?;
            let items = p.items.iter().map(from_record).collect::<Result<Vec<T>>>()?;
            Ok(Page { items, next: p.next })
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Creates the record for a typed object in a batch (version 1).
pub fn create_op<T: StoreObject>(obj: &mut T) -> Result<WriteOp> {
    obj.set_object_version(1);
    Ok(WriteOp::Create(to_record(&*obj)?))
}

/// The CAS update of a typed object in a batch; bumps `obj`'s version to the one it will have.
pub fn update_op<T: StoreObject>(obj: &mut T) -> Result<WriteOp> {
    let expected_version = obj.object_version();
    obj.set_object_version(expected_version + 1);
    Ok(WriteOp::Update { record: to_record(&*obj)?, expected_version })
}

/// An upsert of `obj` whatever its stored version ([`WriteOp::Put`]).
pub fn put_op<T: StoreObject>(obj: &T) -> Result<WriteOp> {
    Ok(WriteOp::Put(to_record(obj)?))
}
