//! [`FjallStore`]: the [`Store`] on fjall — a partition per kind, index partitions, the ready set,
//! named leases, all written in single-writer transactions.

use crate::config::Config;
use crate::durability::{Syncer, core_err};
use crate::error::{FjallError, fjall_err};
use crate::format::{self, FORMAT_KEY, FORMAT_VERSION, corrupt, show_key};
use crate::queue::FjallQueue;
use async_trait::async_trait;
use fjall::{PartitionCreateOptions, TxKeyspace, TxPartitionHandle, WriteTransaction};
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, Record, Store, WriteOp};
use pop_core::{Error, Result};
use pop_store_kv::codec;
use pop_store_kv::durability::Durability;
use pop_store_kv::read::{self, Entries, OrderedRead, Tree as KvTree};
use pop_store_kv::write::{self, KvTx, op_label, validate_op};
use std::collections::BTreeMap;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most writes one atomic batch accepts: a batch is one fjall transaction, held in memory until
/// it commits, under the keyspace's single-writer lock.
pub const MAX_BATCH: usize = 10_000;

/// The shared state of a database: the partitions and the durability policy.
pub(crate) struct Inner {
    pub(crate) ks: TxKeyspace,
    pub(crate) path: PathBuf,
    pub(crate) meta: TxPartitionHandle,
    obj: Vec<TxPartitionHandle>,
    idx: Vec<TxPartitionHandle>,
    phase: Vec<TxPartitionHandle>,
    ready: TxPartitionHandle,
    ready_by_agenda: TxPartitionHandle,
    leases: TxPartitionHandle,
    pub(crate) q_entries: TxPartitionHandle,
    pub(crate) q_order: TxPartitionHandle,
    pub(crate) q_count: TxPartitionHandle,
    durability: Durability,
    /// The queue order and the ready set as committed, in memory (see [`Mirror`]).
    pub(crate) mirror: std::sync::Mutex<Mirror>,
    /// The directory of a temporary database, removed after the keyspace is dropped.
    _temporary: Option<tempfile::TempDir>,
}

/// The two partitions that are rewritten all the time and read by range, mirrored in memory.
///
/// In a log-structured store a removed key leaves a tombstone that a range scan steps over until
/// compaction drops it; the queue order (every receive and ack moves or removes a key) and the ready
/// set (every scheduled agenda leaves it) would make every receive and every scheduling pass step
/// over all the removals since the last compaction. Their keys and values are therefore also kept
/// in memory, changed under the same lock as the commit that changes them (so the mirror follows
/// the commits' order), loaded from the partitions when the database is opened, and read by
/// range there. Point reads still go to fjall.
#[derive(Default)]
pub(crate) struct Mirror {
    /// `q#order`: key → agenda id.
    pub(crate) order: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `ready`: key → the `ReadyAgenda` as JSON.
    pub(crate) ready: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A mirrored partition.
#[derive(Clone, Copy)]
pub(crate) enum Mirrored {
    Order,
    Ready,
}

impl Mirror {
    fn part(&mut self, which: Mirrored) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        match which {
            Mirrored::Order => &mut self.order,
            Mirrored::Ready => &mut self.ready,
        }
    }
}

/// A write transaction, with the changes to the mirrored partitions it will make on commit.
pub(crate) struct Tx<'a> {
    tx: WriteTransaction<'a>,
    changes: Vec<(Mirrored, Vec<u8>, Option<Vec<u8>>)>,
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = WriteTransaction<'a>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Tx<'_> {
    /// Inserts into a mirrored partition.
    pub(crate) fn put_mirrored(&mut self, which: Mirrored, part: &TxPartitionHandle, key: Vec<u8>, value: Vec<u8>) {
        self.tx.insert(part, key.as_slice(), value.as_slice());
        self.changes.push((which, key, Some(value)));
    }

    /// Removes from a mirrored partition.
    pub(crate) fn remove_mirrored(&mut self, which: Mirrored, part: &TxPartitionHandle, key: Vec<u8>) {
        self.tx.remove(part, key.as_slice());
        self.changes.push((which, key, None));
    }
}

