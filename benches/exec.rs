//! Benches for exec (placeholder until its issue lands).
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]
use criterion::{Criterion, criterion_group, criterion_main};

fn placeholder(c: &mut Criterion) {
    c.bench_function("noop", |b| b.iter(|| 1 + 1));
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
