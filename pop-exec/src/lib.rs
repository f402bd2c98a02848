//! The POP agenda executor: a pure DAG state machine and the async driver that runs it on a PodRuntime.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