impl Inner {
    /// Runs `body` in one write transaction (fjall's single-writer lock is held until it ends) and
    /// commits it if `body` returned `Ok`; otherwise nothing of it is applied.
    pub(crate) fn transaction<T>(
        &self,
        op: impl FnOnce() -> String,
        body: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut tx = Tx { tx: self.ks.write_tx(), changes: Vec::new() };
        match body(&mut tx) {
            Ok(v) => {
                if tx.changes.is_empty() {
                    tx.tx.commit().map_err(|e| fjall_err(op(), e))?;
                    return Ok(v);
                }
                // The mirror's lock is taken before the commit and held until its changes are in:
                // the next transaction cannot commit before (it waits for this lock), so the
                // mirror sees the commits in their order.
                let mut mirror = self.mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                tx.tx.commit().map_err(|e| fjall_err(op(), e))?;
                for (which, key, value) in tx.changes {
                    let part = mirror.part(which);
                    match value {
                        Some(v) => part.insert(key, v),
                        None => part.remove(&key),
                    };
                }
                Ok(v)
            }
            Err(e) => {
                tx.tx.rollback();
                Err(e)
            }
        }
    }

    /// Reads the mirror.
    pub(crate) fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits as the flush policy says after a mutation.
    pub(crate) async fn durable(&self) -> Result<()> {
        self.durability.wait().await.map_err(core_err)
    }

    /// `n` fresh ids from the database's persistent counter (`meta/ids`), inside `tx`: they grow
    /// across restarts, as the counter is written in the transaction that uses them.
    pub(crate) fn take_ids(&self, tx: &mut Tx<'_>, n: u64) -> Result<u64> {
        let cur = match tx.get(&self.meta, format::IDS_KEY).map_err(|e| fjall_err("read meta/ids", e))? {
            Some(v) => format::u64_from(&v)
                .filter(|_| v.len() == 8)
                .ok_or_else(|| corrupt(format::META_PARTITION, format::IDS_KEY, "expected an 8-byte counter"))?,
            None => 0,
        };
        tx.insert(&self.meta, format::IDS_KEY, (cur + n).to_be_bytes());
        Ok(cur + 1)
    }
}

