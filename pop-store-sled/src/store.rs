//! [`SledStore`]: the [`Store`] on sled — a tree per kind, index trees, the ready set, named leases.

use crate::config::{Config, FlushPolicy};
use crate::durability::{Syncer, core_err};
use crate::error::{SledError, sled_err};
use crate::format::{
    self, FORMAT_KEY, FORMAT_VERSION, FORMAT_VERSION_WITH_OLD_QUEUE, FORMAT_VERSION_WITHOUT_PHASES, corrupt, show_key,
};
use crate::queue::{QueueTrees, SledQueue};
use async_trait::async_trait;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, Record, Store, WriteOp};
use pop_core::{Error, Result};
use pop_store_kv::durability::Durability;
use pop_store_kv::read::{self, Entries, OrderedRead, Tree as KvTree};
use pop_store_kv::write::{self, KvTx, op_label, validate_op};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most writes one atomic batch accepts. sled has no small limit; this one keeps a batch's
/// transaction (which holds sled's global transaction lock) short.
pub const MAX_BATCH: usize = 10_000;

/// How often sled's own flusher thread runs (and with it its segment cleaner) under the durable
/// policies, in milliseconds.
const SEGMENT_CLEANER_EVERY_MS: u64 = 1_000;

/// The shared state of a database: the trees and the durability policy.
pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) path: PathBuf,
    obj: Vec<Tree>,
    idx: Vec<Tree>,
    phase: Vec<Tree>,
    ready: Tree,
    ready_by_agenda: Tree,
    leases: Tree,
    pub(crate) q: QueueTrees,
    durability: Durability,
    /// The first IO error sled met applying a write: the store has failed for good.
    failed: std::sync::OnceLock<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // sled's own drop flushes, and after an IO error (or with a stuck flush) that flush can wait
        // for ever: a failed store is left open instead (its files stay locked until the process
        // exits, which is the way to recover anyway).
        if let Err(e) = self.writable() {
            tracing::error!(path = %self.path.display(), error = %e, "dropping a failed sled store: it is left open");
            self.durability.abandon();
            std::mem::forget(self.db.clone());
        }
    }
}

impl Inner {
    /// Refuses a mutation at once while a flush is stuck (see [`crate::Config::stall_timeout`]) or
    /// after sled failed, so that a failed store does not apply changes in memory that can never
    /// become durable, and says to restart.
    pub(crate) fn writable(&self) -> Result<()> {
        self.durability.check().map_err(core_err)?;
        if let Some(first) = self.failed.get() {
            return Err(SledError::Failed(first.clone()).into());
        }
        // sled records some IO errors of its log (e.g. in its background flush) and fails every
        // later operation with them until the database is reopened.
        self.db.context.global_error().map_err(|e| SledError::Failed(e.to_string()))?;
        Ok(())
    }

    /// A transaction's error as a core error (see [`Inner::storage_failed`]).
    pub(crate) fn tx_err(&self, e: TransactionError<Error>, op: String) -> Error {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.storage_failed(op, e),
        }
    }

    /// sled's error from applying a write, as a core error; an IO error marks the store failed for
    /// good (see [`Store::health`]): sled 0.34 does not recover from an IO error in its log
    /// (typically ENOSPC) until the database is reopened.
    pub(crate) fn storage_failed(&self, op: String, e: sled::Error) -> Error {
        if let sled::Error::Io(io) = &e {
            let _ = self.failed.set(format!("{op}: {io}"));
        }
        sled_err(op, e)
    }

    /// Waits as the flush policy says after a mutation.
    pub(crate) async fn durable(&self) -> Result<()> {
        self.durability.wait().await.map_err(core_err)
    }
}

