//! Criterion benchmarks for POP for Rust: see the `benches` targets of this package.
