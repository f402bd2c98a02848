//! POP's embedded default Store and QueueBackend on sled.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
