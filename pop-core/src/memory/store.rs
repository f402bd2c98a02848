//! [`MemoryStore`]: the in-memory [`Store`].

use super::{deadline, read, write};
use crate::error::{Error, Result};
use crate::model::{Millis, ReadyAgenda};
use crate::store::{IndexField, Kind, Page, PageRequest, Phase, Record, Store, WriteOp};
use async_trait::async_trait;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, Range};
use std::sync::RwLock;

const BACKEND: &str = "memory";

/// A thread-safe in-memory [`Store`]: objects with versions and indexes, the ready set and named
/// leases, behind one `RwLock` (so every [`Store::write`] batch is trivially atomic and isolated).
///
/// Batches are applied in order: each op's condition is checked against the state the ops before it
/// in the same batch leave, and nothing is applied unless every condition holds. (Backends built on
/// DynamoDB transactions refuse two ops on the same key in one batch; portable callers avoid that.)
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    max_batch: usize,
}

/// The key of the ready-set order: insight, customer, priority descending, added, agenda.
type ReadyKey = (String, String, Reverse<i32>, Millis, String);

#[derive(Debug, Default)]
struct State {
    /// kind → id → record
    objects: HashMap<Kind, BTreeMap<String, Record>>,
    /// (kind, field, value, id)
    index: BTreeSet<(Kind, IndexField, String, String)>,
    /// The phase index: (kind, phase, time, id)
    phases: BTreeSet<(Kind, Phase, Millis, String)>,
    /// agenda id → its entry
    ready: HashMap<String, ReadyAgenda>,
    /// the ready-set order
    ready_order: BTreeSet<ReadyKey>,
    /// lease name → (holder, deadline)
    leases: HashMap<String, (String, Millis)>,
}

fn ready_key(r: &ReadyAgenda) -> ReadyKey {
    (r.insight_id.clone(), r.customer_id.clone(), Reverse(r.priority), r.added, r.agenda_id.clone())
}

impl MemoryStore {
    /// The default [`Store::max_batch`] of the in-memory store.
    pub const DEFAULT_MAX_BATCH: usize = 1000;

    /// An empty store accepting batches of up to [`MemoryStore::DEFAULT_MAX_BATCH`] writes.
    pub fn new() -> Self {
        Self::with_max_batch(Self::DEFAULT_MAX_BATCH)
    }

