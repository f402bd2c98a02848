//! The write path of [`pop_core::store::Store::write`] inside one transaction of any ordered
//! key-value store with the layout of [`crate::codec`]: a backend implements [`KvTx`] for its
//! transaction and applies each [`WriteOp`] with [`apply`].

use crate::codec;
use crate::read::Tree;
use pop_core::Error;
use pop_core::store::{Record, WriteOp};

/// Reads and writes inside one transaction of a backend.
pub trait KvTx {
    /// The backend's bytes.
    type Bytes: AsRef<[u8]>;
    /// The backend's error inside a transaction (a storage error, or an abort carrying an [`Error`]).
    type Error;

    /// Aborts the transaction with `e`.
    fn abort(e: Error) -> Self::Error;

    /// The value under `key`, as this transaction sees it.
    fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error>;

    /// Writes `value` under `key`.
    fn insert(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Self::Error>;

    /// Removes `key`.
    fn remove(&mut self, tree: Tree, key: &[u8]) -> Result<(), Self::Error>;

    /// Removes `key` and returns what it held.
    fn take(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Self::Bytes>, Self::Error>;
}

/// A short description of `op`, for messages.
pub fn op_label(op: &WriteOp) -> String {
    match op {
        WriteOp::Create(r) => format!("create {} {}", r.kind, r.id),
        WriteOp::Update { record, .. } => format!("update {} {}", record.kind, record.id),
        WriteOp::Put(r) => format!("put {} {}", r.kind, r.id),
        WriteOp::Delete { kind, id, .. } => format!("delete {kind} {id}"),
        WriteOp::ReadyInsert(r) => format!("ready-insert agenda {}", r.agenda_id),
        WriteOp::ReadyRemove { agenda_id } => format!("ready-remove agenda {agenda_id}"),
    }
}

/// Checks what can be checked of `op` before a transaction: an id, an agenda id.
pub fn validate_op(op: &WriteOp) -> Result<(), Error> {
    let (kind, id) = match op {
        WriteOp::Create(r) | WriteOp::Update { record: r, .. } | WriteOp::Put(r) => (r.kind, &r.id),
        WriteOp::Delete { kind, id, .. } => (*kind, id),
        WriteOp::ReadyInsert(r) => {
            if r.agenda_id.is_empty() {
                return Err(Error::invalid("a ready entry needs an agendaId"));
            }
            return Ok(());
        }
        WriteOp::ReadyRemove { .. } => return Ok(()),
    };
    if id.is_empty() {
        return Err(Error::invalid(format!("{}: the {kind} id is empty", op_label(op))));
    }
    Ok(())
}

/// The trees a batch of operations writes.
pub fn trees_written(ops: &[WriteOp]) -> Vec<Tree> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            WriteOp::Create(Record { kind, .. })
            | WriteOp::Update { record: Record { kind, .. }, .. }
            | WriteOp::Put(Record { kind, .. })
            | WriteOp::Delete { kind, .. } => {
                out.extend([Tree::Obj(*kind), Tree::Idx(*kind)]);
                if kind.has_phase_index() {
                    out.push(Tree::Phase(*kind));
                }
            }
            WriteOp::ReadyInsert(_) | WriteOp::ReadyRemove { .. } => out.extend([Tree::Ready, Tree::ReadyByAgenda]),
        }
    }
    out
}

/// What a record write expects of the stored record.
#[derive(Clone, Copy)]
enum Expect {
    /// None stored (create).
    Absent,
    /// This version stored (compare-and-swap update).
    Version(u64),
    /// Anything (upsert).
    Any,
}

