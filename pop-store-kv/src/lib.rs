//! # pop-store-kv: what POP's embedded key-value backends share
//!
//! `pop-store-sled` and `pop-store-fjall` keep POP's state in ordered key-value stores with the same
//! layout. This crate holds what they share, so that each backend is only its store's transactions:
//!
//! * [`codec`]: key components that keep order, big-endian integers that sort numerically, record
//!   values with their index values and phase entry in a binary header, queue entries;
//! * [`read`]: the read paths of [`pop_core::store::Store`] (get, query by index, scan, query by
//!   phase, the ready set) over any [`read::OrderedRead`];
//! * [`write`]: the write path of `Store::write` (records with their index and phase entries, checked
//!   versions, the ready set) inside any [`write::KvTx`].

pub mod codec;
pub mod read;
pub mod write;

pub use codec::*;
