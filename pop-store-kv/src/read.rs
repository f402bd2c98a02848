//! The read paths of [`pop_core::store::Store`] over any ordered key-value store with the layout of
//! [`crate::codec`]: a backend implements [`OrderedRead`] (point reads and range scans of its trees)
//! and its `Store` methods call these functions.

use crate::codec::{self, corrupt, show_key};
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, Record};
use pop_core::{Error, Result};
use std::ops::{Bound, Range};

/// A tree (a sled tree, a fjall partition) of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The objects of a kind, by id.
    Obj(Kind),
    /// The index entries of a kind: `c(field) c(value) id`.
    Idx(Kind),
    /// The phase entries of a kind: `phase at id`.
    Phase(Kind),
    /// The ready set: `c(insight) c(customer) prio added agendaId` → the `ReadyAgenda` as JSON.
    Ready,
    /// An agenda's key in the ready set.
    ReadyByAgenda,
}

/// The entries of a range scan, in key order.
pub type Entries<'a, B> = Box<dyn Iterator<Item = Result<(B, B)>> + 'a>;

/// A page of a range scan's entries, and whether more follow.
type PageOf<B> = (Vec<(B, B)>, bool);

/// Point reads and range scans of a backend's trees.
pub trait OrderedRead {
    /// The backend's bytes (a key or a value).
    type Bytes: AsRef<[u8]>;

    /// The tree's name, for messages.
    fn tree_name(&self, tree: Tree) -> String;

    /// The value under `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Self::Bytes>>;

    /// The entries from `start` to `end`, in key order; the caller reads at most `limit` of them (a
    /// backend that copies entries out may stop there).
    fn range(&self, tree: Tree, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, limit: usize) -> Entries<'_, Self::Bytes>;
}

