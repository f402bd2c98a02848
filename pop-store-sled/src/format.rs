//! The on-disk format, version [`FORMAT_VERSION`]: tree names, key and value encodings.
//!
//! # Trees
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `format` | the format version as ASCII decimal (`3`) |
//! | `obj/<kind>` (one per [`Kind`]) | the object id (UTF-8) | a [record value](#record-value) |
//! | `idx/<kind>` (one per kind) | `c(field) c(value) id` | empty |
//! | `phase/<kind>` (one per kind; only `agendaProgress` has entries) | `phase(1) at(8) id` | empty: the phase index |
//! | `ready` | `c(insight) c(customer) prio(4) added(8) agendaId` | the `ReadyAgenda` as JSON |
//! | `readyByAgenda` | agenda id | the entry's key in `ready` |
//! | `leases` | lease name | `expires(8) holder` |
//! | `q/entries` | `c(insight) agendaId` | a [queue entry](#queue-entry) |
//! | `q/order` | `c(insight) slot(8) seq(8)` | the agenda id: `slot` is `i64::MIN` while the item is visible (never leased, or released), else its lease deadline |
//! | `q/count` | insight id | the number of items, `u64` big-endian |
//!
//! `c(s)` is a key component: the UTF-8 bytes of `s` with every `0x00` written as `0x00 0xFF`, then a
//! `0x00` separator. UTF-8 never contains `0xFF`, so the encoding is unambiguous, and it keeps the
//! strings' order, so a range scan over `c(a)` lists keys by the next component. The last
//! component (an id) is written raw, so a range scan lists ids ascending and the last id is the cursor.
//!
//! Integers are big-endian so that byte order is numeric order; signed integers have their sign bit
//! flipped (`added`, `deadline`, `expires`, `at`: `i64`); `prio` is the `i32` priority with its sign bit
//! flipped and then all bits inverted, so higher priorities sort first. `phase` is the phase code
//! (1 unfinished, 2 retryable, 3 finished), so one range scan over `phase at(from) .. phase at(before)`
//! lists a phase's entries of a time range by (time, id).
//!
//! # Record value
//!
//! ```text
//! version: u64 BE
//! n: u8                      bits 0–6: number of index values; bit 7: a phase entry follows them
//! n × { field: u8, len: u32 BE, value: len bytes UTF-8 }
//! [phase: u8, at: 8]         the phase entry (when bit 7 of n is set)
//! body: the rest             the object's JSON
//! ```
//!
//! # Queue entry
//!
//! ```text
//! seq: u64 BE                the item's sequence number (push order; its key in q/order)
//! epoch: u64 BE              the epoch of the latest delivery (0 before the first)
//! leased: u8                 1 while leased, 0 while visible
//! deadline: 8                the lease deadline (i64, sign bit flipped; 0 while visible)
//! rlen: u8, receipt: rlen    the receipt of the current delivery (empty while visible)
//! item: the rest             the queued ReadyAgenda as JSON
//! ```
//!
//! Field codes: 1 customerId, 2 linkId, 3 agendaId, 4 agendaProgressId, 5 resourcePoolId, 6 insightId,
//! 7 title.
//!
//! # Versions
//!
//! * 1: no phase index (no `phase/<kind>` trees, bit 7 of `n` never set).
//! * 2: the phase index. A version-1 record value is a valid version-2 value without a
//!   phase entry, so opening a version-1 database upgrades it in place, once: each agenda progress
//!   gets the phase entry its body calls for ([`pop_core::store::derive_phase`]) in its value and in
//!   `phase/agendaProgress`, then `meta/format` becomes `2` (an upgrade cut short by a crash starts
//!   over at the next open). A version-1 build refuses a version-2 database.
//! * 3 (this build): the compact queue. Version 2 kept a queue item in four trees (`q/items` with a
//!   JSON entry under `c(insight) seq`, `q/visible`, `q/deadline` under `c(insight) deadline seq`,
//!   `q/dedup` under `c(insight) agendaId`); version 3 keeps it in two (`q/entries`, `q/order`), so a
//!   push and an ack write two keys instead of three. Opening a version-1 or version-2 database
//!   rewrites its queue items (epochs, receipts and deadlines kept: a lease held across the upgrade
//!   is still current), records `3`, then drops the old trees; an upgrade cut short before the
//!   format is recorded starts over at the next open. Builds of versions 1 and 2 refuse a
//!   version-3 database.

