//! The rules of an agenda's progress through its life, in one place: the rows a submission creates,
//! the id and owner fields every operation row carries, how an executor's report merges into the stored
//! progress, and what a reported row must look like to be accepted.
//!
//! The engine's submission and resource-pool services and the executor's state machine all build and
//! merge progress through these functions, so a row looks the same whichever path wrote it (an
//! in-process worker or a remote pool over HTTP).

use crate::error::{Error, Problem, Result};
use crate::model::{
    Agenda, AgendaProgress, Conclusion, Millis, Operation, OperationProgress, PENDING, Params, ProcessingState,
    ReadyAgenda, param_keys,
};

/// The WAITING progress of a newly submitted agenda.
pub fn new_agenda_progress(agenda: &Agenda, progress_id: &str, now: Millis) -> AgendaProgress {
    AgendaProgress {
        id: Some(progress_id.to_owned()),
        cid: agenda.cid.clone(),
        customer_id: agenda.customer_id.clone(),
        title: agenda.title.clone(),
        added_time: Some(now),
        updated_time: Some(now),
        agenda_id: agenda.id.clone(),
        link_id: agenda.link_id.clone(),
        external_id: external_id(agenda),
        processing_state: ProcessingState::Waiting,
        processing_state_message: Some(PENDING.into()),
        maximum_attempts: agenda.maximum_attempts(),
        params: agenda.params.clone(),
        agenda_insight: agenda.agenda_insight.clone(),
        ..AgendaProgress::default()
    }
}

/// The agenda's `externalId` param as the progress carries it (a string; other JSON as its text).
pub fn external_id(agenda: &Agenda) -> Option<String> {
    agenda.param(param_keys::EXTERNAL_ID).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The WAITING progress row of one operation of an agenda (at submission, or when a generator adds it).
pub fn new_operation_progress(agenda: &Agenda, progress_id: &str, op: &Operation, now: Millis) -> OperationProgress {
    let mut row = OperationProgress {
        added_time: Some(now),
        updated_time: Some(now),
        processing_state: ProcessingState::Waiting,
        processing_state_message: Some(PENDING.into()),
        params: op.params.clone(),
        ..OperationProgress::default()
    };
    stamp_operation(&mut row, &op.name, progress_id, agenda.cid.as_deref(), agenda.customer_id.as_deref());
    row
}

/// The ready entry that puts a submitted (or rerun) agenda in its insight's ready set.
pub fn ready_entry(agenda: &Agenda, now: Millis) -> Result<ReadyAgenda> {
    let missing = |field: &str| Error::invalid(format!("agenda without {field} cannot be scheduled"));
    Ok(ReadyAgenda {
        id: uuid::Uuid::new_v4().to_string(),
        insight_id: agenda.insight_id().ok_or_else(|| missing("an insight"))?.to_owned(),
        agenda_id: agenda.id.clone().ok_or_else(|| missing("an id"))?,
        customer_id: agenda.customer_id.clone().ok_or_else(|| missing("a customerId"))?,
        added: now,
        priority: agenda.priority,
    })
}

/// The id of operation `name`'s progress row in agenda progress `progress_id`
/// (`<agendaProgressId>-<name>`, as the original).
pub fn operation_progress_id(progress_id: &str, name: &str) -> String {
    let mut id = String::with_capacity(progress_id.len() + 1 + name.len());
    id.push_str(progress_id);
    id.push('-');
    id.push_str(name);
    id
}

/// Fills in the id and owner fields of operation `name`'s progress row: its id, agenda progress id,
/// operation name, and (when unset) cid and customer id.
pub fn stamp_operation(
    row: &mut OperationProgress,
    name: &str,
    progress_id: &str,
    cid: Option<&str>,
    customer_id: Option<&str>,
) {
    row.id = Some(operation_progress_id(progress_id, name));
    row.agenda_progress_id = Some(progress_id.to_owned());
    if row.operation.is_none() {
        row.operation = Some(name.to_owned());
    }
    if row.cid.is_none() {
        row.cid = cid.map(str::to_owned);
    }
    if row.customer_id.is_none() {
        row.customer_id = customer_id.map(str::to_owned);
    }
}

/// Checks a row reported for agenda progress `stored` (by an executor, possibly a remote pool's): it
/// must name its operation and carry that operation's id, `stored`'s id and owner. A row that does not
/// is refused with `Invalid` naming the operation and the field, so a pool can write only the rows of
/// the agenda it holds.
pub fn check_reported_row(row: &OperationProgress, stored: &AgendaProgress) -> Result<()> {
    let Some(progress_id) = stored.id.as_deref() else {
        return Err(Error::invalid("rows reported for an agenda progress without an id"));
    };
    let Some(name) = row.operation.as_deref().filter(|n| !n.is_empty()) else {
        return Err(Error::problems(vec![
            Problem::new("an operation progress row without its operation name").field("operation"),
        ]));
    };
    let wrong = |field: &str, what: String| Err(Error::problems(vec![Problem::in_operation(name, what).field(field)]));
    if row.agenda_progress_id.as_deref() != Some(progress_id) {
        return wrong(
            "agendaProgressId",
            format!("the row belongs to agenda progress {:?}, not {progress_id}", row.agenda_progress_id),
        );
    }
    let id = operation_progress_id(progress_id, name);
    if row.id.as_deref() != Some(id.as_str()) {
        return wrong("id", format!("the row's id is {:?}; it must be {id}", row.id));
    }
    if row.customer_id != stored.customer_id {
        return wrong(
            "customerId",
            format!("the row's customerId is {:?}, the agenda's {:?}", row.customer_id, stored.customer_id),
        );
    }
    Ok(())
}

/// What [`apply_report`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Whether the stored progress differs from before (besides `updatedTime`).
    pub changed: bool,
    /// Whether the report completed the agenda.
    pub completed: bool,
}