/// POP's [`Store`] on an embedded sled database. Cheap to clone (shared handle).
///
/// Open with [`SledStore::open`] or [`SledStore::temporary`]; get the queue of the same database with
/// [`SledStore::queue`]. The on-disk layout is described in [`crate::format`].
#[derive(Clone)]
pub struct SledStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn kind_slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// What [`SledStore::check_integrity`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Objects checked, all kinds.
    pub objects: usize,
    /// Index entries checked.
    pub index_entries: usize,
    /// Phase-index entries checked.
    pub phase_entries: usize,
    /// Ready entries checked.
    pub ready_entries: usize,
    /// Queue items checked.
    pub queue_items: usize,
    /// Every inconsistency, one line each (empty when the database is consistent).
    pub problems: Vec<String>,
}

impl IntegrityReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl SledStore {
    /// Opens (or creates) the database `config` names.
    ///
    /// Errors: `Unsupported` naming both versions if the database has an on-disk format this build
    /// does not read; `Backend` if sled cannot open the directory (e.g. another process has it open).
    pub fn open(config: Config) -> Result<Self> {
        let mut sc = sled::Config::new().cache_capacity(config.cache_capacity_bytes);
        sc = match (config.flush_policy, config.segment_cleaner) {
            (FlushPolicy::Background { every_ms }, _) => sc.flush_every_ms(Some(every_ms.max(1))),
            // sled cleans its log segments only in its own periodic flusher thread: without it the
            // directory grows with every write (the soak measured ≈4 MiB/min with flat live data).
            // Beside our own flushes it makes sled's stuck flush after a full disk more likely; the
            // stall timeout turns that into errors instead of writes waiting for ever.
            (_, true) => sc.flush_every_ms(Some(SEGMENT_CLEANER_EVERY_MS)),
            (_, false) => sc.flush_every_ms(None),
        };
        sc = match &config.path {
            Some(p) => sc.path(p),
            None => sc.temporary(true),
        };
        let path = config.path.clone().unwrap_or_else(|| PathBuf::from("(temporary)"));
        if config.path.is_some() && path.join("version").is_file() && path.join("journals").is_dir() {
            return Err(Error::invalid(format!(
                "{} holds a fjall database (open it with the fjall store, `--store fjall`): give another \
                 directory for a sled database",
                path.display()
            )));
        }
        let db = open_db(&sc, &path)?;
        let found = check_format(&db, &path)?;
        let open = |name: &str| db.open_tree(name).map_err(|e| sled_err(format!("open tree {name}"), e));
        let obj = Kind::ALL.iter().map(|k| open(&format::obj_tree(*k))).collect::<Result<Vec<_>>>()?;
        let idx = Kind::ALL.iter().map(|k| open(&format::idx_tree(*k))).collect::<Result<Vec<_>>>()?;
        let phase = Kind::ALL.iter().map(|k| open(&format::phase_tree(*k))).collect::<Result<Vec<_>>>()?;
        if found == FORMAT_VERSION_WITHOUT_PHASES {
            upgrade_to_phases(&db, &path, &obj, &phase)?;
        }
        // (a version-1 database also has the old queue: the queue upgrade below records the version)
        let q = QueueTrees {
            entries: open(format::Q_ENTRIES_TREE)?,
            order: open(format::Q_ORDER_TREE)?,
            count: open(format::Q_COUNT_TREE)?,
            receiving: std::sync::Mutex::new(()),
        };
        if found < FORMAT_VERSION {
            upgrade_queue(&db, &path, &q)?;
        } else {
            drop_old_queue(&db, &path)?;
        }
        let inner = Inner {
            ready: open(format::READY_TREE)?,
            ready_by_agenda: open(format::READY_BY_AGENDA_TREE)?,
            leases: open(format::LEASES_TREE)?,
            obj,
            idx,
            phase,
            q,
            durability: Durability::start(
                "sled",
                crate::durability::policy(config.flush_policy),
                Syncer::new(db.clone(), config.path.as_deref())?,
                config.stall_timeout,
            )
            .map_err(core_err)?,
            failed: std::sync::OnceLock::new(),
            db,
            path,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// A database in a temporary directory, deleted when the last handle is dropped (no fsync waits).
    pub fn temporary() -> Result<Self> {
        Self::open(Config::temporary())
    }

    /// The queue backend on the same database.
    pub fn queue(&self) -> SledQueue {
        SledQueue { inner: self.inner.clone() }
    }

    /// The underlying sled database, for tools and tests (writing to it directly bypasses every
    /// invariant this crate keeps).
    pub fn sled_db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The database directory (`(temporary)` for a temporary one).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes everything written so far to disk (sled flush + `fdatasync`), whatever the flush policy.
    pub async fn flush(&self) -> Result<()> {
        self.inner.writable()?;
        self.inner.durability.sync_now().await.map_err(core_err)?;
        Ok(())
    }

    fn obj_tree(&self, kind: Kind) -> &Tree {
        &self.inner.obj[kind_slot(kind)]
    }

    fn idx_tree(&self, kind: Kind) -> &Tree {
        &self.inner.idx[kind_slot(kind)]
    }

    fn phase_tree(&self, kind: Kind) -> &Tree {
        &self.inner.phase[kind_slot(kind)]
    }

    /// Verifies, without stopping writers (run it on a quiet database for an exact answer), that
    /// every stored value decodes, every index entry points at a live object holding that value and
    /// every object is in its indexes, the ready set and its by-agenda map agree, and every queue item
    /// is in exactly the right visibility index, its dedup entry and its queue's count.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let mut r = IntegrityReport::default();
        let e = |op: &str| {
            let op = op.to_owned();
            move |err| sled_err(op, err)
        };
        for kind in Kind::ALL {
            let objs = self.obj_tree(kind);
            let idx = self.idx_tree(kind);
            let phases = self.phase_tree(kind);
            for kv in objs.iter() {
                let (k, v) = kv.map_err(e("integrity scan"))?;
                r.objects += 1;
                let Ok(id) = std::str::from_utf8(&k) else {
                    r.problems.push(format!("{kind}: id {} is not UTF-8", show_key(&k)));
                    continue;
                };
                match format::decode_record(kind, id, &v) {
                    Err(err) => r.problems.push(err.to_string()),
                    Ok(rec) => {
                        for (f, val) in &rec.indexes {
                            if !idx.contains_key(format::index_key(*f, val, id)).map_err(e("integrity scan"))? {
                                r.problems.push(format!("{kind} {id}: no index entry for {f} = {val:?}"));
                            }
                        }
                        if let Some(p) = rec.phase {
                            if !phases.contains_key(format::phase_key(p, id)).map_err(e("integrity scan"))? {
                                r.problems
                                    .push(format!("{kind} {id}: no phase-index entry for {} at {}", p.phase, p.at));
                            }
                        }
                        match pop_core::store::derive_phase(&rec) {
                            Ok(want) if want == rec.phase => {}
                            Ok(want) => r.problems.push(format!(
                                "{kind} {id}: its phase entry is {:?} but its body calls for {want:?}",
                                rec.phase
                            )),
                            Err(err) => r.problems.push(err.to_string()),
                        }
                    }
                }
            }
            for kv in idx.iter() {
                let (k, _) = kv.map_err(e("integrity scan"))?;
                r.index_entries += 1;
                let Some((f, val, id)) = format::parse_index_key(&k) else {
                    r.problems.push(format!("{}: unparsable key {}", format::idx_tree(kind), show_key(&k)));
                    continue;
                };
                match objs.get(id.as_bytes()).map_err(e("integrity scan"))? {
                    None => r.problems.push(format!("{kind} index {f} = {val:?} points at missing {id}")),
                    Some(v) => match format::decode_record(kind, &id, &v) {
                        Ok(rec) if rec.indexes.iter().any(|(g, w)| *g == f && *w == val) => {}
                        Ok(_) => r
                            .problems
                            .push(format!("{kind} index {f} = {val:?} points at {id}, which has another value")),
                        Err(err) => r.problems.push(err.to_string()),
                    },
                }
            }
            for kv in phases.iter() {
                let (k, _) = kv.map_err(e("integrity scan"))?;
                r.phase_entries += 1;
                let Some((p, id)) = format::parse_phase_key(&k) else {
                    r.problems.push(format!("{}: unparsable key {}", format::phase_tree(kind), show_key(&k)));
                    continue;
                };
                match objs.get(id.as_bytes()).map_err(e("integrity scan"))? {
                    None => r.problems.push(format!("{kind} phase {} at {} points at missing {id}", p.phase, p.at)),
                    Some(v) => match format::decode_record(kind, &id, &v) {
                        Ok(rec) if rec.phase == Some(p) => {}
                        Ok(_) => r.problems.push(format!(
                            "{kind} phase {} at {} points at {id}, which has another phase entry",
                            p.phase, p.at
                        )),
                        Err(err) => r.problems.push(err.to_string()),
                    },
                }
            }
        }
        for kv in self.inner.ready.iter() {
            let (k, v) = kv.map_err(e("integrity scan"))?;
            r.ready_entries += 1;
            match serde_json::from_slice::<ReadyAgenda>(&v) {
                Err(err) => r.problems.push(format!("ready {}: {err}", show_key(&k))),
                Ok(ra) => {
                    let want = format::ready_key(&ra.insight_id, &ra.customer_id, ra.priority, ra.added, &ra.agenda_id);
                    if want != k.as_ref() {
                        r.problems.push(format!(
                            "ready {}: key does not match entry of agenda {}",
                            show_key(&k),
                            ra.agenda_id
                        ));
                    }
                    let back = self.inner.ready_by_agenda.get(ra.agenda_id.as_bytes()).map_err(e("integrity scan"))?;
                    if back.as_deref() != Some(k.as_ref()) {
                        r.problems.push(format!("ready entry of agenda {} is not in readyByAgenda", ra.agenda_id));
                    }
                }
            }
        }
        for kv in self.inner.ready_by_agenda.iter() {
            let (k, v) = kv.map_err(e("integrity scan"))?;
            if !self.inner.ready.contains_key(&v).map_err(e("integrity scan"))? {
                r.problems.push(format!("readyByAgenda {} points at a missing ready entry", show_key(&k)));
            }
        }
        crate::queue::check_queue_integrity(&self.inner.q, &mut r)?;
        Ok(r)
    }
}

/// How long opening waits for the database's file lock: a store dropped in this process may hold it for a
/// moment while sled's background threads finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database, waiting up to [`LOCK_WAIT`] while its lock is held; after that the error
/// says that another process (or an open store) has the directory.
fn open_db(sc: &sled::Config, path: &std::path::Path) -> Result<sled::Db> {
    let until = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sc.open() {
            Ok(db) => return Ok(db),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= until {
                    return Err(sled_err(
                        format!(
                            "open sled database at {}: it is in use by another process or another open store \
                             (waited {LOCK_WAIT:?} for its lock); stop that one first",
                            path.display()
                        ),
                        e,
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(sled_err(format!("open sled database at {}", path.display()), e)),
        }
    }
}

/// Reads (or, for a new database, writes) the format version in the `meta` tree: returns
/// [`FORMAT_VERSION`], or [`FORMAT_VERSION_WITH_OLD_QUEUE`] or [`FORMAT_VERSION_WITHOUT_PHASES`] for a
/// database to upgrade.
fn check_format(db: &sled::Db, path: &Path) -> Result<u32> {
    let meta = db.open_tree(format::META_TREE).map_err(|e| sled_err("open tree meta", e))?;
    let found = meta.get(FORMAT_KEY).map_err(|e| sled_err("read the format version from tree meta", e))?;
    match found {
        Some(v) if v.as_ref() == FORMAT_VERSION.to_string().as_bytes() => Ok(FORMAT_VERSION),
        Some(v) if v.as_ref() == FORMAT_VERSION_WITH_OLD_QUEUE.to_string().as_bytes() => {
            Ok(FORMAT_VERSION_WITH_OLD_QUEUE)
        }
        Some(v) if v.as_ref() == FORMAT_VERSION_WITHOUT_PHASES.to_string().as_bytes() => {
            Ok(FORMAT_VERSION_WITHOUT_PHASES)
        }
        Some(v) => Err(SledError::UnknownFormat {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&v).into_owned(),
            supported: FORMAT_VERSION,
        }
        .into()),
        None => {
            let names = db.tree_names();
            let has_data = names.iter().any(|n| {
                n.as_ref() != format::META_TREE.as_bytes()
                    && n.as_ref() != b"__sled__default"
                    && db.open_tree(n).map(|t| !t.is_empty()).unwrap_or(true)
            }) || !db.is_empty();
            if has_data {
                return Err(SledError::UnknownFormat {
                    path: path.to_owned(),
                    found: "none (the database holds data but no format version)".into(),
                    supported: FORMAT_VERSION,
                }
                .into());
            }
            meta.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())
                .map_err(|e| sled_err("write the format version to tree meta", e))?;
            db.flush().map_err(|e| sled_err("flush the new database", e))?;
            Ok(FORMAT_VERSION)
        }
    }
}

/// Upgrades a database of format 1 to format 2 in place (see [`crate::format`]): gives every object
/// of a kind with a phase index the phase entry its body calls for, in its value and in the phase
/// tree, then records format 2. Runs inside `open`, before any other use of the database; an upgrade
/// cut short starts over at the next open (the phase tree is rebuilt from scratch).
fn upgrade_to_phases(db: &sled::Db, path: &Path, obj: &[Tree], phase: &[Tree]) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut indexed, mut unreadable) = (0usize, 0usize);
    for kind in Kind::ALL.into_iter().filter(|k| k.has_phase_index()) {
        let op = || format!("upgrade {}: build the phase index of {kind}", path.display());
        let (objs, phases) = (&obj[kind_slot(kind)], &phase[kind_slot(kind)]);
        phases.clear().map_err(|e| sled_err(op(), e))?;
        for kv in objs.iter() {
            let (k, v) = kv.map_err(|e| sled_err(op(), e))?;
            let rec = std::str::from_utf8(&k)
                .map_err(|_| corrupt(kind.as_str(), &k, "the id is not UTF-8"))
                .and_then(|id| format::decode_record(kind, id, &v));
            let entry = rec.and_then(|rec| pop_core::store::derive_phase(&rec).map(|p| (rec, p)));
            match entry {
                Ok((rec, Some(p))) => {
                    objs.insert(&k, format::encode_record(rec.version, &rec.indexes, Some(p), &rec.body))
                        .map_err(|e| sled_err(op(), e))?;
                    phases.insert(format::phase_key(p, &rec.id), &[]).map_err(|e| sled_err(op(), e))?;
                    indexed += 1;
                }
                Ok((_, None)) => {}
                Err(err) => {
                    unreadable += 1;
                    tracing::warn!(path = %path.display(), error = %err, "upgrade: an unreadable {kind} stays out of the phase index");
                }
            }
        }
    }
    db.flush().map_err(|e| sled_err(format!("upgrade {}: flush the phase index", path.display()), e))?;
    record_format(db, path, FORMAT_VERSION_WITH_OLD_QUEUE)?;
    tracing::info!(
        path = %path.display(),
        indexed,
        unreadable,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sled database upgraded from format {FORMAT_VERSION_WITHOUT_PHASES} to {FORMAT_VERSION_WITH_OLD_QUEUE} (phase index built)"
    );
    Ok(())
}