/// POP's [`Store`] on an embedded fjall database. Cheap to clone (shared handle).
///
/// Open with [`FjallStore::open`] or [`FjallStore::temporary`]; get the queue of the same database
/// with [`FjallStore::queue`]. The on-disk layout is described in [`crate::format`].
#[derive(Clone)]
pub struct FjallStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn kind_slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl FjallStore {
    /// Opens (or creates) the database `config` names.
    ///
    /// Errors: `Unsupported` naming both versions if the database has an on-disk format this build
    /// does not read; `Backend` if fjall cannot open the directory (e.g. another process has it open).
    pub fn open(config: Config) -> Result<Self> {
        let (path, temporary) = match &config.path {
            Some(p) => (p.clone(), None),
            None => {
                let dir = tempfile::Builder::new().prefix("pop-fjall-").tempdir().map_err(|e| {
                    Error::backend("fjall", FjallError::Failed(format!("create a temporary directory: {e}")))
                })?;
                (dir.path().to_owned(), Some(dir))
            }
        };
        refuse_foreign_directory(&path)?;
        let ks = fjall::Config::new(&path)
            .cache_size(config.cache_capacity_bytes)
            .max_write_buffer_size(config.write_buffer_bytes)
            // the journal is synced by this crate's durability policy, not on fjall's own schedule
            .manual_journal_persist(true)
            .fsync_ms(None)
            .open_transactional()
            .map_err(|e| fjall_err(format!("open fjall database at {}", path.display()), e))?;
        let open = |name: &str| {
            ks.open_partition(name, PartitionCreateOptions::default().max_memtable_size(config.memtable_bytes))
                .map_err(|e| fjall_err(format!("open partition {name} of {}", path.display()), e))
        };
        let meta = open(format::META_PARTITION)?;
        check_format(&ks, &meta, &path)?;
        let obj = Kind::ALL.iter().map(|k| open(&format::obj_partition(*k))).collect::<Result<Vec<_>>>()?;
        let idx = Kind::ALL.iter().map(|k| open(&format::idx_partition(*k))).collect::<Result<Vec<_>>>()?;
        let phase = Kind::ALL.iter().map(|k| open(&format::phase_partition(*k))).collect::<Result<Vec<_>>>()?;
        let (ready, q_order) = (open(format::READY_PARTITION)?, open(format::Q_ORDER_PARTITION)?);
        let mut mirror = Mirror::default();
        for (part, name, into) in [
            (&ready, format::READY_PARTITION, &mut mirror.ready),
            (&q_order, format::Q_ORDER_PARTITION, &mut mirror.order),
        ] {
            for kv in part.inner().iter() {
                let (k, v) = kv.map_err(|e| fjall_err(format!("load partition {name} of {}", path.display()), e))?;
                into.insert(k.to_vec(), v.to_vec());
            }
        }
        let inner = Inner {
            mirror: std::sync::Mutex::new(mirror),
            ready,
            q_order,
            ready_by_agenda: open(format::READY_BY_AGENDA_PARTITION)?,
            leases: open(format::LEASES_PARTITION)?,
            q_entries: open(format::Q_ENTRIES_PARTITION)?,
            q_count: open(format::Q_COUNT_PARTITION)?,
            durability: Durability::start(
                "fjall",
                crate::durability::policy(config.flush_policy),
                Syncer::new(ks.clone(), &path),
                config.stall_timeout,
            )
            .map_err(core_err)?,
            meta,
            obj,
            idx,
            phase,
            ks,
            path: if temporary.is_some() { PathBuf::from("(temporary)") } else { path },
            _temporary: temporary,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// A database in a temporary directory, removed when the last handle is dropped (no fsync waits).
    pub fn temporary() -> Result<Self> {
        Self::open(Config::temporary())
    }

    /// The queue backend on the same database.
    pub fn queue(&self) -> FjallQueue {
        FjallQueue { inner: self.inner.clone() }
    }

    /// The database directory (`(temporary)` for a temporary one).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Syncs everything written so far to disk, whatever the flush policy.
    pub async fn flush(&self) -> Result<()> {
        self.inner.durability.sync_now().await.map_err(core_err)
    }

    fn obj(&self, kind: Kind) -> &TxPartitionHandle {
        &self.inner.obj[kind_slot(kind)]
    }

    fn idx(&self, kind: Kind) -> &TxPartitionHandle {
        &self.inner.idx[kind_slot(kind)]
    }

    fn phases(&self, kind: Kind) -> &TxPartitionHandle {
        &self.inner.phase[kind_slot(kind)]
    }
}

/// Refuses a directory that holds files but no fjall database (fjall's `version` file): fjall would
/// start a new database among them — in a sled directory given by mistake, beside sled's files.
fn refuse_foreign_directory(path: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(path) else { return Ok(()) }; // missing: created by fjall
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() || names.iter().any(|n| n == "version") {
        return Ok(());
    }
    let what = if names.iter().any(|n| n == "conf") && names.iter().any(|n| n == "db") {
        "a sled database (open it with the sled store, `--store sled`)".to_owned()
    } else {
        let mut shown: Vec<&str> = names.iter().map(String::as_str).take(5).collect();
        shown.sort_unstable();
        format!(
            "files that are not a fjall database ({}{})",
            shown.join(", "),
            if names.len() > 5 { ", ..." } else { "" }
        )
    };
    Err(Error::invalid(format!("{} holds {what}: give an empty or new directory for a fjall database", path.display())))
}

/// Reads (or, for a new database, writes) the format version in the `meta` partition.
fn check_format(ks: &TxKeyspace, meta: &TxPartitionHandle, path: &Path) -> Result<()> {
    let found = meta.get(FORMAT_KEY).map_err(|e| fjall_err("read the format version from partition meta", e))?;
    match found {
        Some(v) if v.as_ref() == FORMAT_VERSION.to_string().as_bytes() => Ok(()),
        Some(v) => Err(FjallError::UnknownFormat {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&v).into_owned(),
            supported: FORMAT_VERSION,
        }
        .into()),
        None => {
            // (A new keyspace has only `meta`, just opened above.)
            let has_data = ks.list_partitions().iter().any(|name| &**name != format::META_PARTITION)
                || !meta.inner().is_empty().unwrap_or(true);
            if has_data {
                return Err(FjallError::UnknownFormat {
                    path: path.to_owned(),
                    found: "none (the database holds data but no format version)".into(),
                    supported: FORMAT_VERSION,
                }
                .into());
            }
            meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())
                .map_err(|e| fjall_err("write the format version to partition meta", e))?;
            ks.persist(fjall::PersistMode::SyncAll).map_err(|e| fjall_err("sync the new database", e))?;
            Ok(())
        }
    }
}

