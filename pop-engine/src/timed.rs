//! Timed processes beside the reclaimer: automatic retry of failed agendas, the data reaper and the pod
//! reaper. Each has an interval, a time budget per run, a dry-run mode that only logs what it would do,
//! and counters ([`TimedStats`]).

use crate::context::Ctx;
use crate::services::RerunOptions;
use pop_core::Result;
use pop_core::model::{Agenda, AgendaProgress, Millis, OperationProgress, ProcessingState};
use pop_core::runtime::LaunchedState;
use pop_core::store::{IndexField, Kind, Page, PageRequest, Phase, StoreExt, WriteOp};
use serde::Serialize;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The hard cap on attempts of an agenda, whatever its `maximumAttempts`.
pub const MAX_ATTEMPTS_CAP: u32 = pop_core::model::MAX_ATTEMPTS_CAP;

/// Scheduling of one timed process.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Run it at all.
    pub enabled: bool,
    /// Pause between runs.
    pub interval: Duration,
    /// Stop a run after this long (it continues next time).
    pub budget: Duration,
    /// Only log what it would do.
    pub dry_run: bool,
}

impl Timing {
    fn every(interval: Duration) -> Self {
        Self { enabled: true, interval, budget: Duration::from_secs(30), dry_run: false }
    }
}

/// Automatic retry of failed agendas, in `continue` mode, while `attemptsCompleted < min(20,
/// maximumAttempts)`, each after a backoff that grows with the attempts.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// When it runs.
    pub timing: Timing,
    /// The wait after the first failed attempt.
    pub backoff: Duration,
    /// Factor per further attempt.
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { timing: Timing::every(Duration::from_secs(5)), backoff: Duration::from_secs(10), multiplier: 2.0 }
    }
}

/// The data reaper: deletes finished agendas (agenda, progress, operation progress) that completed, and
/// whose progress was last updated, longer ago than the TTL, oldest first. Never an agenda that is
/// running, queued, waiting, or due for an automatic retry.
#[derive(Debug, Clone)]
pub struct DataReaperConfig {
    /// When it runs.
    pub timing: Timing,
    /// Age after which a finished agenda is deleted (default 3 days, the original's 4320 minutes).
    pub agenda_ttl: Duration,
    /// Agendas deleted per store write.
    pub batch_size: usize,
}

impl Default for DataReaperConfig {
    fn default() -> Self {
        let three_days = Duration::from_secs(3 * 24 * 3600);
        Self { timing: Timing::every(Duration::from_secs(4 * 3600)), agenda_ttl: three_days, batch_size: 25 }
    }
}

/// The pod reaper: removes handler processes/pods the runtime launched that finished longer ago than
/// `finished_age`, and kills those still running after `stuck_age`.
#[derive(Debug, Clone)]
pub struct PodReaperConfig {
    /// When it runs.
    pub timing: Timing,
    /// Age of a finished handler before it is removed (the original's default: 1440 minutes).
    pub finished_age: Duration,
    /// Age of a running handler before it is considered stuck and removed.
    pub stuck_age: Duration,
}