/// Writes `version` to `meta/format` and flushes it.
fn record_format(db: &sled::Db, path: &Path, version: u32) -> Result<()> {
    let meta = db.open_tree(format::META_TREE).map_err(|e| sled_err("open tree meta", e))?;
    meta.insert(FORMAT_KEY, version.to_string().as_bytes())
        .map_err(|e| sled_err("write the format version to tree meta", e))?;
    db.flush().map_err(|e| sled_err(format!("upgrade {}: flush the format version", path.display()), e))?;
    Ok(())
}

/// Upgrades the queue of a format-2 database to format 3 (see [`crate::format`]): rewrites the
/// items into the new trees, records format 3, then drops the old trees. Cut short before the
/// format is recorded, it starts over at the next open (the new trees are rebuilt from scratch).
fn upgrade_queue(db: &sled::Db, path: &Path, q: &QueueTrees) -> Result<()> {
    let started = std::time::Instant::now();
    let moved = crate::queue::upgrade_queue(db, q)?;
    record_format(db, path, FORMAT_VERSION)?;
    drop_old_queue(db, path)?;
    tracing::info!(
        path = %path.display(),
        moved,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sled database upgraded from format {FORMAT_VERSION_WITH_OLD_QUEUE} to {FORMAT_VERSION} (compact queue)"
    );
    Ok(())
}

