//! An operation's progress as the machine keeps it during a run: the fields a run changes, inline; the
//! rest of a row (ids, owner, title, version, diagnostics, params), rare in a large agenda, boxed and
//! only when there is any. The messages and results every operation carries (`pending`, `succeeded`,
//! `{}`, ...) are static strings, not one allocation each. A third of the size of an
//! [`OperationProgress`], which it is exported as.

use pop_core::model::{DiagnosticEvent, Millis, OperationProgress, PENDING, Params, ProcessingState};
use std::borrow::Cow;

/// An operation's progress in the machine. [`Progress::into_row`] of [`Progress::from_row`] gives the
/// row back unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Progress {
    /// The other fields of the row (`id`, `cid`, `customerId`, `title`, `agendaProgressId`, `operation`,
    /// `version`, `diagnosticEvents`, `params`), when one of them is set; the fields kept here are left
    /// at their defaults in it.
    pub(super) rest: Option<Box<OperationProgress>>,
    pub(super) processing_state_message: Option<Cow<'static, str>>,
    pub(super) result_payload: Option<Cow<'static, str>>,
    pub(super) updated_time: Option<Millis>,
    pub(super) added_time: Option<Millis>,
    pub(super) attempt_time: Option<Millis>,
    pub(super) started_time: Option<Millis>,
    pub(super) completed_time: Option<Millis>,
    pub(super) percent_complete: f64,
    pub(super) attempt_count: u32,
    pub(super) processing_state: ProcessingState,
}

/// The fields of a row that [`Progress`] keeps in `rest`.
#[derive(Clone, Copy)]
pub(super) struct Rest<'a> {
    pub(super) id: Option<&'a str>,
    pub(super) cid: Option<&'a str>,
    pub(super) customer_id: Option<&'a str>,
    pub(super) title: Option<&'a str>,
    pub(super) agenda_progress_id: Option<&'a str>,
    pub(super) operation: Option<&'a str>,
    pub(super) diagnostic_events: &'a [DiagnosticEvent],
    pub(super) params: Option<&'a Params>,
    pub(super) version: u64,
}

/// The least capacity of a row's message when it is made from a static one (`pending`): the message a
/// later publish writes over it (`succeeded`, `cancelled`) then fits without a new allocation, and an
/// allocator's smallest block holds that much anyway (glibc's: 24 bytes).
pub(super) const MIN_TEXT_CAPACITY: usize = 16;

/// `text` as an owned string; a static one gets at least [`MIN_TEXT_CAPACITY`].
fn owned_text(text: Cow<'static, str>) -> String {
    match text {
        Cow::Owned(s) => s,
        Cow::Borrowed(b) => {
            let mut s = String::with_capacity(b.len().max(MIN_TEXT_CAPACITY));
            s.push_str(b);
            s
        }
    }
}

impl Progress {
    /// A new operation's progress: waiting, `pending`, added at `now`.
    pub(super) fn pending(now: Millis) -> Self {
        Self {
            added_time: Some(now),
            processing_state: ProcessingState::Waiting,
            processing_state_message: Some(Cow::Borrowed(PENDING)),
            ..Self::default()
        }
    }

    /// Takes over a row (restored from the prior progress).
    pub(super) fn from_row(row: OperationProgress) -> Self {
        // Destructured in full: a field added to the row must be kept here too.
        let OperationProgress {
            id,
            cid,
            customer_id,
            title,
            updated_time,
            added_time,
            agenda_progress_id,
            processing_state,
            processing_state_message,
            operation,
            diagnostic_events,
            percent_complete,
            attempt_count,
            attempt_time,
            started_time,
            completed_time,
            result_payload,
            params,
            version,
        } = row;
        let has_rest = id.is_some()
            || cid.is_some()
            || customer_id.is_some()
            || title.is_some()
            || agenda_progress_id.is_some()
            || operation.is_some()
            || !diagnostic_events.is_empty()
            || params.is_some()
            || version != 0;
        let rest = has_rest.then(|| {
            Box::new(OperationProgress {
                id,
                cid,
                customer_id,
                title,
                agenda_progress_id,
                operation,
                diagnostic_events,
                params,
                version,
                ..OperationProgress::default()
            })
        });
        Self {
            rest,
            processing_state_message: processing_state_message.map(Cow::Owned),
            result_payload: result_payload.map(Cow::Owned),
            updated_time,
            added_time,
            attempt_time,
            started_time,
            completed_time,
            percent_complete,
            attempt_count,
            processing_state,
        }
    }

