//! Attribute encoding: item fields, sort keys that sort like POP's orders, and opaque cursors.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pop_core::model::{Millis, ReadyAgenda};
use pop_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Where a value that fails to decode lives, for `Error::Corrupt`.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub(crate) kind: &'a str,
    pub(crate) id: &'a str,
}

fn corrupt(at: At<'_>, reason: String) -> Error {
    Error::Corrupt { kind: at.kind.to_owned(), id: at.id.to_owned(), reason }
}

/// A required string attribute.
pub(crate) fn get_s<'i>(item: &'i Item, name: &str, at: At<'_>) -> Result<&'i str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(other) => Err(corrupt(at, format!("attribute {name} is not a string: {other:?}"))),
        None => Err(corrupt(at, format!("attribute {name} is missing"))),
    }
}

/// An optional string attribute.
pub(crate) fn opt_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

/// A required number attribute.
pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str, at: At<'_>) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => {
            v.parse().map_err(|_| corrupt(at, format!("attribute {name} = {v} is not a valid number here")))
        }
        Some(other) => Err(corrupt(at, format!("attribute {name} is not a number: {other:?}"))),
        None => Err(corrupt(at, format!("attribute {name} is missing"))),
    }
}

/// A required binary attribute.
pub(crate) fn get_b<'i>(item: &'i Item, name: &str, at: At<'_>) -> Result<&'i [u8]> {
    match item.get(name) {
        Some(AttributeValue::B(v)) => Ok(v.as_ref()),
        Some(other) => Err(corrupt(at, format!("attribute {name} is not binary: {other:?}"))),
        None => Err(corrupt(at, format!("attribute {name} is missing"))),
    }
}

/// A `ReadyAgenda` kept as JSON in attribute `b`.
pub(crate) fn get_ready(item: &Item, at: At<'_>) -> Result<ReadyAgenda> {
    let json = get_s(item, "b", at)?;
    serde_json::from_str(json).map_err(|e| corrupt(at, format!("ready entry body: {e}")))
}

/// JSON of a `ReadyAgenda`.
pub(crate) fn ready_json(r: &ReadyAgenda) -> Result<String> {
    serde_json::to_string(r).map_err(|e| Error::backend(crate::error::BACKEND, e))
}

/// A signed time as 16 hex digits that sort like the numbers (sign bit flipped).
pub(crate) fn millis_key(t: Millis) -> String {
    format!("{:016x}", (t as u64) ^ (1u64 << 63))
}

/// The ready set's sort key: sorts as (customer id, priority descending, added ascending, agenda id).
///
/// The customer id is hex-encoded so that one id being a prefix of another cannot disturb the order
/// (`#` sorts below every hex digit); priority and time are fixed-width; the agenda id comes last, raw.
pub(crate) fn ready_sort_key(r: &ReadyAgenda) -> String {
    let mut key = String::with_capacity(r.customer_id.len() * 2 + 30 + r.agenda_id.len());
    for b in r.customer_id.as_bytes() {
        key.push_str(&format!("{b:02x}"));
    }
    let inverted_priority = (i64::from(i32::MAX) - i64::from(r.priority)) as u64;
    key.push('#');
    key.push_str(&format!("{inverted_priority:08x}"));
    key.push('#');
    key.push_str(&millis_key(r.added));
    key.push('#');
    key.push_str(&r.agenda_id);
    key
}

/// The run prefix of a ready sort key: its customer and priority parts (up to the second `#`; the
/// hex-encoded customer holds none), what the entries of one priority run share.
pub(crate) fn ready_run_prefix(ro: &str) -> &str {
    match ro.match_indices('#').nth(1) {
        Some((i, _)) => &ro[..i],
        None => ro,
    }
}