/// A write transaction of a store, its trees named as the layout names them.
struct StoreTx<'s, 't> {
    store: &'s FjallStore,
    tx: &'s mut Tx<'t>,
}

impl KvTx for StoreTx<'_, '_> {
    type Bytes = fjall::Slice;
    type Error = Error;

    fn abort(e: Error) -> Error {
        e
    }

    fn get(&mut self, tree: KvTree, key: &[u8]) -> Result<Option<fjall::Slice>> {
        let part = self.store.partition(tree);
        self.tx
            .get(part, key)
            .map_err(|e| fjall_err(format!("get {} in partition {}", show_key(key), self.store.tree_name(tree)), e))
    }

    fn insert(&mut self, tree: KvTree, key: &[u8], value: &[u8]) -> Result<()> {
        let part = self.store.partition(tree);
        match tree {
            KvTree::Ready => self.tx.put_mirrored(Mirrored::Ready, part, key.to_vec(), value.to_vec()),
            _ => self.tx.insert(part, key, value),
        }
        Ok(())
    }

    fn remove(&mut self, tree: KvTree, key: &[u8]) -> Result<()> {
        let part = self.store.partition(tree);
        match tree {
            KvTree::Ready => self.tx.remove_mirrored(Mirrored::Ready, part, key.to_vec()),
            _ => self.tx.remove(part, key),
        }
        Ok(())
    }

    fn take(&mut self, tree: KvTree, key: &[u8]) -> Result<Option<fjall::Slice>> {
        let old = self.get(tree, key)?;
        if old.is_some() {
            self.remove(tree, key)?;
        }
        Ok(old)
    }
}

impl FjallStore {
    /// The partition of a tree of the layout.
    fn partition(&self, tree: KvTree) -> &TxPartitionHandle {
        match tree {
            KvTree::Obj(kind) => self.obj(kind),
            KvTree::Idx(kind) => self.idx(kind),
            KvTree::Phase(kind) => self.phases(kind),
            KvTree::Ready => &self.inner.ready,
            KvTree::ReadyByAgenda => &self.inner.ready_by_agenda,
        }
    }
}

impl OrderedRead for FjallStore {
    type Bytes = fjall::Slice;

    fn tree_name(&self, tree: KvTree) -> String {
        match tree {
            KvTree::Obj(kind) => format::obj_partition(kind),
            KvTree::Idx(kind) => format::idx_partition(kind),
            KvTree::Phase(kind) => format::phase_partition(kind),
            KvTree::Ready => format::READY_PARTITION.to_owned(),
            KvTree::ReadyByAgenda => format::READY_BY_AGENDA_PARTITION.to_owned(),
        }
    }

