//! The pool worker (being wired to pop-exec's executor).

use crate::config::WorkerConfig;
use crate::instance::Inner;
use std::sync::Arc;

pub(crate) async fn run(_inner: Arc<Inner>, _config: WorkerConfig) {}
