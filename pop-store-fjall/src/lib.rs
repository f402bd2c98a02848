//! # pop-store-fjall: POP's Store and QueueBackend on fjall
//!
//! [`FjallStore`] implements [`pop_core::store::Store`] and [`FjallQueue`] implements
//! [`pop_core::queue::QueueBackend`], both on one embedded [fjall](https://docs.rs/fjall/2) keyspace
//! (a log-structured merge tree with a write-ahead journal).

mod config;
mod durability;
mod error;
pub mod format;
mod queue;
mod store;

pub use config::{Config, DEFAULT_MEMTABLE_BYTES, DEFAULT_STALL_TIMEOUT, DEFAULT_WRITE_BUFFER_BYTES, FlushPolicy};
pub use error::FjallError;
pub use queue::FjallQueue;
pub use store::{FjallStore, MAX_BATCH};

/// Opens the database `config` names and returns its store and queue.
pub fn open_both(config: Config) -> pop_core::Result<(FjallStore, FjallQueue)> {
    let store = FjallStore::open(config)?;
    let queue = store.queue();
    Ok((store, queue))
}