    /// An empty store accepting batches of up to `max_batch` writes (at least 1), e.g. 100 to behave
    /// like DynamoDB in tests.
    pub fn with_max_batch(max_batch: usize) -> Self {
        Self { state: RwLock::new(State::default()), max_batch: max_batch.max(1) }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks that a record to write is well-formed: an id, and only the kind's indexed fields.
fn check_record(op: &str, record: &Record) -> Result<()> {
    if record.id.is_empty() {
        return Err(Error::invalid(format!("{op} {}: the record has an empty id", record.kind)));
    }
    if record.phase.is_some() && !record.kind.has_phase_index() {
        return Err(Error::invalid(format!(
            "{op} {} {}: the record has a phase entry, but {} has no phase index",
            record.kind, record.id, record.kind
        )));
    }
    for (field, _) in &record.indexes {
        if !record.kind.indexed_fields().contains(field) {
            return Err(Error::invalid(format!(
                "{op} {} {}: {} is not an indexed field of {} (indexed: {})",
                record.kind,
                record.id,
                field,
                record.kind,
                field_list(record.kind)
            )));
        }
    }
    Ok(())
}

fn field_list(kind: Kind) -> String {
    let fields: Vec<&str> = kind.indexed_fields().iter().map(|f| f.as_str()).collect();
    if fields.is_empty() { "none".to_owned() } else { fields.join(", ") }
}

impl State {
    fn version(&self, kind: Kind, id: &str) -> Option<u64> {
        self.objects.get(&kind).and_then(|m| m.get(id)).map(|r| r.version)
    }

    /// Checks every op against the state as the ops before it leave it; changes nothing.
    fn validate(&self, ops: &[WriteOp]) -> Result<()> {
        // The version each key has after the ops checked so far (None: absent).
        let mut staged: HashMap<(Kind, &str), Option<u64>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let at = |msg: String| format!("{msg} (write {} of {})", i + 1, ops.len());
            match op {
                WriteOp::Create(record) => {
                    check_record("create", record)?;
                    let key = (record.kind, record.id.as_str());
                    let current = staged.get(&key).copied().unwrap_or_else(|| self.version(key.0, key.1));
                    if let Some(v) = current {
                        return Err(Error::Conflict(at(format!(
                            "create {} {}: it already exists (version {v})",
                            record.kind, record.id
                        ))));
                    }
                    staged.insert(key, Some(1));
                }
                WriteOp::Update { record, expected_version } => {
                    check_record("update", record)?;
                    let key = (record.kind, record.id.as_str());
                    match staged.get(&key).copied().unwrap_or_else(|| self.version(key.0, key.1)) {
                        None => return Err(Error::not_found(record.kind, record.id.clone())),
                        Some(v) if v != *expected_version => {
                            return Err(Error::Conflict(at(format!(
                                "update {} {}: expected version {expected_version} but the stored version is {v}",
                                record.kind, record.id
                            ))));
                        }
                        Some(v) => {
                            staged.insert(key, Some(v + 1));
                        }
                    }
                }
                WriteOp::Put(record) => {
                    check_record("put", record)?;
                    let key = (record.kind, record.id.as_str());
                    let current = staged.get(&key).copied().unwrap_or_else(|| self.version(key.0, key.1));
                    staged.insert(key, Some(current.map_or(1, |v| v + 1)));
                }
                WriteOp::Delete { kind, id, expected_version } => {
                    let key = (*kind, id.as_str());
                    match staged.get(&key).copied().unwrap_or_else(|| self.version(*kind, id)) {
                        None => return Err(Error::not_found(kind, id.clone())),
                        Some(v) if expected_version.is_some_and(|e| e != v) => {
                            return Err(Error::Conflict(at(format!(
                                "delete {kind} {id}: expected version {} but the stored version is {v}",
                                expected_version.unwrap_or_default()
                            ))));
                        }
                        Some(_) => {
                            staged.insert(key, None);
                        }
                    }
                }
                WriteOp::ReadyInsert(entry) => {
                    if entry.agenda_id.is_empty() {
                        return Err(Error::invalid(at("ready insert: the entry has an empty agendaId".to_owned())));
                    }
                    if entry.insight_id.is_empty() {
                        return Err(Error::invalid(at(format!(
                            "ready insert of agenda {}: the entry has an empty insightId",
                            entry.agenda_id
                        ))));
                    }
                }
                WriteOp::ReadyRemove { .. } => {}
            }
        }
        Ok(())
    }

    /// Applies validated ops; cannot fail.
    fn apply(&mut self, ops: Vec<WriteOp>) {
        for op in ops {
            match op {
                WriteOp::Create(mut record) => {
                    record.version = 1;
                    self.put(record);
                }
                WriteOp::Update { mut record, expected_version } => {
                    record.version = expected_version + 1;
                    self.put(record);
                }
                WriteOp::Put(mut record) => {
                    record.version = self.version(record.kind, &record.id).map_or(1, |v| v + 1);
                    self.put(record);
                }
                WriteOp::Delete { kind, id, .. } => {
                    self.remove(kind, &id);
                }
                WriteOp::ReadyInsert(entry) => {
                    self.ready_remove(&entry.agenda_id);
                    self.ready_order.insert(ready_key(&entry));
                    self.ready.insert(entry.agenda_id.clone(), entry);
                }
                WriteOp::ReadyRemove { agenda_id } => self.ready_remove(&agenda_id),
            }
        }
    }

    fn put(&mut self, record: Record) {
        self.remove(record.kind, &record.id);
        for (field, value) in &record.indexes {
            self.index.insert((record.kind, *field, value.clone(), record.id.clone()));
        }
        if let Some(p) = record.phase {
            self.phases.insert((record.kind, p.phase, p.at, record.id.clone()));
        }
        self.objects.entry(record.kind).or_default().insert(record.id.clone(), record);
    }

    fn remove(&mut self, kind: Kind, id: &str) {
        if let Some(old) = self.objects.get_mut(&kind).and_then(|m| m.remove(id)) {
            for (field, value) in old.indexes {
                self.index.remove(&(kind, field, value, old.id.clone()));
            }
            if let Some(p) = old.phase {
                self.phases.remove(&(kind, p.phase, p.at, old.id));
            }
        }
    }

    fn ready_remove(&mut self, agenda_id: &str) {
        if let Some(old) = self.ready.remove(agenda_id) {
            self.ready_order.remove(&ready_key(&old));
        }
    }
}

/// Takes up to `limit` items and says whether more follow.
fn paginate<T>(iter: impl Iterator<Item = T>, limit: usize) -> (Vec<T>, bool) {
    let mut items: Vec<T> = iter.take(limit + 1).collect();
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}

fn encode_ready_cursor(key: &ReadyKey) -> String {
    serde_json::json!([key.1, key.2.0, key.3, key.4]).to_string()
}

fn decode_ready_cursor(insight_id: &str, cursor: &str) -> Result<ReadyKey> {
    let (customer, priority, added, agenda): (String, i32, Millis, String) =
        serde_json::from_str(cursor).map_err(|e| {
            Error::invalid(format!(
                "ready list of insight {insight_id}: cursor {cursor:?} was not returned by this store ({e})"
            ))
        })?;
    Ok((insight_id.to_owned(), customer, Reverse(priority), added, agenda))
}

fn decode_phase_cursor(kind: Kind, phase: Phase, cursor: &str) -> Result<(Millis, String)> {
    serde_json::from_str(cursor).map_err(|e| {
        Error::invalid(format!("query {kind} in phase {phase}: cursor {cursor:?} was not returned by this store ({e})"))
    })
}

#[async_trait]
impl Store for MemoryStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>> {
        Ok(read(&self.state).objects.get(&kind).and_then(|m| m.get(id)).cloned())
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        if ops.len() > self.max_batch {
            return Err(Error::Unsupported(format!(
                "a {BACKEND} store batch holds at most {} writes, this one has {}: split it into several batches",
                self.max_batch,
                ops.len()
            )));
        }
        let mut state = write(&self.state);
        state.validate(&ops)?;
        state.apply(ops);
        Ok(())
    }

