//! Helpers shared by the integration tests: those of the crash test harness.
#![allow(unused_imports, reason = "each test file uses a different subset")]

pub use pop_core::testing::crash::{now_ms, progress_id, ready, submit_ops};