/// Writes a record with its index and phase entries, checking what is stored against `expect`.
fn write_record<T: KvTx>(tx: &mut T, rec: &Record, expect: Expect) -> Result<(), T::Error> {
    let (objs, idx) = (Tree::Obj(rec.kind), Tree::Idx(rec.kind));
    // Only the header of the record replaced is decoded (its body is checked, not copied).
    let old = match tx.get(objs, rec.id.as_bytes())? {
        None => None,
        Some(bytes) => Some(codec::decode_checked_header(rec.kind, &rec.id, bytes.as_ref()).map_err(T::abort)?),
    };
    let version = match (expect, &old) {
        (Expect::Absent, Some(_)) => {
            return Err(T::abort(Error::Conflict(format!("create {} {}: it already exists", rec.kind, rec.id))));
        }
        (Expect::Version(_), None) => return Err(T::abort(Error::not_found(rec.kind, rec.id.clone()))),
        (Expect::Version(expected), Some(old)) if old.version != expected => {
            return Err(T::abort(Error::Conflict(format!(
                "update {} {}: expected version {expected}, stored version is {}",
                rec.kind, rec.id, old.version
            ))));
        }
        (_, None) => 1,
        (_, Some(old)) => old.version + 1,
    };
    let indexes = codec::indexed_values(rec);
    let phase = codec::stored_phase(rec);
    let (old_indexes, old_phase) = match &old {
        Some(o) => (o.indexes.as_slice(), o.phase),
        None => (&[][..], None),
    };
    for (f, v) in old_indexes {
        if !indexes.iter().any(|(g, w)| g == f && w == v) {
            tx.remove(idx, &codec::index_key(*f, v, &rec.id))?;
        }
    }
    tx.insert(objs, rec.id.as_bytes(), &codec::encode_record(version, &indexes, phase, &rec.body))?;
    for (f, v) in &indexes {
        if !old_indexes.iter().any(|(g, w)| g == f && w == v) {
            tx.insert(idx, &codec::index_key(*f, v, &rec.id), &[])?;
        }
    }
    if old_phase != phase {
        let phases = Tree::Phase(rec.kind);
        if let Some(p) = old_phase {
            tx.remove(phases, &codec::phase_key(p, &rec.id))?;
        }
        if let Some(p) = phase {
            tx.insert(phases, &codec::phase_key(p, &rec.id), &[])?;
        }
    }
    Ok(())
}

/// Applies one operation of an atomic write in `tx`; an operation whose check fails aborts the
/// transaction with its `Conflict` or `NotFound`.
pub fn apply<T: KvTx>(tx: &mut T, op: &WriteOp) -> Result<(), T::Error> {
    match op {
        WriteOp::Create(rec) => write_record(tx, rec, Expect::Absent),
        WriteOp::Update { record, expected_version } => write_record(tx, record, Expect::Version(*expected_version)),
        WriteOp::Put(rec) => write_record(tx, rec, Expect::Any),
        WriteOp::Delete { kind, id, expected_version } => {
            let Some(old) = tx.get(Tree::Obj(*kind), id.as_bytes())? else {
                return Err(T::abort(Error::not_found(kind, id.clone())));
            };
            let old = codec::decode_checked_header(*kind, id, old.as_ref()).map_err(T::abort)?;
            if let Some(v) = expected_version {
                if old.version != *v {
                    return Err(T::abort(Error::Conflict(format!(
                        "delete {kind} {id}: expected version {v}, stored version is {}",
                        old.version
                    ))));
                }
            }
            tx.remove(Tree::Obj(*kind), id.as_bytes())?;
            for (f, v) in &old.indexes {
                tx.remove(Tree::Idx(*kind), &codec::index_key(*f, v, id))?;
            }
            if let Some(p) = old.phase {
                tx.remove(Tree::Phase(*kind), &codec::phase_key(p, id))?;
            }
            Ok(())
        }
        WriteOp::ReadyInsert(ra) => {
            if let Some(old_key) = tx.get(Tree::ReadyByAgenda, ra.agenda_id.as_bytes())? {
                let old_key = old_key.as_ref().to_vec();
                tx.remove(Tree::Ready, &old_key)?;
            }
            let key = codec::ready_key(&ra.insight_id, &ra.customer_id, ra.priority, ra.added, &ra.agenda_id);
            let body = serde_json::to_vec(ra).map_err(|e| T::abort(Error::backend("codec", e)))?;
            tx.insert(Tree::Ready, &key, &body)?;
            tx.insert(Tree::ReadyByAgenda, ra.agenda_id.as_bytes(), &key)
        }
        WriteOp::ReadyRemove { agenda_id } => {
            if let Some(old_key) = tx.take(Tree::ReadyByAgenda, agenda_id.as_bytes())? {
                let old_key = old_key.as_ref().to_vec();
                tx.remove(Tree::Ready, &old_key)?;
            }
            Ok(())
        }
    }
}
