//! What the services and loops of one engine share: the backends, the scheduling algorithms, the
//! configuration, the clock, and the signals they send each other.
//!
//! Nothing here is a loop's private state: the scheduler keeps its weight cache and leases, the timed
//! processes their counters, the engine its task handles. A [`Ctx`] is read-only after construction
//! but for the signals.

use crate::config::PopConfig;
use pop_core::Result;
use pop_core::clock::Clock;
use pop_core::model::{AgendaProgress, Insight, Millis, OperationProgress};
use pop_core::queue::QueueBackend;
use pop_core::runtime::PodRuntime;
use pop_core::store::{IndexField, Kind, PageRequest, Store, StoreExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The shared dependencies of an engine's services and loops.
pub(crate) struct Ctx {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn QueueBackend>,
    pub runtime: Arc<dyn PodRuntime>,
    pub algorithms: pop_sched::Registry,
    pub config: PopConfig,
    pub clock: Arc<dyn Clock>,
    pub signals: Signals,
}

/// How the parts of an engine tell each other that something happened.
#[derive(Default)]
pub(crate) struct Signals {
    /// Wakes the scheduler and idle workers (submissions, completions, re-queued agendas).
    pub wake: Notify,
    /// The agendas this instance's workers run: a cancel reaches the executor through its token.
    pub running: RunningAgendas,
    /// Stops every loop of the engine.
    pub shutdown: CancellationToken,
}

/// Cancellation tokens of the agendas running in this instance, by agenda id.
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

    /// Cancels the agenda's executor if it runs in this instance; whether it did.
    pub fn cancel(&self, agenda_id: &str) -> bool {
        let token = self.lock().get(agenda_id).cloned();
        token.map(|t| t.cancel()).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, pop_exec::CancelToken>> {
        // The map stays consistent whatever panicked while holding it (single inserts and removes).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Ctx {
    /// Now, from the engine's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The lease time-to-live in milliseconds.
    pub fn lease_ttl_ms(&self) -> u64 {
        self.config.lease_ttl.as_millis() as u64
    }

    /// Every insight, read page by page.
    pub async fn insights(&self) -> Result<Vec<Insight>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.scan(Kind::Insight, PageRequest { limit: 500, cursor }).await?;
            for r in &page.items {
                out.push(pop_core::store::from_record::<Insight>(r)?);
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// An agenda progress with its operation progress joined.
    pub async fn progress_full(&self, progress_id: &str) -> Result<AgendaProgress> {
        let mut p: AgendaProgress = self.store.fetch(progress_id).await?;
        p.operation_progress = self.operation_progress(progress_id).await?;
        Ok(p)
    }

    /// The operation progress of an agenda progress, in the order the operations were added.
    pub async fn operation_progress(&self, progress_id: &str) -> Result<Vec<OperationProgress>> {
        let mut ops: Vec<OperationProgress> = self.store.query_all(IndexField::AgendaProgressId, progress_id).await?;
        ops.sort_by(|a, b| a.added_time.cmp(&b.added_time).then_with(|| a.id.cmp(&b.id)));
        Ok(ops)
    }
}