use pop_core::Error;
use pop_core::model::Millis;
use pop_core::store::{IndexField, Kind, Phase, PhaseEntry, Record};

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 3;

/// The format version with the four-tree queue (`q/items`, `q/visible`, `q/deadline`, `q/dedup`),
/// which opening upgrades to [`FORMAT_VERSION`].
pub const FORMAT_VERSION_WITH_OLD_QUEUE: u32 = 2;

/// The format version without the phase index, which opening upgrades to [`FORMAT_VERSION`].
pub const FORMAT_VERSION_WITHOUT_PHASES: u32 = 1;

/// Bit 7 of a record value's index count: a phase entry follows the index values.
const HAS_PHASE: u8 = 0x80;

/// The `meta` tree.
pub const META_TREE: &str = "meta";
/// The key of the format version in `meta`.
pub const FORMAT_KEY: &[u8] = b"format";
/// The ready set.
pub const READY_TREE: &str = "ready";
/// Agenda id → key in the ready tree.
pub const READY_BY_AGENDA_TREE: &str = "readyByAgenda";
/// Named leases.
pub const LEASES_TREE: &str = "leases";
/// Queue entries by agenda.
pub const Q_ENTRIES_TREE: &str = "q/entries";
/// Queue items in delivery order: visible ones by push order, then leases by deadline.
pub const Q_ORDER_TREE: &str = "q/order";
/// Format 2: queue items (read by the upgrade only).
pub const Q_ITEMS_TREE: &str = "q/items";
/// Format 2: visible queue items (dropped by the upgrade).
pub const Q_VISIBLE_TREE: &str = "q/visible";
/// Format 2: leased queue items by deadline (dropped by the upgrade).
pub const Q_DEADLINE_TREE: &str = "q/deadline";
/// Format 2: queue dedup by agenda id (dropped by the upgrade).
pub const Q_DEDUP_TREE: &str = "q/dedup";
/// Queue lengths.
pub const Q_COUNT_TREE: &str = "q/count";

/// The object tree of a kind.
pub fn obj_tree(kind: Kind) -> String {
    format!("obj/{kind}")
}

/// The index tree of a kind.
pub fn idx_tree(kind: Kind) -> String {
    format!("idx/{kind}")
}

/// The phase-index tree of a kind.
pub fn phase_tree(kind: Kind) -> String {
    format!("phase/{kind}")
}

/// The one-byte code of a phase.
pub fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Unfinished => 1,
        Phase::Retryable => 2,
        Phase::Finished => 3,
    }
}

fn phase_from_code(c: u8) -> Option<Phase> {
    Some(match c {
        1 => Phase::Unfinished,
        2 => Phase::Retryable,
        3 => Phase::Finished,
        _ => return None,
    })
}

/// A phase-index key: `phase at id`.
pub fn phase_key(entry: PhaseEntry, id: &str) -> Vec<u8> {
    let mut k = phase_bound(entry.phase, entry.at).to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// The key before every entry of `phase` at `at` or later (and after every earlier one).
pub fn phase_bound(phase: Phase, at: Millis) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = phase_code(phase);
    k[1..].copy_from_slice(&i64_key(at));
    k
}

/// Parses a phase-index key into (entry, id).
pub fn parse_phase_key(key: &[u8]) -> Option<(PhaseEntry, String)> {
    let phase = phase_from_code(*key.first()?)?;
    let at = i64_from_key(key.get(1..9)?)?;
    let id = String::from_utf8(key.get(9..)?.to_vec()).ok()?;
    Some((PhaseEntry { phase, at }, id))
}

/// `Error::Corrupt` for a value in `tree` at `key`.
pub fn corrupt(tree: impl Into<String>, key: &[u8], reason: impl Into<String>) -> Error {
    Error::Corrupt { kind: tree.into(), id: show_key(key), reason: reason.into() }
}

/// A key for messages: printable ASCII as is, other bytes as `\xNN` (`\0` for the separator).
pub fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.contains('\0') => s.to_owned(),
        _ => {
            let mut out = String::new();
            for &b in key {
                match b {
                    0 => out.push_str("\\0"),
                    0x20..=0x7e => out.push(b as char),
                    _ => out.push_str(&format!("\\x{b:02x}")),
                }
            }
            out
        }
    }
}

