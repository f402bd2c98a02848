//! The cost shape of the recovery processes: with a long finished history and a little live work, a
//! repair, retry or data-reaper pass reads the store's phase index for what it acts on, not every
//! agenda ever run. A counting store wrapper counts what each pass reads.

mod common;

use async_trait::async_trait;
use common::{admin, chain, setup};
use pop::timed::{DataReaperConfig, RetryConfig};
use pop::{ManualClock, Pop, PopConfig, RuntimeRouter};
use pop_core::memory::{MemoryQueue, MemoryStore};
use pop_core::model::{AgendaProgress, Conclusion, Millis, ProcessingState, ReadyAgenda};
use pop_core::store::{
    IndexField, Kind, Page, PageRequest, Phase, Record, Store, StoreExt, WriteOp, create_op, update_op,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Store calls and the objects they returned, by call (`scan agendaProgress`, `query_phase
/// unfinished`, `get agenda`, ...).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
struct Reads {
    calls: BTreeMap<String, usize>,
    objects: BTreeMap<String, usize>,
}

impl Reads {
    fn objects_of(&self, prefix: &str) -> usize {
        self.objects.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
    }

    fn total_objects(&self) -> usize {
        self.objects.values().sum()
    }
}

/// A store that counts every read.
struct Counting {
    inner: MemoryStore,
    reads: Mutex<Reads>,
}

impl Counting {
    fn note(&self, call: String, objects: usize) {
        let mut r = self.reads.lock().unwrap();
        *r.calls.entry(call.clone()).or_default() += 1;
        *r.objects.entry(call).or_default() += objects;
    }

    /// The reads since the last call, and a fresh count.
    fn take(&self) -> Reads {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
}

#[async_trait]
impl Store for Counting {
    fn backend_name(&self) -> &'static str {
        "counting"
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    async fn get(&self, kind: Kind, id: &str) -> pop_core::Result<Option<Record>> {
        let r = self.inner.get(kind, id).await?;
        self.note(format!("get {kind}"), usize::from(r.is_some()));
        Ok(r)
    }
    async fn write(&self, ops: Vec<WriteOp>) -> pop_core::Result<()> {
        self.inner.write(ops).await
    }
    async fn query(
        &self,
        kind: Kind,
        field: IndexField,
        value: &str,
        page: PageRequest,
    ) -> pop_core::Result<Page<Record>> {
        let p = self.inner.query(kind, field, value, page).await?;
        self.note(format!("query {kind} by {field}"), p.items.len());
        Ok(p)
    }
    async fn scan(&self, kind: Kind, page: PageRequest) -> pop_core::Result<Page<Record>> {
        let p = self.inner.scan(kind, page).await?;
        self.note(format!("scan {kind}"), p.items.len());
        Ok(p)
    }
    async fn query_phase(
        &self,
        kind: Kind,
        phase: Phase,
        at: std::ops::Range<Millis>,
        page: PageRequest,
    ) -> pop_core::Result<Page<Record>> {
        let p = self.inner.query_phase(kind, phase, at, page).await?;
        self.note(format!("query_phase {kind} {phase}"), p.items.len());
        Ok(p)
    }
    async fn ready_get(&self, agenda_id: &str) -> pop_core::Result<Option<ReadyAgenda>> {
        let r = self.inner.ready_get(agenda_id).await?;
        self.note("ready_get".into(), usize::from(r.is_some()));
        Ok(r)
    }
    async fn ready_list(&self, insight_id: &str, page: PageRequest) -> pop_core::Result<Page<ReadyAgenda>> {
        let p = self.inner.ready_list(insight_id, page).await?;
        self.note("ready_list".into(), p.items.len());
        Ok(p)
    }
    async fn lease_acquire(&self, name: &str, holder: &str, ttl_ms: u64, now: Millis) -> pop_core::Result<bool> {
        self.inner.lease_acquire(name, holder, ttl_ms, now).await
    }
    async fn lease_release(&self, name: &str, holder: &str) -> pop_core::Result<()> {
        self.inner.lease_release(name, holder).await
    }
}

const HISTORY: usize = 2_000;

/// 2,000 finished agendas (succeeded, cancelled, failed out of attempts), 3 WAITING agendas that lost
/// their ready entry, 2 failed agendas due for a retry: repair reads the 3, retry the 2, the reaper
/// nothing until the history is past its TTL, and then exactly the history it deletes. No pass scans
/// the agenda progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_passes_read_what_they_act_on_not_the_history() {
    let store = Arc::new(Counting { inner: MemoryStore::new(), reads: Mutex::default() });
    let clock = Arc::new(ManualClock::default());
    let pop = Pop::builder()
        .store(store.clone())
        .queue(Arc::new(MemoryQueue::new()))
        .runtime(Arc::new(RuntimeRouter::new()))
        .config(PopConfig::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    let now = pop::Clock::now(&*clock);

    // The history: written as the services leave finished agendas (an hour ago).
    let mut ops = Vec::new();
    for i in 0..HISTORY {
        let mut p = AgendaProgress {
            id: Some(format!("old-{i:05}")),
            agenda_id: Some(format!("old-agenda-{i:05}")),
            customer_id: Some("acme".into()),
            added_time: Some(now - 3_700_000),
            ..Default::default()
        };
        let (conclusion, attempts) = match i % 3 {
            0 => (Conclusion::Succeeded, 1),
            1 => (Conclusion::Cancelled, 0),
            _ => (Conclusion::Failed, 3),
        };
        p.processing_state = ProcessingState::Complete;
        p.processing_state_message = Some(conclusion.as_str().into());
        p.attempts_completed = attempts;
        p.completed_time = Some(now - 3_600_000);
        p.updated_time = p.completed_time;
        ops.push(create_op(&mut p).unwrap());
        if ops.len() == 100 {
            store.write(std::mem::take(&mut ops)).await.unwrap();
        }
    }
    // Live work: three agendas whose ready entries were lost, two failed a minute ago with attempts left.
    let mut lost = Vec::new();
    for _ in 0..3 {
        let id = pop.agendas().submit(&su, chain("acme", "noop", 1)).await.unwrap().id.unwrap();
        store.write(vec![WriteOp::ReadyRemove { agenda_id: id.clone() }]).await.unwrap();
        lost.push(id);
    }
    let mut failed = Vec::new();
    for _ in 0..2 {
        let id = pop.agendas().submit(&su, chain("acme", "noop", 1)).await.unwrap().id.unwrap();
        store.write(vec![WriteOp::ReadyRemove { agenda_id: id.clone() }]).await.unwrap();
        let agenda: pop_core::model::Agenda = store.fetch(&id).await.unwrap();
        let mut p: AgendaProgress = store.fetch(agenda.progress_id.as_deref().unwrap()).await.unwrap();
        p.processing_state = ProcessingState::Complete;
        p.processing_state_message = Some(Conclusion::Failed.as_str().into());
        p.attempts_completed = 1;
        p.completed_time = Some(now - 60_000);
        p.updated_time = p.completed_time;
        store.write(vec![update_op(&mut p).unwrap()]).await.unwrap();
        failed.push(id);
    }
    let stored = store.inner.scan(Kind::AgendaProgress, PageRequest::first(10_000)).await.unwrap().items.len();
    assert_eq!(stored, HISTORY + 5);
    store.take();

    // Repair: the three lost agendas, read from the unfinished phase, and nothing else of the history.
    let report = pop.reclaim_once().await.unwrap();
    let repair = store.take();
    assert_eq!(report.repaired, 3, "{report:?}");
    for id in &lost {
        assert!(pop.store().ready_get(id).await.unwrap().is_some(), "{id} re-queued");
    }
    assert_eq!(repair.objects_of("query_phase agendaProgress unfinished"), 3, "{repair:#?}");
    assert_eq!(repair.objects_of("scan agendaProgress"), 0, "{repair:#?}");
    assert_eq!(repair.objects_of("query_phase agendaProgress finished"), 0, "{repair:#?}");
    assert!(repair.total_objects() <= 3 * 3 + 1, "3 progress + per agenda its agenda, + the insight: {repair:#?}");

    // Retry: the two failed agendas, read from the retryable phase.
    let retry = RetryConfig { backoff: Duration::from_millis(10), ..RetryConfig::default() };
    let report = pop.retry_once(&retry).await.unwrap();
    let retried = store.take();
    let mut ids = report.ids.clone();
    ids.sort();
    failed.sort();
    assert_eq!(ids, failed, "{report:?}");
    assert_eq!(retried.objects_of("query_phase agendaProgress retryable"), 2, "{retried:#?}");
    assert_eq!(retried.objects_of("query_phase agendaProgress finished"), 0, "{retried:#?}");
    assert_eq!(retried.objects_of("scan agendaProgress"), 0, "{retried:#?}");

    // Data reaper, history an hour old: nothing past the 3-day TTL, nothing read.
    let reaper = DataReaperConfig::default();
    let report = pop.reap_data_once(&reaper, &retry).await.unwrap();
    let young = store.take();
    assert!(report.ids.is_empty(), "{report:?}");
    assert_eq!(young.total_objects(), 0, "{young:#?}");

    // Four days later: exactly the history is read and deleted; live work is neither read nor touched.
    clock.advance(4 * 24 * 3_600_000);
    let report = pop.reap_data_once(&reaper, &retry).await.unwrap();
    let old = store.take();
    assert_eq!(report.ids.len(), HISTORY, "{:?}", report.budget_exhausted);
    assert_eq!(old.objects_of("query_phase agendaProgress finished"), HISTORY, "{old:#?}");
    assert_eq!(old.objects_of("query_phase agendaProgress unfinished"), 0, "{old:#?}");
    assert_eq!(old.objects_of("scan agendaProgress"), 0, "{old:#?}");
    for id in lost.iter().chain(&failed) {
        assert!(pop.agendas().get(&su, id).await.is_ok(), "{id} is live work and stays");
    }
    eprintln!(
        "recovery reads with {HISTORY} finished agendas + 5 live ones (store calls / objects returned); \
         a scan of the agenda progress, what each pass read before the phase index: {stored} objects\n\
         repair:  {repair:?}\nretry:   {retried:?}\nreaper (nothing due): {young:?}\n\
         reaper (history past TTL): calls {:?}, objects {:?}",
        old.calls, old.objects
    );
}
