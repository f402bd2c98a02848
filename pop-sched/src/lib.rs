//! Pure scheduling for POP: insight matching, FIFO / Fairness / Priority algorithms, refill planning, explain.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
