//! Progress services: an agenda's progress, the summary of a linkId, explain.

use crate::context::Ctx;
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Conclusion, OperationProgress, ProcessingState};
use pop_core::store::{IndexField, Kind, Page, PageRequest, StoreExt, WriteOp};
use pop_core::visibility::can_read;
use pop_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Progress services.
#[derive(Clone)]
pub struct ProgressService {
    pub(crate) ctx: Arc<Ctx>,
}

/// The rolled-up progress of the agendas of one linkId (the original's `ProgressSummaryResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressSummary {
    /// The agendas' progress (visible ones only).
    pub progress_list: Vec<AgendaProgress>,
    /// The rolled-up state.
    pub processing_state: ProcessingState,
    /// The average percent complete (absent when any agenda failed, as the original).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_percent: Option<f64>,
}

/// Why an agenda is where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explain {
    /// The agenda.
    pub agenda_id: String,
    /// Its state.
    pub processing_state: ProcessingState,
    /// Where it is: `ready`, `queued`, `running`, `complete`, `not scheduled`.
    pub stage: String,
    /// Estimated picks before it (ready agendas only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The reason, for a person.
    pub reason: String,
}

impl ProgressService {
    /// An agenda's progress with its operations' progress.
    pub async fn agenda_progress(&self, principal: &Principal, agenda_id: &str) -> Result<AgendaProgress> {
        let agenda = self.visible_agenda(principal, agenda_id).await?;
        let progress_id = agenda.progress_id.ok_or_else(|| Error::not_found("agendaProgress", agenda_id))?;
        self.ctx.progress_full(&progress_id).await
    }

    /// A progress by its own id.
    pub async fn by_id(&self, principal: &Principal, progress_id: &str) -> Result<AgendaProgress> {
        let p = self.ctx.progress_full(progress_id).await?;
        if can_read(principal, &p) { Ok(p) } else { Err(Error::not_found("agendaProgress", progress_id)) }
    }

    /// Agenda progress whose indexed `field` equals `value` (linkId, customerId, agendaId, title),
    /// filtered by visibility, each with its operation progress when `with_operations`.
    pub async fn query(
        &self,
        principal: &Principal,
        field: IndexField,
        value: &str,
        page: PageRequest,
        with_operations: bool,
    ) -> Result<Page<AgendaProgress>> {
        let mut p = self.ctx.store.query_obj::<AgendaProgress>(field, value, page).await?;
        p.items.retain(|a| can_read(principal, a));
        if with_operations {
            self.join_operations(&mut p.items).await?;
        }
        Ok(p)
    }

    /// A page of every agenda progress the caller may see (read first, filtered after).
    pub async fn list(
        &self,
        principal: &Principal,
        page: PageRequest,
        with_operations: bool,
    ) -> Result<Page<AgendaProgress>> {
        let raw = self.ctx.store.scan(Kind::AgendaProgress, page).await?;
        let mut items = Vec::with_capacity(raw.items.len());
        for r in &raw.items {
            let p: AgendaProgress = pop_core::store::from_record(r)?;
            if can_read(principal, &p) {
                items.push(p);
            }
        }
        if with_operations {
            self.join_operations(&mut items).await?;
        }
        Ok(Page { items, next: raw.next })
    }

    async fn join_operations(&self, items: &mut [AgendaProgress]) -> Result<()> {
        for p in items {
            if let Some(id) = p.id.clone() {
                p.operation_progress = self.ctx.operation_progress(&id).await?;
            }
        }
        Ok(())
    }

    /// Deletes an agenda progress the caller owns with its operation progress (the original's
    /// cascade). An executing agenda's progress is refused: cancel it first.
    pub async fn delete(&self, principal: &Principal, progress_id: &str) -> Result<AgendaProgress> {
        let p = self.by_id(principal, progress_id).await?;
        if !pop_core::visibility::owns(principal, &p) {
            return Err(super::forbidden(principal, &format!("delete agenda progress {progress_id}")));
        }
        if p.processing_state == ProcessingState::Executing {
            return Err(Error::Conflict(format!(
                "agenda progress {progress_id} is executing: cancel its agenda first"
            )));
        }
        let mut writes: Vec<WriteOp> = p
            .operation_progress
            .iter()
            .filter_map(|o| o.id.clone())
            .map(|id| WriteOp::Delete { kind: Kind::OperationProgress, id, expected_version: None })
            .collect();
        writes.push(WriteOp::Delete {
            kind: Kind::AgendaProgress,
            id: progress_id.to_owned(),
            expected_version: Some(p.version),
        });
        self.ctx.write_ordered(writes).await?;
        Ok(p)
    }

    /// One operation progress row, if the caller may see it.
    pub async fn operation(&self, principal: &Principal, id: &str) -> Result<OperationProgress> {
        self.ctx
            .store
            .get_obj::<OperationProgress>(id)
            .await?
            .filter(|o| can_read(principal, o))
            .ok_or_else(|| Error::not_found("operationProgress", id))
    }

    /// Operation progress rows whose indexed `field` equals `value` (agendaProgressId, customerId),
    /// filtered by visibility.
    pub async fn operations(
        &self,
        principal: &Principal,
        field: IndexField,
        value: &str,
        page: PageRequest,
    ) -> Result<Page<OperationProgress>> {
        let mut p = self.ctx.store.query_obj::<OperationProgress>(field, value, page).await?;
        p.items.retain(|o| can_read(principal, o));
        Ok(p)
    }

