use super::{AgendaInsight, Conclusion};
use super::{Millis, Params, ProcessingState, is_zero_u64, null_default, owned_object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Something worth telling about a run: an error, a timeout, a reclaim (`DiagnosticEvent`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticEvent {
    /// What happened, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A status code (free string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// When, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Millis>,
    /// A stack trace or error chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    /// Any JSON, e.g. the last log lines of a failed handler.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub payload: Value,
}

impl DiagnosticEvent {
    /// An event with a message and a time.
    pub fn new(message: impl Into<String>, time: Millis) -> Self {
        Self { message: Some(message.into()), time: Some(time), ..Self::default() }
    }

    /// Attaches a JSON payload.
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
}

/// The progress of one agenda run (`AgendaProgress`), one per agenda.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgendaProgress {
    /// Id (= `Agenda.progressId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms (the heartbeat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// The agenda.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_id: Option<String>,
    /// Copied from the agenda.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// From agenda params `externalId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// WAITING, EXECUTING or COMPLETE.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub processing_state: ProcessingState,
    /// `pending`, `Running Operations`, or the conclusion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state_message: Option<String>,
    /// The operations' progress; joined on read, not stored on the row.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub operation_progress: Vec<OperationProgress>,
    /// Diagnostics; replaced, not appended, on update.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub diagnostic_events: Vec<DiagnosticEvent>,
    /// Incremented on each transition to COMPLETE.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub attempts_completed: u32,
    /// From agenda params `maximumAttempts` (default 3).
    #[serde(default = "three", deserialize_with = "three_if_null")]
    pub maximum_attempts: u32,
    /// When the current attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<Millis>,
    /// When it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<Millis>,
    /// Rolled-up percent complete.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub percent_complete: f64,
    /// Copy of the agenda params (plus generated params).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Params>,
    /// Copied from the agenda.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_insight: Option<AgendaInsight>,
    /// Extension: the queue-lease epoch of the execution that last wrote this progress (fencing: a
    /// write carrying a lower epoch is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u64>,
    /// Extension: what the last finished attempt cost, in milliseconds: the wall time of the
    /// operations it ran (the sum over operations of completed − started; operations restored from
    /// an earlier attempt count nothing). Set by the pool worker on the final report; the engine
    /// charges it to the agenda's customer for cost-weighted scheduling (`CostWeightedFairness`).
    /// Wall time, not CPU time: a handler's CPU time is not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_ms: Option<u64>,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(AgendaProgress);

fn three() -> u32 {
    3
}

fn three_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or(3))
}

impl Default for AgendaProgress {
    fn default() -> Self {
        Self {
            id: None,
            cid: None,
            customer_id: None,
            title: None,
            updated_time: None,
            added_time: None,
            agenda_id: None,
            link_id: None,
            external_id: None,
            processing_state: ProcessingState::Waiting,
            processing_state_message: None,
            operation_progress: Vec::new(),
            diagnostic_events: Vec::new(),
            attempts_completed: 0,
            maximum_attempts: 3,
            started_time: None,
            completed_time: None,
            percent_complete: 0.0,
            params: None,
            agenda_insight: None,
            lease_epoch: None,
            cost_ms: None,
            version: 0,
        }
    }
}

/// The hard cap on the attempts of an agenda, whatever its `maximumAttempts`.
pub const MAX_ATTEMPTS_CAP: u32 = 20;

impl AgendaProgress {
    /// The conclusion, when COMPLETE with a recognised message.
    pub fn conclusion(&self) -> Option<Conclusion> {
        if self.processing_state != ProcessingState::Complete {
            return None;
        }
        self.processing_state_message.as_deref().and_then(Conclusion::parse)
    }

    /// The attempts this agenda may make: `maximumAttempts` within `1..=`[`MAX_ATTEMPTS_CAP`].
    pub fn attempt_limit(&self) -> u32 {
        self.maximum_attempts.clamp(1, MAX_ATTEMPTS_CAP)
    }

    /// Whether it is COMPLETE with conclusion `failed` and attempts left (`attemptsCompleted <
    /// min(20, maximumAttempts)`): an automatic retry may run it again.
    pub fn retryable(&self) -> bool {
        self.conclusion() == Some(Conclusion::Failed) && self.attempts_completed < self.attempt_limit()
    }

    /// When it finished: `completedTime`, else `updatedTime`, else 0 (the epoch: a finished agenda
    /// without either time counts as finished long ago).
    pub fn finished_at(&self) -> Millis {
        self.completed_time.or(self.updated_time).unwrap_or(0)
    }
}

/// The progress of one operation (`OperationProgress`), id `<agendaProgressId>-<operationName>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationProgress {
    /// Id: `<agendaProgressId>-<operationName>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Correlation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Last update, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<Millis>,
    /// Creation, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_time: Option<Millis>,
    /// The agenda progress this belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agenda_progress_id: Option<String>,
    /// WAITING, EXECUTING or COMPLETE.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub processing_state: ProcessingState,
    /// `pending`, or the conclusion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state_message: Option<String>,
    /// The operation's **name**.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Diagnostics.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub diagnostic_events: Vec<DiagnosticEvent>,
    /// Percent complete (forced to 100 on success).
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub percent_complete: f64,
    /// Attempts of this operation (extension: counts operation-level retries).
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub attempt_count: u32,
    /// When the current attempt was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_time: Option<Millis>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_time: Option<Millis>,
    /// When it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<Millis>,
    /// JSON **text** of the handler's output (`"{}"` after a reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_payload: Option<String>,
    /// Copy of the operation params; handlers may store resume state here.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Params>,
    /// Optimistic-concurrency version.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_u64")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub version: u64,
}
owned_object!(OperationProgress);

impl OperationProgress {
    /// The id of an operation's progress row: `<agendaProgressId>-<operationName>`.
    pub fn make_id(agenda_progress_id: &str, operation_name: &str) -> String {
        crate::lifecycle::operation_progress_id(agenda_progress_id, operation_name)
    }

    /// The conclusion, when COMPLETE with a recognised message.
    pub fn conclusion(&self) -> Option<Conclusion> {
        if self.processing_state != ProcessingState::Complete {
            return None;
        }
        self.processing_state_message.as_deref().and_then(Conclusion::parse)
    }

    /// Whether this operation completed successfully.
    pub fn succeeded(&self) -> bool {
        self.conclusion() == Some(Conclusion::Succeeded)
    }
}