/// Drops the trees of the format-2 queue, if an upgrade left them (it stopped after recording the
/// format).
fn drop_old_queue(db: &sled::Db, path: &Path) -> Result<()> {
    let names = db.tree_names();
    for name in [format::Q_ITEMS_TREE, format::Q_VISIBLE_TREE, format::Q_DEADLINE_TREE, format::Q_DEDUP_TREE] {
        if names.iter().any(|n| n.as_ref() == name.as_bytes()) {
            db.drop_tree(name)
                .map_err(|e| sled_err(format!("upgrade {}: drop the old queue tree {name}", path.display()), e))?;
        }
    }
    Ok(())
}

/// The trees a batch touches, in a fixed order, and where each is in the transaction's view.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Obj(usize),
    Idx(usize),
    Phase(usize),
    Ready,
    ReadyByAgenda,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

fn abort<T>(e: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

struct View<'a> {
    slots: &'a [Slot],
    trees: &'a [TransactionalTree],
}

impl View<'_> {
    fn tree(&self, tree: KvTree) -> &TransactionalTree {
        let slot = Slot::of(tree);
        let i = self.slots.iter().position(|s| *s == slot).unwrap_or(0);
        &self.trees[i]
    }
}

impl Slot {
    fn of(tree: KvTree) -> Self {
        match tree {
            KvTree::Obj(kind) => Slot::Obj(kind_slot(kind)),
            KvTree::Idx(kind) => Slot::Idx(kind_slot(kind)),
            KvTree::Phase(kind) => Slot::Phase(kind_slot(kind)),
            KvTree::Ready => Slot::Ready,
            KvTree::ReadyByAgenda => Slot::ReadyByAgenda,
        }
    }
}

