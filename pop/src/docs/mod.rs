//! # The POP guide
//!
//! A guide to POP for Rust, chapter by chapter. The crates' own API documentation has the details;
//! the runnable examples (`examples/` in the repository, listed in its README) show each part at work.
//!
//! 1. [`concepts`]: agendas, insights, resource pools, leases — the vocabulary.
//! 2. [`lifecycle`]: an agenda from submission to completion, with a diagram.
//! 3. [`backends`]: choosing a store, a queue and a runtime; the facade's features.
//! 4. [`handlers`]: writing handlers in any language (the handler protocol) and in Rust.
//! 5. [`algorithms`]: writing a scheduling algorithm, testing it in the simulator.
//! 6. [`operating`]: the `pop` tool, metrics, logs and alerts.
//! 7. [`upgrading`]: what happens to stored data when you upgrade.

#[doc = include_str!("concepts.md")]
pub mod concepts {}

#[doc = include_str!("lifecycle.md")]
pub mod lifecycle {}

#[doc = include_str!("backends.md")]
pub mod backends {}

#[doc = include_str!("handlers.md")]
pub mod handlers {}

#[doc = include_str!("algorithms.md")]
pub mod algorithms {}

#[doc = include_str!("operating.md")]
pub mod operating {}

#[doc = include_str!("upgrading.md")]
pub mod upgrading {}
