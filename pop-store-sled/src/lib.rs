//! # pop-store-sled: POP's embedded default Store and QueueBackend
//!
//! A user runs POP with nothing but a directory: [`SledStore`] implements [`pop_core::store::Store`]
//! and [`SledQueue`] implements [`pop_core::queue::QueueBackend`], both on one embedded
//! [sled](https://docs.rs/sled/0.34) database.
//!
//! | capability | how |
//! |---|---|
//! | get / create / CAS update / delete | a tree per kind; a version in every value; checks inside a transaction |
//! | atomic multi-object `write` | one sled transaction over every tree the batch touches; `max_batch` = [`MAX_BATCH`] |
//! | query by indexed field | an index tree per kind keyed `field\0value\0id`: a range scan, the last id is the cursor |
//! | phase index (`query_phase`) | a `phase/<kind>` tree keyed `phase at id`, written in the record's transaction: one range scan lists a phase's entries of a time range by (time, id) |
//! | ready set | keyed `insight\0customer\0 prio added agendaId` (priority inverted, big-endian): one range scan lists an insight's entries in (customer, priority desc, added asc, agenda id) order; `readyByAgenda` finds an agenda's entry |
//! | named leases | a transaction on the `leases` tree |
//! | queue | per insight: items by push sequence, a visible index and a deadline index (receive and `expired` read no leased or unexpired item), dedup by agenda id, a length counter |
//! | durability | [`FlushPolicy`]: flush every write, group commit, or sled's background flush |
//! | on-disk format | documented and versioned ([`format`](mod@format)); format 1 (before the phase index) is upgraded in place when opened, once; an unknown version is an `Unsupported` error naming both versions |
//! | integrity check | [`SledStore::check_integrity`] |
//!
//! Durability: with [`FlushPolicy::FlushEveryWrite`] or [`FlushPolicy::GroupCommit`] (the default of
//! [`Config::new`]) a mutating call's `Ok` means the change is on disk; [`Config::temporary`] uses
//! sled's background flush and promises nothing across a crash. See [`FlushPolicy`] for the details.
//!
//! sled is synchronous. Calls run on the calling task: a get or a small transaction takes
//! microseconds; the only long wait, the flush, runs on sled's thread pool (flush every write) or on
//! the group-commit thread, so no async worker thread blocks on the disk.
//!
//! ```no_run
//! use pop_core::store::{StoreExt, Kind};
//! use pop_core::queue::QueueBackend;
//! use pop_core::model::Customer;
//! use pop_store_sled::{Config, FlushPolicy, SledStore};
//!
//! # async fn demo() -> pop_core::Result<()> {
//! let store = SledStore::open(Config::new("./pop-data").flush_policy(FlushPolicy::GroupCommit { max_delay_ms: 2 }))?;
//! let queue = store.queue();
//! let mut customer = Customer { id: Some("acme".into()), ..Default::default() };
//! store.create_obj(&mut customer).await?;
//! assert_eq!(customer.version, 1);
//! assert_eq!(queue.len("insight-1").await?, 0);
//! # Ok(()) }
//! ```

mod config;
mod durability;
mod error;
pub mod format;
mod queue;
mod store;

pub use config::{Config, DEFAULT_STALL_TIMEOUT, FlushPolicy};
pub use error::SledError;
pub use queue::SledQueue;
pub use store::{IntegrityReport, MAX_BATCH, SledStore};

/// Opens the database `config` names and returns its store and queue.
pub fn open_both(config: Config) -> pop_core::Result<(SledStore, SledQueue)> {
    let store = SledStore::open(config)?;
    let queue = store.queue();
    Ok((store, queue))
}
