//! POP for Rust: the facade crate that composes an embeddable POP instance.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
