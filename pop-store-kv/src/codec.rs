//! Key and value encodings shared by the backends on embedded ordered key-value stores
//! (`pop-store-sled`, `pop-store-fjall`): key components that keep order, big-endian integers that
//! sort numerically, record values with their index values and phase entry in a binary header, and
//! queue entries. `pop-store-sled`'s `format` module documents the layout built from them.

use pop_core::Error;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::queue::LeaseToken;
use pop_core::store::{IndexField, Kind, Phase, PhaseEntry, Record};

/// Bit 7 of a record value's index count: a phase entry follows the index values.
const HAS_PHASE: u8 = 0x80;

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
    let expires = i64_from_key(v).ok_or_else(|| corrupt("leases", name, "lease value shorter than 8 bytes"))?;
    let holder =
        std::str::from_utf8(&v[8..]).map_err(|e| corrupt("leases", name, format!("lease holder is not UTF-8: {e}")))?;
    Ok((expires, holder.to_owned()))
}

/// What `lease_acquire` writes over the lease `name` stored as `stored`: the new value when
/// `holder` may take it (it is free, expired, or already `holder`'s), `None` when another holder's
/// lease runs past `now`.
pub fn acquire_lease(
    name: &str,
    stored: Option<&[u8]>,
    holder: &str,
    now: Millis,
    ttl_ms: u64,
) -> Result<Option<Vec<u8>>, Error> {
    if let Some(v) = stored {
        let (until, current) = decode_lease(name.as_bytes(), v)?;
        if current != holder && until > now {
            return Ok(None);
        }
    }
    let expires = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
    Ok(Some(encode_lease(expires, holder)))
}

/// Whether `lease_release` removes the lease `name` stored as `stored`: only `holder`'s own.
pub fn releases_lease(name: &str, stored: Option<&[u8]>, holder: &str) -> Result<bool, Error> {
    match stored {
        Some(v) => Ok(decode_lease(name.as_bytes(), v)?.1 == holder),
        None => Ok(false),
    }
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

/// The `slot` of a visible queue item in the queue's order (`i64::MIN` as a key: before every
/// lease deadline).
pub const VISIBLE: i64 = i64::MIN;

/// A queue entry: the header is binary, the item stays as the JSON bytes it was pushed with, so that
/// a lease change rewrites the header and copies the item without parsing it.
///
/// ```text
/// seq: u64 BE                the item's sequence number (push order; its key in the order)
/// epoch: u64 BE              the epoch of the latest delivery (0 before the first)
/// leased: u8                 1 while leased, 0 while visible
/// deadline: 8                the lease deadline (i64, sign bit flipped; 0 while visible)
/// rlen: u8, receipt: rlen    the receipt of the current delivery (empty while visible)
/// item: the rest             the queued ReadyAgenda as JSON
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The item's sequence number.
    pub seq: u64,
    /// The epoch of the latest delivery (0 before the first).
    pub epoch: u64,
    /// The receipt and deadline of the current delivery, while leased.
    pub lease: Option<(String, Millis)>,
    /// The `ReadyAgenda` as JSON.
    pub item: Vec<u8>,
}

impl QueueEntry {
    /// The item's slot in the order: [`VISIBLE`] or its lease deadline.
    pub fn slot(&self) -> Millis {
        self.lease.as_ref().map_or(VISIBLE, |(_, d)| *d)
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let receipt = self.lease.as_ref().map_or("", |(r, _)| r.as_str());
        let mut v = Vec::with_capacity(26 + receipt.len() + self.item.len());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.push(u8::from(self.lease.is_some()));
        v.extend_from_slice(&i64_key(self.lease.as_ref().map_or(0, |(_, d)| *d)));
        v.push(receipt.len().min(255) as u8);
        v.extend_from_slice(&receipt.as_bytes()[..receipt.len().min(255)]);
        v.extend_from_slice(&self.item);
        v
    }

    /// Decodes an entry stored under `key` in `tree`, without parsing its item.
    pub fn decode(tree: &str, key: &[u8], v: &[u8]) -> Result<Self, Error> {
        let bad = |why: &str| corrupt(tree, key, why.to_owned());
        let (Some(seq), Some(epoch), Some(&leased), Some(deadline), Some(&rlen)) =
            (u64_from(v), v.get(8..).and_then(u64_from), v.get(16), v.get(17..).and_then(i64_from_key), v.get(25))
        else {
            return Err(bad("the entry ends inside its header"));
        };
        let receipt = v.get(26..26 + rlen as usize).ok_or_else(|| bad("the receipt is cut short"))?;
        let receipt = std::str::from_utf8(receipt).map_err(|_| bad("the receipt is not UTF-8"))?;
        let lease = match leased {
            0 => None,
            1 => Some((receipt.to_owned(), deadline)),
            other => return Err(bad(&format!("unknown lease flag {other}"))),
        };
        Ok(Self { seq, epoch, lease, item: v[26 + rlen as usize..].to_vec() })
    }

    /// The queued item (`tree` and `key` name it in a `Corrupt` error).
    pub fn item(&self, tree: &str, key: &[u8]) -> Result<ReadyAgenda, Error> {
        serde_json::from_slice(&self.item).map_err(|e| corrupt(tree, key, format!("the item: {e}")))
    }
}

/// A key of the queue's order: `c(insight) slot(8) seq(8)`.
pub fn order_key(insight: &str, slot: Millis, seq: u64) -> Vec<u8> {
    let mut k = component(insight);
    k.extend_from_slice(&i64_key(slot));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A key of the queue's entries: `c(insight) agendaId`.
pub fn entry_key(insight: &str, agenda: &str) -> Vec<u8> {
    let mut k = component(insight);
    k.extend_from_slice(agenda.as_bytes());
    k
}

/// Parses the part of an order key after the insight: (slot, seq).
pub fn parse_order_tail(rest: &[u8]) -> Option<(Millis, u64)> {
    if rest.len() != 16 {
        return None;
    }
    Some((i64_from_key(rest)?, u64_from(&rest[8..])?))
}

/// Decodes a queue length stored under `key` in `tree`.
pub fn decode_count(tree: &str, key: &[u8], v: &[u8]) -> Result<u64, Error> {
    u64_from(v)
        .filter(|_| v.len() == 8)
        .ok_or_else(|| corrupt(tree, key, format!("expected an 8-byte count, found {} bytes", v.len())))
}

/// The deadline of a lease taken at `now` for `ttl_ms`: never [`VISIBLE`], whatever the clock says.
pub fn lease_deadline(now: Millis, ttl_ms: u64) -> Millis {
    now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)).max(VISIBLE + 1)
}

/// The `Conflict` of a lease token that is not its item's current delivery.
pub fn not_current(token: &LeaseToken, why: &str) -> Error {
    Error::Conflict(format!(
        "lease of agenda {} in queue {} (epoch {}, receipt {}) is not current: {why}",
        token.agenda_id, token.insight_id, token.epoch, token.receipt
    ))
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
