//! Examples for POP for Rust: see the `examples` targets of this package.

pub mod soak;
