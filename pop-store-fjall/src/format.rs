//! The on-disk layout, version [`FORMAT_VERSION`]: partition names; keys and values are encoded as in
//! `pop-store-sled`'s format 3 (see its `format` module).

use pop_core::store::Kind;
pub use pop_store_sled::format::{
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