/// Appends `c(s)`.
pub fn push_component(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.push(0);
}

/// `c(s)` alone: the prefix of every key under `s`.
pub fn component(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 1);
    push_component(&mut out, s);
    out
}

/// Splits one component off the front of `key`: (the string, the rest).
pub fn split_component(key: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < key.len() {
        let b = key[i];
        if b == 0 {
            if key.get(i + 1) == Some(&0xFF) {
                out.push(0);
                i += 2;
                continue;
            }
            let s = String::from_utf8(out).ok()?;
            return Some((s, &key[i + 1..]));
        }
        out.push(b);
        i += 1;
    }
    None
}

/// `i64` → 8 bytes whose byte order is numeric order.
pub fn i64_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`i64_key`].
pub fn i64_from_key(b: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

/// `i32` priority → 4 bytes that sort higher priorities first.
pub fn prio_key(p: i32) -> [u8; 4] {
    (!((p as u32) ^ (1 << 31))).to_be_bytes()
}

/// `u64` from 8 big-endian bytes.
pub fn u64_from(b: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

fn field_code(f: IndexField) -> u8 {
    match f {
        IndexField::CustomerId => 1,
        IndexField::LinkId => 2,
        IndexField::AgendaId => 3,
        IndexField::AgendaProgressId => 4,
        IndexField::ResourcePoolId => 5,
        IndexField::InsightId => 6,
        IndexField::Title => 7,
    }
}

fn field_from_code(c: u8) -> Option<IndexField> {
    Some(match c {
        1 => IndexField::CustomerId,
        2 => IndexField::LinkId,
        3 => IndexField::AgendaId,
        4 => IndexField::AgendaProgressId,
        5 => IndexField::ResourcePoolId,
        6 => IndexField::InsightId,
        7 => IndexField::Title,
        _ => return None,
    })
}

/// The index values of `rec` this backend stores: only the kind's indexed fields, first value of each.
pub fn indexed_values(rec: &Record) -> Vec<(IndexField, String)> {
    let mut out: Vec<(IndexField, String)> = Vec::new();
    for (f, v) in &rec.indexes {
        if rec.kind.indexed_fields().contains(f) && !out.iter().any(|(g, _)| g == f) {
            out.push((*f, v.clone()));
        }
    }
    out
}

/// The phase entry of `rec` this backend stores: only for a kind with a phase index.
pub fn stored_phase(rec: &Record) -> Option<PhaseEntry> {
    rec.phase.filter(|_| rec.kind.has_phase_index())
}

/// Encodes a record value (at most 127 index values: a kind has at most 7).
pub fn encode_record(
    version: u64,
    indexes: &[(IndexField, String)],
    phase: Option<PhaseEntry>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + body.len() + indexes.iter().map(|(_, v)| v.len() + 5).sum::<usize>());
    out.extend_from_slice(&version.to_be_bytes());
    out.push((indexes.len() as u8 & !HAS_PHASE) | if phase.is_some() { HAS_PHASE } else { 0 });
    for (f, v) in indexes {
        out.push(field_code(*f));
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    if let Some(p) = phase {
        out.push(phase_code(p.phase));
        out.extend_from_slice(&i64_key(p.at));
    }
    out.extend_from_slice(body);
    out
}

/// Decodes a record value stored under `id` in the object tree of `kind`.
pub fn decode_record(kind: Kind, id: &str, bytes: &[u8]) -> Result<Record, Error> {
    let (header, pos) = decode_header(kind, id, bytes)?;
    let body = bytes[pos..].to_vec();
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err(Error::Corrupt {
            kind: kind.to_string(),
            id: id.to_owned(),
            reason: "the body is not JSON".into(),
        });
    }
    Ok(Record { kind, id: id.to_owned(), version: header.version, indexes: header.indexes, phase: header.phase, body })
}

/// [`decode_header`], and the body checked to be JSON (`Corrupt` otherwise) without copying it.
pub fn decode_checked_header(kind: Kind, id: &str, bytes: &[u8]) -> Result<RecordHeader, Error> {
    let (header, pos) = decode_header(kind, id, bytes)?;
    if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes[pos..]).is_err() {
        return Err(Error::Corrupt {
            kind: kind.to_string(),
            id: id.to_owned(),
            reason: "the body is not JSON".into(),
        });
    }
    Ok(header)
}

