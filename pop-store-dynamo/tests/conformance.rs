//! The `pop_core::testing` conformance suite against a DynamoDB-compatible server
//! (`POP_DYNAMODB_ENDPOINT`; every case skips, saying why, when it is unset).

mod common;

use std::sync::Arc;

pop_core::store_conformance!(async {
    common::backend("store conformance").await.map(|b| b.map(|b| Arc::new(b.store())))
});

pop_core::queue_conformance!(async {
    common::backend("queue conformance").await.map(|b| b.map(|b| Arc::new(b.queue())))
});