/// Encodes the key attributes of `item` named in `keys` (all strings) as an opaque cursor.
pub(crate) fn encode_cursor(item: &Item, keys: &[&str]) -> Result<String> {
    let mut map = BTreeMap::new();
    for k in keys {
        let v = opt_s(item, k).ok_or_else(|| {
            Error::backend(
                crate::error::BACKEND,
                crate::error::DynamoError::other("encode a page cursor", format!("key attribute {k} missing")),
            )
        })?;
        map.insert(*k, v);
    }
    let json = serde_json::to_vec(&map).map_err(|e| Error::backend(crate::error::BACKEND, e))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor made by [`encode_cursor`] for the same query: exactly `keys`, and the partition
/// attribute equal to the query's.
pub(crate) fn decode_cursor(cursor: &str, keys: &[&str], partition: (&str, &str), what: &str) -> Result<Item> {
    let bad = |why: &str| {
        Error::Invalid(pop_core::Problems(vec![
            pop_core::Problem::new(format!("page cursor {cursor:?} for {what} is not one this store issued: {why}"))
                .field("cursor"),
        ]))
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad("not base64url"))?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad("not a key map"))?;
    if map.len() != keys.len() || !keys.iter().all(|k| map.contains_key(*k)) {
        return Err(bad("it belongs to another listing"));
    }
    if map.get(partition.0).map(String::as_str) != Some(partition.1) {
        return Err(bad("it belongs to another listing"));
    }
    Ok(map.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(customer: &str, priority: i32, added: Millis, agenda: &str) -> ReadyAgenda {
        ReadyAgenda { customer_id: customer.into(), priority, added, agenda_id: agenda.into(), ..Default::default() }
    }

    #[test]
    fn the_run_prefix_is_the_customer_and_the_priority() {
        let a = ready_sort_key(&entry("a#b", 3, 5, "x#y"));
        let b = ready_sort_key(&entry("a#b", 3, 9, "z"));
        let c = ready_sort_key(&entry("a#b", 2, 5, "x"));
        let d = ready_sort_key(&entry("a", 3, 5, "x"));
        assert_eq!(ready_run_prefix(&a), ready_run_prefix(&b));
        assert_ne!(ready_run_prefix(&a), ready_run_prefix(&c));
        assert_ne!(ready_run_prefix(&a), ready_run_prefix(&d));
        assert!(a.starts_with(ready_run_prefix(&a)) && ready_run_prefix(&a).matches('#').count() == 1);
    }

    #[test]
    fn ready_sort_key_sorts_like_the_ready_order() {
        let mut entries = vec![
            entry("b", 0, 5, "x"),
            entry("a", 0, 5, "x"),
            entry("a", 3, 9, "y"),
            entry("a", -2, 1, "z"),
            entry("ab", 0, 0, "q"),
            entry("a", 0, -7, "w"),
            entry("a", 0, 5, "w"),
            entry("", i32::MAX, i64::MAX, "m"),
            entry("a", i32::MIN, i64::MIN, "n"),
            entry("a\u{e9}", 1, 1, "e"),
            entry("a ", 1, 1, "s"),
        ];
        let mut by_key = entries.clone();
        by_key.sort_by_key(ready_sort_key);
        entries.sort_by(|l, r| (&l.customer_id, l.order_key()).cmp(&(&r.customer_id, r.order_key())));
        assert_eq!(by_key, entries);
    }

    #[test]
    fn cursors_round_trip_and_reject_others() {
        let item: Item = [("p".to_owned(), s("i#ins")), ("s".to_owned(), s("k1")), ("b".to_owned(), s("{}"))].into();
        let c = encode_cursor(&item, &["p", "s"]).unwrap();
        let back = decode_cursor(&c, &["p", "s"], ("p", "i#ins"), "test").unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.get("s"), Some(&s("k1")));
        assert!(decode_cursor(&c, &["p", "s"], ("p", "i#other"), "test").is_err());
        assert!(decode_cursor(&c, &["pk", "id"], ("pk", "i#ins"), "test").is_err());
        assert!(decode_cursor("%%%", &["p", "s"], ("p", "i#ins"), "test").is_err());
    }
}