/// What a write needs of the record it replaces: its version, index values and phase entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The stored version.
    pub version: u64,
    /// The index values.
    pub indexes: Vec<(IndexField, String)>,
    /// The phase entry.
    pub phase: Option<PhaseEntry>,
}

/// Decodes a [record value](#record-value)'s header, without copying or checking its body (a write
/// replacing the record needs only the header); returns it with the offset where the body starts.
pub fn decode_header(kind: Kind, id: &str, bytes: &[u8]) -> Result<(RecordHeader, usize), Error> {
    let bad = |reason: String| Error::Corrupt { kind: kind.to_string(), id: id.to_owned(), reason };
    let version =
        u64_from(bytes).ok_or_else(|| bad(format!("record value of {} bytes has no version", bytes.len())))?;
    let n_byte = *bytes.get(8).ok_or_else(|| bad("record value ends before its index count".into()))?;
    let n = n_byte & !HAS_PHASE;
    let mut pos = 9;
    let mut indexes = Vec::with_capacity(n as usize);
    for i in 0..n {
        let code = *bytes.get(pos).ok_or_else(|| bad(format!("record value ends in index value {i}")))?;
        let field = field_from_code(code).ok_or_else(|| bad(format!("unknown index field code {code}")))?;
        let len = bytes
            .get(pos + 1..pos + 5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| bad(format!("record value ends in the length of index value {i}")))?
            as usize;
        let v = bytes.get(pos + 5..pos + 5 + len).ok_or_else(|| bad(format!("index value {i} is cut short")))?;
        let v = std::str::from_utf8(v).map_err(|e| bad(format!("index value {field} is not UTF-8: {e}")))?;
        indexes.push((field, v.to_owned()));
        pos += 5 + len;
    }
    let mut phase = None;
    if n_byte & HAS_PHASE != 0 {
        let code = *bytes.get(pos).ok_or_else(|| bad("record value ends before its phase entry".into()))?;
        let p = phase_from_code(code).ok_or_else(|| bad(format!("unknown phase code {code}")))?;
        let at = bytes
            .get(pos + 1..pos + 9)
            .and_then(i64_from_key)
            .ok_or_else(|| bad("the phase entry is cut short".into()))?;
        phase = Some(PhaseEntry { phase: p, at });
        pos += 9;
    }
    Ok((RecordHeader { version, indexes, phase }, pos))
}