    /// The summary of every visible agenda progress of a linkId (the original's rules, §4.4).
    pub async fn summary(&self, principal: &Principal, link_id: &str) -> Result<ProgressSummary> {
        let mut list = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .ctx
                .store
                .query_obj::<AgendaProgress>(IndexField::LinkId, link_id, PageRequest { limit: 500, cursor })
                .await?;
            list.extend(page.items.into_iter().filter(|p| can_read(principal, p)));
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(summarize(list))
    }

    /// Why an agenda waits (queue position and the algorithm's reason), or where it is.
    pub async fn explain(&self, principal: &Principal, agenda_id: &str) -> Result<Explain> {
        let agenda = self.visible_agenda(principal, agenda_id).await?;
        let progress_id = agenda.progress_id.as_deref().ok_or_else(|| Error::not_found("agendaProgress", agenda_id))?;
        let progress: AgendaProgress = self.ctx.store.fetch(progress_id).await?;
        let state = progress.processing_state;
        let mk = |stage: &str, position: Option<usize>, reason: String| Explain {
            agenda_id: agenda_id.to_owned(),
            processing_state: state,
            stage: stage.into(),
            position,
            reason,
        };
        match state {
            ProcessingState::Complete => {
                let c = progress.conclusion().map(Conclusion::as_str).unwrap_or("complete");
                return Ok(mk("complete", None, format!("finished: {c}")));
            }
            ProcessingState::Executing => {
                return Ok(mk(
                    "running",
                    None,
                    format!(
                        "running: {:.0}% complete, attempt {}",
                        progress.percent_complete,
                        progress.attempts_completed + 1
                    ),
                ));
            }
            ProcessingState::Waiting => {}
        }
        let Some(insight_id) = agenda.insight_id().map(str::to_owned) else {
            return Ok(mk("not scheduled", None, "the agenda has no insight".into()));
        };
        if self.ctx.queue.contains(&insight_id, agenda_id).await? {
            // A pool worker pulled it and gave it back for want of capacity: say why.
            if let Some(why) =
                progress.processing_state_message.as_deref().filter(|m| m.starts_with(crate::worker::HELD_BACK))
            {
                return Ok(mk("queued", Some(0), format!("in the queue of insight {insight_id}, {why}")));
            }
            return Ok(mk(
                "queued",
                Some(0),
                format!("in the queue of insight {insight_id}, waiting for a pool worker"),
            ));
        }
        if self.ctx.store.ready_get(agenda_id).await?.is_none() {
            let why = if agenda.do_not_run() {
                "the agenda has doNotRun"
            } else {
                "no ready entry: the reclaimer's repair will re-queue it"
            };
            return Ok(mk("not scheduled", None, why.into()));
        }
        let explanation = crate::scheduler::explain(&self.ctx, &insight_id, agenda_id).await?;
        Ok(match explanation {
            Some(e) => mk("ready", Some(e.position), e.reason),
            None => mk("ready", None, format!("ready in insight {insight_id}")),
        })
    }

    async fn visible_agenda(&self, principal: &Principal, agenda_id: &str) -> Result<Agenda> {
        self.ctx
            .store
            .get_obj::<Agenda>(agenda_id)
            .await?
            .filter(|a| can_read(principal, a))
            .ok_or_else(|| Error::not_found("agenda", agenda_id))
    }
}

/// The original's summary rules: any failed → COMPLETE (no percent); else percent = min(100, average);
/// EXECUTING if any executes; WAITING if all wait; EXECUTING if some wait and some are done; else COMPLETE.
pub fn summarize(list: Vec<AgendaProgress>) -> ProgressSummary {
    let any_failed = list
        .iter()
        .any(|p| p.processing_state_message.as_deref().and_then(Conclusion::parse) == Some(Conclusion::Failed));
    if any_failed {
        return ProgressSummary {
            progress_list: list,
            processing_state: ProcessingState::Complete,
            processing_percent: None,
        };
    }
    let n = list.len().max(1) as f64;
    let percent = (list.iter().map(|p| p.percent_complete).sum::<f64>() / n).min(100.0);
    let executing = list.iter().any(|p| p.processing_state == ProcessingState::Executing);
    let waiting = list.iter().filter(|p| p.processing_state == ProcessingState::Waiting).count();
    let state = if executing {
        ProcessingState::Executing
    } else if waiting > 0 {
        if waiting == list.len() { ProcessingState::Waiting } else { ProcessingState::Executing }
    } else {
        ProcessingState::Complete
    };
    ProgressSummary { progress_list: list, processing_state: state, processing_percent: Some(percent) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(state: ProcessingState, msg: &str, pct: f64) -> AgendaProgress {
        AgendaProgress {
            processing_state: state,
            processing_state_message: Some(msg.into()),
            percent_complete: pct,
            ..AgendaProgress::default()
        }
    }

    #[test]
    fn summary_rules() {
        use ProcessingState::*;
        let s = summarize(vec![p(Complete, "FAILED", 100.0), p(Executing, "", 50.0)]);
        assert_eq!((s.processing_state, s.processing_percent), (Complete, None));
        let s = summarize(vec![p(Waiting, "pending", 0.0), p(Waiting, "pending", 0.0)]);
        assert_eq!((s.processing_state, s.processing_percent), (Waiting, Some(0.0)));
        let s = summarize(vec![p(Waiting, "pending", 0.0), p(Complete, "succeeded", 100.0)]);
        assert_eq!((s.processing_state, s.processing_percent), (Executing, Some(50.0)));
        let s = summarize(vec![p(Complete, "succeeded", 100.0), p(Complete, "succeeded", 100.0)]);
        assert_eq!((s.processing_state, s.processing_percent), (Complete, Some(100.0)));
    }
}
