//! # pop-store-kv: what POP's embedded key-value backends share
//!
//! `pop-store-sled` and `pop-store-fjall` keep POP's state in ordered key-value stores with the same
//! layout. This crate holds what they share, so that each backend is only its store's transactions:
//!
//! * [`codec`]: key components that keep order, big-endian integers that sort numerically, record
//!   values with their index values and phase entry in a binary header, queue entries;
//! * [`read`]: the read paths of [`pop_core::store::Store`] (get, query by index, scan, query by
//!   phase, the ready set) over any [`read::OrderedRead`];
//! * [`write`](mod@write): the write path of `Store::write` (records with their index and phase entries, checked
//!   versions, the ready set) inside any [`write::KvTx`];
//! * [`queue`]: the queue's per-lease changes (extend, ack, release, remove) inside any
//!   [`queue::QueueTx`];
//! * [`durability`]: group commit (a syncing thread shared by every writer; a write's future waits
//!   for a sync that began after it) over any [`durability::Syncer`], with detection of a sync
//!   stuck for good.

pub mod codec;
pub mod durability;
pub mod queue;
pub mod read;
pub mod write;

pub use codec::*;
