//! A cancellation signal shared between whoever may cancel a run and the executor.

use std::sync::Arc;
use tokio::sync::watch;

/// A cloneable cancellation signal: [`CancelToken::cancel`] on any clone wakes every
/// [`CancelToken::cancelled`] waiter, now and later.
#[derive(Debug, Clone)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::Sender::new(false)) }
    }

    /// Cancels (idempotent).
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once cancelled (at once if already).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}