/// Merges an executor's report of an agenda's progress into the stored progress, under lease epoch
/// `epoch`: state, message, percent, diagnostics and started time come from the report (the started
/// time only when this lease has not recorded one: see [`mark_started`]); params are
/// merged key by key; a report that completes the agenda counts the attempt and stamps the completion
/// time. Fencing (stale epoch, a cancel) is the caller's: it checks before merging.
pub fn apply_report(stored: &mut AgendaProgress, report: &AgendaProgress, epoch: u64, now: Millis) -> Applied {
    let before = (
        stored.processing_state,
        stored.processing_state_message.clone(),
        stored.percent_complete,
        stored.diagnostic_events.len(),
        stored.started_time,
        stored.completed_time,
        stored.lease_epoch,
    );
    let params_changed =
        report.params.as_ref().is_some_and(|p| merge_params(stored.params.get_or_insert_with(Params::new), p));
    let completed = report.processing_state == ProcessingState::Complete;
    stored.processing_state = report.processing_state;
    stored.processing_state_message.clone_from(&report.processing_state_message);
    stored.percent_complete = report.percent_complete;
    let diagnostics_changed = stored.diagnostic_events != report.diagnostic_events;
    stored.diagnostic_events.clone_from(&report.diagnostic_events);
    // The attempt's start is the one its pull recorded ([`mark_started`] under this epoch): the
    // executor's own reading of its clock when it began is not a change (else every run would
    // rewrite its progress at its first publish only to move the start by a few milliseconds).
    // (`before.0`: the stored state before this report, whatever the report says now — the final
    // COMPLETE report keeps the pull's start too.)
    let started_by_this_lease =
        before.0 == ProcessingState::Executing && before.6 == Some(epoch) && stored.started_time.is_some();
    if report.started_time.is_some() && !started_by_this_lease {
        stored.started_time = report.started_time;
    }
    stored.completed_time = if completed { report.completed_time.or(Some(now)) } else { None };
    if completed {
        stored.attempts_completed += 1;
        if report.cost_ms.is_some() {
            stored.cost_ms = report.cost_ms;
        }
    }
    stored.lease_epoch = Some(epoch);
    let after = (
        stored.processing_state,
        stored.processing_state_message.clone(),
        stored.percent_complete,
        stored.diagnostic_events.len(),
        stored.started_time,
        stored.completed_time,
        stored.lease_epoch,
    );
    Applied { changed: before != after || params_changed || diagnostics_changed, completed }
}

