//! Agenda services: submit, run a template, rerun, cancel, get, query.

use super::{forbidden, new_id};
use crate::context::Ctx;
use pop_core::authz::Principal;
use pop_core::lifecycle;
use pop_core::model::{
    Agenda, AgendaInsight, AgendaProgress, AgendaTemplate, Conclusion, Customer, DiagnosticEvent, Insight,
    OperationProgress, ProcessingState,
};
use pop_core::store::{IndexField, Page, PageRequest, StoreExt, WriteOp, create_op};
use pop_core::visibility::{can_create, can_read, owns};
use pop_core::{Error, Problem, Result};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

/// Agenda services.
#[derive(Clone)]
pub struct AgendaService {
    pub(crate) ctx: Arc<Ctx>,
}

/// How a rerun resets an agenda (the original's `RerunAgendaRequest.params`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RerunOptions {
    /// Reset every operation (the default when nothing else is asked).
    pub reset_all: bool,
    /// Keep every operation's progress; only the agenda goes back to WAITING.
    pub continue_: bool,
    /// Reset these operations and everything that depends on them; generated operations of a reset
    /// generator are removed.
    pub operations_to_reset: Vec<String>,
    /// Reset, but do not queue the agenda.
    pub skip_execution: bool,
}

impl RerunOptions {
    /// Parses the original's params: `resetAll`, `continue`, `skipExecution`, `operationsToReset=a,b`.
    pub fn parse<S: AsRef<str>>(params: &[S]) -> Result<Self> {
        let mut o = Self::default();
        let mut problems = Vec::new();
        for p in params {
            let p = p.as_ref().trim();
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p, None),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("resetall", _) => o.reset_all = true,
                ("continue", _) => o.continue_ = true,
                ("skipexecution", _) => o.skip_execution = true,
                ("operationstoreset", Some(v)) => {
                    let names: Vec<String> =
                        v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
                    if names.is_empty() {
                        problems.push(Problem::new("operationsToReset names no operation").field("operationsToReset"));
                    }
                    o.operations_to_reset.extend(names);
                }
                ("operationstoreset", None) => problems.push(
                    Problem::new("operationsToReset needs a value: operationsToReset=a,b").field("operationsToReset"),
                ),
                _ => problems.push(Problem::new(format!(
                    "unknown rerun parameter `{p}`: use resetAll, continue, skipExecution or operationsToReset=a,b"
                ))),
            }
        }
        if problems.is_empty() { Ok(o) } else { Err(Error::problems(problems)) }
    }
}

impl AgendaService {
    /// Submits one agenda: authorize, validate, select the insight, then write the agenda, its
    /// progress, one progress per operation and the ready entry atomically. Returns the stored agenda.
    pub async fn submit(&self, principal: &Principal, agenda: Agenda) -> Result<Agenda> {
        let ctx = &self.ctx;
        let customer_id = match agenda.customer_id.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => return Err(Error::problems(vec![Problem::new("customerId is required").field("customerId")])),
        };
        if !can_create(principal, &agenda) {
            return Err(forbidden(principal, &format!("submit agendas for customer {customer_id}")));
        }
        pop_core::validate::validate_agenda(&agenda, &ctx.config.validation)?;
        let customer: Customer = ctx.store.get_obj(&customer_id).await?.ok_or_else(|| Error::NotFound {
            kind: "customer".into(),
            id: format!("{customer_id} (create the customer before submitting)"),
        })?;
        let insight = self.select_insight(&agenda, &customer).await?;
        let now = ctx.now();
        let mut agenda = agenda;
        let agenda_id = new_id();
        let progress_id = new_id();
        agenda.id = Some(agenda_id.clone());
        agenda.customer_id = Some(customer_id.clone());
        if agenda.cid.as_deref().is_none_or(str::is_empty) {
            agenda.cid = Some(new_id());
        }
        agenda.progress_id = Some(progress_id.clone());
        agenda.agenda_insight =
            Some(AgendaInsight { resource_pool_id: insight.resource_pool_id.clone(), insight_id: insight.id.clone() });
        agenda.added_time = Some(now);
        agenda.updated_time = Some(now);
        if agenda.params.is_none() {
            agenda.params = Some(Default::default());
        }

        let mut progress = lifecycle::new_agenda_progress(&agenda, &progress_id, now);
        let mut ops: Vec<OperationProgress> = agenda
            .operations
            .iter()
            .map(|op| lifecycle::new_operation_progress(&agenda, &progress_id, op, now))
            .collect();
        let ready = if agenda.do_not_run() { None } else { Some(lifecycle::ready_entry(&agenda, now)?) };

