//! The on-disk layout, version [`FORMAT_VERSION`].
//!
//! A keyspace holds the partitions below; their keys and values are those of `pop-store-sled`'s
//! trees of the same names (its format 3, documented in its `format` module), encoded by
//! [`pop_store_kv`]: `c(s)` key components, big-endian integers with flipped sign bits, record
//! values with a binary header (version, index values, phase entry) before the JSON body, and
//! queue entries with a binary header before the item's JSON.
//!
//! | partition | key | value |
//! |---|---|---|
//! | `meta` | `format` / `ids` | the format version as ASCII decimal (`1`) / the id counter, `u64` big-endian |
//! | `obj#<kind>` | the object id | a record value |
//! | `idx#<kind>` | `c(field) c(value) id` | empty |
//! | `phase#<kind>` | `phase(1) at(8) id` | empty |
//! | `ready` | `c(insight) c(customer) prio(4) added(8) agendaId` | the `ReadyAgenda` as JSON |
//! | `readyByAgenda` | agenda id | the entry's key in `ready` |
//! | `leases` | lease name | `expires(8) holder` |
//! | `q#entries` | `c(insight) agendaId` | a queue entry ([`pop_store_kv::QueueEntry`]) |
//! | `q#order` | `c(insight) slot(8) seq(8)` | the agenda id |
//! | `q#count` | insight id | the number of items, `u64` big-endian |
//!
//! `meta/ids` is the counter of queue sequence numbers and delivery epochs (sled has one of its own,
//! fjall does not): a transaction that takes ids writes the counter's new value with them.

use pop_core::store::Kind;
pub use pop_store_kv::{
    component, corrupt, decode_checked_header, decode_lease, decode_record, encode_lease, encode_record, hex,
    i64_from_key, i64_key, index_key, index_prefix, indexed_values, parse_phase_key, phase_bound, phase_code,
    phase_key, ready_key, show_key, stored_phase, u64_from, unhex,
};

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The partition holding the format version and the id counter.
pub const META_PARTITION: &str = "meta";
/// The key of the format version in [`META_PARTITION`].
pub const FORMAT_KEY: &[u8] = b"format";
/// The key of the id counter (queue sequence numbers and delivery epochs) in [`META_PARTITION`].
pub const IDS_KEY: &[u8] = b"ids";
/// The ready set.
pub const READY_PARTITION: &str = "ready";
/// An agenda's key in the ready set.
pub const READY_BY_AGENDA_PARTITION: &str = "readyByAgenda";
/// Named leases.
pub const LEASES_PARTITION: &str = "leases";
/// Queue entries.
pub const Q_ENTRIES_PARTITION: &str = "q#entries";
/// Queue order (visible items, then leases by deadline).
pub const Q_ORDER_PARTITION: &str = "q#order";
/// Queue lengths.
pub const Q_COUNT_PARTITION: &str = "q#count";

/// The object partition of a kind.
pub fn obj_partition(kind: Kind) -> String {
    format!("obj#{kind}")
}

/// The index partition of a kind.
pub fn idx_partition(kind: Kind) -> String {
    format!("idx#{kind}")
}

/// The phase-index partition of a kind.
pub fn phase_partition(kind: Kind) -> String {
    format!("phase#{kind}")
}
