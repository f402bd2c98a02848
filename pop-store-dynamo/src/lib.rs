//! POP's Store and QueueBackend on DynamoDB, for more than one machine.
//!
//! This crate is a placeholder in the workspace until its issue is taken; see the README's crate map.
