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

use pop_core::store::Kind;

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 3;

/// The format version with the four-tree queue (`q/items`, `q/visible`, `q/deadline`, `q/dedup`),
/// which opening upgrades to [`FORMAT_VERSION`].
pub const FORMAT_VERSION_WITH_OLD_QUEUE: u32 = 2;

/// The format version without the phase index, which opening upgrades to [`FORMAT_VERSION`].
pub const FORMAT_VERSION_WITHOUT_PHASES: u32 = 1;

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

pub use pop_store_kv::{
    RecordHeader, component, corrupt, decode_checked_header, decode_header, decode_lease, decode_record, encode_lease,
    encode_record, hex, i64_from_key, i64_key, index_key, index_prefix, indexed_values, parse_index_key,
    parse_phase_key, phase_bound, phase_code, phase_key, prio_key, push_component, ready_key, show_key,
    split_component, stored_phase, u64_from, unhex,
};