    /// The row, moved out.
    pub(super) fn into_row(self) -> OperationProgress {
        let mut row = self.rest.map(|b| *b).unwrap_or_default();
        row.processing_state_message = self.processing_state_message.map(owned_text);
        row.result_payload = self.result_payload.map(Cow::into_owned);
        row.updated_time = self.updated_time;
        row.added_time = self.added_time;
        row.attempt_time = self.attempt_time;
        row.started_time = self.started_time;
        row.completed_time = self.completed_time;
        row.percent_complete = self.percent_complete;
        row.attempt_count = self.attempt_count;
        row.processing_state = self.processing_state;
        row
    }

    /// The row (a copy).
    pub(super) fn to_row(&self) -> OperationProgress {
        self.clone().into_row()
    }

    /// The fields kept in `rest`.
    pub(super) fn rest(&self) -> Rest<'_> {
        match self.rest.as_deref() {
            None => Rest {
                id: None,
                cid: None,
                customer_id: None,
                title: None,
                agenda_progress_id: None,
                operation: None,
                diagnostic_events: &[],
                params: None,
                version: 0,
            },
            Some(r) => Rest {
                id: r.id.as_deref(),
                cid: r.cid.as_deref(),
                customer_id: r.customer_id.as_deref(),
                title: r.title.as_deref(),
                agenda_progress_id: r.agenda_progress_id.as_deref(),
                operation: r.operation.as_deref(),
                diagnostic_events: &r.diagnostic_events,
                params: r.params.as_ref(),
                version: r.version,
            },
        }
    }

    fn rest_mut(&mut self) -> &mut OperationProgress {
        self.rest.get_or_insert_with(Box::default)
    }

    /// The diagnostic events, to add to.
    pub(super) fn diagnostic_events_mut(&mut self) -> &mut Vec<DiagnosticEvent> {
        &mut self.rest_mut().diagnostic_events
    }

    /// Sets the handler's resume state.
    pub(super) fn set_params(&mut self, params: Params) {
        self.rest_mut().params = Some(params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_round_trip_and_are_kept_smaller() {
        let full = OperationProgress {
            id: Some("p-a".into()),
            cid: Some("c".into()),
            customer_id: Some("cu".into()),
            title: Some("t".into()),
            updated_time: Some(5),
            added_time: Some(1),
            agenda_progress_id: Some("p".into()),
            processing_state: ProcessingState::Complete,
            processing_state_message: Some("succeeded".into()),
            operation: Some("a".into()),
            diagnostic_events: vec![DiagnosticEvent::new("d", 3)],
            percent_complete: 100.0,
            attempt_count: 2,
            attempt_time: Some(4),
            started_time: Some(2),
            completed_time: Some(5),
            result_payload: Some("{\"x\":1}".into()),
            params: Some(Params::from_iter([("k".to_owned(), json!(1))])),
            version: 3,
        };
        let mut rows = vec![full.clone(), OperationProgress::default()];
        for i in 0..9 {
            // Each of the fields kept aside alone.
            let mut r = OperationProgress::default();
            match i {
                0 => r.id = full.id.clone(),
                1 => r.cid = full.cid.clone(),
                2 => r.customer_id = full.customer_id.clone(),
                3 => r.title = full.title.clone(),
                4 => r.agenda_progress_id = full.agenda_progress_id.clone(),
                5 => r.operation = full.operation.clone(),
                6 => r.diagnostic_events = full.diagnostic_events.clone(),
                7 => r.params = full.params.clone(),
                _ => r.version = 1,
            }
            rows.push(r);
        }
        for row in rows {
            let p = Progress::from_row(row.clone());
            assert_eq!(p.to_row(), row);
            assert_eq!(p.into_row(), row);
        }
        assert!(Progress::from_row(OperationProgress::default()).rest.is_none());
        assert!(std::mem::size_of::<Progress>() * 2 < std::mem::size_of::<OperationProgress>());
    }

    #[test]
    fn rest_is_made_when_first_needed() {
        let mut p = Progress::pending(7);
        assert!(p.rest.is_none());
        assert_eq!(p.rest().diagnostic_events.len(), 0);
        p.diagnostic_events_mut().push(DiagnosticEvent::new("x", 8));
        p.set_params(Params::new());
        let row = p.to_row();
        assert_eq!(row.diagnostic_events.len(), 1);
        assert_eq!(row.params, Some(Params::new()));
        assert_eq!(row.processing_state_message.as_deref(), Some(PENDING));
        assert_eq!(row.added_time, Some(7));
    }
}