impl KvTx for View<'_> {
    type Bytes = sled::IVec;
    type Error = ConflictableTransactionError<Error>;

    fn abort(e: Error) -> Self::Error {
        ConflictableTransactionError::Abort(e)
    }

    fn get(&mut self, tree: KvTree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        Ok(self.tree(tree).get(key)?)
    }

    fn insert(&mut self, tree: KvTree, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn remove(&mut self, tree: KvTree, key: &[u8]) -> TxResult<()> {
        self.tree(tree).remove(key)?;
        Ok(())
    }

    fn take(&mut self, tree: KvTree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        Ok(self.tree(tree).remove(key)?)
    }
}

impl OrderedRead for SledStore {
    type Bytes = sled::IVec;

    fn tree_name(&self, tree: KvTree) -> String {
        match tree {
            KvTree::Obj(kind) => format::obj_tree(kind),
            KvTree::Idx(kind) => format::idx_tree(kind),
            KvTree::Phase(kind) => format::phase_tree(kind),
            KvTree::Ready => format::READY_TREE.to_owned(),
            KvTree::ReadyByAgenda => format::READY_BY_AGENDA_TREE.to_owned(),
        }
    }

    fn get(&self, tree: KvTree, key: &[u8]) -> Result<Option<sled::IVec>> {
        self.tree(tree)
            .get(key)
            .map_err(|e| sled_err(format!("get {} in tree {}", show_key(key), self.tree_name(tree)), e))
    }