impl Default for PodReaperConfig {
    fn default() -> Self {
        Self {
            timing: Timing::every(Duration::from_secs(300)),
            finished_age: Duration::from_secs(24 * 3600),
            stuck_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Counters of one timed process.
#[derive(Debug, Default)]
pub struct Counters {
    /// Runs made.
    pub runs: AtomicU64,
    /// Objects acted on (retried, deleted, reaped).
    pub acted: AtomicU64,
    /// Objects a dry run would have acted on.
    pub would_act: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountersSnapshot {
    /// Runs made.
    pub runs: u64,
    /// Objects acted on.
    pub acted: u64,
    /// Objects a dry run would have acted on.
    pub would_act: u64,
    /// Errors.
    pub errors: u64,
}

impl Counters {
    fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            runs: self.runs.load(Ordering::Relaxed),
            acted: self.acted.load(Ordering::Relaxed),
            would_act: self.would_act.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// The counters of every timed process.
#[derive(Debug, Default)]
pub struct TimedStats {
    /// Automatic retry.
    pub retry: Counters,
    /// Data reaper.
    pub data_reaper: Counters,
    /// Pod reaper.
    pub pod_reaper: Counters,
}

impl TimedStats {
    /// Snapshots: (retry, data reaper, pod reaper).
    pub fn snapshot(&self) -> (CountersSnapshot, CountersSnapshot, CountersSnapshot) {
        (self.retry.snapshot(), self.data_reaper.snapshot(), self.pod_reaper.snapshot())
    }
}

/// What one run did (or, in dry-run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Ids acted on (agenda ids, or runtime handles for the pod reaper).
    pub ids: Vec<String>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Whether it stopped at its time budget.
    pub budget_exhausted: bool,
}

fn record(counters: &Counters, report: &RunReport) {
    counters.runs.fetch_add(1, Ordering::Relaxed);
    let n = report.ids.len() as u64;
    if report.dry_run {
        counters.would_act.fetch_add(n, Ordering::Relaxed);
    } else {
        counters.acted.fetch_add(n, Ordering::Relaxed);
    }
}

/// The wait after attempt `attempts` failed (1 after the first): the backoff times the multiplier per
/// further attempt, at most a day.
fn retry_wait_ms(config: &RetryConfig, attempts: u32) -> Millis {
    let exp = attempts.saturating_sub(1) as i32;
    let wait = config.backoff.as_millis() as f64 * config.multiplier.max(1.0).powi(exp);
    wait.min(86_400_000.0) as Millis
}

/// Whether a failed agenda gets another automatic attempt, and when: failed with attempts left
/// ([`AgendaProgress::retryable`], the rule of the store's retryable phase), after the wait.
pub fn retry_due_at(p: &AgendaProgress, config: &RetryConfig) -> Option<i64> {
    p.retryable().then(|| p.finished_at().saturating_add(retry_wait_ms(config, p.attempts_completed)))
}

/// One page of the agenda progress in `phase` with a time in `at` (oldest first), from the store's
/// phase index; unreadable ones are skipped with a warning.
async fn phase_page(
    ctx: &Ctx,
    phase: Phase,
    at: Range<Millis>,
    cursor: Option<String>,
) -> Result<Page<AgendaProgress>> {
    let page = ctx.store.query_phase(Kind::AgendaProgress, phase, at, PageRequest { limit: 500, cursor }).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        match pop_core::store::from_record::<AgendaProgress>(r) {
            Ok(p) => items.push(p),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable agenda progress"),
        }
    }
    Ok(Page { items, next: page.next })
}

/// Every agenda progress in `phase` with a time in `at`, oldest first, read page by page until done
/// or until the budget is spent (then `true`).
async fn progress_in_phase(
    ctx: &Ctx,
    phase: Phase,
    at: Range<Millis>,
    start: Instant,
    budget: Duration,
) -> Result<(Vec<AgendaProgress>, bool)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        if start.elapsed() >= budget {
            return Ok((out, true));
        }
        let page = phase_page(ctx, phase, at.clone(), cursor).await?;
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok((out, false)),
        }
    }
}

/// The failed agendas whose retry may be due at `now`: the retryable phase, completed no later than
/// `now` minus the shortest wait (the first one; later ones are longer). Reads only agendas waiting
/// for a retry, never the finished history.
async fn retry_candidates(
    ctx: &Ctx,
    config: &RetryConfig,
    now: Millis,
    start: Instant,
) -> Result<(Vec<AgendaProgress>, bool)> {
    let latest = now.saturating_sub(retry_wait_ms(config, 1)).saturating_add(1);
    progress_in_phase(ctx, Phase::Retryable, Millis::MIN..latest, start, config.timing.budget).await
}

/// One automatic-retry run.
async fn retry_once(ctx: &Ctx, config: &RetryConfig, stats: &TimedStats) -> Result<RunReport> {
    let start = Instant::now();
    let now = ctx.now();
    let mut report = RunReport { dry_run: config.timing.dry_run, ..Default::default() };
    let (candidates, exhausted) = retry_candidates(ctx, config, now, start).await?;
    report.budget_exhausted = exhausted;
    let due: Vec<AgendaProgress> =
        candidates.into_iter().filter(|p| retry_due_at(p, config).is_some_and(|at| at <= now)).collect();
    for p in due {
        if start.elapsed() >= config.timing.budget {
            report.budget_exhausted = true;
            break;
        }
        let Some(agenda_id) = p.agenda_id.clone() else { continue };
        if config.timing.dry_run {
            tracing::info!(agenda_id, attempts = p.attempts_completed, "dry run: would retry the failed agenda");
            report.ids.push(agenda_id);
            continue;
        }
        let Some(agenda) = ctx.store.get_obj::<Agenda>(&agenda_id).await? else {
            tracing::warn!(agenda_id, "automatic retry: the agenda of a failed progress no longer exists; skipped");
            continue;
        };
        let Some(progress_id) = p.id.as_deref() else { continue };
        let full = ctx.progress_full(progress_id).await?;
        let options = RerunOptions { continue_: true, ..Default::default() };
        match crate::rerun::reset(ctx, agenda, full, &options).await {
            Ok(_) => {
                tracing::info!(agenda_id, attempt = p.attempts_completed + 1, "automatic retry");
                metrics::counter!("pop_agenda_retries_total").increment(1);
                report.ids.push(agenda_id);
            }
            Err(e) => {
                stats.retry.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agenda_id, error = %e, "automatic retry failed");
            }
        }
    }
    record(&stats.retry, &report);
    Ok(report)
}

