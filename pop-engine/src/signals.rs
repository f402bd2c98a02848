//! How the parts of an engine (or of a remote pool process) tell each other that something happened.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Wake-ups, the registry of running agendas, and shutdown, shared by an engine's services and loops
/// (or by the workers of a remote pool process).
#[derive(Default)]
pub struct Signals {
    /// Wakes the scheduler and idle workers (submissions, completions, re-queued agendas).
    pub(crate) wake: Notify,
    /// The agendas this process's workers run: a cancel reaches the executor through its token.
    pub(crate) running: RunningAgendas,
    /// Stops every loop.
    pub(crate) shutdown: CancellationToken,
    /// When each insight was last pulled from (the stall detector reads it).
    pub(crate) pulls: PullTimes,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").field("shut_down", &self.shutdown.is_cancelled()).finish_non_exhaustive()
    }
}

impl Signals {
    /// Fresh signals: nothing running, not shut down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every loop using these signals to stop (running agendas are cancelled locally; their
    /// leases expire and another worker takes them over).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Whether [`Signals::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Resolves once [`Signals::shutdown`] is called.
    pub async fn shut_down(&self) {
        self.shutdown.cancelled().await
    }

    /// Wakes the scheduler and idle workers now.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// Cancellation tokens of the agendas running in this process, by agenda id.
#[derive(Default)]
pub(crate) struct RunningAgendas(Mutex<HashMap<String, pop_exec::CancelToken>>);

impl RunningAgendas {
    /// Registers a running agenda.
    pub fn insert(&self, agenda_id: &str, token: pop_exec::CancelToken) {
        self.lock().insert(agenda_id.to_owned(), token);
    }

    /// Forgets a running agenda (it ended here).
    pub fn remove(&self, agenda_id: &str) {
        self.lock().remove(agenda_id);
    }

    /// Cancels the agenda's executor if it runs in this process; whether it did.
    pub fn cancel(&self, agenda_id: &str) -> bool {
        let token = self.lock().get(agenda_id).cloned();
        token.map(|t| t.cancel()).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, pop_exec::CancelToken>> {
        // The map stays consistent whatever panicked while holding it (single inserts and removes).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The time of the last pull from each insight, recorded by the pool service on every pull (its own
/// workers' and remote pools').
#[derive(Default)]
pub(crate) struct PullTimes(Mutex<HashMap<String, pop_core::model::Millis>>);

impl PullTimes {
    /// Records a pull from `insight_id` at `now`.
    pub fn record(&self, insight_id: &str, now: pop_core::model::Millis) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(insight_id) {
            Some(t) => *t = (*t).max(now),
            None => {
                map.insert(insight_id.to_owned(), now);
            }
        }
    }

    /// The last pull from `insight_id`, if any.
    pub fn last(&self, insight_id: &str) -> Option<pop_core::model::Millis> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(insight_id).copied()
    }
}