    fn get(&self, tree: KvTree, key: &[u8]) -> Result<Option<fjall::Slice>> {
        self.partition(tree)
            .get(key)
            .map_err(|e| fjall_err(format!("get {} in partition {}", show_key(key), self.tree_name(tree)), e))
    }

    fn range(
        &self,
        tree: KvTree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Entries<'_, fjall::Slice> {
        if tree == KvTree::Ready {
            // From the mirror (see [`Mirror`]): what the caller reads is copied out under its lock.
            let mirror = self.inner.mirror();
            let page: Vec<_> = mirror
                .ready
                .range::<Vec<u8>, _>((start, end))
                .take(limit)
                .map(|(k, v)| Ok((fjall::Slice::from(k.as_slice()), fjall::Slice::from(v.as_slice()))))
                .collect();
            return Box::new(page.into_iter());
        }
        let name = self.tree_name(tree);
        Box::new(
            self.partition(tree)
                .inner()
                .range::<Vec<u8>, _>((start, end))
                .map(move |kv| kv.map_err(|e| fjall_err(format!("scan partition {name}"), e))),
        )
    }
}

#[async_trait]
impl Store for FjallStore {
    fn backend_name(&self) -> &'static str {
        "fjall"
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        read::get(self, kind, id)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > MAX_BATCH {
            return Err(Error::Unsupported(format!(
                "an atomic write of {} operations is more than the fjall backend's limit of {MAX_BATCH}",
                ops.len()
            )));
        }
        for op in &ops {
            validate_op(op)?;
        }
        self.inner.transaction(
            || format!("atomic write of {} operations ({})", ops.len(), op_label(&ops[0])),
            |tx| {
                let mut tx = StoreTx { store: self, tx };
                ops.iter().try_for_each(|op| write::apply(&mut tx, op))
            },
        )?;
        self.inner.durable().await
    }

    async fn query(&self, kind: Kind, field: IndexField, value: &str, page: PageRequest) -> Result<Page<Record>> {
        read::query(self, kind, field, value, page)
    }

    async fn scan(&self, kind: Kind, page: PageRequest) -> Result<Page<Record>> {
        read::scan(self, kind, page)
    }

    async fn query_phase(
        &self,
        kind: Kind,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> Result<Page<Record>> {
        read::query_phase(self, kind, phase, at, page)
    }

    async fn ready_get(&self, agenda_id: &str) -> Result<Option<ReadyAgenda>> {
        read::ready_get(self, agenda_id)
    }

    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>> {
        read::ready_list(self, insight_id, page)
    }

    async fn ready_heads(&self, insight_id: &str, per_run: usize, limit: usize) -> Result<Vec<ReadyAgenda>> {
        read::ready_heads(self, insight_id, per_run, limit)
    }

    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool> {
        let leases = &self.inner.leases;
        let got = self.inner.transaction(
            || format!("acquire lease {name} for {holder}"),
            |tx| {
                let stored = tx.get(leases, name.as_bytes()).map_err(|e| fjall_err(format!("read lease {name}"), e))?;
                let Some(value) = codec::acquire_lease(name, stored.as_deref(), holder, now, ttl_ms)? else {
                    return Ok(false);
                };
                tx.insert(leases, name.as_bytes(), value);
                Ok(true)
            },
        )?;
        if got {
            self.inner.durable().await?;
        }
        Ok(got)
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        let leases = &self.inner.leases;
        let released = self.inner.transaction(
            || format!("release lease {name} of {holder}"),
            |tx| {
                let stored = tx.get(leases, name.as_bytes()).map_err(|e| fjall_err(format!("read lease {name}"), e))?;
                let release = codec::releases_lease(name, stored.as_deref(), holder)?;
                if release {
                    tx.remove(leases, name.as_bytes());
                }
                Ok(release)
            },
        )?;
        if released {
            self.inner.durable().await?;
        }
        Ok(())
    }
}