    fn range(
        &self,
        tree: KvTree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        _limit: usize,
    ) -> Entries<'_, sled::IVec> {
        Box::new(
            self.tree(tree)
                .range::<Vec<u8>, _>((start, end))
                .map(move |kv| kv.map_err(|e| sled_err(format!("scan tree {}", self.tree_name(tree)), e))),
        )
    }
}

impl SledStore {
    fn tree(&self, tree: KvTree) -> &Tree {
        match tree {
            KvTree::Obj(kind) => self.obj_tree(kind),
            KvTree::Idx(kind) => self.idx_tree(kind),
            KvTree::Phase(kind) => self.phase_tree(kind),
            KvTree::Ready => &self.inner.ready,
            KvTree::ReadyByAgenda => &self.inner.ready_by_agenda,
        }
    }
}

#[async_trait]
impl Store for SledStore {
    fn backend_name(&self) -> &'static str {
        "sled"
    }

    fn health(&self) -> Result<()> {
        self.inner.writable()
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        read::get(self, kind, id)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.inner.writable()?;
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > MAX_BATCH {
            return Err(Error::Unsupported(format!(
                "an atomic write of {} operations is more than the sled backend's limit of {MAX_BATCH}",
                ops.len()
            )));
        }
        for op in &ops {
            validate_op(op)?;
        }
        let mut slots: Vec<Slot> = write::trees_written(&ops).into_iter().map(Slot::of).collect();
        slots.sort();
        slots.dedup();
        let trees: Vec<Tree> = slots
            .iter()
            .map(|s| match s {
                Slot::Obj(i) => self.inner.obj[*i].clone(),
                Slot::Idx(i) => self.inner.idx[*i].clone(),
                Slot::Phase(i) => self.inner.phase[*i].clone(),
                Slot::Ready => self.inner.ready.clone(),
                Slot::ReadyByAgenda => self.inner.ready_by_agenda.clone(),
            })
            .collect();
        let outcome = trees.as_slice().transaction(|tx: &Vec<TransactionalTree>| {
            let mut view = View { slots: &slots, trees: tx };
            ops.iter().try_for_each(|op| write::apply(&mut view, op))
        });
        match outcome {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => {
                return Err(self
                    .inner
                    .storage_failed(format!("atomic write of {} operations ({})", ops.len(), op_label(&ops[0])), e));
            }
        }
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
        self.inner.writable()?;
        let got = self
            .inner
            .leases
            .transaction(|tx| {
                let stored = tx.get(name.as_bytes())?;
                match pop_store_kv::acquire_lease(name, stored.as_deref(), holder, now, ttl_ms) {
                    Ok(Some(value)) => {
                        tx.insert(name.as_bytes(), value)?;
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => abort(e),
                }
            })
            .map_err(|e| self.inner.tx_err(e, format!("acquire lease {name} for {holder}")))?;
        if got {
            self.inner.durable().await?;
        }
        Ok(got)
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.writable()?;
        let released = self
            .inner
            .leases
            .transaction(|tx| {
                let stored = tx.get(name.as_bytes())?;
                match pop_store_kv::releases_lease(name, stored.as_deref(), holder) {
                    Ok(true) => {
                        tx.remove(name.as_bytes())?;
                        Ok(true)
                    }
                    Ok(false) => Ok(false),
                    Err(e) => abort(e),
                }
            })
            .map_err(|e| self.inner.tx_err(e, format!("release lease {name} of {holder}")))?;
        if released {
            self.inner.durable().await?;
        }
        Ok(())
    }
}