/// An index key: `c(field) c(value) id`.
pub fn index_key(field: IndexField, value: &str, id: &str) -> Vec<u8> {
    let mut k = index_prefix(field, value);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of every index key of `field = value`.
pub fn index_prefix(field: IndexField, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(field.as_str().len() + value.len() + 2);
    push_component(&mut k, field.as_str());
    push_component(&mut k, value);
    k
}

/// Parses an index key into (field, value, id).
pub fn parse_index_key(key: &[u8]) -> Option<(IndexField, String, String)> {
    let (f, rest) = split_component(key)?;
    let field = IndexField::parse(&f)?;
    let (v, rest) = split_component(rest)?;
    let id = String::from_utf8(rest.to_vec()).ok()?;
    Some((field, v, id))
}

/// A ready-set key.
pub fn ready_key(insight: &str, customer: &str, priority: i32, added: Millis, agenda: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(insight.len() + customer.len() + agenda.len() + 14);
    push_component(&mut k, insight);
    push_component(&mut k, customer);
    k.extend_from_slice(&prio_key(priority));
    k.extend_from_slice(&i64_key(added));
    k.extend_from_slice(agenda.as_bytes());
    k
}

/// A lease value.
pub fn encode_lease(expires: Millis, holder: &str) -> Vec<u8> {
    let mut v = i64_key(expires).to_vec();
    v.extend_from_slice(holder.as_bytes());
    v
}

/// Decodes a lease value stored under `name`.
pub fn decode_lease(name: &[u8], v: &[u8]) -> Result<(Millis, String), Error> {
    let expires = i64_from_key(v).ok_or_else(|| corrupt(LEASES_TREE, name, "lease value shorter than 8 bytes"))?;
    let holder = std::str::from_utf8(&v[8..])
        .map_err(|e| corrupt(LEASES_TREE, name, format!("lease holder is not UTF-8: {e}")))?;
    Ok((expires, holder.to_owned()))
}

/// Lower-case hex, for cursors over binary keys.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`].
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_and_keep_order() {
        let words = ["", "a", "a\0", "a\0b", "ab", "b", "\0", "é"];
        for w in words {
            let mut k = component(w);
            k.extend_from_slice(b"tail");
            let (s, rest) = split_component(&k).unwrap();
            assert_eq!(s, w);
            assert_eq!(rest, b"tail");
        }
        for a in words {
            for b in words {
                let (ka, kb) = (component(a), component(b));
                assert_eq!(a.cmp(b), ka.cmp(&kb), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn integer_keys_sort_numerically() {
        let vals = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in vals.windows(2) {
            assert!(i64_key(w[0]) < i64_key(w[1]));
            assert_eq!(i64_from_key(&i64_key(w[0])), Some(w[0]));
        }
        let prios = [i32::MAX, 10, 1, 0, -1, i32::MIN];
        for w in prios.windows(2) {
            assert!(prio_key(w[0]) < prio_key(w[1]), "higher priority first");
        }
    }

    #[test]
    fn record_round_trip_and_corruption_is_typed() {
        let idx = vec![(IndexField::CustomerId, "acme".to_owned()), (IndexField::Title, "t\0x".to_owned())];
        let v = encode_record(7, &idx, None, br#"{"id":"a"}"#);
        let r = decode_record(Kind::Agenda, "a", &v).unwrap();
        assert_eq!((r.version, r.indexes, r.phase, r.body), (7, idx.clone(), None, br#"{"id":"a"}"#.to_vec()));
        for cut in [0, 5, 9, 12] {
            let err = decode_record(Kind::Agenda, "a", &v[..cut]).unwrap_err();
            assert!(matches!(&err, Error::Corrupt { kind, id, .. } if kind == "agenda" && id == "a"), "{err}");
        }
        let phase = PhaseEntry { phase: Phase::Retryable, at: -42 };
        let v = encode_record(3, &idx, Some(phase), br#"{"id":"p"}"#);
        let r = decode_record(Kind::AgendaProgress, "p", &v).unwrap();
        assert_eq!((r.version, r.indexes, r.phase, r.body), (3, idx, Some(phase), br#"{"id":"p"}"#.to_vec()));
        let phase_at = v.len() - br#"{"id":"p"}"#.len() - 9;
        for cut in [phase_at, phase_at + 4] {
            let err = decode_record(Kind::AgendaProgress, "p", &v[..cut]).unwrap_err();
            assert!(matches!(&err, Error::Corrupt { .. }), "{err}");
        }
        let mut bad_code = v.clone();
        bad_code[phase_at] = 9;
        let err = decode_record(Kind::AgendaProgress, "p", &bad_code).unwrap_err();
        assert!(err.to_string().contains("unknown phase code 9"), "{err}");
    }

    #[test]
    fn phase_keys_sort_by_phase_time_id_and_parse_back() {
        let e = |phase, at| PhaseEntry { phase, at };
        let keys = [
            phase_key(e(Phase::Unfinished, i64::MIN), "z"),
            phase_key(e(Phase::Unfinished, -1), "a"),
            phase_key(e(Phase::Unfinished, 0), "a"),
            phase_key(e(Phase::Unfinished, 0), "ab"),
            phase_key(e(Phase::Unfinished, 0), "b"),
            phase_key(e(Phase::Retryable, i64::MIN), ""),
            phase_key(e(Phase::Finished, 5), "x"),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_phase_key(&keys[3]), Some((e(Phase::Unfinished, 0), "ab".to_owned())));
        assert!(phase_bound(Phase::Unfinished, 0).as_slice() > keys[1].as_slice());
        assert!(phase_bound(Phase::Unfinished, 0).as_slice() <= keys[2].as_slice());
        assert!(phase_bound(Phase::Unfinished, 1).as_slice() > keys[4].as_slice());
    }

    #[test]
    fn index_keys_parse_back() {
        let k = index_key(IndexField::LinkId, "l\0x1", "id-9");
        assert_eq!(parse_index_key(&k), Some((IndexField::LinkId, "l\0x1".to_owned(), "id-9".to_owned())));
        assert!(k.starts_with(&index_prefix(IndexField::LinkId, "l\0x1")));
        assert!(!index_key(IndexField::LinkId, "l1", "x").starts_with(&index_prefix(IndexField::LinkId, "l")));
        assert_eq!(unhex(&hex(&k)), Some(k));
    }
}
