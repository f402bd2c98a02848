//! POP's PodRuntime that runs handlers as Kubernetes Pods.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