    async fn query(&self, kind: Kind, field: IndexField, value: &str, page: PageRequest) -> Result<Page<Record>> {
        if !kind.indexed_fields().contains(&field) {
            return Err(Error::Unsupported(format!(
                "query {kind} by {field}: {kind} is not indexed by {field} (indexed: {})",
                field_list(kind)
            )));
        }
        let limit = page.effective_limit();
        let state = read(&self.state);
        let start = match &page.cursor {
            Some(c) => Bound::Excluded((kind, field, value.to_owned(), c.clone())),
            None => Bound::Included((kind, field, value.to_owned(), String::new())),
        };
        let objects = state.objects.get(&kind);
        let hits = state
            .index
            .range((start, Bound::Unbounded))
            .take_while(|(k, f, v, _)| *k == kind && *f == field && v == value)
            .filter_map(|(_, _, _, id)| objects.and_then(|m| m.get(id)));
        let (items, more) = paginate(hits, limit);
        let next = if more { items.last().map(|r| r.id.clone()) } else { None };
        Ok(Page { items: items.into_iter().cloned().collect(), next })
    }

    async fn scan(&self, kind: Kind, page: PageRequest) -> Result<Page<Record>> {
        let limit = page.effective_limit();
        let state = read(&self.state);
        let Some(objects) = state.objects.get(&kind) else {
            return Ok(Page { items: Vec::new(), next: None });
        };
        let start = match &page.cursor {
            Some(c) => Bound::Excluded(c.clone()),
            None => Bound::Unbounded,
        };
        let (items, more) = paginate(objects.range((start, Bound::Unbounded)).map(|(_, r)| r), limit);
        let next = if more { items.last().map(|r| r.id.clone()) } else { None };
        Ok(Page { items: items.into_iter().cloned().collect(), next })
    }

