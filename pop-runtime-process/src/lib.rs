//! POP's PodRuntime that runs handlers as local child processes.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