/// Collects up to `limit` (+1 to know whether there is more) entries of `tree` after `start` that
/// begin with `prefix`.
fn range_page<S: OrderedRead + ?Sized>(
    s: &S,
    tree: Tree,
    prefix: &[u8],
    start: Bound<Vec<u8>>,
    limit: usize,
) -> Result<PageOf<S::Bytes>> {
    let mut out = Vec::new();
    for kv in s.range(tree, start, Bound::Unbounded, limit.saturating_add(1)) {
        let (k, v) = kv?;
        if !k.as_ref().starts_with(prefix) {
            break;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push((k, v));
    }
    Ok((out, false))
}

/// [`pop_core::store::Store::get`].
pub fn get<S: OrderedRead + ?Sized>(s: &S, kind: Kind, id: &str) -> Result<Option<Record>> {
    let v = s.get(Tree::Obj(kind), id.as_bytes())?;
    v.map(|v| codec::decode_record(kind, id, v.as_ref())).transpose()
}

/// [`pop_core::store::Store::query`].
pub fn query<S: OrderedRead + ?Sized>(
    s: &S,
    kind: Kind,
    field: IndexField,
    value: &str,
    page: PageRequest,
) -> Result<Page<Record>> {
    if !kind.indexed_fields().contains(&field) {
        let fields: Vec<&str> = kind.indexed_fields().iter().map(|f| f.as_str()).collect();
        return Err(Error::invalid(format!(
            "{kind} is not indexed by {field}; its indexed fields are: {}",
            if fields.is_empty() { "none".to_owned() } else { fields.join(", ") }
        )));
    }
    let prefix = codec::index_prefix(field, value);
    let mut start = match &page.cursor {
        Some(c) => Bound::Excluded([prefix.as_slice(), c.as_bytes()].concat()),
        None => Bound::Included(prefix.clone()),
    };
    let limit = page.effective_limit();
    let mut items = Vec::with_capacity(limit.min(1024));
    // Index entries whose object changed between the scan and the get are skipped; keep scanning
    // until the page is full or the index ends.
    loop {
        let (entries, more) = range_page(s, Tree::Idx(kind), &prefix, start, limit - items.len())?;
        let last = entries.last().map(|(k, _)| k.as_ref().to_vec());
        for (k, _) in entries {
            let k = k.as_ref();
            let id = std::str::from_utf8(&k[prefix.len()..])
                .map_err(|_| corrupt(s.tree_name(Tree::Idx(kind)), k, "the id in the index key is not UTF-8"))?;
            let Some(rec) = get(s, kind, id)? else { continue };
            if rec.indexes.iter().any(|(f, w)| *f == field && w == value) {
                items.push(rec);
            }
        }
        match (more, last) {
            (true, Some(last)) if items.len() < limit => start = Bound::Excluded(last),
            (true, _) => {
                let next = items.last().map(|r: &Record| r.id.clone());
                return Ok(Page { items, next });
            }
            (false, _) => return Ok(Page { items, next: None }),
        }
    }
}

/// [`pop_core::store::Store::scan`].
pub fn scan<S: OrderedRead + ?Sized>(s: &S, kind: Kind, page: PageRequest) -> Result<Page<Record>> {
    let start = match &page.cursor {
        Some(c) => Bound::Excluded(c.as_bytes().to_vec()),
        None => Bound::Unbounded,
    };
    let limit = page.effective_limit();
    let mut items = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    for kv in s.range(Tree::Obj(kind), start, Bound::Unbounded, limit.saturating_add(1)) {
        let (k, v) = kv?;
        if items.len() == limit {
            more = true;
            break;
        }
        let k = k.as_ref();
        let id = std::str::from_utf8(k).map_err(|_| corrupt(kind.as_str(), k, "the id is not UTF-8"))?;
        items.push(codec::decode_record(kind, id, v.as_ref())?);
    }
    let next = if more { items.last().map(|r| r.id.clone()) } else { None };
    Ok(Page { items, next })
}

/// [`pop_core::store::Store::query_phase`].
pub fn query_phase<S: OrderedRead + ?Sized>(
    s: &S,
    kind: Kind,
    phase: Phase,
    at: Range<Millis>,
    page: PageRequest,
) -> Result<Page<Record>> {
    if !kind.has_phase_index() {
        return Err(Error::Unsupported(format!("query {kind} by phase: {kind} has no phase index")));
    }
    let from = codec::phase_bound(phase, at.start);
    let end = codec::phase_bound(phase, at.end);
    let mut start = Bound::Included(from.to_vec());
    if let Some(c) = &page.cursor {
        let tail = codec::unhex(c).filter(|t| t.len() >= 8).ok_or_else(|| {
            Error::invalid(format!("query {kind} in phase {phase}: cursor {c:?} was not returned by this store"))
        })?;
        let after = [&[codec::phase_code(phase)], tail.as_slice()].concat();
        if after.as_slice() >= from.as_slice() {
            start = Bound::Excluded(after);
        }
    }
    let past_end = match &start {
        Bound::Included(k) | Bound::Excluded(k) => k.as_slice() >= end.as_slice(),
        Bound::Unbounded => false,
    };
    if at.start >= at.end || past_end {
        return Ok(Page { items: Vec::new(), next: None });
    }
    let limit = page.effective_limit();
    let mut items = Vec::with_capacity(limit.min(1024));
    let mut last_key: Option<Vec<u8>> = None;
    // Entries whose object changed between the index read and the get are skipped; keep going
    // until the page is full or the range ends.
    for kv in s.range(Tree::Phase(kind), start, Bound::Excluded(end.to_vec()), usize::MAX) {
        let (k, _) = kv?;
        let k = k.as_ref();
        let Some((entry, id)) = codec::parse_phase_key(k) else {
            return Err(corrupt(s.tree_name(Tree::Phase(kind)), k, "unparsable phase-index key"));
        };
        if items.len() == limit {
            let next = last_key.map(|k| codec::hex(&k[1..]));
            return Ok(Page { items, next });
        }
        let Some(rec) = get(s, kind, &id)? else { continue };
        if rec.phase == Some(entry) {
            items.push(rec);
            last_key = Some(k.to_vec());
        }
    }
    Ok(Page { items, next: None })
}

fn decode_ready<S: OrderedRead + ?Sized>(s: &S, key: &[u8], v: &[u8]) -> Result<ReadyAgenda> {
    serde_json::from_slice(v).map_err(|e| corrupt(s.tree_name(Tree::Ready), key, e.to_string()))
}

/// [`pop_core::store::Store::ready_get`].
pub fn ready_get<S: OrderedRead + ?Sized>(s: &S, agenda_id: &str) -> Result<Option<ReadyAgenda>> {
    let Some(key) = s.get(Tree::ReadyByAgenda, agenda_id.as_bytes())? else {
        return Ok(None);
    };
    let Some(v) = s.get(Tree::Ready, key.as_ref())? else {
        return Err(corrupt(
            s.tree_name(Tree::ReadyByAgenda),
            agenda_id.as_bytes(),
            format!("points at ready key {} that does not exist", show_key(key.as_ref())),
        ));
    };
    decode_ready(s, key.as_ref(), v.as_ref()).map(Some)
}

/// [`pop_core::store::Store::ready_list`].
pub fn ready_list<S: OrderedRead + ?Sized>(s: &S, insight_id: &str, page: PageRequest) -> Result<Page<ReadyAgenda>> {
    let prefix = codec::component(insight_id);
    let start = match &page.cursor {
        Some(c) => {
            let tail = codec::unhex(c)
                .ok_or_else(|| Error::invalid(format!("ready_list of insight {insight_id}: malformed cursor {c:?}")))?;
            Bound::Excluded([prefix.as_slice(), &tail].concat())
        }
        None => Bound::Included(prefix.clone()),
    };
    let (entries, more) = range_page(s, Tree::Ready, &prefix, start, page.effective_limit())?;
    let next = if more { entries.last().map(|(k, _)| codec::hex(&k.as_ref()[prefix.len()..])) } else { None };
    let items = entries.iter().map(|(k, v)| decode_ready(s, k.as_ref(), v.as_ref())).collect::<Result<Vec<_>>>()?;
    Ok(Page { items, next })
}

/// The length of the run prefix (`c(insight) c(customer) prio`) of the ready key `key` of `entry`,
/// whose insight component is `insight_len` bytes long; `None` when the key does not hold the entry's
/// customer and priority there.
///
/// Found from the entry rather than by scanning the key for the customer component's terminator: a
/// terminator `00` followed by a priority byte `FF` (the priorities from `i32::MIN` to
/// `i32::MIN + 2^24 - 1`) reads the same as an escaped NUL inside the customer id.
fn ready_run_len(key: &[u8], insight_len: usize, entry: &ReadyAgenda) -> Option<usize> {
    let customer = codec::component(&entry.customer_id);
    let end = insight_len + customer.len();
    let holds = key.get(insight_len..end) == Some(customer.as_slice())
        && key.get(end..end + 4) == Some(codec::prio_key(entry.priority).as_slice());
    holds.then_some(end + 4)
}

/// The least key after every key that begins with `prefix` (`None`: there is none).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The most ready entries [`ready_heads`] asks one range call for: fjall copies a range out of its
/// in-memory mirror under the lock its queue also takes, so a read of a whole backlog (an algorithm
/// that is not in run order, an explanation) is cut into such pieces, as [`ready_list`]'s pages are.
const HEADS_CHUNK: usize = 1_000;

/// [`pop_core::store::Store::ready_heads`]: reads a run's first `per_run` entries, then seeks past
/// the run, so a long run costs no more than a short one.
pub fn ready_heads<S: OrderedRead + ?Sized>(
    s: &S,
    insight_id: &str,
    per_run: usize,
    limit: usize,
) -> Result<Vec<ReadyAgenda>> {
    let prefix = codec::component(insight_id);
    let end = match prefix_successor(&prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    if per_run == 0 || limit == 0 {
        return Ok(out);
    }
    let mut start = Bound::Included(prefix.clone());
    // The run being read: its prefix and how many of its entries were kept.
    let mut run: Option<(Vec<u8>, usize)> = None;
    loop {
        // Enough to finish the current run's share and see where the next run begins, at most
        // `HEADS_CHUNK` per range call (a store may hold a lock while it copies them).
        let want = per_run.min(limit - out.len()).saturating_add(1).min(HEADS_CHUNK);
        let (mut read, mut seek, mut last) = (0, None, None);
        for kv in s.range(Tree::Ready, start.clone(), end.clone(), want) {
            let (k, v) = kv?;
            let k = k.as_ref();
            read += 1;
            let entry = decode_ready(s, k, v.as_ref())?;
            let len = ready_run_len(k, prefix.len(), &entry).ok_or_else(|| {
                corrupt(s.tree_name(Tree::Ready), k, "a ready key without its entry's customer and priority")
            })?;
            let kept = match &mut run {
                Some((p, n)) if p.as_slice() == &k[..len] => n,
                _ => &mut run.insert((k[..len].to_vec(), 0)).1,
            };
            if *kept == per_run {
                // The run's share is read: go on from the next run.
                seek = Some(prefix_successor(&k[..len]));
                break;
            }
            *kept += 1;
            out.push(entry);
            if out.len() == limit {
                return Ok(out);
            }
            last = Some(k.to_vec());
            if read == want {
                break;
            }
        }
        start = match (seek, last) {
            (Some(Some(after)), _) => Bound::Included(after),
            (Some(None), _) => return Ok(out),
            // the range ended before `want` entries
            _ if read < want => return Ok(out),
            (None, Some(k)) => Bound::Excluded(k),
            (None, None) => return Ok(out),
        };
    }
}
