//! Time as a dependency, so timed behaviour can be tested with a controllable clock.

use crate::model::Millis;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time in epoch milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, epoch ms.
    fn now(&self) -> Millis;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or_default()
    }
}

/// A clock that starts at the system time and can be moved forward by hand (for tests of timed
/// processes); it also advances with real time so that sleeps still make progress.
#[derive(Debug)]
pub struct ManualClock {
    offset: AtomicI64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self { offset: AtomicI64::new(0) }
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, ms: Millis) {
        self.offset.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }
}