/// Merges `from` into `into` key by key; whether anything changed.
pub fn merge_params(into: &mut Params, from: &Params) -> bool {
    let mut changed = false;
    for (k, v) in from {
        if into.get(k) != Some(v) {
            into.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// Marks an agenda progress EXECUTING under a new lease of epoch `epoch` (what a pull does).
pub fn mark_started(p: &mut AgendaProgress, epoch: u64, now: Millis) {
    p.processing_state = ProcessingState::Executing;
    p.processing_state_message = Some(crate::model::RUNNING_OPERATIONS.into());
    p.started_time = Some(now);
    p.updated_time = Some(now);
    p.lease_epoch = Some(epoch);
}

/// Why a progress write on a finished agenda is refused: "was cancelled" or "is already complete".
pub fn finished_reason(p: &AgendaProgress) -> &'static str {
    match p.conclusion() {
        Some(Conclusion::Cancelled) => "was cancelled",
        _ => "is already complete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agenda() -> Agenda {
        serde_json::from_value(json!({
            "id": "a1", "customerId": "acme", "cid": "c-1", "params": {"externalId": 42},
            "agendaInsight": {"insightId": "i", "resourcePoolId": "p"},
            "operations": [{"name": "probe", "type": "t", "payload": {}, "params": {"timeoutMs": 5}}]
        }))
        .unwrap()
    }

    #[test]
    fn new_rows_carry_ids_and_owner() {
        let a = agenda();
        let p = new_agenda_progress(&a, "p1", 7);
        assert_eq!(
            (p.id.as_deref(), p.agenda_id.as_deref(), p.external_id.as_deref()),
            (Some("p1"), Some("a1"), Some("42"))
        );
        assert_eq!(p.processing_state, ProcessingState::Waiting);
        let row = new_operation_progress(&a, "p1", &a.operations[0], 7);
        assert_eq!(row.id.as_deref(), Some("p1-probe"));
        assert_eq!((row.cid.as_deref(), row.customer_id.as_deref()), (Some("c-1"), Some("acme")));
        assert_eq!(row.added_time, Some(7));
        assert!(check_reported_row(&row, &p).is_ok());
        let r = ready_entry(&a, 9).unwrap();
        assert_eq!((r.insight_id.as_str(), r.agenda_id.as_str(), r.added), ("i", "a1", 9));
    }

    #[test]
    fn a_row_of_another_agenda_is_refused_naming_the_field() {
        let a = agenda();
        let p = new_agenda_progress(&a, "p1", 7);
        let mut row = new_operation_progress(&a, "p1", &a.operations[0], 7);
        row.agenda_progress_id = Some("p2".into());
        let e = check_reported_row(&row, &p).unwrap_err();
        assert_eq!(e.problem_list()[0].field.as_deref(), Some("agendaProgressId"), "{e}");
        let mut row = new_operation_progress(&a, "p1", &a.operations[0], 7);
        row.id = Some("p1-other".into());
        assert!(check_reported_row(&row, &p).unwrap_err().to_string().contains("p1-probe"));
        let mut row = new_operation_progress(&a, "p1", &a.operations[0], 7);
        row.customer_id = Some("globex".into());
        assert!(check_reported_row(&row, &p).is_err());
        row.operation = None;
        assert!(check_reported_row(&row, &p).is_err());
    }

    #[test]
    fn a_completing_report_counts_the_attempt_and_merges_params() {
        let a = agenda();
        let mut stored = new_agenda_progress(&a, "p1", 7);
        let mut report = stored.clone();
        report.processing_state = ProcessingState::Executing;
        report.started_time = Some(10);
        let applied = apply_report(&mut stored, &report, 3, 11);
        assert!(applied.changed && !applied.completed);
        assert_eq!(stored.lease_epoch, Some(3));
        // the same report again changes nothing
        assert!(!apply_report(&mut stored, &report, 3, 12).changed);
        report.processing_state = ProcessingState::Complete;
        report.processing_state_message = Some("succeeded".into());
        report.params = Some([("k".to_string(), json!(1))].into_iter().collect());
        let applied = apply_report(&mut stored, &report, 3, 13);
        assert!(applied.changed && applied.completed);
        assert_eq!((stored.attempts_completed, stored.completed_time), (1, Some(13)));
        assert_eq!(stored.params.as_ref().and_then(|p| p.get("externalId")), Some(&json!(42)), "kept");
        assert_eq!(stored.params.as_ref().and_then(|p| p.get("k")), Some(&json!(1)), "merged");
    }

    #[test]
    fn the_start_a_pull_recorded_is_kept_under_its_lease() {
        let a = agenda();
        let mut stored = new_agenda_progress(&a, "p1", 7);
        mark_started(&mut stored, 3, 100);
        // the executor's first report: its own clock a few ms later, nothing else new
        let mut report = stored.clone();
        report.started_time = Some(105);
        assert!(!apply_report(&mut stored, &report, 3, 106).changed, "no write for the executor's clock");
        assert_eq!(stored.started_time, Some(100));
        // the final report, with the executor's start: the pull's start stays
        let mut done = report.clone();
        done.processing_state = ProcessingState::Complete;
        done.completed_time = Some(120);
        assert!(apply_report(&mut stored, &done, 3, 121).changed);
        assert_eq!((stored.started_time, stored.completed_time), (Some(100), Some(120)));
        // a report under a newer lease (the pull of another attempt did not record its start) moves it
        let applied = apply_report(&mut stored, &report, 4, 107);
        assert!(applied.changed);
        assert_eq!((stored.started_time, stored.lease_epoch), (Some(105), Some(4)));
    }
}