/// One data-reaper run.
async fn reap_data_once(
    ctx: &Ctx,
    config: &DataReaperConfig,
    retry: &RetryConfig,
    stats: &TimedStats,
) -> Result<RunReport> {
    let start = Instant::now();
    let now = ctx.now();
    let cutoff = now - config.agenda_ttl.as_millis() as i64;
    let mut report = RunReport { dry_run: config.timing.dry_run, ..Default::default() };
    let mut batch = Vec::new();
    // Page by page, acting on each page before reading the next: a backlog larger than one run's
    // budget still shrinks run after run (a deleted item does not disturb the cursor).
    'phases: for phase in reap_phases(retry) {
        let mut cursor = None;
        loop {
            if start.elapsed() >= config.timing.budget {
                report.budget_exhausted = true;
                break 'phases;
            }
            let page = phase_page(ctx, phase, Millis::MIN..cutoff, cursor).await?;
            for p in page.items {
                if start.elapsed() >= config.timing.budget {
                    report.budget_exhausted = true;
                    break 'phases;
                }
                let old = p.updated_time.unwrap_or_default() < cutoff;
                let finished = p.processing_state == ProcessingState::Complete;
                let retry_pending = retry.timing.enabled && retry_due_at(&p, retry).is_some();
                if !old || !finished || retry_pending {
                    continue;
                }
                reap_one(ctx, config, &p, &mut report, &mut batch, stats).await?;
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    flush(ctx, &mut batch, stats).await;
    if !report.dry_run {
        metrics::counter!("pop_reaped_objects_total").increment(report.ids.len() as u64);
    }
    record(&stats.data_reaper, &report);
    Ok(report)
}

/// The phases the data reaper reads, below its cutoff: finished agendas, and failed ones with
/// attempts left too when automatic retry is off (nothing will retry them). Never unfinished ones.
fn reap_phases(retry: &RetryConfig) -> Vec<Phase> {
    if retry.timing.enabled { vec![Phase::Finished] } else { vec![Phase::Finished, Phase::Retryable] }
}

/// Deletes (or, in a dry run, reports) one old finished agenda with its progress, unless it is ready
/// or queued; the deletes go into `batch`, written every `batch_size` agendas.
async fn reap_one(
    ctx: &Ctx,
    config: &DataReaperConfig,
    p: &AgendaProgress,
    report: &mut RunReport,
    batch: &mut Vec<WriteOp>,
    stats: &TimedStats,
) -> Result<()> {
    let Some(progress_id) = p.id.clone() else { return Ok(()) };
    let Some(agenda_id) = p.agenda_id.clone() else {
        tracing::warn!(progress_id, "data reaper: a finished agenda progress without an agendaId; left alone");
        return Ok(());
    };
    // queued or ready work is never reaped, whatever its progress says
    if ctx.store.ready_get(&agenda_id).await?.is_some() {
        return Ok(());
    }
    if let Some(insight_id) = ctx.store.get_obj::<Agenda>(&agenda_id).await?.as_ref().and_then(|a| a.insight_id()) {
        if ctx.queue.contains(insight_id, &agenda_id).await? {
            return Ok(());
        }
    }
    if config.timing.dry_run {
        tracing::info!(agenda_id, "dry run: would delete the finished agenda and its progress");
        report.ids.push(agenda_id);
        return Ok(());
    }
    let ops: Vec<OperationProgress> = ctx.store.query_all(IndexField::AgendaProgressId, &progress_id).await?;
    for id in ops.into_iter().filter_map(|op| op.id) {
        batch.push(WriteOp::Delete { kind: Kind::OperationProgress, id, expected_version: None });
    }
    batch.push(WriteOp::Delete { kind: Kind::AgendaProgress, id: progress_id, expected_version: Some(p.version) });
    if ctx.store.get(Kind::Agenda, &agenda_id).await?.is_some() {
        batch.push(WriteOp::Delete { kind: Kind::Agenda, id: agenda_id.clone(), expected_version: None });
    }
    report.ids.push(agenda_id);
    if report.ids.len() % config.batch_size.max(1) == 0 {
        flush(ctx, batch, stats).await;
    }
    Ok(())
}

async fn flush(ctx: &Ctx, batch: &mut Vec<WriteOp>, stats: &TimedStats) {
    if batch.is_empty() {
        return;
    }
    let ops = std::mem::take(batch);
    if let Err(e) = ctx.write_ordered(ops).await {
        stats.data_reaper.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "data reaper: a delete batch failed (the agenda changed meanwhile?)");
    }
}

/// One pod-reaper run.
async fn reap_pods_once(ctx: &Ctx, config: &PodReaperConfig, stats: &TimedStats) -> Result<RunReport> {
    let start = Instant::now();
    let now = ctx.now();
    let mut report = RunReport { dry_run: config.timing.dry_run, ..Default::default() };
    for info in ctx.runtime.list().await? {
        if start.elapsed() >= config.timing.budget {
            report.budget_exhausted = true;
            break;
        }
        let reap = match info.state {
            LaunchedState::Finished => {
                info.finished.unwrap_or(info.started) <= now - config.finished_age.as_millis() as i64
            }
            LaunchedState::Running => info.started <= now - config.stuck_age.as_millis() as i64,
        };
        if !reap {
            continue;
        }
        if config.timing.dry_run {
            tracing::info!(handle = %info.handle, agenda_id = %info.agenda_id, operation = %info.operation_name, state = ?info.state, "dry run: would reap");
        } else if let Err(e) = ctx.runtime.cleanup(&info.handle).await {
            stats.pod_reaper.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(handle = %info.handle, error = %e, "pod reaper: cleanup failed");
            continue;
        }
        report.ids.push(info.handle);
    }
    record(&stats.pod_reaper, &report);
    Ok(report)
}

/// All three timed processes.
#[derive(Debug, Clone, Default)]
pub struct TimedConfig {
    /// Automatic retry.
    pub retry: RetryConfig,
    /// Data reaper.
    pub data_reaper: DataReaperConfig,
    /// Pod reaper.
    pub pod_reaper: PodReaperConfig,
}

/// The timed processes of one engine: their configuration and counters.
pub(crate) struct TimedProcesses {
    ctx: Arc<Ctx>,
    config: TimedConfig,
    stats: Arc<TimedStats>,
}

impl TimedProcesses {
    pub fn new(ctx: Arc<Ctx>, config: TimedConfig, stats: Arc<TimedStats>) -> Self {
        Self { ctx, config, stats }
    }

    /// Runs each process at its interval until the engine shuts down.
    pub async fn run(self) {
        run(self.ctx, self.config, self.stats).await
    }

    /// One automatic-retry run.
    pub async fn retry_once(&self) -> Result<RunReport> {
        retry_once(&self.ctx, &self.config.retry, &self.stats).await
    }

    /// One data-reaper run.
    pub async fn reap_data_once(&self) -> Result<RunReport> {
        reap_data_once(&self.ctx, &self.config.data_reaper, &self.config.retry, &self.stats).await
    }

    /// One pod-reaper run.
    pub async fn reap_pods_once(&self) -> Result<RunReport> {
        reap_pods_once(&self.ctx, &self.config.pod_reaper, &self.stats).await
    }
}

async fn run(ctx: Arc<Ctx>, config: TimedConfig, stats: Arc<TimedStats>) {
    let mut next = [Instant::now(); 3];
    loop {
        let wake = *next.iter().min().unwrap_or(&Instant::now());
        tokio::select! {
            _ = ctx.signals.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if config.retry.timing.enabled && now >= next[0] {
            if let Err(e) = retry_once(&ctx, &config.retry, &stats).await {
                stats.retry.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "automatic retry run failed");
            }
            next[0] = Instant::now() + config.retry.timing.interval;
        } else if !config.retry.timing.enabled {
            next[0] = now + Duration::from_secs(3600);
        }
        if config.data_reaper.timing.enabled && now >= next[1] {
            if let Err(e) = reap_data_once(&ctx, &config.data_reaper, &config.retry, &stats).await {
                stats.data_reaper.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "data reaper run failed");
            }
            next[1] = Instant::now() + config.data_reaper.timing.interval;
        } else if !config.data_reaper.timing.enabled {
            next[1] = now + Duration::from_secs(3600);
        }
        if config.pod_reaper.timing.enabled && now >= next[2] {
            if let Err(e) = reap_pods_once(&ctx, &config.pod_reaper, &stats).await {
                stats.pod_reaper.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "pod reaper run failed");
            }
            next[2] = Instant::now() + config.pod_reaper.timing.interval;
        } else if !config.pod_reaper.timing.enabled {
            next[2] = now + Duration::from_secs(3600);
        }
    }
}