        let mut writes = Vec::with_capacity(ops.len() + 3);
        for op in &mut ops {
            writes.push(create_op(op)?);
        }
        writes.push(create_op(&mut progress)?);
        writes.push(create_op(&mut agenda)?);
        if let Some(r) = ready {
            writes.push(WriteOp::ReadyInsert(r));
        }
        // shared with concurrent submits: one transaction and one durable wait for all of them
        ctx.write_grouped(writes).await?;
        metrics::counter!("pop_agendas_submitted_total").increment(1);
        tracing::info!(agenda_id = %agenda_id, cid = ?agenda.cid, customer = %customer_id, insight = ?insight.id, "agenda submitted");
        ctx.signals.wake.notify_waiters();
        Ok(agenda)
    }

    /// Submits several agendas; each succeeds or fails on its own (the original's `createAgenda`).
    pub async fn submit_many(&self, principal: &Principal, agendas: Vec<Agenda>) -> Vec<Result<Agenda>> {
        let mut out = Vec::with_capacity(agendas.len());
        for a in agendas {
            out.push(self.submit(principal, a).await);
        }
        out
    }

    /// Expands a template with a payload and submits the result as the template agenda's customer (or
    /// the caller's only account).
    pub async fn run_template(
        &self,
        principal: &Principal,
        template_id: &str,
        payload: &serde_json::Value,
    ) -> Result<Agenda> {
        let template: AgendaTemplate = self
            .ctx
            .store
            .get_obj(template_id)
            .await?
            .filter(|t| can_read(principal, t))
            .ok_or_else(|| Error::not_found("agendaTemplate", template_id))?;
        let mut agenda = pop_core::template::expand(&template, payload)?;
        if agenda.customer_id.as_deref().is_none_or(str::is_empty) {
            if principal.accounts.len() == 1 {
                agenda.customer_id = principal.accounts.iter().next().cloned();
            } else {
                return Err(Error::problems(vec![
                    Problem::new(format!(
                        "template {template_id} names no customerId and the caller acts for {} accounts: put customerId in the template's agenda",
                        principal.accounts.len()
                    ))
                    .field("customerId"),
                ]));
            }
        }
        self.submit(principal, agenda).await
    }

    /// The agenda, if the caller may see it.
    pub async fn get(&self, principal: &Principal, agenda_id: &str) -> Result<Agenda> {
        self.ctx
            .store
            .get_obj::<Agenda>(agenda_id)
            .await?
            .filter(|a| can_read(principal, a))
            .ok_or_else(|| Error::not_found("agenda", agenda_id))
    }

    /// A page of every agenda the caller may see (read first, filtered after: a page may hold fewer
    /// than `limit` while `next` says there are more).
    pub async fn list(&self, principal: &Principal, page: PageRequest) -> Result<Page<Agenda>> {
        let raw = self.ctx.store.scan(pop_core::store::Kind::Agenda, page).await?;
        let mut items = Vec::with_capacity(raw.items.len());
        for r in &raw.items {
            let a: Agenda = pop_core::store::from_record(r)?;
            if can_read(principal, &a) {
                items.push(a);
            }
        }
        Ok(Page { items, next: raw.next })
    }

    /// Deletes an agenda the caller owns, with its ready entry and queue item (the original's cascade;
    /// its progress stays until deleted or reaped). An executing agenda is refused: cancel it first.
    pub async fn delete(&self, principal: &Principal, agenda_id: &str) -> Result<Agenda> {
        let ctx = &self.ctx;
        let agenda = self.get(principal, agenda_id).await?;
        if !owns(principal, &agenda) {
            return Err(forbidden(principal, &format!("delete agenda {agenda_id}")));
        }
        if let Some(progress_id) = agenda.progress_id.as_deref() {
            if let Some(p) = ctx.store.get_obj::<AgendaProgress>(progress_id).await? {
                if p.processing_state == ProcessingState::Executing {
                    return Err(Error::Conflict(format!(
                        "agenda {agenda_id} is executing: cancel it before deleting it"
                    )));
                }
            }
        }
        let mut writes = vec![WriteOp::ReadyRemove { agenda_id: agenda_id.to_owned() }];
        writes.push(WriteOp::Delete {
            kind: pop_core::store::Kind::Agenda,
            id: agenda_id.to_owned(),
            expected_version: Some(agenda.version),
        });
        ctx.store.write(writes).await?;
        if let Some(insight) = agenda.insight_id() {
            ctx.queue.remove(insight, agenda_id).await?;
        }
        tracing::info!(agenda_id, "agenda deleted");
        Ok(agenda)
    }

    /// The dependency graph of an agenda the caller may see (references, `dependsOn`, generated
    /// operations), with each operation's topological layer.
    pub async fn graph(&self, principal: &Principal, agenda_id: &str) -> Result<pop_core::dag::GraphDocument> {
        let agenda = self.get(principal, agenda_id).await?;
        Ok(pop_core::dag::AgendaGraph::new(&agenda).document())
    }

    /// Checks an agenda as a submission would (every problem listed, each naming its operation and
    /// field), without storing anything.
    pub fn validate(&self, agenda: &Agenda) -> Result<()> {
        pop_core::validate::validate_agenda(agenda, &self.ctx.config.validation)
    }

    /// Agendas whose `field` equals `value` (linkId, customerId, title), filtered by visibility.
    pub async fn query(
        &self,
        principal: &Principal,
        field: IndexField,
        value: &str,
        page: PageRequest,
    ) -> Result<Page<Agenda>> {
        let mut p = self.ctx.store.query_obj::<Agenda>(field, value, page).await?;
        p.items.retain(|a| can_read(principal, a));
        Ok(p)
    }

    /// Reruns an agenda (`resetAll` by default, `continue`, `operationsToReset`, `skipExecution`).
    pub async fn rerun(&self, principal: &Principal, agenda_id: &str, options: RerunOptions) -> Result<AgendaProgress> {
        let ctx = &self.ctx;
        let agenda: Agenda = ctx
            .store
            .get_obj(agenda_id)
            .await?
            .filter(|a| can_read(principal, a))
            .ok_or_else(|| Error::not_found("agenda", agenda_id))?;
        if !owns(principal, &agenda) {
            return Err(forbidden(principal, &format!("rerun agenda {agenda_id}")));
        }
        let progress_id = agenda.progress_id.clone().ok_or_else(|| Error::not_found("agendaProgress", agenda_id))?;
        let progress = ctx.progress_full(&progress_id).await?;
        if progress.processing_state == ProcessingState::Executing {
            return Err(Error::Conflict(format!(
                "agenda {agenda_id} is executing: wait for it to finish or cancel it before a rerun"
            )));
        }
        crate::rerun::reset(ctx, agenda, progress, &options).await
    }

    /// Cancels an agenda in any state: queued work is dropped, running handlers are killed, the agenda
    /// ends COMPLETE/`cancelled`. Cancelling a finished agenda changes nothing.
    pub async fn cancel(&self, principal: &Principal, agenda_id: &str) -> Result<AgendaProgress> {
        let ctx = &self.ctx;
        let agenda: Agenda = ctx
            .store
            .get_obj(agenda_id)
            .await?
            .filter(|a| can_read(principal, a))
            .ok_or_else(|| Error::not_found("agenda", agenda_id))?;
        if !owns(principal, &agenda) {
            return Err(forbidden(principal, &format!("cancel agenda {agenda_id}")));
        }
        let progress_id = agenda.progress_id.clone().ok_or_else(|| Error::not_found("agendaProgress", agenda_id))?;
        // Mark cancelled first: a running executor's next progress write is then refused, which stops it
        // wherever it runs.
        let cancelled_now = loop {
            let mut p: AgendaProgress = ctx.store.fetch(&progress_id).await?;
            if p.processing_state == ProcessingState::Complete {
                break false;
            }
            let now = ctx.now();
            p.processing_state = ProcessingState::Complete;
            p.processing_state_message = Some(Conclusion::Cancelled.as_str().into());
            p.completed_time = Some(now);
            p.updated_time = Some(now);
            p.diagnostic_events.push(DiagnosticEvent::new(format!("cancelled by {}", principal.user_id), now));
            match ctx.store.update_obj(&mut p).await {
                Ok(()) => break true,
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        };
        if cancelled_now {
            ctx.store.write(vec![WriteOp::ReadyRemove { agenda_id: agenda_id.to_owned() }]).await?;
            if let Some(insight) = agenda.insight_id() {
                ctx.queue.remove(insight, agenda_id).await?;
            }
            ctx.signals.running.cancel(agenda_id);
            tracing::info!(agenda_id, "agenda cancelled");
        }
        ctx.progress_full(&progress_id).await
    }

    async fn select_insight(&self, agenda: &Agenda, customer: &Customer) -> Result<Insight> {
        let pool = customer.resource_pool_id.as_deref().ok_or_else(|| {
            Error::problems(vec![
                Problem::new(format!(
                    "customer {} has no resourcePoolId: assign it a resource pool before submitting",
                    customer.id.as_deref().unwrap_or_default()
                ))
                .field("resourcePoolId"),
            ])
        })?;
        let insights: Vec<Insight> = self.ctx.store.query_all(IndexField::ResourcePoolId, pool).await?;
        pop_sched::select_insight(agenda, customer, &insights).cloned()
    }
}