    async fn query_phase(
        &self,
        kind: Kind,
        phase: Phase,
        at: Range<Millis>,
        page: PageRequest,
    ) -> Result<Page<Record>> {
        if !kind.has_phase_index() {
            return Err(Error::Unsupported(format!("query {kind} by phase: {kind} has no phase index")));
        }
        if at.start >= at.end {
            return Ok(Page { items: Vec::new(), next: None });
        }
        let limit = page.effective_limit();
        let start = match &page.cursor {
            Some(c) => {
                let (t, id) = decode_phase_cursor(kind, phase, c)?;
                if t < at.start {
                    Bound::Included((kind, phase, at.start, String::new()))
                } else {
                    Bound::Excluded((kind, phase, t, id))
                }
            }
            None => Bound::Included((kind, phase, at.start, String::new())),
        };
        let state = read(&self.state);
        let objects = state.objects.get(&kind);
        let hits = state
            .phases
            .range((start, Bound::Unbounded))
            .take_while(|(k, p, t, _)| *k == kind && *p == phase && *t < at.end)
            .filter_map(|(_, _, t, id)| objects.and_then(|m| m.get(id)).map(|r| (*t, r)));
        let (items, more) = paginate(hits, limit);
        let next = if more { items.last().map(|(t, r)| serde_json::json!([t, r.id]).to_string()) } else { None };
        Ok(Page { items: items.into_iter().map(|(_, r)| r.clone()).collect(), next })
    }

    async fn ready_get(&self, agenda_id: &str) -> Result<Option<ReadyAgenda>> {
        Ok(read(&self.state).ready.get(agenda_id).cloned())
    }

    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>> {
        let limit = page.effective_limit();
        let start = match &page.cursor {
            Some(c) => Bound::Excluded(decode_ready_cursor(insight_id, c)?),
            None => {
                Bound::Included((insight_id.to_owned(), String::new(), Reverse(i32::MAX), Millis::MIN, String::new()))
            }
        };
        let state = read(&self.state);
        let keys = state.ready_order.range((start, Bound::Unbounded)).take_while(|k| k.0 == insight_id);
        let (keys, more) = paginate(keys, limit);
        let next = if more { keys.last().map(|k| encode_ready_cursor(k)) } else { None };
        let items = keys.into_iter().filter_map(|k| state.ready.get(&k.4).cloned()).collect();
        Ok(Page { items, next })
    }

    /// Reads each run's first `per_run` entries, then seeks past the run.
    async fn ready_heads(&self, insight_id: &str, per_run: usize, limit: usize) -> Result<Vec<ReadyAgenda>> {
        let mut out = Vec::new();
        if per_run == 0 || limit == 0 {
            return Ok(out);
        }
        let state = read(&self.state);
        let mut start: ReadyKey = (insight_id.to_owned(), String::new(), Reverse(i32::MAX), Millis::MIN, String::new());
        'runs: loop {
            let mut kept = 0;
            let mut next = None;
            for k in state.ready_order.range(start.clone()..).take_while(|k| k.0 == insight_id) {
                if kept > 0 && (k.1 != start.1 || k.2 != start.2) {
                    // the run ended before its share was read
                    next = Some(k.clone());
                    break;
                }
                if kept == 0 {
                    (start.1, start.2) = (k.1.clone(), k.2);
                }
                if let Some(e) = state.ready.get(&k.4) {
                    out.push(e.clone());
                    if out.len() == limit {
                        break 'runs;
                    }
                }
                kept += 1;
                if kept == per_run {
                    break;
                }
            }
            start = match next {
                Some(k) => k,
                None if kept < per_run => break,
                // past the run: its priority's successor, or the customer's successor after `i32::MIN`
                None => match start.2.0.checked_sub(1) {
                    Some(p) => (insight_id.to_owned(), start.1.clone(), Reverse(p), Millis::MIN, String::new()),
                    None => {
                        (insight_id.to_owned(), format!("{}\0", start.1), Reverse(i32::MAX), Millis::MIN, String::new())
                    }
                },
            };
        }
        Ok(out)
    }

    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> Result<bool> {
        if holder.is_empty() {
            return Err(Error::invalid(format!("acquire lease {name}: the holder is empty")));
        }
        let mut state = write(&self.state);
        if state.leases.get(name).is_some_and(|(current, until)| current != holder && *until > now) {
            return Ok(false);
        }
        state.leases.insert(name.to_owned(), (holder.to_owned(), deadline(now, ttl_ms)));
        Ok(true)
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        let mut state = write(&self.state);
        if state.leases.get(name).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(name);
        }
        Ok(())
    }
}
